"""Training: run folder, exact resume, crash recovery, NaN rollback, ``lebm.load``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import lebm
from lebm.config import build_config
from lebm.errors import ConfigError, DivergenceError, LebmError
from lebm.run import read_run_config
from lebm.train import Trainer, latest_checkpoint, load_training_state
from lebm.train.checkpoint import save_checkpoint

from .conftest import corrupt_steps, nan_loss


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(latest_checkpoint(run) / "model.safetensors"))


def _assert_same_state(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"weight {k} differs"
    sa = load_training_state(latest_checkpoint(a))
    sb = load_training_state(latest_checkpoint(b))
    assert sa["step"] == sb["step"]
    assert torch.equal(sa["rng"]["chain"], sb["rng"]["chain"])
    for name, opt in sa["optimizers"].items():
        for pid, st in opt["state"].items():
            for key, val in st.items():
                assert torch.equal(val, sb["optimizers"][name]["state"][pid][key]), (name, key)


def test_run_folder_layout(tmp_path, tiny_overrides):
    cfg = build_config("digits", tiny_overrides, **{"train.max_steps": 8})
    Trainer(cfg, tmp_path / "run").fit()
    run = tmp_path / "run"
    meta = json.loads((run / "config.json").read_text())
    assert meta["format"] == "lebm-run" and meta["config"]["model"]["data_shape"] == [1, 8, 8]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    assert {"loss_generator", "loss_energy", "mse", "f_pos", "f_neg", "lr_generator",
            "post_grad_norm_last", "prior_logp_last"} <= rows[-1].keys()
    assert (run / "samples" / "step_00000008_samples.png").is_file()
    assert (run / "samples" / "step_00000008_recon.png").is_file()
    for plot in ("losses.png", "energy.png", "chains.png"):
        assert (run / "plots" / plot).stat().st_size > 1000
    ckpts = sorted(p.name for p in (run / "checkpoints").glob("step_*"))
    assert ckpts == ["step_00000000", "step_00000004", "step_00000008"]
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_00000008"
    model = lebm.load(run)
    assert model.sample(2).shape == (2, 1, 8, 8)
    # an existing run is not silently overwritten
    with pytest.raises(LebmError, match="already holds a run"):
        Trainer(cfg, run)


@pytest.mark.parametrize("preset", ["digits", "abp-digits", "vae-digits", "svebm-wine"])
def test_resume_is_bit_exact(tmp_path, tiny_overrides, preset):
    """N steps, stop, resume to 2N == 2N steps straight (weights, Adam moments, RNG)."""
    # 6 steps = 1.5 epochs of 4 batches: the resume crosses an epoch boundary and LR decay.
    straight = build_config(preset, tiny_overrides, **{"train.max_steps": 12})
    Trainer(straight, tmp_path / "straight").fit()

    half = build_config(preset, tiny_overrides, **{"train.max_steps": 6,
                                                   "train.checkpoint_every": 3})
    Trainer(half, tmp_path / "resumed").fit()
    Trainer.resume(tmp_path / "resumed", max_steps=12).fit()
    _assert_same_state(tmp_path / "straight", tmp_path / "resumed")
    rows = [json.loads(x) for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().split("\n")
            if x]
    assert [r["step"] for r in rows] == list(range(2, 13, 2))


def test_resume_drops_log_lines_after_the_checkpoint(tmp_path, tiny_overrides):
    cfg = build_config("digits", tiny_overrides, **{"train.max_steps": 6,
                                                    "train.checkpoint_every": 4})
    Trainer(cfg, tmp_path / "r").fit()  # checkpoints at 0, 4 and (final) 6
    save_dir = tmp_path / "r" / "checkpoints"
    (save_dir / "latest").write_text("step_00000004\n")  # pretend we died after step 6 logs
    import shutil

    shutil.rmtree(save_dir / "step_00000006")
    trainer = Trainer.resume(tmp_path / "r")
    assert trainer.step == 4
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(x)["step"] for x in lines]
    assert steps == [2, 4]


def test_incomplete_checkpoint_is_skipped(tmp_path, tiny_overrides, capsys):
    cfg = build_config("digits", tiny_overrides, **{"train.max_steps": 4})
    trainer = Trainer(cfg, tmp_path / "r")
    trainer.fit()
    root = tmp_path / "r" / "checkpoints"
    torn = root / "step_00000009"
    torn.mkdir()
    (torn / "config.json").write_text("{}")  # no weights, no state: a torn write
    (root / "latest").write_text("step_00000009\n")
    assert latest_checkpoint(tmp_path / "r").name == "step_00000004"
    assert "skipped step_00000009 (no model.safetensors" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncate-weights", "garbage-state", "truncate-config",
                                    "garbage-checksums"])
def test_corrupt_latest_checkpoint_falls_back_to_the_newest_that_verifies(
        tmp_path, tiny_overrides, capsys, damage):
    """Resume and lebm.load use the newest checkpoint whose files match their checksums, and
    say on stderr which they skipped; with none left, a clear error."""
    cfg = build_config("digits", tiny_overrides, **{"train.max_steps": 8})
    Trainer(cfg, tmp_path / "r").fit()  # checkpoints at 0, 4, 8 (keep 3)
    root = tmp_path / "r" / "checkpoints"
    newest = root / "step_00000008"
    target = {"truncate-weights": "model.safetensors", "garbage-state": "training_state.pt",
              "truncate-config": "config.json", "garbage-checksums": "checksums.json"}[damage]
    data = (newest / target).read_bytes()
    (newest / target).write_bytes(data[:len(data) // 2] if "truncate" in damage
                                  else b"\x00garbage" * 7)
    capsys.readouterr()
    model = lebm.load(tmp_path / "r")
    assert "skipped step_00000008" in capsys.readouterr().err
    trainer = Trainer.resume(tmp_path / "r", max_steps=10)
    assert trainer.step == 4
    err = capsys.readouterr().err
    assert "skipped step_00000008" in err and "using step_00000004" in err
    torch.testing.assert_close(dict(trainer.model.state_dict()), dict(model.state_dict()))
    trainer.lock.release()
    # every checkpoint corrupt: a clear error, not a traceback from a parser
    for ckpt in root.glob("step_*"):
        (ckpt / "training_state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(LebmError, match="no checkpoint that verifies"):
        Trainer.resume(tmp_path / "r")
    with pytest.raises(LebmError, match="no checkpoint that verifies"):
        lebm.load(tmp_path / "r")


def test_training_state_loads_with_weights_only(tmp_path, tiny_overrides):
    cfg = build_config("digits", tiny_overrides, **{"train.max_steps": 4})
    Trainer(cfg, tmp_path / "r").fit()
    state = torch.load(latest_checkpoint(tmp_path / "r") / "training_state.pt",
                       weights_only=True)
    assert state["step"] == 4 and set(state["optimizers"]) == {"generator", "energy"}


def test_nan_rolls_back_and_shrinks_steps(tmp_path, tiny_overrides):
    cfg = build_config("digits", tiny_overrides, **{"train.max_steps": 10})
    trainer = Trainer(cfg, tmp_path / "r")
    corrupt_steps(trainer, {7}, nan_loss("energy"))  # step index 6: after the step-4 checkpoint
    lr0 = trainer.optimizers["generator"].param_groups[0]["lr"]
    trainer.fit()
    assert trainer.step == 10 and trainer.n_divergences == 1
    events = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().split("\n")
              if x and "event" in x]
    assert len(events) == 1
    assert events[0]["bad_step"] == 6 and events[0]["step"] == 4
    assert events[0]["quantity"].startswith("loss_energy=nan")
    # the chains' step scale is training state, checkpointed; the model's config is not
    # touched, so a saved model samples with the step it was configured with
    assert trainer.method.step_scale == pytest.approx(0.8)
    assert trainer.model.config.prior_chain.step_size == 0.4
    assert trainer.optimizers["generator"].param_groups[0]["lr"] < lr0 * 0.6
    for p in trainer.model.parameters():
        assert torch.isfinite(p).all()
    state = load_training_state(latest_checkpoint(tmp_path / "r"))
    assert state["method"]["step_scale"] == pytest.approx(0.8)
    assert lebm.load(tmp_path / "r").config.prior_chain.step_size == 0.4
    assert Trainer.resume(tmp_path / "r").method.step_scale == pytest.approx(0.8)


def test_persistent_nan_gives_up_with_a_clear_error(tmp_path, tiny_overrides):
    cfg = build_config("digits", tiny_overrides, **{"train.max_steps": 10,
                                                    "train.max_divergences": 2})
    trainer = Trainer(cfg, tmp_path / "r")

    def infinite(out) -> None:
        out.metrics["z_post_norm"] = torch.tensor(float("inf"))

    corrupt_steps(trainer, None, infinite)
    with pytest.raises(DivergenceError, match=r"step 0: .*z_post_norm=inf.*gave up after 2"):
        trainer.fit()


def test_save_checkpoint_is_atomic_against_failures(tmp_path, tiny_overrides, monkeypatch):
    cfg = build_config("digits", tiny_overrides, **{"train.max_steps": 4})
    trainer = Trainer(cfg, tmp_path / "r")
    trainer.fit()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "r", 99, trainer.model, {})
    assert latest_checkpoint(tmp_path / "r").name == "step_00000004"


def _lebm(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lebm", *args], capture_output=True, text=True,
                          timeout=300, **kw)


def test_kill_9_mid_run_then_resume(tmp_path, tiny_overrides):
    """SIGKILL during training (checkpoints every step), then `lebm resume` finishes the run
    from the last complete checkpoint, and matches an uninterrupted run bit for bit."""
    run = tmp_path / "killed"
    args = ["train", "digits", "--run-dir", str(run), "--max-steps", "100000"]
    for o in tiny_overrides + ["train.checkpoint_every=1", "train.sample_every=1000"]:
        args += ["--set", o]
    proc = subprocess.Popen([sys.executable, "-m", "lebm", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        pointer = run / "checkpoints" / "latest"
        while time.time() < deadline:
            if pointer.exists() and int(pointer.read_text().strip()[5:] or 0) >= 9:
                break
            time.sleep(0.05)
        else:
            pytest.fail("training made no progress")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    last_good = latest_checkpoint(run)
    k = int(last_good.name[5:])
    target = k + 5
    res = _lebm("resume", str(run), "--max-steps", str(target), "--no-progress")
    assert res.returncode == 0, res.stderr
    assert f"resuming {run} at step {k} of {target}" in res.stdout
    assert latest_checkpoint(run).name == f"step_{target:08d}"
    assert not list((run / "checkpoints").glob(".tmp_*"))

    straight = build_config("digits", tiny_overrides, **{"train.max_steps": target})
    Trainer(straight, tmp_path / "straight").fit()
    _assert_same_state(tmp_path / "straight", run)


def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path, tiny_overrides):
    run = tmp_path / "r"
    args = ["train", "digits", "--run-dir", str(run), "--max-steps", "100000"]
    for o in tiny_overrides + ["train.checkpoint_every=100000", "train.sample_every=100000"]:
        args += ["--set", o]
    proc = subprocess.Popen([sys.executable, "-m", "lebm", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size > 0):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "checkpoint saved" in err and "Traceback" not in err
    step = load_training_state(latest_checkpoint(run))["step"]
    assert step >= 2  # beyond the step-0 checkpoint: the interrupt saved the current step


def test_training_with_metropolis_chains_logs_their_acceptance(tmp_path, tiny_overrides):
    """Any registered kernel trains: MALA posterior and HMC prior chains, acceptance logged
    and plotted, and the eval chain diagnostics report it."""
    from lebm.evaluate import EvalSettings, evaluate

    cfg = build_config("digits", tiny_overrides + [
        "model.posterior_chain.kernel=mala", "model.posterior_chain.step_size=0.05",
        "model.prior_chain.kernel=hmc", "model.prior_chain.n_leapfrog=2"],
        **{"train.max_steps": 4})
    Trainer(cfg, tmp_path / "r").fit()
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().split("\n")
            if x]
    assert 0 < rows[-1]["post_acceptance"] <= 1 and 0 < rows[-1]["prior_acceptance"] <= 1
    record = evaluate(tmp_path / "r", ["chains"], EvalSettings(progress=False), "cpu")
    chains = record["metrics"]["chains"]
    assert chains["recipe"]["kernels"] == {"prior": "hmc", "posterior": "mala"}
    assert 0 < chains["posterior"]["acceptance_mean"] <= 1


def test_toy_run_draws_data_vs_samples_and_the_prior(tmp_path):
    cfg = build_config("toy2d", ["data.limit=400",
                                 "model.prior_steps=5", "model.posterior_steps=5",
                                 "model.gen_widths=16", "model.energy_widths=16",
                                 "train.batch_size=100", "train.progress=false",
                                 "train.sample_every=4", "train.checkpoint_every=4"],
                       **{"train.max_steps": 4})
    Trainer(cfg, tmp_path / "toy").fit()
    for kind in ("samples", "prior"):
        assert (tmp_path / "toy" / "samples" / f"step_00000004_{kind}.png").stat().st_size > 5000
    assert lebm.load(tmp_path / "toy").sample(3).shape == (3, 2)


def test_resume_may_change_how_a_run_is_carried_out_not_what_it_learns(tmp_path, tiny_overrides):
    """``resume --set``: a new checkpoint cadence and keep count take effect, are kept in the
    run's config for later resumes, and the run still ends where 12 steps straight end; a
    setting that changes learning is refused with a pointer to branching."""
    straight = build_config("digits", tiny_overrides, **{"train.max_steps": 12})
    Trainer(straight, tmp_path / "straight").fit()
    half = build_config("digits", tiny_overrides, **{"train.max_steps": 6,
                                                     "train.checkpoint_every": 3})
    Trainer(half, tmp_path / "r").fit()
    with pytest.raises(ConfigError, match="method.lr_g changes what the run learns.*branch"):
        Trainer.resume(tmp_path / "r", 12, ["method.lr_g=1e-3"])
    with pytest.raises(ConfigError, match="train.batch_size changes what the run learns"):
        Trainer.resume(tmp_path / "r", 12, ["batch_size=7"])
    with pytest.raises(ConfigError, match="checkpoint_every"):
        Trainer.resume(tmp_path / "r", 12, ["train.checkpoint_every=0"])  # validated
    trainer = Trainer.resume(tmp_path / "r", 12,
                             ["checkpoint_every=2", "train.keep_checkpoints=50"])
    trainer.fit()
    _assert_same_state(tmp_path / "straight", tmp_path / "r")
    ckpts = sorted(p.name for p in (tmp_path / "r" / "checkpoints").glob("step_*"))
    assert ckpts == [f"step_{s:08d}" for s in (0, 3, 6, 8, 10, 12)]
    stored = read_run_config(tmp_path / "r").train
    assert (stored.checkpoint_every, stored.keep_checkpoints, stored.max_steps) == (2, 50, 12)
    # a resume that only changes a setting keeps the planned length
    Trainer.resume(tmp_path / "r", None, ["threads=1"]).lock.release()
    assert read_run_config(tmp_path / "r").train.max_steps == 12
    assert read_run_config(tmp_path / "r").train.threads == 1
