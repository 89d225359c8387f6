"""Evaluate a trained run: every number with the recipe that produced it (``eval.json``).

Metrics (``--metrics``; the default is every one that applies to the run's data and device):

* ``mse``      test-split reconstruction error per pixel (per coordinate for vector data),
               images in [-1, 1] and in [0, 1];
               ``z`` by the model's own inference (posterior Langevin with the training K, s).
* ``fid``      Inception FID (TF 2015-12-05 graph) of prior samples against reference
               statistics of the training split, cached (default only on a GPU: ~0.25 s
               per image on a 2-core CPU).
* ``fd_mnist`` Fréchet distance in an MNIST classifier's 128-d features (28×28 grey data
               only), samples vs the test split: a fast domain-specific FID.
* ``ll``       importance-sampling estimate of log p(x) on test examples (nats per example,
               continuous density in model space), with standard errors. Sentences: NLL
               per sentence by importance sampling with 500 draws, and PPL from it
               (``lebm.evaluate.text``).
* ``ppl``      text: forward and reverse perplexity of ``n_samples`` generated sentences
               (greedy decoding) by LSTM language models, and the real test split's FPPL.
* ``auprc``    anomaly detection, when the run held classes out (``data.exclude_classes``):
               the whole test split scored by ``model.anomaly_score``, held-out classes
               positive; also AUROC.
* ``accuracy`` symbol-vector prior models: test accuracy of ``argmax p(y | z)`` at the
               inferred ``z``, and cluster purity (each class's majority symbol; for
               symbols learned without labels).
* ``chains``   Langevin diagnostics: per-step log-density and gradient norm of prior and
               posterior chains run to twice their training length; plot in
               ``plots/chain_diagnostics.png``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch

from lebm._version import __version__
from lebm.data import ArrayDataset, cache_dir
from lebm.data.text import concat_padded
from lebm.errors import LebmError
from lebm.evaluate.marginal import log_likelihood, prior_log_normalizer
from lebm.io import atomic_write_json
from lebm.models import LatentModel, load_model
from lebm.run import load_data, read_run_config, resolve_device
from lebm.train.checkpoint import checkpoint_root, is_complete, latest_checkpoint, step_of

METRICS = ("mse", "fid", "fd_mnist", "ll", "ppl", "auprc", "accuracy", "chains")


@dataclass
class EvalSettings:
    """Sample counts and seeds of one evaluation (recorded in every recipe)."""

    n_samples: int = 5000  # fid / fd_mnist samples
    n_test: int | None = None  # test examples for mse / auprc; None = all
    n_ll: int = 100  # test examples for the log-likelihood estimate
    n_ref: int | None = None  # training images for FID reference statistics; None = all
    seed: int = 0
    batch_size: int = 500
    progress: bool = True
    cache_dir: str | Path | None = None  # FID reference statistics, text language models
    split: str | None = None  # evaluate on this split (e.g. valid); None = the run's test split
    anomaly_score: str = "joint"  # auprc score: joint (the papers'), or marginal (−log p(x))
    score_chains: int = 1  # joint: mean over this many posterior draws
    n_is: int = 500  # text ll: importance-sampling draws per sentence (the papers' 500)
    # posterior Langevin steps for every metric that infers z (None = the trained length);
    # results are kept apart as METRIC@posteriorK
    posterior_steps: int | None = None

    def __post_init__(self) -> None:
        if self.score_chains < 1:
            raise LebmError(f"score_chains must be >= 1, got {self.score_chains}")
        if self.posterior_steps is not None and self.posterior_steps < 0:
            raise LebmError(f"posterior_steps must be >= 0, got {self.posterior_steps}")
        for name in ("n_samples", "n_test", "n_ll", "n_ref", "batch_size", "n_is"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise LebmError(f"{name} must be >= 2, got {value}")


class Evaluator:
    """Load a run's model and data once; compute metrics by name."""

    def __init__(self, run_dir: str | Path, settings: EvalSettings | None = None,
                 device: str = "auto", checkpoint: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.cfg = read_run_config(self.run_dir)
        self.s = settings or EvalSettings()
        self.device = resolve_device(device)
        if checkpoint is not None:  # a step folder under checkpoints/, e.g. "step_00002000"
            source = checkpoint_root(self.run_dir) / checkpoint
            if not is_complete(source):
                have = sorted(p.name for p in checkpoint_root(self.run_dir).glob("step_*"))
                raise LebmError(f"{self.run_dir}: no checkpoint {checkpoint!r}; "
                                f"it has {', '.join(have) or 'none'}")
        else:
            source = latest_checkpoint(self.run_dir)
        self.checkpoint = source.name  # the one actually read (latest may have fallen back)
        self.model: LatentModel = load_model(source, self.device).eval()
        if self.s.posterior_steps is not None:  # every inference below runs this long
            self.model.config.posterior_chain.n_steps = self.s.posterior_steps
        self._cache: dict[tuple[str, int | None, bool], Any] = {}
        self._sample_cache: dict[int, torch.Tensor] = {}

    # ------------------------------------------------------------------ data
    def data(self, split: str, limit: int | None = None,
             all_classes: bool = False) -> ArrayDataset:
        """The first ``limit`` examples of a split of the run's data set (the run's class
        filters unless ``all_classes``; never its labelled subset or ``data.limit``)."""
        key = (split, limit, all_classes)
        if key not in self._cache:
            self._cache[key] = load_data(self.cfg, split, limit, all_classes=all_classes,
                                         subset=False)
        return self._cache[key]

    @property
    def test_split(self) -> str:
        if self.s.split:
            return self.s.split
        return self.cfg.data.test_split or "train"

    def _gen(self, offset: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.s.seed * 1000 + offset)

    @staticmethod
    def examples(ds: ArrayDataset, n: int | None = None) -> torch.Tensor:
        """The first ``n`` examples of ``ds`` (all by default) as one model-space batch."""
        n = len(ds) if n is None else min(n, len(ds))
        return ds.batch(torch.arange(n))

    def _batches(self, x: torch.Tensor, desc: str, size: int | None = None):
        from tqdm.auto import tqdm

        size = size or self.s.batch_size
        for i in tqdm(range(0, len(x), size), desc=desc, disable=not self.s.progress,
                      leave=False):
            yield x[i:i + size].to(self.device)

    def applicable(self) -> list[str]:
        """Metrics that make sense for this run (FID only on a GPU by default)."""
        shape = self.model.data_shape
        if self.model.reads_data:  # sentences
            return ["ll", "ppl", *(["accuracy"] if self.cfg.data.n_labels else []), "chains"]
        out = ["mse"]
        if len(shape) == 3:
            if self.device.type == "cuda":
                out.append("fid")
            if shape == (1, 28, 28):
                out.append("fd_mnist")
        out.append("ll")
        if self.cfg.data.exclude_classes:
            out.append("auprc")
        if "symbols" in self.model.prior.capabilities:
            out.append("accuracy")
        out.append("chains")
        return out

    def run(self, metrics: list[str]) -> dict[str, Any]:
        unknown = set(metrics) - set(METRICS)
        if unknown:
            raise LebmError(f"unknown metric(s) {sorted(unknown)}; "
                            f"choose from {', '.join(METRICS)}")
        results = {}
        for name in metrics:
            t0 = time.perf_counter()
            fn: Callable[[], dict[str, Any]] = getattr(self, f"eval_{name}")
            r = fn()
            r["seconds"] = round(time.perf_counter() - t0, 2)
            results[name] = r
        return results

    # ------------------------------------------------------------------ metrics
    def eval_mse(self) -> dict[str, Any]:
        x = self.examples(self.data(self.test_split, self.s.n_test))
        gen = self._gen(1)
        sq = []
        with torch.no_grad():
            for xb in self._batches(x, "mse"):
                sq.append((self.model.reconstruct(xb, gen) - xb).pow(2).flatten(1).mean(1).cpu())
        per = torch.cat(sq)  # per-example MSE in [-1, 1]
        c = self.model.config
        post = c.posterior_chain
        mse = float(per.mean())
        return {"mse": mse, "mse_01": mse / 4, "se": float(per.std() / math.sqrt(len(per))),
                "recipe": {"split": self.test_split, "n": len(per),
                           "inference": c.inference, "posterior_kernel": post.kernel,
                           "posterior_steps": post.n_steps,
                           "posterior_step_size": post.step_size,
                           "chain_dtype": c.precision.chain_dtype, "seed": self.s.seed,
                           "pixels": "mse: images in [-1, 1]; mse_01: in [0, 1] (= mse / 4)"}}

    def _samples(self, n: int) -> torch.Tensor:
        """``n`` prior samples (seeded); drawn once and shared by fid and fd_mnist."""
        if n not in self._sample_cache:
            from tqdm.auto import tqdm

            gen = self._gen(2)
            out = []
            for i in tqdm(range(0, n, self.s.batch_size), desc="samples", leave=False,
                          disable=not self.s.progress):
                out.append(self.model.sample(min(self.s.batch_size, n - i), gen,
                                             batch_size=self.s.batch_size).cpu())
            # sentences: every batch padded to the longest
            self._sample_cache[n] = concat_padded(out) if self.model.reads_data \
                else torch.cat(out)
        return self._sample_cache[n]

    def _sampler_recipe(self) -> dict[str, Any]:
        c = self.model.config
        chain = c.prior_chain
        return {"sampler": f"prior chain ({chain.kernel}) from N(0, init_std²)"
                if self.model.prior.needs_chain else "exact Gaussian prior",
                "prior_kernel": chain.kernel, "prior_steps": chain.n_steps,
                "prior_step_size": chain.step_size, "init_std": chain.init_std,
                "chain_dtype": c.precision.chain_dtype, "seed": self.s.seed}

    def eval_fid(self) -> dict[str, Any]:
        from lebm.metrics.fid import FIDRecipe, fid, stats_for
        from lebm.metrics.inception import InceptionFeatures

        if len(self.model.data_shape) != 3:
            raise LebmError(f"fid needs image data (C, H, W); this run's examples are "
                            f"{self.model.data_shape}")
        feats = InceptionFeatures().to(self.device)
        d = self.cfg.data
        ref_x = self.examples(self.data("train", self.s.n_ref))
        selection = {"exclude_classes": list(d.exclude_classes),
                     "classes": None if d.classes is None else list(d.classes),
                     "resize": d.image_size}
        tag = "-".join(str(v) for v in (d.name, "train", len(ref_x), *ref_x.shape[1:]))
        if d.exclude_classes or d.classes is not None:
            tag += "-" + "_".join(map(str, d.classes or ())) + "x" + "_".join(
                map(str, d.exclude_classes))
        root = Path(self.s.cache_dir) if self.s.cache_dir else cache_dir().parent / "fid"
        ref = stats_for(ref_x, feats, root / f"{tag}.safetensors",
                        {"dataset": d.name, "split": "train", **selection},
                        progress=self.s.progress)
        samples = self._samples(self.s.n_samples)
        value = fid(samples, ref, feats, progress=self.s.progress)
        recipe = FIDRecipe(n_samples=len(samples), n_reference=len(ref_x),
                           reference=f"{d.name} train split, {len(ref_x)} images").as_dict()
        return {"value": value, "recipe": {**recipe, **self._sampler_recipe()}}

    def eval_fd_mnist(self) -> dict[str, Any]:
        from lebm.metrics import FeatureStats, MNISTFeatures, frechet_distance

        if self.model.data_shape != (1, 28, 28):
            raise LebmError(f"fd_mnist needs 28×28 grey images (MNIST-shaped data); this run's "
                            f"examples are {self.model.data_shape}: use fid for other images")
        feats = MNISTFeatures().to(self.device)
        test = self.examples(self.data(self.test_split))  # the run's classes: what it learned
        samples = self._samples(self.s.n_samples)
        value = frechet_distance(FeatureStats.of(feats.extract(samples)),
                                 FeatureStats.of(feats.extract(test)))
        return {"value": value, "recipe": {
            "features": "MNIST classifier 128-d penultimate layer (ccexam 1.0.0 weights)",
            "n_samples": len(samples), "reference": f"{self.test_split} split, {len(test)} "
            "images of the run's classes", **self._sampler_recipe()}}

    def eval_ll(self) -> dict[str, Any]:
        x = self.examples(self.data(self.test_split, self.s.n_ll))
        gen = self._gen(3)
        if getattr(self.model, "has_density", False):  # a GEBM on a flow: exact up to log Z
            return self._ll_density_base(x, gen)
        log_z = prior_log_normalizer(self.model, gen)  # once, shared by every example
        if self.model.reads_data:
            return self._ll_sentences(x, gen, log_z)
        lls, ses = [], []
        for xb in self._batches(x, "log p(x)", size=50):
            ll, se = log_likelihood(self.model, xb, gen, log_z=(log_z[0], 0.0))
            lls.append(ll.cpu())
            ses.append(se.cpu())
        ll, se = torch.cat(lls), torch.cat(ses)
        dim = x[0].numel()
        mean = float(ll.mean())
        between = float(ll.std() / math.sqrt(len(ll)))
        return {"nats": mean, "se_examples": between, "estimator_se_mean": float(se.mean()),
                "se_total": math.sqrt(between**2 + log_z[1] ** 2),
                "log_z": log_z[0], "log_z_se": log_z[1],
                "nats_per_dim": mean / dim,
                "recipe": {"split": self.test_split, "n": len(ll),
                           "estimator": "AIS from the proposal to the posterior, 32 particles "
                           "per example, 500 temperatures β=(k/500)², one MALA step each",
                           "proposal": "diagonal Gaussian fitted to 16 posterior chains (×1.5 "
                           "spread), or q(z|x) for encoder inference",
                           "se": "se_examples: of the mean over examples; estimator_se_mean: "
                           "the mean per-example AIS error; se_total adds the shared log Z "
                           "error",
                           "prior_log_z": "log E_N(0,σ0²) exp f by AIS, 1,000 chains, 200 "
                           "temperatures, MALA" if self.model.prior.needs_chain
                           else "exact (Gaussian prior)",
                           "data_space": "model space (images in [-1, 1]); continuous "
                           "Gaussian density, not a discrete likelihood"}}

    def _ll_sentences(self, x: torch.Tensor, gen: torch.Generator,
                      log_z: tuple[float, float]) -> dict[str, Any]:
        from lebm.evaluate.text import sentence_nll

        r = sentence_nll(self.model, x, gen, log_z=log_z, n_samples=self.s.n_is,
                         progress=self.s.progress)
        encoder = self.model.config.inference == "encoder"
        return {**r, "recipe": {
            "split": self.test_split, "n": r["n"],
            "estimator": f"importance sampling, {self.s.n_is} draws per sentence (the papers: "
                         "500)",
            "proposal": "q(z|x)" if encoder else "diagonal Gaussian fitted to 16 posterior "
                        "chains (×1.5 spread)",
            "prior_log_z": "log E_N(0,σ0²) exp f by AIS, 1,000 chains, 200 temperatures"
                           if self.model.prior.needs_chain else "exact (Gaussian prior)",
            "nll": "nats per sentence, −log p(x), <eos> included; ppl = exp(Σ nll / Σ tokens)"}}

    def eval_ppl(self) -> dict[str, Any]:
        if not self.model.reads_data:
            raise LebmError("ppl scores generated sentences: this run's data are not text")
        from lebm.evaluate.text import generation_perplexities

        ids = {s: self.examples(self.data(s)) for s in ("train", "valid", self.test_split)}
        samples = self._samples(self.s.n_samples)
        r = generation_perplexities(samples, ids["train"], ids["valid"], ids[self.test_split],
                                    self.model.config.n_categories, progress=self.s.progress,
                                    cache_dir=(Path(self.s.cache_dir) if self.s.cache_dir
                                               else cache_dir().parent) / "text_lm")
        r["recipe"] = {**self._sampler_recipe(), "decoding": "greedy",
                       "split": self.test_split, **r.pop("language_model")}
        return r

    def _ll_density_base(self, x: torch.Tensor, gen: torch.Generator) -> dict[str, Any]:
        """``log q(x) = log g(x) − T·E(x) − log Z`` of a GEBM whose base has a density."""
        r = cast(Any, self.model).log_likelihood(x, gen)
        ll, base = r["ll"].double().cpu(), r["base_ll"].double().cpu()
        n = len(ll)
        return {"nats": float(ll.mean()), "se_examples": float(ll.std() / math.sqrt(n)),
                "se_total": math.sqrt(float(ll.std()) ** 2 / n + r["log_z_se"] ** 2),
                "base_nats": float(base.mean()),
                "base_se_examples": float(base.std() / math.sqrt(n)),
                "log_z": r["log_z"], "log_z_se": r["log_z_se"],
                "nats_per_dim": float(ll.mean()) / x[0].numel(),
                "recipe": {"split": self.test_split, "n": n,
                           "estimator": "exact flow density minus T·E(x), minus a Monte-Carlo "
                           "log Z over 100,000 base samples (delta-method se)",
                           "data_space": "model space (the data set's own scaling)"}}

    def eval_auprc(self) -> dict[str, Any]:
        held_out = tuple(self.cfg.data.exclude_classes)
        if not held_out:
            raise LebmError("auprc needs a run trained with data.exclude_classes (the anomalies)")
        ds = self.data(self.test_split, self.s.n_test, all_classes=True)
        if ds.targets is None:
            raise LebmError(f"{ds.name} has no labels: cannot tell anomalies from normal data")
        x = self.examples(ds)
        scores, what = anomaly_scores(self.model, x, self._gen(4), self.s.anomaly_score,
                                      self.s.score_chains, self.s.batch_size, self.s.progress)
        positive = torch.isin(ds.targets[:len(x)], torch.tensor(held_out))
        protocol = self.cfg.data.holdout_protocol
        return {**anomaly_figures(scores, positive),
                "recipe": {"split": self.test_split, "n": len(x), "anomalies": list(held_out),
                           "protocol": protocol or "the data set's test split, held-out "
                           "classes positive", "score": what, "positive": "held-out classes",
                           "auprc": "trapezoid over the precision-recall curve, "
                                    "auc(recall, precision) (Zenati et al. 2018)",
                           "seed": self.s.seed}}

    def eval_accuracy(self) -> dict[str, Any]:
        from lebm.metrics.scores import accuracy, cluster_purity

        if "symbols" not in self.model.prior.capabilities:
            raise LebmError("accuracy needs a model with a symbol-vector prior (prior=symbol)")
        ds = self.data(self.test_split, self.s.n_test)
        if ds.targets is None or not bool((ds.targets >= 0).any()):
            raise LebmError(f"the {self.test_split} split has no labels")
        keep = torch.nonzero(ds.targets >= 0).flatten()
        x, y = ds.batch(keep), ds.targets[keep]
        gen = self._gen(8)
        pred = torch.cat([self.model.classify(xb, gen).argmax(1).cpu()
                          for xb in self._batches(x, "classify")])
        clusters = cluster_purity(pred, y, self.model.prior.n_classes)
        return {"accuracy": accuracy(pred, y), "purity": clusters["purity"],
                "symbols_used": clusters["symbols_used"],
                "distinct_majority_symbols": clusters["distinct_majority_symbols"],
                "recipe": {"split": self.test_split, "n": len(y),
                           "classes": clusters["classes"], "prediction":
                           "argmax_k f_k(z), z by the model's inference "
                           f"({self.model.config.inference})", "seed": self.s.seed,
                           "purity": "fraction of examples whose symbol is their class's "
                                     "most frequent symbol"}}

    def eval_chains(self) -> dict[str, Any]:
        from lebm.viz import plot_chain_traces

        c = self.model.config
        n = min(self.s.batch_size, 200)
        traces: dict[str, Any] = {}
        marks: dict[str, int] = {}
        out: dict[str, Any] = {}
        k_prior, k_post = c.prior_chain.n_steps, c.posterior_chain.n_steps
        if self.model.prior.needs_chain and k_prior > 0:
            _, tr = self.model.sample_latent(n, self._gen(5), n_steps=2 * k_prior, record=True)
            traces["prior"], marks["prior"] = tr, k_prior
        if k_post > 0:
            x = self.examples(self.data(self.test_split, n)).to(self.device)
            z0 = self.model.init_latent(len(x), self._gen(7), c.posterior_chain.init_std)
            _, tr = self.model.infer_latent(x, self._gen(6), z0=z0, n_steps=2 * k_post,
                                            record=True)
            traces["posterior"], marks["posterior"] = tr, k_post
        arrays = {}
        for name, tr in traces.items():
            if tr is None:
                continue
            lp, gn = tr.log_density.cpu().numpy(), tr.grad_norm.cpu().numpy()
            arrays[name] = {"log_density": lp, "grad_norm": gn}
            k = marks[name]
            out[name] = {"steps": 2 * k, "training_steps": k,
                         "log_density_first": float(lp[0].mean()),
                         "log_density_at_training_length": float(lp[k - 1].mean()),
                         "log_density_last": float(lp[-1].mean()),
                         "grad_norm_at_training_length": float(gn[k - 1].mean()),
                         "log_density_per_step": [round(float(v), 4) for v in lp.mean(1)]}
            if tr.acceptance is not None:
                out[name]["acceptance_mean"] = float(tr.acceptance.mean())
        if arrays:
            plot = plot_chain_traces(arrays, self.run_dir / "plots" / "chain_diagnostics.png",
                                     marks)
            out["plot"] = str(plot)
        out["recipe"] = {"n_chains": n, "length": "2 × the training chain length",
                         "kernels": {"prior": c.prior_chain.kernel,
                                     "posterior": c.posterior_chain.kernel},
                         "posterior_data": f"first {n} of the {self.test_split} split",
                         "seed": self.s.seed}
        return out


ANOMALY_SCORES = ("joint", "marginal")


def anomaly_scores(model: LatentModel, x: torch.Tensor, generator: torch.Generator,
                   kind: str = "joint", n_chains: int = 1, batch_size: int = 500,
                   progress: bool = False) -> tuple[torch.Tensor, str]:
    """Anomaly scores of ``x`` (higher = more anomalous) and what they are.

    ``joint``: the papers' ``−log p̃(x, z)`` at posterior draws of the model's inference (the
    mean over ``n_chains`` draws); ``marginal``: ``−log p(x)`` by importance sampling from
    the posterior-chain proposal (64 draws; the prior's ``log Z`` is a constant and left
    out, which does not change a ranking).
    """
    from tqdm.auto import tqdm

    if kind not in ANOMALY_SCORES:
        raise LebmError(f"unknown anomaly score {kind!r}; choose {', '.join(ANOMALY_SCORES)}")
    out = []
    step = batch_size if kind == "joint" else 50
    for i in tqdm(range(0, len(x), step), desc="scores", disable=not progress, leave=False):
        xb = x[i:i + step].to(model.device)
        if kind == "joint":
            out.append(model.anomaly_score(xb, generator, n_chains=n_chains).cpu())
        else:
            ll, _ = log_likelihood(model, xb, generator, method="is", n_samples=64,
                                   log_z=(0.0, 0.0))
            out.append(-ll.cpu())
    if kind == "joint":
        what = ("−log p̃(x, z) = −log p(x|z) − log p̃(z) (the prior's unnormalised "
                f"log-density) at z from the model's inference ({model.config.inference})"
                + (f", mean over {n_chains} draws" if n_chains > 1 else ""))
    else:
        what = "−log p(x) + log Z by importance sampling (64 draws, posterior-chain proposal)"
    return torch.cat(out), what


def anomaly_figures(scores: torch.Tensor, positive: torch.Tensor) -> dict[str, float]:
    """The anomaly-detection figures of the papers' protocol: trapezoid AUPRC, average
    precision, AUROC and the anomaly share (about the AUPRC of chance)."""
    from lebm.metrics.scores import auprc, auroc, average_precision

    return {"auprc": auprc(scores, positive),
            "average_precision": average_precision(scores, positive),
            "auroc": auroc(scores, positive),
            "anomaly_fraction": float(positive.float().mean())}


def evaluate(run_dir: str | Path, metrics: list[str] | None = None,
             settings: EvalSettings | None = None, device: str = "auto",
             checkpoint: str | None = None) -> dict[str, Any]:
    """Evaluate ``run_dir`` (its latest checkpoint, or the named ``checkpoint`` folder),
    merge the results into that checkpoint's entry of ``run_dir/eval.json`` and return the
    entry. ``eval.json`` is ``{"run": ..., "checkpoints": {name: entry}}``: evaluating one
    checkpoint never replaces another's numbers."""
    ev = Evaluator(run_dir, settings, device, checkpoint)
    names = ev.applicable() if not metrics else metrics
    results = ev.run(names)
    if ev.s.split and ev.s.split != (ev.cfg.data.test_split or "train"):
        results = {f"{k}@{ev.s.split}": v for k, v in results.items()}  # kept apart
    if ev.s.posterior_steps is not None:  # likewise: another inference
        results = {f"{k}@posterior{ev.s.posterior_steps}": v for k, v in results.items()}
    path = Path(run_dir) / "eval.json"
    by_checkpoint = read_eval_file(path)
    name = str(ev.checkpoint)
    step = step_of(name)
    record = {"lebm_version": __version__, "torch": torch.__version__,
              "device": str(ev.device), "preset": ev.cfg.preset, "method": ev.cfg.method_name,
              "checkpoint": name,
              "trained_steps": ev.cfg.train.max_steps if step is None else step,
              "metrics": {**by_checkpoint.get(name, {}).get("metrics", {}), **results}}
    by_checkpoint[name] = record
    atomic_write_json(path, {"run": str(run_dir), "checkpoints": dict(sorted(
        by_checkpoint.items()))})
    return record


def read_eval_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """The entries of an ``eval.json`` by checkpoint name (``{}`` if there is none; a file
    of lebm 0.1, one checkpoint's record, becomes that checkpoint's entry)."""
    import json

    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}
    if isinstance(data.get("checkpoints"), dict):
        return dict(data["checkpoints"])
    if "metrics" in data and "checkpoint" in data:  # the 0.1 layout
        return {str(data["checkpoint"]): data}
    return {}


