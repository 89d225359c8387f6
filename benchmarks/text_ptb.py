"""Penn Treebank (LEBM Table 2): LEBM, its VAE baseline and SV-EBM on the same GRU decoder,
trained by one script, with a learning curve and the paper's three numbers.

    python benchmarks/text_ptb.py --steps 84120 --device cuda            # the full setting
    python benchmarks/text_ptb.py --steps 600 --checkpoint-every 200 --threads 1 --jobs 3 \\
        --n-valid 100 --n-is 100 --out benchmarks/results/text_ptb_cpu    # a CPU learning curve

1. Train each ``--presets`` run (``lebm train PRESET``; resumed if interrupted) to ``--steps``,
   ``--jobs`` at a time, with a checkpoint every ``--checkpoint-every`` steps.
2. Learning curve: every checkpoint's NLL per sentence on the first ``--n-valid`` sentences of
   the **validation** split (importance sampling, ``--n-is`` draws each), against steps and
   training hours (the trainer's own clock).
3. The checkpoint with the lowest validation NLL (nothing is chosen on test) is scored once on
   the test split: NLL with 500 draws per sentence (the papers'; ``--n-test`` sentences,
   default all 3,761), PPL from it, and forward / reverse perplexity of ``--n-samples``
   generated sentences (greedy decoding) by the LSTM language models of
   ``lebm.metrics.text_lm``, with the real test split's forward perplexity beside them.

Writes ``OUT/text_ptb.json``, ``.md`` (next to LEBM Table 2) and ``.png`` (the curves).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    checkpointed_train,
    clock,
    machine,
    run_dir,
    seconds_at,
    train_runs,
)

PAPER = {"LEBM (paper)": (107.45, 181.54, 91.35), "FB-VAE (paper)": (145.32, 204.11, 92.89),
         "SA-VAE (paper)": (147.92, 210.02, 101.28), "real data (paper)": (100.36, None, None)}


def train_all(out: Path, a: argparse.Namespace) -> None:
    jobs = []
    for preset in a.presets:
        run = run_dir(out, preset, a.seed)
        cmd = checkpointed_train(preset, run, seed=a.seed, steps=a.steps, threads=a.threads,
                                 checkpoint_every=a.checkpoint_every,
                                 sample_every=a.checkpoint_every,
                                 overrides=[f"train.device={a.device}", *a.overrides])
        jobs.append((run, [sys.executable, "-m", "lebm.cli", *cmd], a.steps))
    train_runs(jobs, a.jobs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", nargs="+", default=["ptb", "vae-ptb", "svebm-ptb"])
    ap.add_argument("--steps", type=int, default=60 * 1402)
    ap.add_argument("--checkpoint-every", type=int, default=4206)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-valid", type=int, default=500)
    ap.add_argument("--n-is", type=int, default=500)
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--n-samples", type=int, default=10_000)
    ap.add_argument("--curve-only", action="store_true",
                    help="skip the test-split scoring (the learning curve alone)")
    ap.add_argument("--eval-only", action="store_true",
                    help="train nothing: score the checkpoints the runs have so far (while "
                         "another process trains them)")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="config override for every run")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/text_ptb"))
    a = ap.parse_args()
    out = a.out
    out.mkdir(parents=True, exist_ok=True)
    path = out / "text_ptb.json"
    t0 = time.perf_counter()
    if not a.eval_only:
        train_all(out, a)
    record = json.loads(path.read_text()) if path.is_file() else {}  # read after training
    curves: dict[str, list[dict]] = record.get("curves", {})
    finals: dict[str, dict] = record.get("test", {})

    from lebm.evaluate import EvalSettings, evaluate

    for preset in a.presets:
        run = run_dir(out, preset, a.seed)
        if not (run / "metrics.jsonl").is_file():
            continue
        pts = clock(run)
        done = {p["step"] for p in curves.get(preset, [])}
        for step in range(a.checkpoint_every, a.steps + 1, a.checkpoint_every):
            if step in done or not (run / "checkpoints" / f"step_{step:08d}").is_dir():
                continue
            r = evaluate(run, ["ll"], EvalSettings(split="valid", n_ll=a.n_valid, n_is=a.n_is,
                                                   progress=False),
                         a.device, f"step_{step:08d}")["metrics"]["ll@valid"]
            curves.setdefault(preset, []).append(
                {"step": step, "hours": seconds_at(pts, step) / 3600, "valid_nll": r["nll"],
                 "valid_nll_se": r["se_total"], "valid_ppl": r["ppl"]})
            print(preset, curves[preset][-1], flush=True)
            write(out, a, curves, finals, t0)
        if a.curve_only or a.eval_only or not curves.get(preset):
            continue
        best = min(curves[preset], key=lambda p: p["valid_nll"])
        if finals.get(preset, {}).get("step") == best["step"]:
            continue
        m = evaluate(run, ["ll", "ppl"], EvalSettings(n_ll=a.n_test or 10**9, n_is=500,
                                                      n_samples=a.n_samples, progress=False),
                     a.device, f"step_{best['step']:08d}")["metrics"]
        finals[preset] = {"step": best["step"], "nll": m["ll"]["nll"],
                          "nll_se": m["ll"]["se_total"], "ppl": m["ll"]["ppl"],
                          "fppl": m["ppl"]["fppl"], "rppl": m["ppl"]["rppl"],
                          "real_fppl": m["ppl"]["real_fppl"], "n_test": m["ll"]["n"]}
        if preset.startswith("svebm"):
            finals[preset]["symbols"] = symbol_report(run, best["step"], out / f"{preset}_"
                                                      "symbols.txt", a.seed)
        write(out, a, curves, finals, t0)
    write(out, a, curves, finals, t0)
    print((out / "text_ptb.md").read_text())


def symbol_report(run: Path, step: int, path: Path, seed: int) -> dict:
    """SV-EBM: 5 greedy sentences of every symbol (written to ``path``), and how the test
    sentences' inferred symbols line up with two simple attributes PTB has — length tercile
    (cuts from the training split) and whether the sentence holds a number (``N``): the
    purity Σ_k max_c n_kc / N of the symbols against each, beside its chance level (the
    largest attribute share; what one symbol for everything would score)."""
    import torch

    from lebm.models import load_model
    from lebm.run import load_data, read_run_config
    from lebm.train.checkpoint import checkpoint_root

    cfg = read_run_config(run)
    model = load_model(checkpoint_root(run) / f"step_{step:08d}").eval()
    vocab = model.vocab
    gen = torch.Generator().manual_seed(seed)
    lines = []
    for k in range(model.prior.n_classes):
        lines += [f"# symbol {k}", *(vocab.decode(r.tolist())
                                     for r in model.sample(5, gen, class_=k)), ""]
    path.write_text("\n".join(lines))
    test = load_data(cfg, cfg.data.test_split)
    x = test.batch(torch.arange(len(test)))
    symbol = model.classify(x, gen).argmax(1)
    lengths = (x >= 0).sum(1)
    train_len = (load_data(cfg, "train").data >= 0).sum(1).float()
    cuts = torch.quantile(train_len, torch.tensor([1 / 3, 2 / 3]))
    number = torch.tensor([vocab.index.get("N", -5) in row.tolist() for row in x])
    out = {"symbols_used": int(symbol.unique().numel()), "n_symbols": model.prior.n_classes,
           "examples_file": path.name}
    for name, attr in (("length_tercile", torch.bucketize(lengths.float(), cuts)),
                       ("has_number", number.long())):
        counts = torch.zeros(model.prior.n_classes, int(attr.max()) + 1)
        counts.index_put_((symbol, attr), torch.ones(len(attr)), accumulate=True)
        out[name] = {"purity": float(counts.max(1).values.sum() / len(attr)),
                     "chance": float(counts.sum(0).max() / len(attr))}
    return out


def write(out: Path, a: argparse.Namespace, curves: dict[str, list[dict]],
          finals: dict[str, dict], t0: float) -> None:
    import torch

    result = {"command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "presets": a.presets, "steps": a.steps, "seed": a.seed, "threads": a.threads,
              "device": a.device, "n_valid": a.n_valid, "n_is_valid": a.n_is,
              "curves": curves, "test": finals, "paper": PAPER,
              "script_seconds": time.perf_counter() - t0,
              "machine": machine(torch.device("cpu"))}
    (out / "text_ptb.json").write_text(json.dumps(result, indent=1))
    rows = ["| model | FPPL | RPPL | NLL (per sentence) | PPL from NLL | step (valid-chosen) |",
            "|---|---|---|---|---|---|"]
    for preset, f in finals.items():
        rows.append(f"| {preset} | {f['fppl']:.2f} | {f['rppl']:.2f} | {f['nll']:.2f} ± "
                    f"{f['nll_se']:.2f} | {f['ppl']:.2f} | {f['step']} |")
    if finals:
        real = next(iter(finals.values()))["real_fppl"]
        rows.append(f"| real test sentences (FPPL only) | {real:.2f} | – | – | – | – |")
    for name, (fp, rp, nll) in PAPER.items():
        cells = [f"{v:.2f}" if v is not None else "–" for v in (fp, rp, nll)]
        rows.append(f"| {name} | " + " | ".join(cells) + " | – | – |")
    rows += ["", "Learning curve (validation NLL per sentence, first "
             f"{a.n_valid} validation sentences, {a.n_is} IS draws each):", "",
             "| model | step | training hours | valid NLL | valid PPL |", "|---|---|---|---|---|"]
    for preset, pts in curves.items():
        for p in sorted(pts, key=lambda p: p["step"]):
            rows.append(f"| {preset} | {p['step']} | {p['hours']:.2f} | {p['valid_nll']:.2f} ± "
                        f"{p['valid_nll_se']:.2f} | {p['valid_ppl']:.1f} |")
    for preset, f in finals.items():
        if "symbols" in f:
            sy = f["symbols"]
            rows += ["", f"{preset}: {sy['symbols_used']} of {sy['n_symbols']} symbols used on "
                     "the test split; purity of the symbols against length tercile "
                     f"{sy['length_tercile']['purity']:.3f} (chance "
                     f"{sy['length_tercile']['chance']:.3f}), against holding a number "
                     f"{sy['has_number']['purity']:.3f} (chance "
                     f"{sy['has_number']['chance']:.3f}); sentences of each symbol in "
                     f"`{sy['examples_file']}`."]
    rows += ["", f"Trained on {result['machine']['cpu'] if a.device != 'cuda' else 'CUDA'}, "
             f"{a.threads} thread(s) a run, {a.jobs} run(s) at a time; seed {a.seed}. "
             f"Command: `{result['command']}`"]
    (out / "text_ptb.md").write_text("\n".join(rows) + "\n")
    plot(curves, out / "text_ptb.png")


def plot(curves: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for preset, pts in curves.items():
        pts = sorted(pts, key=lambda p: p["step"])
        if not pts:
            continue
        nll = [p["valid_nll"] for p in pts]
        err = [p["valid_nll_se"] for p in pts]
        axes[0].errorbar([p["step"] for p in pts], nll, err, fmt="o-", ms=3, label=preset)
        axes[1].errorbar([p["hours"] for p in pts], nll, err, fmt="o-", ms=3, label=preset)
    axes[0].set(xlabel="training steps", ylabel="validation NLL per sentence (nats)",
                yscale="log")
    axes[1].set(xlabel="training hours (the trainer's clock)", yscale="log")
    axes[0].axhline(91.35, color="grey", ls=":", lw=1)
    axes[0].text(0.01, 91.35, "LEBM paper, test", fontsize=7, va="bottom",
                 transform=axes[0].get_yaxis_transform())
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
