"""The machine's attainable matmul throughput, float32 and bfloat16: the "peak" we quote.

    python benchmarks/bench_peak.py

Times square and training-shaped GEMMs with torch (MKL / oneDNN on CPU, cuBLAS on GPU)
and reports the best GFLOP/s per dtype. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, summary, time_calls  # noqa: E402

# (M, K, N): square, and the shapes of the SVHN generator's two big layers as GEMMs
SHAPES = [(2048, 2048, 2048), (1600, 512, 4096), (6400, 256, 2048), (1600, 4096, 512)]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--iters", type=int, default=10)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    scale = 4 if device.type == "cuda" else 1
    out: dict = {"benchmark": "gemm_peak", "device": str(device), "gflops": {}}
    for dtype in (torch.float32, torch.bfloat16):
        name = str(dtype).removeprefix("torch.")
        rates = {}
        for m, k, n in SHAPES:
            m, k, n = m * scale, k * scale, n * scale
            a = torch.randn(m, k, device=device, dtype=dtype)
            b = torch.randn(k, n, device=device, dtype=dtype)
            t = summary(time_calls(lambda a=a, b=b: a @ b, args.iters, 2, device))["median"]
            rates[f"{m}x{k}x{n}"] = 2 * m * k * n / t / 1e9
        out["gflops"][name] = {"best": max(rates.values()), "shapes": rates}
    out["machine"] = machine(device)
    emit(out)
    return out


if __name__ == "__main__":
    main()
