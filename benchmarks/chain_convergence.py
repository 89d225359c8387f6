"""Do a run's short-run chains reach where longer chains go? For each checkpoint, the prior
chain and the posterior chain are continued past the trained length, and the latent norm,
the energy and (posterior) the reconstruction MSE are recorded at each length.

    python benchmarks/chain_convergence.py RUN --steps 3000 5000 7000 8000 --split valid

The prior chain starts from the model's initial noise and runs ``--prior-lengths`` steps in
all (the same chain, continued; the first length is the trained one); ``--n-prior`` chains.
The posterior chain does the same for ``--n-data`` images of ``--split`` with
``--posterior-lengths``. Both use the model's own kernels and step sizes. A chain whose
statistics still move between the trained length and the longest one is not converged: the
model learns from where the short chain stops, not from its own density. Writes
``OUT/chain_convergence.json`` and ``.md`` (``OUT`` defaults to ``RUN/analysis``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402


def continued(step_fn, z, lengths: list[int], stats) -> list[dict]:
    """Run ``z = step_fn(z, k)`` for the increments that reach each of ``lengths`` in turn
    and record ``{"length": L, "seconds": chain time to L, **stats(z)}`` at each."""
    import time

    out, done, seconds = [], 0, 0.0
    for length in lengths:
        t0 = time.perf_counter()
        z = step_fn(z, length - done)
        seconds += time.perf_counter() - t0
        done = length
        out.append({"length": length, "seconds": seconds, **stats(z)})
    return out


def analyse(ckpt: Path, x, args: argparse.Namespace, fd=None) -> dict:
    """The chains' statistics at each length; with ``fd`` (the MNIST feature extractor and
    the FeatureStats of real images), also FD-MNIST of the prior samples at each prior
    length."""
    import torch

    import lebm
    from lebm.metrics import FeatureStats, frechet_distance

    model = lebm.load(ckpt)
    model.eval()
    g = torch.Generator().manual_seed(args.seed)

    def energy(z):  # f(z) = log p̃(z) + ‖z‖²/2 (the tilt on N(0, I))
        with torch.no_grad():
            return (model.prior.log_density(z) + 0.5 * (z * z).sum(1)).mean().item()

    def norm_and_f(z):
        return {"norm": z.norm(dim=1).mean().item(), "f": energy(z)}

    def prior_stats(z):
        out = norm_and_f(z)
        if fd is not None:
            feats, reference = fd
            with torch.no_grad():
                images = torch.cat([model.decode(zb) for zb in z.split(500)])
            out["fd_mnist"] = frechet_distance(FeatureStats.of(feats.extract(images)),
                                               reference)
        return out

    def post_stats(z):
        with torch.no_grad():
            mse = ((model.decode(z) - x) ** 2).mean().item()
        return {**norm_and_f(z), "mse": mse}

    z0 = model.latent.init(args.n_prior, g, 1.0, model.device)
    prior = continued(lambda z, k: model.sample_latent(args.n_prior, g, z0=z, n_steps=k)[0],
                      z0, args.prior_lengths, prior_stats)
    z0 = model.latent.init(len(x), g, 1.0, model.device)
    post = continued(lambda z, k: model.infer_latent(x, g, z0=z, n_steps=k)[0], z0,
                     args.posterior_lengths, post_stats)
    return {"prior": prior, "posterior": post}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--steps", type=int, nargs="+", required=True,
                    help="checkpoint steps to analyse (RUN/checkpoints/step_NNNNNNNN)")
    ap.add_argument("--split", default="valid", help="data split of the posterior chains")
    ap.add_argument("--n-data", type=int, default=200)
    ap.add_argument("--n-prior", type=int, default=1000)
    ap.add_argument("--prior-lengths", type=int, nargs="+", default=[60, 200, 1000, 3000])
    ap.add_argument("--posterior-lengths", type=int, nargs="+", default=[20, 100, 500])
    ap.add_argument("--fd", action="store_true",
                    help="also FD-MNIST of the --n-prior prior samples at each prior length, "
                         "against every image of --split (28×28 grey data; use --n-prior "
                         "5000, as lebm eval)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    for name in ("prior_lengths", "posterior_lengths"):
        lengths = getattr(args, name)
        if lengths != sorted(set(lengths)) or lengths[0] < 1:
            raise SystemExit(f"--{name.replace('_', '-')}: increasing positive lengths")

    import torch

    torch.set_num_threads(args.threads)
    from lebm.data import load_dataset
    from lebm.run import read_run_config

    cfg = read_run_config(args.run)
    data = load_dataset(cfg.data.name, args.split)
    x = data.batch(torch.arange(min(args.n_data, len(data))))
    fd = None
    if args.fd:  # one feature extractor and one reference for every checkpoint
        from lebm.metrics import FeatureStats, MNISTFeatures

        if tuple(x.shape[1:]) != (1, 28, 28):
            raise SystemExit(f"--fd needs 28×28 grey images; {args.split} has {tuple(x.shape[1:])}")
        feats = MNISTFeatures()
        fd = (feats, FeatureStats.of(feats.extract(data.batch(torch.arange(len(data))))))
    out = args.out or args.run / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    result = {"run": str(args.run), "split": args.split, "n_data": len(x),
              "n_prior": args.n_prior, "seed": args.seed,
              "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "machine": machine(torch.device("cpu")), "checkpoints": {}}
    for step in args.steps:
        ckpt = args.run / "checkpoints" / f"step_{step:08d}"
        if not ckpt.is_dir():
            raise SystemExit(f"{ckpt}: no such checkpoint")
        result["checkpoints"][str(step)] = analyse(ckpt, x, args, fd)
        print(step, json.dumps(result["checkpoints"][str(step)]), flush=True)
    (out / "chain_convergence.json").write_text(json.dumps(result, indent=1))
    (out / "chain_convergence.md").write_text(markdown(result))
    print((out / "chain_convergence.md").read_text())


def markdown(result: dict) -> str:
    rows = ["| step | chain | length | mean ‖z‖ | mean f(z) | MSE | FD-MNIST | chain s |",
            "|---|---|---|---|---|---|---|---|"]
    for step, r in result["checkpoints"].items():
        for chain in ("prior", "posterior"):
            for p in r[chain]:
                mse = f"{p['mse']:.4f}" if "mse" in p else ""
                fd = f"{p['fd_mnist']:.1f}" if "fd_mnist" in p else ""
                secs = f"{p['seconds']:.1f}" if "seconds" in p else ""
                rows.append(f"| {step} | {chain} | {p['length']} | {p['norm']:.2f} | "
                            f"{p['f']:.1f} | {mse} | {fd} | {secs} |")
    rows += ["", f"Run `{result['run']}`; posterior chains on {result['n_data']} images of "
             f"`{result['split']}`, {result['n_prior']} prior chains, seed {result['seed']}; "
             "each chain continued from the trained length; FD-MNIST of the prior samples "
             f"against every `{result['split']}` image; chain s: seconds of the chain to that "
             f"length ({result['machine'].get('cpu')}, {result['machine'].get('threads')} "
             f"thread(s)). Command: `{result['command']}`"]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
