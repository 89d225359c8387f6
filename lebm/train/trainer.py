"""The Trainer: batches → ``method.step`` → optimiser updates, plus the run folder.

It knows nothing about Langevin or any estimator: a method hands it named optimiser
specs and, per batch, a loss per optimiser. The Trainer owns

* the data order (a seeded permutation per epoch, so the position in the data is a
  function of the step alone),
* the optimisers (Adam) and per-epoch exponential LR decay,
* the random stream of the chains (one ``torch.Generator``, checkpointed),
* the run folder (``config.json``, ``metrics.jsonl``, sample grids, plots, checkpoints),
* NaN/inf detection and recovery: roll back to the last checkpoint, shrink the learning
  rates and let the method become more conservative (smaller MCMC steps).

Resume is exact: every piece of state that influences the next step is in the
checkpoint, so N steps + resume to 2N equals 2N steps straight, bit for bit on CPU.
"""

from __future__ import annotations

import contextlib
import json
import platform
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from lebm._version import __version__
from lebm.config import RunConfig, set_resume_settings
from lebm.errors import CheckpointError, ConfigError, DivergenceError, LebmError
from lebm.io import atomic_write_json, atomic_write_text, read_json_config
from lebm.methods import Batch, Method
from lebm.models import LatentModel, ModelConfig, read_model_meta, read_weights
from lebm.run import RUN_FORMAT, load_data, load_heldout, read_run_config, resolve_device
from lebm.train.checkpoint import (
    latest_checkpoint,
    load_training_state,
    resolve_checkpoint,
    save_checkpoint,
)
from lebm.train.distributed import init_distributed
from lebm.train.learner import Learner
from lebm.train.lock import RunLock, RunLockedError
from lebm.train.threads import choose_threads, using_threads
from lebm.viz import plot_curves, read_metrics


class Interrupted(KeyboardInterrupt):
    """Training stopped by a signal (SIGINT: Ctrl-C; SIGTERM: schedulers, ``timeout``,
    container stops) after saving a checkpoint; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _deferred_signals() -> Iterator[Callable[[], int]]:
    """Turn the first SIGINT or SIGTERM into a flag the loop checks between steps (main
    thread only); a second one aborts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: 0
        return
    hits: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        hits.append(signum)
        if len(hits) > 1:
            raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: hits[0] if hits else 0
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _is_run_folder(run_dir: Path) -> bool:
    """Whether ``run_dir`` is recognisably a lebm run (so ``--overwrite`` may clear it): its
    config.json says so, or (a run killed before writing it) checkpoints/ holds only
    lebm's checkpoint names."""
    if (run_dir / "config.json").exists():
        try:
            read_json_config(run_dir / "config.json", RUN_FORMAT, "run")
            return True
        except LebmError:
            return False
    root = run_dir / "checkpoints"
    names = [p.name for p in root.iterdir()] if root.is_dir() else []
    return all(n == "latest" or n.startswith(("step_", ".tmp_step_")) for n in names)


