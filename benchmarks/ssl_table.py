"""Semi-supervised classification: SV-EBM against three baselines, same labels for every row.

    python benchmarks/ssl_table.py --tasks wine breast-cancer --draws 0 1 2
    python benchmarks/ssl_table.py --tasks mnist-100 --draws 0 --steps 6000   # hours on CPU

Rows, per task and label draw (a draw = the seed of the class-balanced labelled subset;
``train.seed`` of every run, so all rows see exactly the same labelled examples):

* **SV-EBM** — preset ``svebm-TASK``: the symbol-vector prior model trained on every training
  example, labels on the drawn subset only; prediction ``argmax f(μ(x))``.
* **supervised only** — the SV-EBM's encoder network with a linear K-way head, trained with
  cross-entropy on the labelled examples alone (Adam, ``--sup-steps`` steps).
* **label spreading** — scikit-learn ``LabelSpreading`` (kNN kernel) on the raw features
  of the labelled examples plus up to ``--spread-unlabelled`` unlabelled ones (transductive;
  the test set is then classified by its nearest neighbours' spread labels via
  ``predict``).
* **VAE + classifier** — preset ``vae-svebm-TASK`` (same generator and encoder, Gaussian
  prior) trained on every example without labels; logistic regression on the encoder means
  ``μ(x)`` of the labelled examples.

Test accuracy on the task's test split (MNIST: the 10,000 test digits; tables: the fixed
30 % stratified split). Writes ``OUT/NAME.json`` and ``.md`` (``--name``, default
``ssl_table``); finished runs are reused.

``--validation`` is for choosing knobs without the test split: every run trains on MNIST's
first 50,000 training images (``data.train_split=train50k``, the labelled draw taken from
them) and is scored on the other 10,000 (``valid``); runs go to ``OUT/runs-valid``.
``--rows svebm`` trains and scores the SV-EBM row alone; ``--tag`` names a variant's runs
(``svebm-mnist-100-d0-TAG``) so that variants of one task and draw do not collide.

    python benchmarks/ssl_table.py --tasks mnist-100 --draws 0 1 --steps 12000 --validation \
        --rows svebm --svebm-set method.mi_weight=10 --tag mi10 --name valid_mi10
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, train_runs  # noqa: E402

TASKS = ("mnist-100", "mnist-600", "wine", "breast-cancer")
ROWS = ("svebm", "supervised", "label_spreading", "vae_classifier")
NAMES = {"svebm": "SV-EBM", "supervised": "supervised only (same labels)",
         "label_spreading": "label spreading (sklearn)", "vae_classifier": "VAE + logistic regr."}


def _data(run: Path):
    """The run's labelled training subset, all training examples, and the test split."""
    from lebm.run import load_data, read_run_config

    cfg = read_run_config(run)
    train = load_data(cfg, "train")
    test = load_data(cfg, cfg.data.test_split or "test")
    lab = train.labelled_indices()
    return cfg, train, lab, test


def _x(ds, idx=None) -> torch.Tensor:
    return ds.batch(torch.arange(len(ds)) if idx is None else idx)


class _EncoderClassifier(torch.nn.Module):
    """An encoder's (μ, log σ²) output → a K-way linear head."""

    def __init__(self, encoder: torch.nn.Module, dim: int, k: int) -> None:
        super().__init__()
        self.encoder, self.out = encoder, torch.nn.Linear(2 * dim, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat(self.encoder(x), 1))


def supervised_only(run: Path, steps: int, seed: int) -> float:
    """The SV-EBM encoder architecture + linear head, cross-entropy on the labels alone."""
    import lebm
    from lebm.nets import build_encoder

    cfg, train, lab, test = _data(run)
    model = lebm.load(run)
    m = model.config
    torch.manual_seed(seed)
    encoder = build_encoder(m.encoder, m.data_shape, model.latent, widths=m.gen_widths[::-1],
                            ngf=m.ngf, activation=m.gen_activation)
    assert encoder is not None
    net = _EncoderClassifier(encoder, model.latent.dim, m.n_classes)
    x, y = _x(train, lab), train.targets[lab]
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (min(64, len(x)),), generator=g)
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        xt = _x(test)
        pred = torch.cat([net(xt[i:i + 1000]).argmax(1) for i in range(0, len(xt), 1000)])
    return float((pred == test.targets).float().mean())


