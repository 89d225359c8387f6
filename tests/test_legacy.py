"""A run folder written by lebm 0.1.0 (flat chain keys, before the core redesign) loads,
evaluates and resumes; resuming it gives bit for bit the weights that 0.1.0 itself gave.

The fixture (tests/data/legacy_run_0.1.0) was made with the 0.1.0 code: ``lebm train
digits`` for 4 steps with a tiny network; ``expected_step_6.safetensors`` is what 0.1.0's
``lebm resume --max-steps 6`` wrote from that folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

import lebm
from lebm.run import read_run_config
from lebm.train import Trainer, latest_checkpoint

FIXTURE = Path(__file__).resolve().parent / "data" / "legacy_run_0.1.0"


def _copy(tmp_path: Path) -> Path:
    run = tmp_path / "legacy"
    shutil.copytree(FIXTURE, run, ignore=shutil.ignore_patterns("expected_*"))
    return run


def test_legacy_run_config_and_model_load_with_the_new_keys(tmp_path):
    run = _copy(tmp_path)
    cfg = read_run_config(run)
    assert json.loads((run / "config.json").read_text())["lebm_version"] == "0.1.0"
    assert "prior_steps" in json.loads((run / "config.json").read_text())["config"]["model"]
    chain = cfg.model.prior_chain
    assert (chain.kernel, chain.n_steps, chain.step_size) == ("langevin", 3, 0.4)
    assert cfg.model.posterior_chain.n_steps == 3
    model = lebm.load(run)
    assert model.config.prior_chain.n_steps == 3 and model.latent.dim == 3
    x = model.sample(5, torch.Generator().manual_seed(0))
    assert x.shape == (5, 1, 8, 8) and torch.isfinite(x).all()
    assert model.reconstruct(x).shape == x.shape


def test_legacy_run_resumes_exactly_as_0_1_0_did(tmp_path):
    run = _copy(tmp_path)
    trainer = Trainer.resume(run, max_steps=6)
    trainer.cfg.train.progress = False
    assert trainer.step == 4
    trainer.fit()
    got = load_file(str(latest_checkpoint(run) / "model.safetensors"))
    want = load_file(str(FIXTURE / "expected_step_6.safetensors"))
    assert got.keys() == want.keys()
    for k in want:
        assert torch.equal(got[k], want[k]), k
    # the run's config is now written in the new layout, and still reads back
    meta = json.loads((run / "config.json").read_text())
    assert meta["config"]["model"]["prior_chain"]["n_steps"] == 3
    assert read_run_config(run).model.prior_chain.n_steps == 3


def test_legacy_run_evaluates(tmp_path):
    from lebm.evaluate import EvalSettings, evaluate

    run = _copy(tmp_path)
    record = evaluate(run, ["mse", "chains"], EvalSettings(n_test=20, progress=False), "cpu")
    assert record["metrics"]["mse"]["recipe"]["posterior_steps"] == 3
    assert record["metrics"]["chains"]["prior"]["training_steps"] == 3