class Trainer:
    """Train ``cfg`` into ``run_dir``; ``Trainer.resume(run_dir)`` continues a run."""

    step: int
    learner: Learner

    def __init__(self, cfg: RunConfig, run_dir: str | Path, *, overwrite: bool = False,
                 branch_from: str | Path | None = None, _resume: bool = False) -> None:
        """``branch_from`` (a run folder: its latest checkpoint; or a checkpoint folder)
        starts the new run from that checkpoint's state under ``cfg``: see ``_branch``."""
        self.cfg, self.run_dir = cfg, Path(run_dir)
        t = cfg.train
        self.dist, self.device = init_distributed(resolve_device(t.device))
        self.lock = RunLock(self.run_dir)
        self.data = load_data(cfg, "train")
        global_batch = t.batch_size * self.dist.world
        if len(self.data) < global_batch:
            raise ConfigError(f"train.batch_size={t.batch_size} × {self.dist.world} process(es) "
                              f"exceeds the data set size ({len(self.data)} examples)")
        if t.drop_last:
            self.steps_per_epoch = len(self.data) // global_batch
        elif self.dist.world > 1:
            raise ConfigError("train.drop_last=false needs a single process: the last partial "
                              "batch cannot be split evenly across processes")
        else:  # every example: the last batch of an epoch is the remainder
            self.steps_per_epoch = -(-len(self.data) // global_batch)
        self.labelled_pool = self.data.labelled_indices()  # for methods that ask for labels
        self.heldout = load_heldout(cfg, t.n_grid)
        cfg.model.data_shape = tuple(self.data.sample_shape)
        if self.data.vocab is not None:  # sentences: the likelihood's ids are the vocabulary
            if not hasattr(cfg.model, "n_categories"):
                raise ConfigError(f"data.name={cfg.data.name} holds sentences; the "
                                  f"{cfg.method_name} method's model does not read them (use "
                                  f"lebm, abp, vae or svebm)")
            cfg.model.n_categories = len(self.data.vocab)

        self.n_divergences = 0
        self.scales = {"lr": 1.0, "step": 1.0}  # cumulative divergence factors (checkpointed)
        self.recon_level: float | None = None  # running mean of recon_error (checkpointed)
        self.branched_from: dict[str, Any] | None = None  # recorded in config.json
        try:
            if _resume:
                self._lock()
                ckpt = latest_checkpoint(self.run_dir)
                model_cfg = read_model_meta(ckpt)["config"]
                torch.manual_seed(t.seed)
                self._build(type(cfg.model).from_dict(model_cfg))
                self._load_state(ckpt)
                if t.max_steps < self.step:
                    raise LebmError(f"{self.run_dir} is already at step {self.step}, past "
                                    f"--max-steps {t.max_steps}; nothing was changed")
                if self.dist.is_main:
                    self._truncate_metrics(self.step)
                self.branched_from = read_json_config(
                    self.run_dir / "config.json", RUN_FORMAT, "run").get("branched_from")
            else:
                torch.manual_seed(t.seed)  # network initialisation
                self._build(cfg.model)
                parent = None if branch_from is None else self._branch(Path(branch_from))
                if parent is not None and t.max_steps <= self.step:
                    raise ConfigError(f"{parent} is at step {self.step}: train.max_steps "
                                      f"({t.max_steps}) must be larger to train the branch")
                self.dist.broadcast_module(self.model)
                self._lock()  # only once everything above has succeeded
                self._prepare_run_dir(overwrite)
                if parent is None:
                    self.step = 0
                    self.chain_gen.manual_seed(t.seed + 1 + 1_000_003 * self.dist.rank)
                else:
                    self.branched_from = {"checkpoint": str(parent.resolve()),
                                          "step": self.step}
                    parent_log = parent.parent.parent / "metrics.jsonl"
                    if self.dist.is_main and parent_log.is_file():  # curves show it all
                        self._truncate_metrics(self.step, source=parent_log)
                self._write_run_config()
                self._checkpoint()
        except BaseException:
            self.lock.release()
            raise

    @classmethod
    def resume(cls, run_dir: str | Path, max_steps: int | None = None,
               overrides: list[str] | None = None) -> Trainer:
        """Continue the run in ``run_dir`` from its newest checkpoint that verifies (to
        ``max_steps`` in all, if given: a number below the run's step changes nothing).
        ``overrides`` (``key=value``) may change the settings that do not change what the run
        learns (``lebm.config.RESUME_SETTINGS``: threads, checkpoint and sample cadence, ...);
        any other key is refused with a ``ConfigError``. What is changed is written to the
        run's config, so a later resume keeps it."""
        cfg = read_run_config(run_dir)
        planned = cfg.train.max_steps
        before = cfg.to_dict()["train"]
        if max_steps is not None:
            cfg.train.max_steps = max_steps
        set_resume_settings(cfg, overrides or [])
        trainer = cls(cfg, run_dir, _resume=True)
        new_length = max_steps is not None and max_steps not in (planned, trainer.step)
        if new_length or dict(cfg.to_dict()["train"], max_steps=planned) != before:
            steps = cfg.train.max_steps
            cfg.train.max_steps = steps if new_length else planned
            trainer._write_run_config()
            cfg.train.max_steps = steps
        return trainer

    def _branch(self, source: Path) -> Path:
        """Load a checkpoint's state into this (not yet started) run: the networks' weights,
        the optimisers' moments, the step, the random streams, the method's state and the
        divergence scales. Every setting comes from the new config: learning rates (with
        their per-epoch decay applied for the epochs already trained), Adam's betas and
        weight decay, chains, losses. Branching with an unchanged config continues the
        parent run exactly. Returns the checkpoint folder used."""
        ckpt = resolve_checkpoint(source)
        if self.run_dir.resolve() in ckpt.resolve().parents:
            raise ConfigError(f"--from {source} lies inside the new run folder "
                              f"{self.run_dir}: branch into another folder")
        meta = read_model_meta(ckpt)
        have = type(self.model).__name__
        if meta.get("class") != have:
            raise ConfigError(f"{ckpt} holds a {meta.get('class')} model; the "
                              f"{self.cfg.method_name} method trains a {have}")
        run_meta = ckpt.parent.parent / "config.json"  # the parent run's, when there
        if run_meta.is_file():
            method = read_json_config(run_meta, RUN_FORMAT, "run")["config"].get("method_name")
            if method is not None and method != self.cfg.method_name:
                raise ConfigError(f"{ckpt} was trained by the {method} method; this config's "
                                  f"is {self.cfg.method_name} (a branch keeps the method)")
        try:
            self._load_state(ckpt)
        except RuntimeError as exc:  # load_state_dict: the architectures differ
            raise ConfigError(f"{ckpt} does not fit this config's model (the architecture "
                              f"must be the same to branch): {exc}") from exc
        for name, opt in self.optimizers.items():
            spec, sch = self.learner.specs[name], self.learner.schedulers[name]
            sch.base_lrs = [spec.lr for _ in opt.param_groups]
            sch.gamma = spec.lr_decay
            for group in opt.param_groups:
                group.update(initial_lr=spec.lr, betas=spec.betas,
                             weight_decay=spec.weight_decay,
                             lr=spec.lr * spec.lr_decay ** sch.last_epoch * self.scales["lr"])
        return ckpt

    def _lock(self) -> None:
        """Take the run folder's lock on rank 0; every rank fails if it cannot."""
        error: LebmError | None = None
        if self.dist.is_main:
            try:
                self.lock.acquire()
            except RunLockedError as exc:
                error = exc
        if self.dist.any(error is not None, self.device):
            raise error or RunLockedError(f"{self.run_dir} is in use by another process")

    # ------------------------------------------------------------------ setup
    def _build(self, model_cfg: ModelConfig) -> None:
        self.learner = Learner(self.cfg, self.device, model_config=model_cfg, dist=self.dist)
        self.learner.method.check_data(self.data.targets)  # before the folder is touched
        self.learner.method.set_data_size(len(self.data))
        self.cfg.model = model_cfg
        self.model.vocab = self.data.vocab  # saved with every checkpoint (vocab.json)
        self.threads = choose_threads(self.cfg.train.threads, self.model,
                                      self.cfg.train.batch_size)
        self.chain_gen = torch.Generator(device=self.device)

    @property
    def model(self) -> LatentModel:
        return self.learner.model

    @property
    def method(self) -> Method:
        return self.learner.method

    @property
    def optimizers(self) -> dict[str, torch.optim.Adam]:
        return self.learner.optimizers

    def _prepare_run_dir(self, overwrite: bool) -> None:
        rd = self.run_dir
        exists = (rd / "checkpoints").exists() or (rd / "config.json").exists()
        if exists and not overwrite:  # checked on every rank, so all of them stop
            raise LebmError(f"{rd} already holds a run; continue it with `lebm resume {rd}` "
                            "or start afresh with --overwrite")
        if exists and not _is_run_folder(rd):
            raise LebmError(f"{rd} is not a lebm run folder (its config.json or checkpoints/ "
                            "is not lebm's); refusing to clear it: choose another --run-dir")
        self.dist.barrier()
        if self.dist.is_main:
            self._clear_and_make_run_dir(exists)
        self.dist.barrier()

    def _clear_and_make_run_dir(self, exists: bool) -> None:
        rd = self.run_dir
        if exists:
            for name in ("checkpoints", "samples", "plots"):
                shutil.rmtree(rd / name, ignore_errors=True)
            for name in ("metrics.jsonl", "config.json", "eval.json"):
                (rd / name).unlink(missing_ok=True)
        for sub in ("samples", "plots", "checkpoints"):
            (rd / sub).mkdir(parents=True, exist_ok=True)

    def _write_run_config(self) -> None:
        if not self.dist.is_main:
            return
        if self.data.vocab is not None:
            self.data.vocab.save(self.run_dir / "vocab.json")
        atomic_write_json(self.run_dir / "config.json", {
            "format": RUN_FORMAT,
            "lebm_version": __version__,
            "torch_version": torch.__version__,
            "python": platform.python_version(),
            "device": str(self.device),
            "world_size": self.dist.world,
            "threads": self.threads,
            "steps_per_epoch": self.steps_per_epoch,
            "n_train": len(self.data),
            "config": self.cfg.to_dict(),
            **({"branched_from": self.branched_from} if self.branched_from else {}),
        })

    # ------------------------------------------------------------------ state
    def _training_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "step": self.step,
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.learner.schedulers.items()},
            "rng": {"torch": torch.get_rng_state(), "chain": self.chain_gen.get_state()},
            "method": self.method.state(),
            "world_size": self.dist.world,
            "divergence_scales": dict(self.scales),
            "recon_level": self.recon_level,
        }
        if self.dist.active:  # every rank's chain stream, so that resume is exact
            state["rng"]["chain_ranks"] = torch.stack(
                self.dist.gather(self.chain_gen.get_state().to(self.device))).cpu()
        if torch.cuda.is_available():
            state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def _checkpoint(self) -> Path | None:
        """Write a checkpoint (rank 0); with several processes, check replicas agree first."""
        state = self._training_state()  # collective when distributed
        if self.dist.active:
            self._check_replicas_in_sync()
        path = None
        if self.dist.is_main:
            path = save_checkpoint(self.run_dir, self.step, self.model, state,
                                   keep=self.cfg.train.keep_checkpoints)
        self.dist.barrier()
        return path

    def _check_replicas_in_sync(self) -> None:
        flat = torch.cat([p.detach().reshape(-1) for p in self.model.parameters()])
        digest = torch.stack([flat.sum(), flat.abs().sum(), (flat * flat).sum()]).double()
        copies = self.dist.gather(digest)
        if any(not torch.equal(c, copies[0]) for c in copies[1:]):
            raise LebmError(f"step {self.step}: model replicas differ across processes")

    def _load_state(self, ckpt: Path) -> None:
        self.model.load_state_dict(read_weights(ckpt, self.device))
        state = load_training_state(ckpt, self.device)
        for k, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
        for k, sch in self.learner.schedulers.items():
            sch.load_state_dict(state["schedulers"][k])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        saved_world = int(state.get("world_size", 1))
        if saved_world != self.dist.world:
            raise CheckpointError(f"{ckpt} was written by {saved_world} process(es); resume it "
                                  f"with the same number (not {self.dist.world})")
        chain = state["rng"]["chain"]
        if self.dist.active:
            chain = state["rng"]["chain_ranks"][self.dist.rank]
        # clone: Generator.set_state reads a view's storage from its start (segfaults in
        # torch 2.13 for a row of a stacked tensor)
        self.chain_gen.set_state(chain.cpu().clone())
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
        self.method.load_state(state.get("method", {}))
        self.scales = dict(state.get("divergence_scales", {"lr": 1.0, "step": 1.0}))
        level = state.get("recon_level")
        self.recon_level = None if level is None else float(level)
        self.step = int(state["step"])

    def _truncate_metrics(self, step: int, source: Path | None = None) -> None:
        """Keep the log lines up to ``step``: drop those written after the checkpoint we
        resume from (a crashed tail), or, with ``source`` (a parent run's log), copy its
        lines up to the branch step."""
        path = self.run_dir / "metrics.jsonl"
        rows = [r for r in read_metrics(source or path) if r.get("step", 0) <= step]
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))

    # ------------------------------------------------------------------ loop
    def _batch(self, step: int) -> Batch:
        """This rank's slice of the global batch of ``step`` (a seeded permutation per
        epoch), plus a labelled batch if the method asks for one."""
        epoch, i = divmod(step, self.steps_per_epoch)
        if getattr(self, "_perm_epoch", None) != epoch:
            g = torch.Generator().manual_seed(self.cfg.train.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(len(self.data), generator=g)
            self._perm_epoch = epoch
        b = self.cfg.train.batch_size
        j = i * self.dist.world + self.dist.rank  # this rank's slice of the global batch
        idx = self._perm[j * b:(j + 1) * b]
        x = self.data.batch(idx).to(self.device)
        return Batch(x, self._labelled_batch(step, self.method.labelled_batch_size),
                     index=idx)

    def _labelled_batch(self, step: int, n: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``n`` examples from the labelled pool; a function of the step and seed alone (so
        resume is exact); ``None`` if none are asked for or nothing is labelled."""
        pool = self.labelled_pool
        if len(pool) == 0 or n == 0:
            return None
        g = torch.Generator().manual_seed(self.cfg.train.seed * 1_000_003 + 7919 * step
                                          + self.dist.rank + 1)
        idx = pool[torch.randint(0, len(pool), (n,), generator=g)]
        targets = self.data.targets
        assert targets is not None  # a non-empty labelled pool implies labels
        return self.data.batch(idx).to(self.device), targets[idx].to(self.device)

    def _guard(self, scalars: dict[str, float]) -> str | None:
        """Finite divergence: the absolute reconstruction-error guard of REFERENCE §1.2
        (after ``guard_after_epochs``), the error against its running level, and the
        energy's magnitude at posterior and prior samples."""
        t = self.cfg.train
        epoch = self.step // self.steps_per_epoch
        recon = scalars.get("recon_error")
        if recon is not None and t.recon_guard and epoch > t.guard_after_epochs \
                and recon > t.recon_guard:
            return f"recon_error={recon:.1f} > {t.recon_guard}"
        if (recon is not None and t.recon_guard_factor and self.recon_level is not None
                and self.step >= t.guard_warmup_steps
                and recon > t.recon_guard_factor * self.recon_level):
            return (f"recon_error={recon:.4g} > {t.recon_guard_factor} × its running mean "
                    f"{self.recon_level:.4g}")
        if t.energy_guard:
            for key in ("f_pos", "f_neg"):
                if key in scalars and abs(scalars[key]) > t.energy_guard:
                    return f"{key}={scalars[key]:.4g}, |{key}| > {t.energy_guard:g}"
        return None

    def _track(self, scalars: dict[str, float]) -> None:
        """Update the running mean of recon_error (an exponential average) after a step."""
        recon = scalars.get("recon_error")
        if recon is not None:
            level = self.recon_level
            self.recon_level = recon if level is None else 0.95 * level + 0.05 * recon

    def _one_step(self, diagnostics: bool) -> tuple[dict[str, float], str | None]:
        """Compute losses; if all finite, update. Returns (scalars, name of a bad quantity)."""
        return self.learner.update(self._batch(self.step), self.chain_gen, diagnostics,
                                   guard=self._guard)

    def _recover(self, what: str) -> None:
        t = self.cfg.train
        self.n_divergences += 1
        bad_step = self.step
        if t.on_divergence == "stop":
            raise DivergenceError(f"step {bad_step}: non-finite or guarded quantity {what}; "
                                  "training stopped (train.on_divergence=stop; the last "
                                  "checkpoint is intact, `lebm resume` continues from it)")
        if self.n_divergences > t.max_divergences:
            raise DivergenceError(
                f"step {bad_step}: non-finite or guarded quantity {what}; gave up after "
                f"{t.max_divergences} recoveries (raise train.max_divergences, or lower "
                "the learning rates / chain step sizes)")
        # the factors compound over recoveries (and survive resume): the checkpoint we roll
        # back to holds its own cumulative factors, so apply the ratio to them
        want = {"lr": self.scales["lr"] * t.divergence_lr_factor,
                "step": self.scales["step"] * t.divergence_step_factor}
        ckpt = latest_checkpoint(self.run_dir)
        self._load_state(ckpt)
        self.learner.scale_learning_rates(want["lr"] / self.scales["lr"])
        self.method.on_divergence(want["step"] / self.scales["step"])
        self.scales = want
        if not self.dist.is_main:
            return
        self._truncate_metrics(self.step)  # the rolled-back steps' rows go: monotone log
        msg = (f"step {bad_step}: {what}; rolled back to {ckpt.name}, learning rates "
               f"×{want['lr']:.4g}, chain step sizes ×{want['step']:.4g} in all "
               f"(recovery {self.n_divergences}/{t.max_divergences})")
        self._log_event({"step": self.step, "event": "divergence", "bad_step": bad_step,
                         "quantity": what, "message": msg})
        self._print(f"warning: {msg}")

    def _print(self, msg: str) -> None:
        from tqdm.auto import tqdm

        tqdm.write(msg, file=sys.stderr)

    def _log_event(self, row: dict[str, Any]) -> None:
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")

    def fit(self) -> dict[str, Any]:
        """Train up to ``train.max_steps``; returns the last logged scalars.

        Ctrl-C or SIGTERM stops after the current step with a checkpoint (a second signal
        aborts at once, keeping the previous checkpoint); either way ``Interrupted`` (a
        ``KeyboardInterrupt``) is raised. The run folder's lock is held until it returns.
        """
        self._lock()
        try:
            with _deferred_signals() as interrupted, using_threads(self.threads):
                return self._loop(interrupted)
        finally:
            self.lock.release()

    def _loop(self, interrupted: Callable[[], int]) -> dict[str, Any]:
        from tqdm.auto import tqdm

        t = self.cfg.train
        last: dict[str, Any] = {}
        main = self.dist.is_main
        bar = tqdm(total=t.max_steps, initial=self.step, disable=not (t.progress and main),
                   desc=self.cfg.preset, dynamic_ncols=True, mininterval=0.5)
        tick = time.perf_counter()
        steps_since = 0
        try:
            while self.step < t.max_steps:
                signum = interrupted()
                if self.dist.any(bool(signum), self.device):
                    self._checkpoint()
                    name = signal.Signals(signum).name if signum else "a signal on another rank"
                    if main:
                        self._print(f"interrupted ({name}) at step {self.step}; checkpoint "
                                    f"saved. Continue with `lebm resume {self.run_dir}`")
                    raise Interrupted(signum or signal.SIGINT)
                log_now = (self.step + 1) % t.log_every == 0 or self.step + 1 == t.max_steps
                scalars, bad = self._one_step(diagnostics=log_now)
                if bad is not None:
                    self._recover(bad)
                    bar.n = self.step
                    bar.refresh()
                    continue
                self._track(scalars)
                self.step += 1
                steps_since += 1
                if self.step % self.steps_per_epoch == 0:
                    self.learner.end_epoch()
                bar.update(1)
                bar.set_postfix({k: f"{v:.3g}" for k, v in scalars.items()
                                 if k.startswith("loss_") or k == "mse"}, refresh=False)
                if log_now and main:
                    now = time.perf_counter()
                    last = {"step": self.step, "epoch": self.step / self.steps_per_epoch,
                            **scalars, **self.learner.learning_rates(),
                            "sec_per_step": (now - tick) / max(steps_since, 1)}
                    tick, steps_since = now, 0
                    self._log_event(last)
                if main and (self.step % t.sample_every == 0 or self.step == t.max_steps):
                    self.write_grids()
                if self.step % t.checkpoint_every == 0 or self.step == t.max_steps:
                    self._checkpoint()
                    if main:
                        self.write_plots()
        finally:
            bar.close()
        return last

    # ------------------------------------------------------------------ outputs
    def write_grids(self) -> list[Path]:
        """The model's pictures of this step (``model.previews``): samples from fixed noise
        and reconstructions of a fixed held-out batch; scatter and prior plots for 2-D."""
        was_training = self.model.training
        self.model.eval()
        try:
            n = self.cfg.train.n_grid
            heldout = self.heldout.batch(torch.arange(min(n, len(self.heldout))))
            data = self.data.batch(torch.arange(min(2000, len(self.data))))
            stem = self.run_dir / "samples" / f"step_{self.step:08d}"
            return self.model.previews(stem, n=n, seed=self.cfg.train.seed, heldout=heldout,
                                       data=data, title=f"step {self.step}")
        finally:
            self.model.train(was_training)

    def write_plots(self) -> None:
        rows = [r for r in read_metrics(self.run_dir / "metrics.jsonl") if "event" not in r]
        plots = self.run_dir / "plots"
        seen = sorted({k for r in rows for k in r})
        layered = [k for k in seen if k.startswith(("loss_energy_", "f_pos_", "f_neg_"))]
        plot_curves(rows, {"generator loss": ["loss_generator", "loss_model", "loss_base"],
                           "EBM loss": ["loss_energy"] + [k for k in layered
                                                          if k.startswith("loss_energy_")],
                           "backbone loss": ["loss_backbone"], "KL(q ‖ prior)": ["kl"],
                           "reconstruction MSE / pixel": ["mse"],
                           "KALE estimate (nats)": ["kale"]}, plots / "losses.png",
                    log_y=("generator loss",))
        plot_curves(rows, {"f on posterior vs prior samples": ["f_pos", "f_neg"] + [
                               k for k in layered if not k.startswith("loss_")],
                           "latent norms": ["z_post_norm", "z_prior_norm"]},
                    plots / "energy.png")
        plot_curves(rows, {"chain log-density (first → last step)":
                           ["post_logp_first", "post_logp_last", "prior_logp_first",
                            "prior_logp_last"],
                           "chain ‖∇ log p‖ at last step":
                           ["post_grad_norm_last", "prior_grad_norm_last"],
                           "Metropolis acceptance (mala / hmc chains)":
                           ["post_acceptance", "prior_acceptance"]},
                    plots / "chains.png", log_y=("chain log-density (first → last step)",))