def label_spreading(run: Path, n_unlabelled: int, seed: int) -> float:
    from sklearn.semi_supervised import LabelSpreading

    cfg, train, lab, test = _data(run)
    unl = torch.nonzero(train.targets < 0).flatten()
    g = torch.Generator().manual_seed(seed)
    unl = unl[torch.randperm(len(unl), generator=g)[:n_unlabelled]]
    idx = torch.cat([lab, unl])
    x = _x(train, idx).flatten(1).numpy()
    y = train.targets[idx].numpy()
    model = LabelSpreading(kernel="knn", n_neighbors=min(7, len(lab) - 1), max_iter=100)
    model.fit(x, y)
    pred = model.predict(_x(test).flatten(1).numpy())
    return float((pred == test.targets.numpy()).mean())


def vae_classifier(vae_run: Path, svebm_run: Path) -> float:
    from sklearn.linear_model import LogisticRegression

    import lebm

    _, train, lab, test = _data(svebm_run)  # the same labelled subset
    vae = lebm.load(vae_run)
    with torch.no_grad():
        mu_l = vae.encode(_x(train, lab))[0].numpy()
        xt = _x(test)
        mu_t = torch.cat([vae.encode(xt[i:i + 1000])[0] for i in range(0, len(xt), 1000)])
    clf = LogisticRegression(max_iter=2000).fit(mu_l, train.targets[lab].numpy())
    return float((clf.predict(mu_t.numpy()) == test.targets.numpy()).mean())


def svebm_accuracy(run: Path) -> float:
    import lebm

    _, _, _, test = _data(run)
    model = lebm.load(run)
    logits = model.classify(_x(test), torch.Generator().manual_seed(0))
    return float((logits.argmax(1) == test.targets).float().mean())


VALIDATION = ["data.train_split=train50k", "data.test_split=valid"]


def run_folder(out: Path, kind: str, task: str, draw: int, validation: bool = False,
               tag: str = "") -> Path:
    """Where the ``kind`` (svebm / vae) run of a task and draw lives."""
    name = f"{kind}-{task}-d{draw}" + (f"-{tag}" if tag else "")
    return out / ("runs-valid" if validation else "runs") / name


def training_jobs(out: Path, tasks: list[str], draws: list[int], steps: int | None,
                  threads: int, overrides: list[str], svebm_overrides: list[str],
                  kinds: tuple[str, ...] = ("svebm", "vae"), validation: bool = False,
                  tag: str = "") -> list[tuple[Path, list[str], int]]:
    """``(run folder, lebm train command, steps)`` of the SV-EBM and VAE run of every task
    and draw; ``svebm_overrides`` go to the SV-EBM runs only; ``validation`` trains on
    train50k and scores on valid (MNIST tasks)."""
    from lebm.config import preset_config

    jobs = []
    for task in tasks:
        if validation and not task.startswith("mnist"):
            raise SystemExit(f"--validation: only the MNIST tasks have a validation split, "
                             f"not {task}")
        for draw in draws:
            for kind in kinds:
                preset = f"svebm-{task}" if kind == "svebm" else f"vae-svebm-{task}"
                run = run_folder(out, kind, task, draw, validation, tag)
                cmd = [sys.executable, "-m", "lebm.cli", "train", preset, "--run-dir", str(run),
                       "--seed", str(draw), "--overwrite", "--no-progress",
                       "--set", f"train.threads={threads}"]
                if steps:
                    cmd += ["--max-steps", str(steps)]
                for o in (overrides + (svebm_overrides if kind == "svebm" else [])
                          + (VALIDATION if validation else [])):
                    cmd += ["--set", o]
                jobs.append((run, cmd, steps or preset_config(preset).train.max_steps))
    return jobs


