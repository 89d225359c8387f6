"""Run configuration: typed sections, presets, and ``--set key=value`` overrides.

A run config has four sections, each a settings dataclass whose field ``metadata`` states its
constraints (``lebm.settings``):

* ``data``   – ``DataConfig`` (which data set and how to subset it)
* ``model``  – the model class's config (``ModelConfig``: networks, σ, the chains
               ``prior_chain`` / ``posterior_chain``, ``precision``)
* ``method`` – the method's own config (e.g. ``LEBMConfig``: learning rates, decay)
* ``train``  – ``TrainConfig`` (steps, batch size, seed, logging, checkpoints, recovery)

Keys are written ``section.field`` (``model.prior_chain.n_steps=30``); a bare field path is
accepted when it is unique across sections, and the flat keys of earlier versions
(``model.prior_steps``) are aliases. Every value is parsed to the field's type and checked
before training starts; errors are one line naming the key. Presets come from the method
modules (``Method.presets()``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from lebm import settings
from lebm.errors import ConfigError
from lebm.methods import METHODS
from lebm.methods.base import Preset


@dataclass
class DataConfig:
    """Which data to train on (see ``lebm.data.load_dataset``)."""

    name: str = "digits"
    root: str | None = None
    image_size: int | None = field(default=None, metadata={"min": 1})
    exclude_classes: tuple[int, ...] = field(default=(), metadata={"min": 0})
    holdout_protocol: str | None = field(default=None, metadata={
        "choices": ("zenati", "zenati-disjoint"),
        "help": "anomaly split of all images (lebm.data.holdout): train = 80 % of the normal "
                "images, test = the rest + every exclude_classes image; zenati as published "
                "(its test normals overlap training), zenati-disjoint without the overlap"})
    classes: tuple[int, ...] | None = field(default=None, metadata={"min": 0})
    n_labels: int | None = field(default=None, metadata={
        "min": 1, "help": "a class-balanced labelled subset of this size"})
    mask_unlabelled: bool = field(default=False, metadata={
        "help": "with n_labels: keep every example, the others unlabelled (semi-supervised)"})
    label_column: str | None = field(default=None, metadata={
        "help": "csv data: the label column, by name or index (default: the last)"})
    limit: int | None = field(default=None, metadata={"min": 1})
    binarize: bool = field(default=False, metadata={
        "help": "images: pixels to exactly -1 or 1 (threshold 0.5), for likelihood=bernoulli"})
    download: bool = False
    train_split: str = field(default="train", metadata={
        "help": "the split trained on (e.g. mnist train50k, keeping valid out for tuning)"})
    test_split: str | None = field(default="test", metadata={
        "help": "split for reconstruction grids and evaluation; none = use train"})
    max_length: int | None = field(default=None, metadata={
        "min": 1, "help": "text: leave out training sentences of more words (test: never)"})
    vocab_size: int | None = field(default=None, metadata={
        "min": 4, "help": "text corpora: keep the most frequent words, the rest <unk>"})


@dataclass
class TrainConfig:
    """The training loop: length, batching, logging, checkpoints and NaN recovery."""

    max_steps: int = field(default=10_000, metadata={"min": 0})
    batch_size: int = field(default=100, metadata={"min": 1})
    drop_last: bool = field(default=True, metadata={
        "help": "skip an epoch's last partial batch; false: every example, the last batch "
                "smaller (one process only)"})
    seed: int = field(default=0, metadata={"min": 0, "max": 2**32 - 1})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N"})
    threads: int = field(default=0, metadata={
        "min": 0, "help": "torch CPU threads; 0 = auto: 1 for small models (they gain nothing "
                          "from more and lose most under contention), else torch's default"})
    log_every: int = field(default=10, metadata={"min": 1})
    sample_every: int = field(default=500, metadata={"min": 1})
    checkpoint_every: int = field(default=500, metadata={"min": 1})
    keep_checkpoints: int = field(default=3, metadata={"min": 1})
    n_grid: int = field(default=64, metadata={"min": 1, "help": "images per sample grid"})
    progress: bool = True
    recon_guard: float = field(default=0.0, metadata={
        "min": 0, "help": "treat recon_error above this as divergence; 0 = off (REFERENCE §1.2)"})
    guard_after_epochs: int = field(default=10, metadata={"min": 0})
    recon_guard_factor: float = field(default=10.0, metadata={
        "min": 0, "help": "treat recon_error above this × its running mean as divergence "
                          "(after guard_warmup_steps); 0 = off"})
    energy_guard: float = field(default=1e4, metadata={
        "min": 0, "help": "treat |f| at posterior or prior samples (f_pos, f_neg) above this "
                          "as divergence; 0 = off"})
    guard_warmup_steps: int = field(default=100, metadata={"min": 0})
    divergence_lr_factor: float = field(default=0.5, metadata={"gt": 0, "max": 1})
    divergence_step_factor: float = field(default=0.8, metadata={"gt": 0, "max": 1})
    max_divergences: int = field(default=5, metadata={"min": 0})
    on_divergence: str = field(default="recover", metadata={
        "choices": ("recover", "stop"),
        "help": "recover: roll back and shrink steps; stop: end the run with an error (the "
                "LEBM script's behaviour)"})


SECTIONS = ("data", "model", "method", "train")

# train settings that change how a run is carried out, not what it learns: the ones
# ``lebm resume --set`` may change (max_steps has its own flag)
RESUME_SETTINGS = ("threads", "progress", "log_every", "sample_every", "checkpoint_every",
                   "keep_checkpoints", "n_grid")


@dataclass
class RunConfig:
    """A fully resolved run: preset name, method name and the four sections."""

    preset: str
    method_name: str
    data: DataConfig
    model: Any
    method: Any
    train: TrainConfig

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"preset": self.preset, "method_name": self.method_name}
        for s in SECTIONS:
            d[s] = settings.to_plain(getattr(self, s))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """From a plain dict (``config.json`` of a run, or a preset); old keys accepted."""
        method_cls = _method_class(d["method_name"])
        sections = {}
        for name, section_cls in section_classes(method_cls).items():
            sections[name] = settings.from_plain(section_cls, d.get(name, {}), f"{name}.")
        cfg = cls(preset=d["preset"], method_name=d["method_name"], **sections)
        validate(cfg)
        return cfg

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _method_class(name: str) -> Any:
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name]


def section_classes(method_cls: Any) -> dict[str, type]:
    """The settings class of each section for a method: its model's and its own config."""
    return {"data": DataConfig, "model": method_cls.Model.Config, "method": method_cls.Config,
            "train": TrainConfig}


