"""Branching a run (`lebm train PRESET --from RUN`): a new run that starts from a trained
checkpoint's state under a new config — the paired comparison of a setting from one point."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from lebm.config import build_config
from lebm.errors import CheckpointError, ConfigError
from lebm.train import Trainer, latest_checkpoint, load_training_state
from lebm.train.checkpoint import step_dir

from .test_train import _assert_same_state, _weights


def _parent(tmp_path, tiny, steps: int = 6, **extra):
    cfg = build_config("digits", tiny, **{"train.max_steps": steps,
                                         "train.checkpoint_every": 3, **extra})
    Trainer(cfg, tmp_path / "parent").fit()
    return tmp_path / "parent"


def test_a_branch_with_the_same_config_continues_the_parent_exactly(tmp_path, tiny_overrides):
    """Branch at step 6 (mid-epoch, after one LR decay) and train to 12 == 12 steps straight."""
    straight = build_config("digits", tiny_overrides, **{"train.max_steps": 12})
    Trainer(straight, tmp_path / "straight").fit()
    parent = _parent(tmp_path, tiny_overrides)

    cfg = build_config("digits", tiny_overrides, **{"train.max_steps": 12})
    branch = Trainer(cfg, tmp_path / "branch", branch_from=parent)
    assert branch.step == 6
    branch.fit()
    _assert_same_state(tmp_path / "straight", tmp_path / "branch")
    meta = json.loads((tmp_path / "branch" / "config.json").read_text())
    assert meta["branched_from"] == {"checkpoint": str(step_dir(parent, 6).resolve()),
                                     "step": 6}
    steps = [json.loads(x)["step"] for x in
             (tmp_path / "branch" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(2, 13, 2))  # the parent's log up to 6, then the branch's
    # resuming the branch keeps its record
    Trainer.resume(tmp_path / "branch", max_steps=14).fit()
    meta = json.loads((tmp_path / "branch" / "config.json").read_text())
    assert meta["branched_from"]["step"] == 6


def test_a_branch_takes_every_setting_from_the_new_config(tmp_path, tiny_overrides):
    parent = _parent(tmp_path, tiny_overrides)
    ckpt = step_dir(parent, 3)  # a checkpoint folder, not the run's latest
    cfg = build_config("digits", tiny_overrides, **{
        "train.max_steps": 5, "method.lr_g": 3e-4, "method.lr_decay": 0.9,
        "method.beta1_e": 0.7, "method.energy_l2": 0.1})
    branch = Trainer(cfg, tmp_path / "branch", branch_from=ckpt)
    assert branch.step == 3
    epochs = branch.learner.schedulers["generator"].last_epoch
    assert epochs == 0  # 4 batches an epoch: still in the first
    g = branch.optimizers["generator"].param_groups[0]
    assert g["lr"] == pytest.approx(3e-4) and g["initial_lr"] == 3e-4
    e = branch.optimizers["energy"].param_groups[0]
    assert e["lr"] == pytest.approx(1e-4) and e["betas"][0] == 0.7
    assert branch.method.config.energy_l2 == 0.1
    # the state is the parent's at step 3: weights and Adam moments
    parent_state = load_training_state(ckpt)
    for name, opt in branch.optimizers.items():
        ours = opt.state_dict()["state"]
        for pid, st in parent_state["optimizers"][name]["state"].items():
            assert torch.equal(ours[pid]["exp_avg"], st["exp_avg"])
    branch.fit()
    # after the epoch boundary at step 4 the new decay applies to the new rate
    assert branch.optimizers["generator"].param_groups[0]["lr"] == pytest.approx(3e-4 * 0.9)
    trained = _weights(tmp_path / "branch")  # it trained on from the parent's step 3
    assert any(not torch.equal(trained[k], v) for k, v in _weights(parent).items())


def test_branching_refuses_what_it_cannot_do(tmp_path, tiny_overrides):
    parent = _parent(tmp_path, tiny_overrides)
    ok = {"train.max_steps": 10}
    with pytest.raises(ConfigError, match="architecture must be the same"):
        Trainer(build_config("digits", [*tiny_overrides, "model.n_z=5"], **ok),
                tmp_path / "a", branch_from=parent)
    with pytest.raises(ConfigError, match="trained by the lebm method"):
        Trainer(build_config("vae-digits", tiny_overrides, **ok), tmp_path / "b",
                branch_from=parent)
    with pytest.raises(ConfigError, match="must be larger"):
        Trainer(build_config("digits", tiny_overrides, **{"train.max_steps": 6}),
                tmp_path / "c", branch_from=parent)
    with pytest.raises(CheckpointError, match="neither a run folder nor a checkpoint"):
        Trainer(build_config("digits", tiny_overrides, **ok), tmp_path / "d",
                branch_from=tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="inside the new run folder"):
        Trainer(build_config("digits", tiny_overrides, **ok), parent, overwrite=True,
                branch_from=parent)
    # nothing was written by the refusals, and the parent is intact
    assert not any((tmp_path / n).exists() for n in "abcd")
    assert latest_checkpoint(parent).name == "step_00000006"


def test_cli_branch(tmp_path, tiny_overrides):
    parent = _parent(tmp_path, tiny_overrides)
    sets = [a for o in tiny_overrides for a in ("--set", o)]
    res = subprocess.run([sys.executable, "-m", "lebm", "train", "digits", "--run-dir",
                          str(tmp_path / "b"), "--from", str(parent), "--max-steps", "8",
                          "--set", "method.lr_e=5e-5", *sets], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert "branched from" in res.stdout and "at step 6" in res.stdout
    assert latest_checkpoint(tmp_path / "b").name == "step_00000008"
