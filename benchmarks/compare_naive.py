"""Speed-up over a naive float32 LEBM iteration, measured alternately in one run.

    python benchmarks/compare_naive.py --rounds 3 --iters 5

Each round runs, one after another in fresh processes on the same threads:
the naive reference (``../shared/bench/naive_lebm_iter.py`` by default: the paper's SVHN
configuration in plain float32, at the speed of the authors' script), ``bench_train.py
--preset svhn`` with the library's float32 path, and ``bench_train.py --preset svhn`` with
the fast path. Alternating rounds spread the machine's noise over all three. Reports the
median over rounds of each process's median seconds per iteration, and the ratios.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import FAST, FLOAT32  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_NAIVE = HERE.parent.parent / "shared" / "bench" / "naive_lebm_iter.py"


def last_json(cmd: list[str]) -> dict:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def ours(sets: list[str], iters: int, threads: int) -> list[str]:
    cmd = [sys.executable, str(HERE / "bench_train.py"), "--preset", "svhn",
           "--iters", str(iters), "--warmup", "1", "--threads", str(threads)]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--naive", default=str(DEFAULT_NAIVE), help="the naive reference script")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="", help="also write the JSON here")
    args = ap.parse_args()
    if not Path(args.naive).is_file():
        raise SystemExit(f"naive reference not found: {args.naive} (pass --naive PATH)")
    runs: dict[str, list[float]] = {"naive_float32": [], "lebm_float32": [], "lebm_fast": []}
    detail = {}
    for r in range(args.rounds):
        naive = last_json([sys.executable, args.naive, str(args.iters), str(args.threads)])
        runs["naive_float32"].append(naive["sec_per_iter"])
        for name, sets in (("lebm_float32", FLOAT32), ("lebm_fast", FAST)):
            res = last_json(ours(sets, args.iters, args.threads))
            runs[name].append(res["sec_per_iter"])
            detail[name] = res
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in runs.items()),
              file=sys.stderr, flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    result = {
        "benchmark": "compare_naive", "rounds": args.rounds, "iters_per_process": args.iters,
        "threads": args.threads, "sec_per_iter_median": med, "sec_per_iter_rounds": runs,
        "speedup_fast_vs_naive": med["naive_float32"] / med["lebm_fast"],
        "speedup_float32_vs_naive": med["naive_float32"] / med["lebm_float32"],
        "speedup_fast_vs_float32": med["lebm_float32"] / med["lebm_fast"],
        "config": detail["lebm_fast"]["config"],
        "gflop_per_iter": detail["lebm_fast"]["gflop_per_iter"],
        "fast_settings": FAST, "float32_settings": FLOAT32,
        "machine": detail["lebm_fast"]["machine"], "naive_script": args.naive,
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