# ---------------------------------------------------------------------------- presets


def _collect_presets() -> dict[str, Preset]:
    out: dict[str, Preset] = {}
    for method in METHODS.values():
        for name, preset in method.presets().items():
            if name in out:
                raise RuntimeError(f"preset {name!r} is declared by two methods")
            out[name] = preset
    return out


PRESETS: dict[str, Preset] = _collect_presets()


def preset_config(name: str) -> RunConfig:
    """The resolved config of a preset (no overrides applied)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; run `lebm presets` to list them")
    p = PRESETS[name]
    return RunConfig.from_dict({"preset": name, "method_name": p.method,
                                **json.loads(json.dumps(p.overrides))})


def build_config(preset: str, overrides: list[str] | None = None,
                 **direct: Any) -> RunConfig:
    """Preset + ``key=value`` overrides (strings) + direct ``section.key`` values; validated."""
    cfg = preset_config(preset)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        set_value(cfg, key.strip(), value.strip(), from_text=True)
    for key, value in direct.items():
        set_value(cfg, key, value, from_text=False)
    validate(cfg)
    return cfg


# ---------------------------------------------------------------------------- set + check


def _resolve_key(cfg: RunConfig, key: str) -> tuple[str, str]:
    if "." in key:
        section, _, path = key.partition(".")
        if section in SECTIONS:
            return section, path
        if not any(settings.resolve(getattr(cfg, s), key) for s in SECTIONS):
            raise ConfigError(f"unknown config section in {key!r}; sections: "
                              f"{', '.join(SECTIONS)}")
    owners = [s for s in SECTIONS if settings.resolve(getattr(cfg, s), key)]
    if not owners:
        candidates = [f"{s}.{p}" for s in SECTIONS
                      for p, _, f in settings.leaf_paths(getattr(cfg, s))
                      if not f.metadata.get("internal")]
        raise ConfigError(f"unknown config key {key!r}; {settings.suggest(candidates, key)}")
    if len(owners) > 1:
        raise ConfigError(f"ambiguous config key {key!r}: use one of "
                          + ", ".join(f"{s}.{key}" for s in owners))
    return owners[0], key


def set_value(cfg: RunConfig, key: str, value: Any, from_text: bool) -> None:
    """Set ``section.path`` (or a unique bare path, or an old alias) on ``cfg``, parsing text
    if ``from_text``."""
    section, path = _resolve_key(cfg, key)
    settings.assign(getattr(cfg, section), path, value, from_text=from_text,
                    label=f"{section}.")


def set_resume_settings(cfg: RunConfig, overrides: list[str]) -> None:
    """Apply ``key=value`` overrides of ``RESUME_SETTINGS`` to a stored run's config (for
    ``lebm resume --set``); refuse any other key, since it would change what the run learns."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        section, path = _resolve_key(cfg, key.strip())
        if section != "train" or path not in RESUME_SETTINGS:
            raise ConfigError(
                f"{section}.{path} changes what the run learns and cannot be set on resume "
                f"(resume may set train.{', train.'.join(RESUME_SETTINGS)}); to train on with "
                f"other settings, branch: lebm train PRESET --run-dir NEW --from RUN --set ...")
        set_value(cfg, f"train.{path}", value.strip(), from_text=True)
    validate(cfg)


