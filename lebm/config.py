"""Run configuration: typed sections, presets, and ``--set key=value`` overrides.

A run config has four sections, each a dataclass whose field ``metadata`` states its
constraints (``min``/``gt``/``max``/``lt``/``choices``):

* ``data``   – ``DataConfig`` (which data set and how to subset it)
* ``model``  – ``lebm.models.ModelConfig`` (networks, σ, Langevin settings)
* ``method`` – the method's own config (e.g. ``LEBMConfig``: learning rates, decay)
* ``train``  – ``TrainConfig`` (steps, batch size, seed, logging, checkpoints, recovery)

Keys are written ``section.field`` (``model.prior_steps=30``); a bare field name is
accepted when it is unique across sections. Every value is parsed to the field's type
and checked before training starts; errors are one line naming the key.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Union

from lebm.errors import ConfigError
from lebm.methods import METHODS
from lebm.models import ModelConfig


@dataclass
class DataConfig:
    """Which data to train on (see ``lebm.data.load_dataset``)."""

    name: str = "digits"
    root: str | None = None
    image_size: int | None = field(default=None, metadata={"min": 1})
    exclude_classes: tuple[int, ...] = field(default=(), metadata={"min": 0})
    classes: tuple[int, ...] | None = field(default=None, metadata={"min": 0})
    n_labels: int | None = field(default=None, metadata={
        "min": 1, "help": "a class-balanced labelled subset of this size"})
    mask_unlabelled: bool = field(default=False, metadata={
        "help": "with n_labels: keep every example, the others unlabelled (semi-supervised)"})
    label_column: str | None = field(default=None, metadata={
        "help": "csv data: the label column, by name or index (default: the last)"})
    limit: int | None = field(default=None, metadata={"min": 1})
    download: bool = False
    test_split: str | None = field(default="test", metadata={
        "help": "split for reconstruction grids and evaluation; none = use train"})


@dataclass
class TrainConfig:
    """The training loop: length, batching, logging, checkpoints and NaN recovery."""

    max_steps: int = field(default=10_000, metadata={"min": 0})
    batch_size: int = field(default=100, metadata={"min": 1})
    seed: int = field(default=0, metadata={"min": 0})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N"})
    threads: int = field(default=0, metadata={"min": 0, "help": "torch CPU threads; 0 = default"})
    log_every: int = field(default=10, metadata={"min": 1})
    sample_every: int = field(default=500, metadata={"min": 1})
    checkpoint_every: int = field(default=500, metadata={"min": 1})
    keep_checkpoints: int = field(default=3, metadata={"min": 1})
    n_grid: int = field(default=64, metadata={"min": 1, "help": "images per sample grid"})
    progress: bool = True
    recon_guard: float = field(default=0.0, metadata={
        "min": 0, "help": "treat recon_error above this as divergence; 0 = off (REFERENCE §1.2)"})
    guard_after_epochs: int = field(default=10, metadata={"min": 0})
    divergence_lr_factor: float = field(default=0.5, metadata={"gt": 0, "max": 1})
    divergence_step_factor: float = field(default=0.8, metadata={"gt": 0, "max": 1})
    max_divergences: int = field(default=5, metadata={"min": 0})


SECTIONS = ("data", "model", "method", "train")


@dataclass
class RunConfig:
    """A fully resolved run: preset name, method name and the four sections."""

    preset: str
    method_name: str
    data: DataConfig
    model: ModelConfig
    method: Any
    train: TrainConfig

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"preset": self.preset, "method_name": self.method_name}
        for s in SECTIONS:
            d[s] = dataclasses.asdict(getattr(self, s))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        method_cls = _method_class(d["method_name"])
        sections = {}
        for name, section_cls in _section_classes(method_cls).items():
            sections[name] = _from_plain(section_cls, d.get(name, {}), name)
        cfg = cls(preset=d["preset"], method_name=d["method_name"], **sections)
        validate(cfg)
        return cfg

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _method_class(name: str) -> type:
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name]


def _section_classes(method_cls: Any) -> dict[str, type]:
    return {"data": DataConfig, "model": ModelConfig, "method": method_cls.Config,
            "train": TrainConfig}


def _from_plain(section_cls: type, values: dict[str, Any], section: str) -> Any:
    obj = section_cls()
    for key, value in values.items():
        _assign(obj, section, key, value, from_text=False)
    return obj


# ---------------------------------------------------------------------------- presets


@dataclass
class Preset:
    """A named starting point: method plus overrides of the defaults, section by section."""

    description: str
    method: str = "lebm"
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


# The measured fast path for conv generators (docs/performance.md): bf16 generator in the
# chains and in the update where the hardware multiplies bf16 natively, channels-last
# weights. Same model quality as float32 on the MNIST preset (benchmarks/quality_fastpath.py).
_FAST_PATH = dict(chain_dtype="auto", channels_last=True, update_dtype="auto")
_SVHN_MODEL = dict(n_z=100, generator="conv", ngf=64, energy_widths=(200, 200),
                   energy_activation="gelu", sigma=0.3, prior_steps=60, prior_step_size=0.4,
                   posterior_steps=20, posterior_step_size=0.1, **_FAST_PATH)
# 73,257 images / batch 100 = 732 steps per epoch; 201 epochs as in the paper.
_SVHN_TRAIN = dict(batch_size=100, max_steps=201 * 732, recon_guard=300.0,
                   sample_every=2000, checkpoint_every=2000)
# MNIST settings are not published (REFERENCE §1.4). Measured here: with z 64 the prior
# samples were still strokes after 1,500 steps (f on posterior ≈ f on prior samples, even
# with a 4× EBM learning rate); with z 16 recognisable digits appear within 600 steps.
_MNIST_MODEL = dict(n_z=16, generator="conv", ngf=32, energy_widths=(200, 200),
                    sigma=0.3, prior_steps=60, prior_step_size=0.4,
                    posterior_steps=20, posterior_step_size=0.1, **_FAST_PATH)

_BASE_PRESETS: dict[str, Preset] = {
    "digits": Preset(
        "sklearn 8×8 digits, MLP generator; the demo (a few minutes on 2 CPU cores)",
        overrides={
            "data": dict(name="digits"),
            "model": dict(n_z=16, generator="mlp", gen_widths=(256, 256), energy_widths=(100, 100),
                          sigma=0.3, prior_steps=40, prior_step_size=0.4, posterior_steps=20,
                          posterior_step_size=0.1),
            "method": dict(lr_g=1e-3, lr_e=1e-4, lr_decay=0.995),
            "train": dict(max_steps=3000, batch_size=100, sample_every=500,
                          checkpoint_every=500),
        }),
    "mnist": Preset(
        "MNIST 28×28 (full 60k), conv generator",
        overrides={"data": dict(name="mnist"), "model": _MNIST_MODEL,
                   "method": dict(lr_g=2e-4, lr_e=5e-5),
                   "train": dict(max_steps=30_000, sample_every=1000, checkpoint_every=1000)}),
    "fashion-mnist": Preset(
        "Fashion-MNIST 28×28, conv generator",
        overrides={"data": dict(name="fashion-mnist"), "model": _MNIST_MODEL,
                   "method": dict(lr_g=2e-4, lr_e=5e-5),
                   "train": dict(max_steps=30_000, sample_every=1000, checkpoint_every=1000)}),
    "svhn": Preset(
        "SVHN 32×32: the LEBM paper's configuration exactly (REFERENCE §1.3)",
        overrides={"data": dict(name="svhn"), "model": _SVHN_MODEL, "method": {},
                   "train": _SVHN_TRAIN}),
    "cifar10": Preset(
        "CIFAR-10 32×32: the SVHN configuration (paper's settings not published)",
        overrides={"data": dict(name="cifar10"), "model": _SVHN_MODEL, "method": {},
                   "train": dict(_SVHN_TRAIN, max_steps=201 * 500)}),
    "celeba64": Preset(
        "CelebA 64×64 from an image folder (data.root), 4-block conv generator",
        overrides={"data": dict(name="celeba", image_size=64), "model": _SVHN_MODEL,
                   "method": {}, "train": dict(_SVHN_TRAIN, max_steps=201 * 400,
                                               recon_guard=0.0)}),
    "toy2d": Preset(
        "2-D mixture of 8 Gaussians, MLP generator, 2-D latent",
        overrides={
            "data": dict(name="8gaussians"),
            "model": dict(n_z=2, generator="mlp", gen_widths=(128, 128), gen_output="identity",
                          energy_widths=(128, 128), sigma=0.1, prior_steps=60,
                          prior_step_size=0.4, posterior_steps=20, posterior_step_size=0.1),
            # measured: lr_e 2e-4 / 1e-3 without decay let f sharpen until the prior chain
            # no longer reached the posterior ring (loss_energy −18); 5e-5 with decay is stable
            "method": dict(lr_g=1e-3, lr_e=5e-5, lr_decay=0.995),
            "train": dict(max_steps=3000, batch_size=200, sample_every=500,
                          checkpoint_every=500),
        }),
}


def _abp_twin(name: str, p: Preset) -> Preset:
    over = {k: dict(v) for k, v in p.overrides.items()}
    over.setdefault("model", {})["prior"] = "gaussian"
    return Preset(f"ABP baseline of '{name}': its generator, Gaussian prior, posterior "
                  "Langevin", "abp", over)


def _vae_twin(name: str, p: Preset) -> Preset:
    over = {k: dict(v) for k, v in p.overrides.items()}
    model = over.setdefault("model", {})
    model.update(prior="gaussian", inference="encoder",
                 encoder="conv" if model.get("generator", "conv") == "conv" else "mlp")
    lebm_method = over.get("method", {})
    over["method"] = {k: v for k, v in lebm_method.items() if k == "lr_decay"}
    return Preset(f"VAE baseline of '{name}': its generator, Gaussian prior, amortised "
                  "encoder", "vae", over)


# Symbol-vector coupling (REFERENCE §2.3): the 2-D toys are the ibebm toy row (learned
# clusters, no labels); MNIST and tables are semi-supervised (a balanced labelled subset,
# every other example unlabelled).
_SV_TOY_MODEL = dict(n_z=2, generator="mlp", gen_widths=(200, 200), gen_output="identity",
                     prior="symbol", energy_widths=(200,), energy_activation="gelu",
                     encoder="mlp", inference="encoder", sigma=0.1, prior_steps=100,
                     prior_step_size=0.4)
_SV_TOY_METHOD = dict(lr=1e-3, lr_e=1e-4, mi_weight=15.0, cls_weight=0.0,
                      labelled_batch_size=0)
_SV_TABLE_MODEL = dict(n_z=8, generator="mlp", gen_widths=(64, 64), gen_output="identity",
                       prior="symbol", energy_widths=(64,), encoder="mlp", inference="encoder",
                       sigma=0.3, prior_steps=60, prior_step_size=0.4)
_SV_TABLE_METHOD = dict(lr=1e-3, lr_e=1e-4, mi_weight=5.0, cls_weight=10.0,
                        labelled_batch_size=64)


def _sv_mnist(n_labels: int) -> Preset:
    return Preset(
        f"SV-EBM on MNIST with {n_labels} labels (balanced), the rest unlabelled", "svebm",
        {"data": dict(name="mnist", n_labels=n_labels, mask_unlabelled=True),
         "model": dict(_MNIST_MODEL, prior="symbol", n_classes=10, encoder="conv",
                       inference="encoder"),
         # lr_e=2e-4 alone learns faster but its energy scale drifts and accuracy falls
         # after ~7k steps; the logit penalty bounds it (README, svebm-mnist-100-d0-variants).
         # MI weight 30 against 10: 94.7 / 93.8 / 95.5 % against 94.6 / 93.4 / 94.4 % on label
         # draws 0-2 at 12k steps (ssl_mnist100_mi10_12k.json, svebm-mnist-100-curves.json)
         "method": dict(lr=2e-4, lr_e=2e-4, logit_l2=0.01, mi_weight=30.0, cls_weight=10.0,
                        labelled_batch_size=100, lr_decay=0.998),
         "train": dict(max_steps=30_000, sample_every=1000, checkpoint_every=1000)})


def _sv_table(name: str, k: int, per_class: int, note: str = "", **method: Any) -> Preset:
    return Preset(
        f"SV-EBM on {name} (scikit-learn), {per_class} labels per class{note}", "svebm",
        {"data": dict(name=name, n_labels=k * per_class, mask_unlabelled=True),
         "model": dict(_SV_TABLE_MODEL, n_classes=k), "method": {**_SV_TABLE_METHOD, **method},
         "train": dict(max_steps=3000, batch_size=64, sample_every=1000,
                       checkpoint_every=1000)})


_SV_PRESETS: dict[str, Preset] = {
    "svebm-8gaussians": Preset(
        "SV-EBM on 8 Gaussians: K=8 symbols learned without labels", "svebm",
        {"data": dict(name="8gaussians"), "model": dict(_SV_TOY_MODEL, n_classes=8),
         # H(y) weighted 2: with the plain MI one symbol dies early and two components
         # share another (7 of 8 symbols, seeds 0 and 1); see svebm.mutual_information
         "method": dict(_SV_TOY_METHOD, mi_balance=2.0),
         "train": dict(max_steps=10_000, batch_size=500, sample_every=2000,
                       checkpoint_every=2000)}),
    "svebm-pinwheel": Preset(
        "SV-EBM on the 5-arm pinwheel: K=5 symbols learned without labels", "svebm",
        {"data": dict(name="pinwheel"),
         "model": dict(_SV_TOY_MODEL, n_classes=5, gen_widths=(200, 200, 200)),
         "method": _SV_TOY_METHOD,
         "train": dict(max_steps=10_000, batch_size=500, sample_every=2000,
                       checkpoint_every=2000)}),
    "svebm-mnist-100": _sv_mnist(100),
    "svebm-mnist-600": _sv_mnist(600),
    "svebm-wine": _sv_table("wine", 3, 5),
    # MI without its H(y) part (mi_balance=0): H(y) pulls the two symbols towards a 50/50
    # split, the classes are 63/37; the -H(y|z) part stays. ssl_table.py, fresh draws 6-11:
    # 91.9 % against 91.0 % with the MI term off and 92.1 % for label spreading (README)
    "svebm-breast-cancer": _sv_table("breast-cancer", 2, 5, ", MI without its H(y) term",
                                     mi_balance=0.0),
    "svebm-csv": Preset(
        "SV-EBM on a CSV table (data.root=FILE.csv, data.label_column, data.n_labels, "
        "model.n_classes)", "svebm",
        {"data": dict(name="csv", mask_unlabelled=True, n_labels=20),
         "model": dict(_SV_TABLE_MODEL, n_classes=2), "method": _SV_TABLE_METHOD,
         "train": dict(max_steps=3000, batch_size=64, sample_every=1000,
                       checkpoint_every=1000)}),
}

PRESETS: dict[str, Preset] = dict(_BASE_PRESETS)
PRESETS.update({f"abp-{k}": _abp_twin(k, v) for k, v in _BASE_PRESETS.items()})
PRESETS.update({f"vae-{k}": _vae_twin(k, v) for k, v in _BASE_PRESETS.items()})
PRESETS.update(_SV_PRESETS)
PRESETS.update({f"vae-{k}": _vae_twin(k, v) for k, v in _SV_PRESETS.items()})


def preset_config(name: str) -> RunConfig:
    """The resolved config of a preset (no overrides applied)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; run `lebm presets` to list them")
    p = PRESETS[name]
    cfg = RunConfig.from_dict({"preset": name, "method_name": p.method, **p.overrides})
    return cfg


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
        section, _, name = key.partition(".")
        if section not in SECTIONS:
            raise ConfigError(f"unknown config section in {key!r}; sections: {', '.join(SECTIONS)}")
        if name not in {f.name for f in fields(getattr(cfg, section))}:
            raise ConfigError(f"unknown config key {key!r}; {_suggest(cfg, section, name)}")
        return section, name
    owners = [s for s in SECTIONS if key in {f.name for f in fields(getattr(cfg, s))}]
    if not owners:
        raise ConfigError(f"unknown config key {key!r}; {_suggest(cfg, None, key)}")
    if len(owners) > 1:
        raise ConfigError(f"ambiguous config key {key!r}: use one of "
                          + ", ".join(f"{s}.{key}" for s in owners))
    return owners[0], key


