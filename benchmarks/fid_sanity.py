"""Sanity of the FID implementation: real-vs-real must be small, real-vs-other large.

    python benchmarks/fid_sanity.py --n 1000

Inception FID (``lebm.metrics.fid``, TF inception-2015-12-05 pool3) and FD in MNIST
classifier features, same ``n`` for every pair:

* MNIST train vs MNIST test (real vs real: only the finite-n bias),
* MNIST train (first n) vs the next n training images (real vs real, same split),
* MNIST train vs sklearn 8×8 digits upsampled to 28×28 (other data),
* MNIST train vs uniform noise.

Writes ``OUT/fid_sanity.json`` with the values, n, timing and machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/fid_sanity")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from lebm.data import load_dataset
    from lebm.metrics import FeatureStats, InceptionFeatures, MNISTFeatures, frechet_distance

    n = args.n
    train = load_dataset("mnist", "train", limit=2 * n)
    x_train = train.batch(torch.arange(len(train)))
    test = load_dataset("mnist", "test", limit=n)
    digits = load_dataset("digits", "all", image_size=28)
    g = torch.Generator().manual_seed(0)
    sets = {
        "mnist_train_a": x_train[:n],
        "mnist_train_b": x_train[n:2 * n],
        "mnist_test": test.batch(torch.arange(len(test))),
        "digits_8x8_upsampled": digits.batch(torch.arange(min(n, len(digits)))),
        "uniform_noise": torch.rand(n, 1, 28, 28, generator=g) * 2 - 1,
    }
    result = {"n": n, "command": " ".join(sys.argv), "machine": machine(torch.device("cpu")),
              "pairs": {}}
    for fname, feats in (("inception", InceptionFeatures()), ("mnist", MNISTFeatures())):
        t0 = time.perf_counter()
        stats = {k: FeatureStats.of(feats.extract(v, batch_size=50)) for k, v in sets.items()}
        secs = time.perf_counter() - t0
        n_images = sum(len(v) for v in sets.values())
        for other in ("mnist_train_b", "mnist_test", "digits_8x8_upsampled", "uniform_noise"):
            key = f"mnist_train_a vs {other}"
            result["pairs"].setdefault(key, {})[fname] = frechet_distance(
                stats["mnist_train_a"], stats[other])
        result[f"{fname}_seconds_per_image"] = secs / n_images
        print(fname, json.dumps({k: v[fname] for k, v in result["pairs"].items()}), flush=True)
    result["sizes"] = {k: len(v) for k, v in sets.items()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fid_sanity.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
