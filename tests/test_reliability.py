"""Run folders that cannot be corrupted: the lock, --overwrite, SIGTERM, resume past the
end, finite divergence, compounding recoveries."""

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

import lebm
from lebm.config import build_config
from lebm.errors import DivergenceError, LebmError
from lebm.train import Trainer, latest_checkpoint, load_training_state
from lebm.train.lock import RunLock, RunLockedError

from .conftest import corrupt_steps, nan_loss


def _args(tiny: list[str], *extra: str) -> list[str]:
    return [a for o in [*tiny, *extra] for a in ("--set", o)]


def _spawn(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lebm", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not (path.exists() and path.stat().st_size > 0):
        if proc.poll() is not None or time.time() > deadline:
            pytest.fail(f"the training process never wrote {path}: {proc.communicate()}")
        time.sleep(0.05)


def _rows(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x]


def test_a_second_process_cannot_train_in_a_locked_run_folder(tmp_path, tiny_overrides):
    run = tmp_path / "r"
    first = _spawn(["train", "digits", "--run-dir", str(run), "--max-steps", "100000",
                    *_args(tiny_overrides, "train.checkpoint_every=1000")])
    try:
        _wait_for(run / "metrics.jsonl", first)
        for args in (["resume", str(run)], ["train", "digits", "--run-dir", str(run),
                                            "--overwrite"]):
            second = subprocess.run([sys.executable, "-m", "lebm", *args], capture_output=True,
                                    text=True, timeout=120)
            assert second.returncode == 2, second.stderr
            assert f"in use by another lebm process (pid {first.pid}" in second.stderr
            assert "Traceback" not in second.stderr
        # readers still work while it trains
        assert lebm.load(run).sample(2).shape == (2, 1, 8, 8)
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert first.returncode == 130
    # the lock went with the process: the folder can be resumed now
    trainer = Trainer.resume(run)
    trainer.lock.release()


def test_the_lock_is_released_when_its_holder_dies(tmp_path):
    code = ("import sys, time; from lebm.train.lock import RunLock; "
            f"lock = RunLock({str(tmp_path)!r}); lock.acquire(); print('held', flush=True); "
            "time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
        RunLock(tmp_path).acquire()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    lock = RunLock(tmp_path)
    lock.acquire()  # no stale lock after a kill -9
    lock.release()


def test_overwrite_clears_only_a_lebm_run_folder(tmp_path, tiny_overrides):
    cfg = build_config("digits", tiny_overrides, **{"train.max_steps": 2})
    foreign = tmp_path / "project"
    foreign.mkdir()
    (foreign / "config.json").write_text('{"name": "my web app"}')
    (foreign / "plots").mkdir()
    (foreign / "plots" / "keep.png").write_bytes(b"mine")
    with pytest.raises(LebmError, match="not a lebm run folder.*refusing to clear it"):
        Trainer(cfg, foreign, overwrite=True)
    assert (foreign / "plots" / "keep.png").read_bytes() == b"mine"
    assert json.loads((foreign / "config.json").read_text()) == {"name": "my web app"}
    # a real run is cleared and retrained
    Trainer(cfg, tmp_path / "run").fit()
    Trainer(cfg, tmp_path / "run", overwrite=True).fit()
    assert latest_checkpoint(tmp_path / "run").name == "step_00000002"


def test_sigterm_saves_a_checkpoint_like_ctrl_c(tmp_path, tiny_overrides):
    run = tmp_path / "r"
    proc = _spawn(["train", "digits", "--run-dir", str(run), "--max-steps", "100000",
                   *_args(tiny_overrides, "train.checkpoint_every=100000",
                          "train.sample_every=100000")])
    _wait_for(run / "metrics.jsonl", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted (SIGTERM)" in err and "checkpoint saved" in err
    assert "Traceback" not in err
    assert load_training_state(latest_checkpoint(run))["step"] >= 2


def test_resume_to_fewer_steps_than_done_changes_nothing(tmp_path, tiny_overrides):
    cfg = build_config("digits", tiny_overrides, **{"train.max_steps": 6})
    Trainer(cfg, tmp_path / "r").fit()
    before = {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    with pytest.raises(LebmError, match="already at step 6, past --max-steps 4; nothing"):
        Trainer.resume(tmp_path / "r", max_steps=4)
    trainer = Trainer.resume(tmp_path / "r", max_steps=6)  # already there: nothing to do
    trainer.fit()
    after = {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()
             and p.name != ".lock"}
    assert {p: b for p, b in before.items() if p.name != ".lock"} == after


def test_finite_divergence_is_caught_and_reported(tmp_path, tiny_overrides):
    """A huge EBM learning rate sends |f| to ~1e28 with every loss finite: the energy guard
    catches it, recovery is tried, and the run ends with a clear error, not exit 0."""
    cfg = build_config("digits", tiny_overrides + ["method.lr_e=1000", "train.max_divergences=2",
                                                   "train.checkpoint_every=2"],
                       **{"train.max_steps": 40})
    trainer = Trainer(cfg, tmp_path / "r")
    with pytest.raises(DivergenceError, match=r"\|f_(pos|neg)\| > 10000"):
        trainer.fit()
    events = [r for r in _rows(tmp_path / "r") if r.get("event") == "divergence"]
    assert len(events) == 2


def test_the_recon_guard_follows_its_running_level(tmp_path, tiny_overrides):
    cfg = build_config("digits", tiny_overrides + ["train.guard_warmup_steps=2",
                                                   "train.recon_guard_factor=3"],
                       **{"train.max_steps": 8})
    trainer = Trainer(cfg, tmp_path / "r")

    def spike(out) -> None:  # a finite blow-up of the reconstruction error at step 5
        out.metrics["recon_error"] = out.metrics["recon_error"] * 100

    corrupt_steps(trainer, {6}, spike)
    trainer.fit()
    events = [r for r in _rows(tmp_path / "r") if r.get("event") == "divergence"]
    assert len(events) == 1 and "running mean" in events[0]["quantity"]
    assert trainer.recon_level is not None
    state = load_training_state(latest_checkpoint(tmp_path / "r"))
    assert state["recon_level"] == pytest.approx(trainer.recon_level)


def test_repeated_recoveries_compound_and_survive_resume(tmp_path, tiny_overrides):
    """Three NaNs after the same checkpoint: the learning rates end at ×0.5³ and the chain
    step sizes at ×0.8³, the log stays monotone, and a resume keeps the factors."""
    cfg = build_config("digits", tiny_overrides, **{"train.max_steps": 10})
    trainer = Trainer(cfg, tmp_path / "r")
    lr0 = {k: o.param_groups[0]["lr"] for k, o in trainer.optimizers.items()}
    # step 5 fails three times in a row (the last checkpoint is step 4)
    corrupt_steps(trainer, {6, 8, 10}, nan_loss("generator"))
    trainer.fit()
    assert trainer.n_divergences == 3
    assert trainer.scales == pytest.approx({"lr": 0.125, "step": 0.512})
    assert trainer.method.step_scale == pytest.approx(0.512)
    for k, opt in trainer.optimizers.items():  # 4 steps an epoch: decayed at steps 4 and 8
        decay = trainer.learner.specs[k].lr_decay ** 2
        assert opt.param_groups[0]["lr"] == pytest.approx(lr0[k] * 0.125 * decay)
    steps = [r["step"] for r in _rows(tmp_path / "r")]
    assert steps == sorted(steps)
    resumed = Trainer.resume(tmp_path / "r", max_steps=12)
    assert resumed.scales == pytest.approx({"lr": 0.125, "step": 0.512})
    assert resumed.method.step_scale == pytest.approx(0.512)
    resumed.lock.release()
    assert torch.isfinite(torch.cat([p.flatten() for p in resumed.model.parameters()])).all()


def test_bad_input_is_a_one_line_error_and_leaves_nothing_behind(tmp_path, tiny_overrides,
                                                                 capsys):
    from lebm.cli import main

    run = tmp_path / "run"
    assert main(["train", "digits", "--run-dir", str(run), "--max-steps", "2",
                 *_args(tiny_overrides)]) == 0
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,label\n" + "".join(f"{i % 7},{i % 5},{i % 3}\n" for i in range(60)))
    cases = [
        (["train", "digits", "--run-dir", str(tmp_path / "x"), "--seed", "9" * 20],
         "train.seed: must be <= 4294967295"),
        (["train", "digits", "--run-dir", str(a_file)], "is a file, not a folder"),
        (["train", "digits", "--run-dir", str(tmp_path / "x"), "--set", "data.test_split=bogus"],
         "data.test_split: digits has no split 'bogus'"),
        (["train", "svebm-csv", "--run-dir", str(tmp_path / "x"), "--set", f"data.root={csv}",
          "--set", "data.n_labels=6", "--set", "train.batch_size=10"],
         "the data have 3 classes (labels 0..2) but the model has 2 symbols: set "
         "model.n_classes=3"),
        (["eval", str(run), "--metrics", "fd_mnist"], "fd_mnist needs 28×28 grey images"),
        (["eval", str(run), "--metrics", "mse", "--device", "bogus"], "unknown device 'bogus'"),
        (["sample", str(run), "--out", str(a_file / "x.png")], str(a_file)),
        (["score", str(run), "--data", "digits", "--anomalies", "a,b", "--out",
          str(tmp_path / "s.csv")], "--anomalies expects integers"),
    ]
    for args, message in cases:
        capsys.readouterr()
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("lebm: error:") and message in err[0], err
    assert not (tmp_path / "x").exists() and not (tmp_path / "s.csv").exists()


def test_classify_says_when_the_labels_are_not_the_models_classes(tmp_path, tiny_overrides,
                                                                  capsys):
    from lebm.cli import main

    train_csv, other = tmp_path / "t.csv", tmp_path / "o.csv"
    train_csv.write_text("a,b,label\n" + "".join(f"{i % 7},{i % 5},{i % 2}\n" for i in range(60)))
    other.write_text("a,b,label\n" + "".join(f"{i % 7},{i % 5},{i % 4}\n" for i in range(40)))
    run = tmp_path / "r"
    assert main(["train", "svebm-csv", "--run-dir", str(run), "--max-steps", "2", "--set",
                 f"data.root={train_csv}", "--set", "data.n_labels=4", "--set",
                 "train.batch_size=10", "--set", "train.progress=false"]) == 0
    capsys.readouterr()
    assert main(["classify", str(run), "--data", "csv", "--root", str(other), "--split", "all",
                 "--out", str(tmp_path / "p.csv")]) == 0
    out = capsys.readouterr()
    assert "accuracy" not in out.out and "model has 2 symbols" in out.err


def test_files_respect_the_umask(tmp_path):
    """Atomic writes go through mkstemp (mode 0600); the result gets the usual mode."""
    from lebm.io import atomic_write_text

    mask = os.umask(0)
    os.umask(mask)
    atomic_write_text(tmp_path / "f.txt", "x")
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~mask != 0o600


def test_small_models_train_on_one_thread_and_the_count_is_restored(tmp_path, tiny_overrides):
    from lebm.models import LatentEBM
    from lebm.train.threads import SMALL_STEP_FLOPS, choose_threads, generator_flops

    small, conv = build_config("digits"), build_config("mnist")
    small.model.data_shape, conv.model.data_shape = (1, 8, 8), (1, 28, 28)
    digits, mnist = LatentEBM(small.model), LatentEBM(conv.model)
    assert generator_flops(digits, 100) < SMALL_STEP_FLOPS < generator_flops(mnist, 100)
    before = torch.get_num_threads()
    assert choose_threads(0, digits, 100) == 1
    assert choose_threads(0, mnist, 100) == before  # torch's default
    assert choose_threads(3, digits, 100) == 3  # train.threads overrides
    cfg = build_config("digits", tiny_overrides, **{"train.max_steps": 2})
    trainer = Trainer(cfg, tmp_path / "r")
    trainer.fit()
    assert trainer.threads == 1 and torch.get_num_threads() == before
    assert json.loads((tmp_path / "r" / "config.json").read_text())["threads"] == 1


def test_kill_9_at_random_moments_then_resume_equals_an_uninterrupted_run(tmp_path,
                                                                           tiny_overrides):
    """Three kill -9 at random times (mid-step, mid-checkpoint-write, at start-up), a resume
    after each; the finished run matches one trained straight through, bit for bit."""
    import random

    from .test_train import _assert_same_state

    target = 30
    run = tmp_path / "killed"
    sets = _args(tiny_overrides, "train.checkpoint_every=1", "train.sample_every=1000")
    rng = random.Random(1234)
    cmd = ["train", "digits", "--run-dir", str(run), "--max-steps", str(target), *sets]
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-m", "lebm", *cmd],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.0, 6.0))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if (run / "config.json").is_file():
            cmd = ["resume", str(run), "--max-steps", str(target)]
    if not (run / "config.json").is_file():
        pytest.skip("never got past start-up on this machine")
    res = subprocess.run([sys.executable, "-m", "lebm", *cmd, "--no-progress"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert not list((run / "checkpoints").glob(".tmp_*"))
    straight = build_config("digits", tiny_overrides, **{"train.max_steps": target})
    Trainer(straight, tmp_path / "straight").fit()
    _assert_same_state(tmp_path / "straight", run)
    steps = [r["step"] for r in _rows(run) if "event" not in r]
    assert steps == sorted(set(steps))  # every logged step once, in order


def test_drop_last_false_uses_every_example_of_each_epoch(tmp_path, tiny_overrides):
    cfg = build_config("digits", tiny_overrides + ["data.limit=210", "train.drop_last=false"],
                       **{"train.max_steps": 6})
    trainer = Trainer(cfg, tmp_path / "r")
    assert trainer.steps_per_epoch == 5  # 4 full batches of 50 and one of 10
    sizes = [len(trainer._batch(s).x) for s in range(5)]
    assert sizes == [50, 50, 50, 50, 10]
    trainer.fit()
    assert trainer.step == 6


def test_on_divergence_stop_ends_the_run_at_the_first_bad_step(tmp_path, tiny_overrides):
    cfg = build_config("digits", tiny_overrides + ["train.on_divergence=stop"],
                       **{"train.max_steps": 10})
    trainer = Trainer(cfg, tmp_path / "r")
    corrupt_steps(trainer, {6}, nan_loss("energy"))
    with pytest.raises(DivergenceError, match="step 5: .*training stopped"):
        trainer.fit()
    assert load_training_state(latest_checkpoint(tmp_path / "r"))["step"] == 4