def _suggest(cfg: RunConfig, section: str | None, name: str) -> str:
    import difflib

    candidates = [f"{s}.{f.name}" for s in SECTIONS for f in fields(getattr(cfg, s))
                  if not f.metadata.get("internal")]
    target = f"{section}.{name}" if section else name
    close = difflib.get_close_matches(target, candidates, n=3, cutoff=0.5)
    if not close and not section:
        close = [c for c in candidates if c.endswith("." + name)][:3]
    return f"did you mean {', '.join(close)}?" if close else "see `lebm presets --keys`"


def set_value(cfg: RunConfig, key: str, value: Any, from_text: bool) -> None:
    """Set ``section.key`` (or a unique bare key) on ``cfg``, parsing text if ``from_text``."""
    section, name = _resolve_key(cfg, key)
    _assign(getattr(cfg, section), section, name, value, from_text)


def _assign(obj: Any, section: str, name: str, value: Any, from_text: bool) -> None:
    fmap = {f.name: f for f in fields(obj)}
    key = f"{section}.{name}"
    if name not in fmap:
        raise ConfigError(f"unknown config key {key!r}")
    f = fmap[name]
    if from_text and f.metadata.get("internal"):
        raise ConfigError(f"{key} is set from the data and cannot be overridden")
    hint = typing.get_type_hints(type(obj))[name]
    parsed = _parse(value, hint, key) if from_text else _coerce(value, hint, key)
    setattr(obj, name, parsed)


