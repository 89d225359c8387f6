"""The command line end to end on tiny data, and its handling of bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from lebm.cli import main
from lebm.config import PRESETS


def _set(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def test_presets_lists_one_line_each(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(PRESETS)
    assert all(line.split()[0] in PRESETS for line in lines)
    assert main(["presets", "--keys", "svhn"]) == 0
    out = capsys.readouterr().out
    assert "model.prior_chain.n_steps = 60" in out and "method.lr_e = 2e-05" in out
    assert "model.precision.chain_dtype = 'float32'" in out  # paper-exact


def test_train_resume_sample_reconstruct(tmp_path, tiny_overrides, capsys):
    run = tmp_path / "run"
    assert main(["train", "digits", "--run-dir", str(run), "--max-steps", "4", "--seed", "3",
                 *_set(tiny_overrides)]) == 0
    assert "done: step 4" in capsys.readouterr().out
    cfg = json.loads((run / "config.json").read_text())["config"]
    assert cfg["train"]["seed"] == 3 and cfg["train"]["max_steps"] == 4

    assert main(["resume", str(run), "--max-steps", "8", "--no-progress",
                 "--set", "train.checkpoint_every=2", "--set", "keep_checkpoints=10"]) == 0
    out = capsys.readouterr().out
    assert "at step 4 of 8" in out and "done: step 8" in out
    assert {"step_00000006", "step_00000008"} <= {p.name for p in (run / "checkpoints").iterdir()}
    assert main(["resume", str(run), "--set", "method.lr_g=1"]) == 2
    assert "changes what the run learns" in capsys.readouterr().err

    assert main(["sample", str(run), "--n", "9", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["sample", str(run), "--n", "2", "--steps", "0", "--out",
                 str(tmp_path / "s0.png")]) == 0
    img = Image.open(tmp_path / "s.png")
    assert img.width > 24 and img.height > 24  # a 3×3 grid of 8×8 images, upscaled
    for kernel in ("mala", "hmc", "kinetic"):
        assert main(["sample", str(run), "--n", "4", "--kernel", kernel, "--steps", "3",
                     "--step-size", "0.05", "--out", str(tmp_path / f"{kernel}.png")]) == 0
    assert main(["sample", str(run), "--kernel", "gibbs", "--out", str(tmp_path / "g.png")]) == 2
    assert "prior_chain.kernel: must be one of" in capsys.readouterr().err

    assert main(["reconstruct", str(run), "--out", str(tmp_path / "r.png"), "--n", "4"]) == 0
    out = capsys.readouterr().out
    assert "MSE per pixel" in out and (tmp_path / "r.png").is_file()

    # a second `train` into the same folder refuses, --overwrite starts afresh
    assert main(["train", "digits", "--run-dir", str(run), *_set(tiny_overrides)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "digits", "--run-dir", str(run), "--max-steps", "2", "--overwrite",
                 *_set(tiny_overrides)]) == 0


@pytest.mark.parametrize("args, message", [
    (["train", "digits", "--run-dir", "{tmp}/a", "--set", "model.prior_stepz=3"],
     "unknown config key 'model.prior_stepz'"),
    (["train", "digits", "--run-dir", "{tmp}/a", "--set", "train.batch_size=ten"],
     "train.batch_size: expected an integer"),
    (["train", "digits", "--run-dir", "{tmp}/a", "--set", "model.sigma=0"],
     "model.sigma: must be > 0"),
    (["train", "nopreset", "--run-dir", "{tmp}/a"], "unknown preset 'nopreset'"),
    (["train", "svhn", "--run-dir", "{tmp}/a", "--set", "data.root={tmp}/no-such-dir"],
     "svhn"),
    (["train", "digits", "--run-dir", "{tmp}/a", "--set", "train.batch_size=5000"],
     "exceeds the data set size"),
    (["train", "digits", "--run-dir", "{tmp}/a", "--set", "model.generator=conv"],
     "conv generator supports image sizes 16, 28, 32 and 64, got 8"),
    (["resume", "{tmp}/no-such-run"], "no config.json"),
    (["sample", "{tmp}", "--n", "0", "--out", "{tmp}/x.png"], "--n must be >= 1"),
    (["sample", "{tmp}", "--steps", "-1", "--out", "{tmp}/x.png"], "--steps must be >= 0"),
    (["train", "digits", "--run-dir", "{tmp}/a", "--set", "model.prior_chain.kernel=mala",
      "--set", "model.prior_chain.noise=false"], "only applies to the langevin kernel"),
    (["sample", "{tmp}/no-such-run", "--out", "{tmp}/x.png"], "does not exist"),
    (["reconstruct", "{tmp}/no-such-run", "--out", "{tmp}/x.png"], "no config.json"),
])
def test_bad_input_is_one_line_without_traceback(tmp_path, args, message, monkeypatch):
    monkeypatch.setenv("LEBM_DATA", str(tmp_path / "empty-cache"))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    res = subprocess.run([sys.executable, "-m", "lebm", *argv], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lebm: error:"), res.stderr
    assert message in err[0]
    assert not (tmp_path / "a" / "checkpoints").exists()  # nothing started


def test_missing_dataset_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LEBM_DATA", str(tmp_path / "empty-cache"))
    code = main(["train", "svhn", "--run-dir", str(tmp_path / "a"), "--set",
                 f"data.root={tmp_path / 'nothing'}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "download" in err.lower()