def format_table(results: dict[str, Any]) -> str:
    """A two-column text table of the headline numbers of ``results['metrics']``."""
    rows: list[tuple[str, str]] = []
    for key, r in results["metrics"].items():
        name, _, where = key.partition("@")  # "accuracy@valid": a metric on another split
        first = len(rows)
        if name == "mse":
            rows.append(("test MSE / pixel [-1, 1]", f"{r['mse']:.5f} ± {r['se']:.5f}"))
            rows.append(("test MSE / pixel [0, 1]", f"{r['mse_01']:.5f}"))
        elif name in ("fid", "fd_mnist"):
            label = "FID (Inception)" if name == "fid" else "FD (MNIST features)"
            rows.append((f"{label}, {r['recipe'].get('n_samples', '?')} samples",
                         f"{r['value']:.2f}"))
        elif name == "ll" and "nll" in r:  # sentences
            rows.append(("NLL per sentence [nats]", f"{r['nll']:.2f} ± {r['se_total']:.2f}"))
            rows.append(("perplexity (from the NLL)", f"{r['ppl']:.2f}"))
        elif name == "ll":
            rows.append(("log p(x) [nats]", f"{r['nats']:.2f} ± {r['se_examples']:.2f}"))
        elif name == "ppl":
            rows.append((f"forward / reverse PPL, {r['n_samples']} samples",
                         f"{r['fppl']:.2f} / {r['rppl']:.2f}"))
            rows.append(("forward PPL of the real test split", f"{r['real_fppl']:.2f}"))
        elif name == "auprc":
            rows.append(("AUPRC (held-out classes, trapezoid)", f"{r['auprc']:.4f}"))
            if "average_precision" in r:
                rows.append(("average precision", f"{r['average_precision']:.4f}"))
            rows.append(("AUROC", f"{r['auroc']:.4f}"))
            rows.append(("anomaly share", f"{r['anomaly_fraction']:.3f}"))
        elif name == "accuracy":
            rows.append(("test accuracy", f"{r['accuracy']:.4f}"))
            rows.append(("cluster purity", f"{r['purity']:.4f}"))
            if "distinct_majority_symbols" in r:
                n_cls = r["recipe"].get("classes", "?")
                rows.append(("classes with their own symbol",
                             f"{r['distinct_majority_symbols']} of {n_cls}"))
        elif name == "chains":
            for chain in ("prior", "posterior"):
                if chain in r:
                    rows.append((f"{chain} chain log p̃ at K / 2K",
                                 f"{r[chain]['log_density_at_training_length']:.2f} / "
                                 f"{r[chain]['log_density_last']:.2f}"))
        if where:
            rows[first:] = [(f"{label} [{where}]", value) for label, value in rows[first:]]
    width = max((len(a) for a, _ in rows), default=10)
    return "\n".join(f"{a:<{width}}  {b}" for a, b in rows)