def _split_optional(hint: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def _parse(text: str, hint: Any, key: str) -> Any:
    base, optional = _split_optional(hint)
    if optional and text.lower() in ("none", "null", ""):
        return None
    if typing.get_origin(base) is tuple:
        (elem, _) = typing.get_args(base)
        parts = [p.strip() for p in text.strip("[]() ").split(",") if p.strip()]
        return tuple(_parse(p, elem, key) for p in parts)
    if base is bool:
        low = text.lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true or false, got {text!r}")
    if base is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {text!r}") from None
    if base is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {text!r}") from None
    return text


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check a Python value (from a preset or config.json) against the field type."""
    base, optional = _split_optional(hint)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key}: may not be none")
    if typing.get_origin(base) is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (elem, _) = typing.get_args(base)
        return tuple(_coerce(v, elem, key) for v in value)
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if base is str and not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def _check_value(key: str, v: Any, meta: Any) -> None:
    if isinstance(v, tuple):
        for item in v:
            _check_value(key, item, meta)
        return
    if v is None or isinstance(v, bool):
        return
    if "choices" in meta and v not in meta["choices"]:
        raise ConfigError(f"{key}: must be one of {', '.join(map(str, meta['choices']))}, "
                          f"got {v!r}")
    if isinstance(v, (int, float)):
        if v != v or v in (float("inf"), float("-inf")):
            raise ConfigError(f"{key}: must be a finite number, got {v!r}")
        if "min" in meta and v < meta["min"]:
            raise ConfigError(f"{key}: must be >= {meta['min']}, got {v!r}")
        if "gt" in meta and v <= meta["gt"]:
            raise ConfigError(f"{key}: must be > {meta['gt']}, got {v!r}")
        if "max" in meta and v > meta["max"]:
            raise ConfigError(f"{key}: must be <= {meta['max']}, got {v!r}")
        if "lt" in meta and v >= meta["lt"]:
            raise ConfigError(f"{key}: must be < {meta['lt']}, got {v!r}")


def validate(cfg: RunConfig) -> None:
    """Check every field's constraints and the cross-field rules; raise ``ConfigError``."""
    for section in SECTIONS:
        obj = getattr(cfg, section)
        for f in fields(obj):
            _check_value(f"{section}.{f.name}", getattr(obj, f.name), f.metadata)
    from lebm.data import DATASETS

    if cfg.data.name not in DATASETS:
        raise ConfigError(f"data.name: unknown data set {cfg.data.name!r}; "
                          f"choose one of {', '.join(DATASETS)}")
    if cfg.model.generator == "mlp" and cfg.model.gen_output == "tanh" and cfg.data.name in (
            "8gaussians", "pinwheel", "rings"):
        raise ConfigError("model.gen_output: toy 2-D data is not in [-1, 1]; use identity")
    dev = cfg.train.device
    if not (dev in ("auto", "cpu", "cuda") or dev.startswith("cuda:")):
        raise ConfigError(f"train.device: expected auto, cpu, cuda or cuda:N, got {dev!r}")


def describe_keys(cfg: RunConfig) -> list[str]:
    """``section.key = value  [constraints]`` lines, for ``lebm presets --keys``."""
    lines = []
    for section in SECTIONS:
        obj = getattr(cfg, section)
        for f in fields(obj):
            if f.metadata.get("internal"):
                continue
            meta = {k: v for k, v in f.metadata.items() if k != "help"}
            note = f.metadata.get("help", "")
            cons = " ".join(f"{k}={v}" for k, v in meta.items())
            lines.append(f"{section}.{f.name} = {getattr(obj, f.name)!r}"
                         + (f"  [{cons}]" if cons else "") + (f"  # {note}" if note else ""))
    return lines