def score(row: str, sv: Path, vae: Path, draw: int, args: argparse.Namespace) -> float:
    """The accuracy of one row for one draw (``sv``, ``vae``: that draw's runs)."""
    if row == "svebm":
        return svebm_accuracy(sv)
    if row == "supervised":
        return supervised_only(sv, args.sup_steps, draw)
    if row == "label_spreading":
        return label_spreading(sv, args.spread_unlabelled, draw)
    return vae_classifier(vae, sv)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="+", default=["wine", "breast-cancer"], choices=TASKS)
    ap.add_argument("--draws", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, help="training steps of the SV-EBM and VAE runs "
                    "(default: the preset's)")
    ap.add_argument("--sup-steps", type=int, default=1000)
    ap.add_argument("--spread-unlabelled", type=int, default=10_000)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for every trained run (SV-EBM and VAE)")
    ap.add_argument("--svebm-set", dest="svebm_overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="config override for the SV-EBM runs only "
                    "(e.g. method.mi_weight=30, which the VAE has not got)")
    ap.add_argument("--validation", action="store_true", help="train on train50k, score on "
                    "valid (MNIST): for choosing knobs without the test split")
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    ap.add_argument("--tag", default="", help="suffix of the run folders of this variant")
    ap.add_argument("--out", default="benchmarks/results/ssl")
    ap.add_argument("--name", default="ssl_table", help="stem of the JSON / Markdown files")
    args = ap.parse_args()
    out = Path(args.out)
    t_start = time.perf_counter()

    kinds = ("svebm", "vae") if "vae_classifier" in args.rows else ("svebm",)
    jobs = training_jobs(out, args.tasks, args.draws, args.steps, args.threads,
                         args.overrides, args.svebm_overrides, kinds, args.validation,
                         args.tag)
    walls = train_runs(jobs, args.jobs)

    results: dict[str, dict[str, list[float]]] = {}
    for task in args.tasks:
        results[task] = {r: [] for r in args.rows}
        for draw in args.draws:
            sv = run_folder(out, "svebm", task, draw, args.validation, args.tag)
            vae = run_folder(out, "vae", task, draw, args.validation, args.tag)
            row = {r: score(r, sv, vae, draw, args) for r in args.rows}
            for k, v in row.items():
                results[task][k].append(v)
            print(task, draw, {k: round(v, 4) for k, v in row.items()}, flush=True)
    result = {"command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "draws": args.draws, "results": results,
              "summary": {t: {r: {"mean": statistics.mean(v),
                                  "std": statistics.stdev(v) if len(v) > 1 else None}
                              for r, v in rows.items()} for t, rows in results.items()},
              "train_seconds": {k: v["seconds"] for k, v in walls.items()},
              "wall_seconds_total": time.perf_counter() - t_start,
              "machine": machine(torch.device("cpu")), "overrides": args.overrides,
              "svebm_overrides": args.svebm_overrides, "validation": args.validation,
              "split": "valid (MNIST train images 50,001-60,000; trained on the first 50,000)"
              if args.validation else "test",
              "settings": {"sup_steps": args.sup_steps,
                           "spread_unlabelled": args.spread_unlabelled, "steps": args.steps}}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    (out / f"{args.name}.md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    tasks = list(result["summary"])
    lines = ["| method | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    rows = next(iter(result["results"].values())).keys() if result["results"] else ROWS
    for r in rows:
        cells = []
        for t in tasks:
            s = result["summary"][t][r]
            cells.append(f"{100 * s['mean']:.1f}" + (f" ± {100 * s['std']:.1f}"
                                                      if s["std"] is not None else ""))
        lines.append(f"| {NAMES[r]} | " + " | ".join(cells) + " |")
    train_min = sum(result["train_seconds"].values()) / 60
    what = "Validation" if result.get("validation") else "Test"
    lines += ["", f"{what} accuracy (%), mean ± std over label draws {result['draws']}; "
              f"{result['machine']['cpu']}; training runs {train_min:.0f} min in all "
              "(reused ones as first recorded), this script "
              f"{result['wall_seconds_total'] / 60:.1f} min.",
              f"Command: `{result['command']}`"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
