"""``lebm eval`` and ``lebm score`` on a tiny run with one digit held out."""

from __future__ import annotations

import csv
import json
import math

import pytest

from lebm.cli import main


@pytest.fixture(scope="module")
def run_with_anomaly(tmp_path_factory):
    from tests.conftest import TINY

    run = tmp_path_factory.mktemp("eval") / "run"
    args = ["train", "digits", "--run-dir", str(run), "--max-steps", "8"]
    for o in [*TINY, "data.exclude_classes=9"]:
        args += ["--set", o]
    assert main(args) == 0
    return run


def test_eval_writes_values_with_recipes(run_with_anomaly, capsys):
    run = run_with_anomaly
    assert main(["eval", str(run), "--metrics", "mse,ll,auprc,chains", "--n-test", "120",
                 "--n-ll", "4", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "test MSE / pixel [-1, 1]" in out and "AUPRC" in out and "eval.json" in out
    saved = json.loads((run / "eval.json").read_text())
    record = saved["checkpoints"]["step_00000008"]
    assert saved["run"] == str(run) and list(saved["checkpoints"]) == ["step_00000008"]
    assert record["method"] == "lebm" and record["checkpoint"] == "step_00000008"
    m = record["metrics"]
    assert set(m) == {"mse", "ll", "auprc", "chains"}
    assert m["mse"]["mse_01"] == pytest.approx(m["mse"]["mse"] / 4)
    assert m["mse"]["recipe"]["n"] == 120 and m["mse"]["recipe"]["split"] == "test"
    assert 0 < m["mse"]["mse"] < 4
    assert math.isfinite(m["ll"]["nats"]) and m["ll"]["recipe"]["n"] == 4
    # the held-out class is about a tenth of the 120 test digits
    assert 0.03 < m["auprc"]["anomaly_fraction"] < 0.2
    assert 0 <= m["auprc"]["auprc"] <= 1 and m["auprc"]["recipe"]["anomalies"] == [9]
    chains = m["chains"]
    assert len(chains["prior"]["log_density_per_step"]) == 2 * 5
    assert (run / "plots" / "chain_diagnostics.png").stat().st_size > 1000
    # a second eval of one metric keeps the others
    assert main(["eval", str(run), "--metrics", "mse", "--n-test", "50", "--no-progress"]) == 0
    m2 = json.loads((run / "eval.json").read_text())["checkpoints"]["step_00000008"]["metrics"]
    assert set(m2) == set(m) and m2["mse"]["recipe"]["n"] == 50


def test_score_writes_one_row_per_example(run_with_anomaly, tmp_path, capsys):
    out_csv = tmp_path / "scores.csv"
    assert main(["score", str(run_with_anomaly), "--data", "digits", "--limit", "60",
                 "--out", str(out_csv)]) == 0
    printed = capsys.readouterr().out
    assert "wrote 60 anomaly scores" in printed and "AUPRC" in printed
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 60 and all(math.isfinite(float(r["score"])) for r in rows)
    assert {int(r["label"]) for r in rows} >= {9}


@pytest.mark.parametrize("args, message", [
    (["eval", "{run}", "--metrics", "mse,bogus"], "unknown metric"),
    (["eval", "{run}", "--n-ll", "1"], "n_ll must be >= 2"),
    (["score", "{run}", "--data", "8gaussians", "--out", "{tmp}/s.csv"],
     "not an image data set"),
    (["score", "{run}", "--data", "nope", "--out", "{tmp}/s.csv"], "unknown data set"),
])
def test_eval_and_score_reject_bad_input(run_with_anomaly, tmp_path, capsys, args, message):
    args = [a.format(run=run_with_anomaly, tmp=tmp_path) for a in args]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_eval_fid_caches_reference_statistics(run_with_anomaly, tmp_path):
    import torch

    from lebm.evaluate import EvalSettings, evaluate

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the Inception net stalls with 2 threads on a busy 2-core CPU
    settings = EvalSettings(n_samples=6, n_ref=6, progress=False, cache_dir=tmp_path / "fid")
    try:
        first = evaluate(run_with_anomaly, ["fid"], settings, "cpu")["metrics"]["fid"]
        again = evaluate(run_with_anomaly, ["fid"], settings, "cpu")["metrics"]["fid"]
    finally:
        torch.set_num_threads(threads)
    cached = list((tmp_path / "fid").glob("*.safetensors"))
    assert len(cached) == 1 and "digits-train-6" in cached[0].name
    assert first["recipe"]["n_samples"] == 6 and first["recipe"]["n_reference"] == 6
    assert "inception-2015-12-05" in first["recipe"]["network"]
    assert first["value"] > 0
    assert again["value"] == pytest.approx(first["value"], rel=1e-6)  # same seed, cached stats


def test_eval_of_an_earlier_checkpoint(run_with_anomaly, capsys):
    run = run_with_anomaly
    steps = sorted(p.name for p in (run / "checkpoints").glob("step_*"))
    assert steps[-1] == "step_00000008" and len(steps) >= 2
    args = ["eval", str(run), "--metrics", "mse", "--n-test", "60", "--no-progress"]
    assert main(args) == 0
    latest = json.loads((run / "eval.json").read_text())
    assert main([*args, "--checkpoint", steps[0]]) == 0
    both = json.loads((run / "eval.json").read_text())["checkpoints"]
    early = both[steps[0]]
    assert early["checkpoint"] == steps[0] and early["trained_steps"] == int(steps[0][5:])
    # each checkpoint keeps its own numbers: nothing is overwritten
    assert set(early["metrics"]) == {"mse"}
    assert both[steps[-1]] == latest["checkpoints"][steps[-1]]
    assert early["metrics"]["mse"]["mse"] != both[steps[-1]]["metrics"]["mse"]["mse"]
    capsys.readouterr()
    assert main([*args, "--checkpoint", "step_99999999"]) != 0
    err = capsys.readouterr().err
    assert "no checkpoint 'step_99999999'" in err and steps[0] in err


def test_an_eval_file_of_lebm_0_1_is_read_as_one_checkpoints_entry(tmp_path):
    from lebm.evaluate.evaluator import read_eval_file

    old = {"run": "r", "checkpoint": "step_00000500", "metrics": {"mse": {"mse": 0.1}}}
    (tmp_path / "eval.json").write_text(json.dumps(old))
    assert read_eval_file(tmp_path / "eval.json") == {"step_00000500": old}
    (tmp_path / "eval.json").write_text("{torn")
    assert read_eval_file(tmp_path / "eval.json") == {}
    assert read_eval_file(tmp_path / "missing.json") == {}


def test_eval_on_another_split_is_kept_apart(run_with_anomaly, capsys):
    run = run_with_anomaly
    args = ["eval", str(run), "--metrics", "mse", "--n-test", "40", "--no-progress"]
    assert main(args) == 0 and main([*args, "--split", "train"]) == 0
    assert "[train]" in capsys.readouterr().out
    m = json.loads((run / "eval.json").read_text())["checkpoints"]["step_00000008"]["metrics"]
    assert m["mse"]["recipe"]["split"] == "test" and m["mse@train"]["recipe"]["split"] == "train"
    assert main([*args, "--split", "bogus"]) == 2


def test_eval_with_another_posterior_length_is_kept_apart(run_with_anomaly, capsys):
    """--posterior-steps K: every inference runs K steps; the figures sit under
    METRIC@posteriorK beside the trained-length ones. With 0 steps z is the chain's noise
    start, so the reconstruction is worse than after the trained 20 steps."""
    run = run_with_anomaly
    args = ["eval", str(run), "--metrics", "mse", "--n-test", "40", "--no-progress"]
    assert main(args) == 0 and main([*args, "--posterior-steps", "0"]) == 0
    assert "[posterior0]" in capsys.readouterr().out
    m = json.loads((run / "eval.json").read_text())["checkpoints"]["step_00000008"]["metrics"]
    assert m["mse@posterior0"]["mse"] > m["mse"]["mse"]
    assert m["mse@posterior0"]["recipe"]["posterior_steps"] == 0
    assert main([*args, "--posterior-steps", "-1"]) == 2
