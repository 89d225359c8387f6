"""Two CPU processes with gloo: the same command under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lebm.train.distributed import Distributed

from .test_train import _assert_same_state


def _average_worker(rank: int, world: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.full((3,), float(rank + 1))
    q = torch.nn.Parameter(torch.zeros(2, 2))
    q.grad = torch.full((2, 2), float(10 * (rank + 1)))
    d = Distributed(rank, world)
    d.average_gradients([p, q])
    means = d.mean(torch.tensor([float(rank), 1.0]))
    torch.save({"p": p.grad, "q": q.grad, "mean": means}, f"{out}/{rank}.pt")
    dist.destroy_process_group()


def test_average_gradients_is_the_mean_over_ranks(tmp_path):
    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_average_worker, args=(2, init, str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        got = torch.load(tmp_path / f"{rank}.pt", weights_only=True)
        torch.testing.assert_close(got["p"], torch.full((3,), 1.5))
        torch.testing.assert_close(got["q"], torch.full((2, 2), 15.0))
        torch.testing.assert_close(got["mean"], torch.tensor([0.5, 1.0]))


def _torchrun(args: list[str], port: int) -> subprocess.CompletedProcess:
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                "--nnodes=1", f"--master_port={port}", "-m", "lebm"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(torchrun + args, capture_output=True, text=True, timeout=600,
                          env=env)


def test_two_process_training_resumes_exactly(tmp_path, tiny_overrides):
    """2 ranks × 6 steps, resume to 12 == 12 straight; replicas checked equal at each save."""
    sets = [a for o in tiny_overrides + ["data.limit=400"] for a in ("--set", o)]
    port = 29500 + os.getpid() % 1000
    straight = _torchrun(["train", "digits", "--run-dir", str(tmp_path / "s"), "--max-steps",
                          "12", *sets], port)
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert straight.stdout.count("done: step 12") == 1  # rank 0 alone reports
    half = _torchrun(["train", "digits", "--run-dir", str(tmp_path / "r"), "--max-steps", "6",
                      *sets], port + 1)
    assert half.returncode == 0, half.stderr[-3000:]
    more = _torchrun(["resume", str(tmp_path / "r"), "--max-steps", "12"], port + 2)
    assert more.returncode == 0, more.stderr[-3000:]
    _assert_same_state(tmp_path / "s", tmp_path / "r")

    meta = json.loads((tmp_path / "s" / "config.json").read_text())
    assert meta["world_size"] == 2 and meta["steps_per_epoch"] == 400 // (50 * 2)
    state = torch.load(Path(tmp_path / "s" / "checkpoints" / "step_00000012" /
                            "training_state.pt"), weights_only=True)
    ranks = state["rng"]["chain_ranks"]
    assert ranks.shape[0] == 2 and not torch.equal(ranks[0], ranks[1])  # own streams

    # a two-process checkpoint refuses a one-process resume with a clear message
    res = subprocess.run([sys.executable, "-m", "lebm", "resume", str(tmp_path / "r"),
                          "--max-steps", "14"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "same number" in res.stderr


@pytest.fixture(autouse=True)
def _no_inherited_torchrun_env(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)


def test_shutdown_distributed_leaves_the_process_group(tmp_path):
    """The CLI leaves the group on exit (a gloo process that does not can abort at
    interpreter shutdown); without a group it is a no-op."""
    from lebm.train.distributed import shutdown_distributed

    shutdown_distributed()  # nothing joined: no error
    for synchronize in (False, True):
        dist.init_process_group("gloo", init_method=f"file://{tmp_path / f'rv{synchronize}'}",
                                rank=0, world_size=1)
        assert dist.is_initialized()
        shutdown_distributed(synchronize)
        assert not dist.is_initialized()


def test_two_process_persistent_chains_stay_whole_and_resume_exactly(tmp_path, tiny_overrides):
    """Persistent posterior chains under 2 ranks: every rank writes every rank's updates,
    so after one epoch rank 0's checkpoint holds a chain for every example, and resume is
    exact."""
    sets = [a for o in tiny_overrides + ["data.limit=400", "method.persistent_chains=true",
                                         "method.persistent_steps=2"] for a in ("--set", o)]
    port = 30500 + os.getpid() % 1000
    straight = _torchrun(["train", "digits", "--run-dir", str(tmp_path / "s"), "--max-steps",
                          "6", *sets], port)
    assert straight.returncode == 0, straight.stderr[-3000:]
    half = _torchrun(["train", "digits", "--run-dir", str(tmp_path / "r"), "--max-steps", "3",
                      *sets], port + 1)
    assert half.returncode == 0, half.stderr[-3000:]
    more = _torchrun(["resume", str(tmp_path / "r"), "--max-steps", "6"], port + 2)
    assert more.returncode == 0, more.stderr[-3000:]
    _assert_same_state(tmp_path / "s", tmp_path / "r")
    state = {k: torch.load(tmp_path / k / "checkpoints" / "step_00000006" /
                           "training_state.pt", weights_only=True)["method"]
             for k in ("s", "r")}
    assert not bool(state["s"]["chains_fresh"].any())  # 4 steps × 2 ranks × 50 = 400 rows
    torch.testing.assert_close(state["s"]["chains"], state["r"]["chains"], rtol=0, atol=0)