def validate(cfg: RunConfig) -> None:
    """Check every field's constraints and the cross-field rules; raise ``ConfigError``."""
    for section in SECTIONS:
        settings.check(getattr(cfg, section), f"{section}.")
    from lebm.data import DATASETS, splits

    if cfg.data.name not in DATASETS:
        raise ConfigError(f"data.name: unknown data set {cfg.data.name!r}; "
                          f"choose one of {', '.join(DATASETS)}")
    have = splits(cfg.data.name)
    if cfg.data.holdout_protocol is not None:
        if not cfg.data.exclude_classes:
            raise ConfigError("data.holdout_protocol needs data.exclude_classes (the held-out "
                              "classes, the anomalies)")
        if cfg.data.train_split != "train" or cfg.data.test_split not in ("test", None):
            raise ConfigError("data.holdout_protocol defines the train and test splits; leave "
                              "data.train_split and data.test_split at train / test")
    if cfg.data.train_split not in have:
        raise ConfigError(f"data.train_split: {cfg.data.name} has no split "
                          f"{cfg.data.train_split!r}; choose one of {', '.join(have)}")
    if cfg.data.test_split is not None and cfg.data.test_split not in have:
        raise ConfigError(f"data.test_split: {cfg.data.name} has no split "
                          f"{cfg.data.test_split!r}; choose one of {', '.join(have)} or none")
    if cfg.model.generator == "mlp" and cfg.model.gen_output == "tanh" and cfg.data.name in (
            "8gaussians", "pinwheel", "rings"):
        raise ConfigError("model.gen_output: toy 2-D data is not in [-1, 1]; use identity")
    dev = cfg.train.device
    if not (dev in ("auto", "cpu", "cuda") or dev.startswith("cuda:")):
        raise ConfigError(f"train.device: expected auto, cpu, cuda or cuda:N, got {dev!r}")


def describe_keys(cfg: RunConfig) -> list[str]:
    """``section.key = value  [constraints]`` lines, for ``lebm presets --keys``."""
    return [line for section in SECTIONS
            for line in settings.describe(getattr(cfg, section), f"{section}.")]


__all__ = ["PRESETS", "SECTIONS", "DataConfig", "Preset", "RunConfig", "TrainConfig",
           "build_config", "describe_keys", "preset_config", "section_classes",
           "set_value", "validate"]
