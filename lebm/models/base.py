"""A latent-variable generative model as a composition, and the model registry.

    z ~ p(z) (a ``Prior``),     x ~ p(x | g(z)) (a ``Likelihood``),     z laid out by a
    ``LatentSpec``;  optionally an encoder q(z|x) = N(μ(x), diag σ²(x)).

``LatentModel`` holds the parts and everything that depends only on their protocols: the
two chain targets (REFERENCE §0.2)

    prior_target()      ℓ_prior(z)   = log p̃(z)                  = f(z) − ‖z‖²/(2σ0²)
    posterior_target(x) ℓ_post(z; x) = log p̃(z) + log p(x | g(z))

the chains that sample them (one kernel interface, two targets), the user API (``sample``,
``infer``, ``reconstruct``, ``anomaly_score``, ``classify``), the sample grids of a run
(``previews``) and persistence (``save_pretrained`` / ``from_pretrained``). A model kind
subclasses it only to build its parts from its config, and registers itself in
``MODEL_CLASSES`` so that ``lebm.load`` rebuilds it.

The config of a model kind has at least ``data_shape``, ``inference``, ``prior_chain``,
``posterior_chain`` and ``precision`` (``lebm.models.config``), and a ``from_dict``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lebm import settings
from lebm._version import __version__
from lebm.data.text import Vocabulary, concat_padded
from lebm.errors import CheckpointError, LebmError
from lebm.io import atomic_write, atomic_write_json, atomic_write_text, read_json_config
from lebm.latent import LatentSpec
from lebm.likelihoods import Likelihood
from lebm.models.config import ChainConfig
from lebm.nets import reparameterize
from lebm.priors import LogDensity, Prior
from lebm.sampling import ChainTrace, frozen, run_chain
from lebm.sampling.precision import resolve_dtype

MODEL_FORMAT = "lebm-model"
INFERENCE = ("langevin", "encoder", "encoder+langevin")
ChainOverrides = Any  # n_steps, step_size, kernel, noise, init_std, n_leapfrog, friction


class LatentModel(nn.Module):
    """Generator ``g``, prior, likelihood and optional encoder over one latent layout."""

    Config: ClassVar[Any]  # the settings class; a model kind is built as cls(config)
    config: Any
    latent: LatentSpec
    generator: nn.Module
    prior: Prior
    likelihood: Likelihood
    encoder: nn.Module | None

    def __init__(self, config: Any, latent: LatentSpec) -> None:
        super().__init__()
        if not config.data_shape:
            raise ValueError("the model config's data_shape must be set (the shape of one "
                             "example)")
        self.config, self.latent = config, latent
        self._chain_g: Callable[..., torch.Tensor] | None = None
        self.vocab: Vocabulary | None = None  # token data: ids ↔ words (saved as vocab.json)

    # ------------------------------------------------------------------ what it is
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(self.config.data_shape)

    @property
    def reads_data(self) -> bool:
        """True for an autoregressive generator (sentences): its output for ``x`` reads ``x``
        too (teacher forcing), so it is called as ``g(z, x)`` and decodes token by token."""
        return bool(getattr(self.generator, "reads_data", False))

    @property
    def capabilities(self) -> frozenset[str]:
        """What the model can do: its prior's capabilities, plus ``encoder``."""
        return self.prior.capabilities | ({"encoder"} if self.encoder is not None else set())

    # ------------------------------------------------------------------ densities
    def prior_log_density(self, z: torch.Tensor) -> torch.Tensor:
        """``ℓ_prior(z) = f(z) − ‖z‖²/(2σ0²)``, shape ``(batch,)``, with the networks in eval
        mode as the chains see them (it matters where ``f`` reads a generator with BatchNorm
        or dropout: a GEBM's ``f(z) = −T·E(G(z))``)."""
        with self.eval_mode():
            return self.prior.log_density(z)

    def log_joint(self, z: torch.Tensor, x: torch.Tensor,
                  g: Callable[..., torch.Tensor] | None = None) -> torch.Tensor:
        """``log p̃(x, z) = log p̃(z) + log p(x | g(z))``: one fused evaluation, ``(batch,)``.

        ``g`` replaces the generator (inside ``chain_mode``: the chains' copy of it). An
        autoregressive generator is called as ``g(z, x)``.
        """
        g = g or self._chain_g or self.generator
        out: torch.Tensor = g(z, x) if self.reads_data else g(z)
        return self.prior.log_density(z) + self.likelihood.log_prob(x, out)

    def prior_target(self, class_: int | None = None) -> LogDensity:
        """``ℓ_prior``; with ``class_=y`` (a prior with symbols) ``log p̃(z | y)``."""
        if class_ is not None:
            return self.prior.conditional(class_)
        return self.prior.log_density

    def posterior_target(self, x: torch.Tensor) -> LogDensity:
        """``ℓ_post(·; x) = log p̃(z) + log p(x | g(z))`` (inside ``chain_mode`` at the chains'
        precision)."""
        return lambda z: self.log_joint(z, x)

    # ------------------------------------------------------------------ chains
    @contextlib.contextmanager
    def chain_mode(self) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
        """The networks as chains see them; yields the chain's generator ``g``.

        Inside, every parameter is frozen (no parameter graph), the networks are in eval mode
        (dropout off: the chains sample the model's own densities), autocast is off, and the
        generator runs on a copy of its weights cast once to ``precision.chain_dtype`` (and
        to channels-last when ``precision.channels_last``), made on ``g``'s first call; ``g``
        takes and returns float32, so ``z``, the noise and the update stay float32.
        ``posterior_target`` uses this ``g`` while the context is open. An autoregressive
        generator's ``g`` takes the data too, ``g(z, x)``.
        """
        p = self.config.precision
        dtype = resolve_dtype(p.chain_dtype, self.device)
        call = _compiled_call(self.device.type) if p.compile else _call
        params: dict[str, torch.Tensor] = {}

        def g(z: torch.Tensor, *data: torch.Tensor) -> torch.Tensor:
            if not params:  # cast on first use: prior-only chains never pay for it
                params.update(self._chain_weights(dtype))
            return call(self.generator, params, z.to(dtype), *data).float()

        outer = self._chain_g
        self._chain_g = g
        try:
            with frozen(self), self.eval_mode(), torch.autocast(self.device.type, enabled=False):
                yield g
        finally:
            self._chain_g = outer

    @contextlib.contextmanager
    def eval_mode(self) -> Iterator[None]:
        """Every network in eval mode inside (no dropout), the previous modes restored after:
        inference targets the model itself, in training as in use."""
        modes = [(m, m.training) for m in self.modules()]
        self.eval()
        try:
            yield
        finally:
            for m, mode in modes:
                m.training = mode

    def _chain_weights(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Detached generator parameters and buffers in ``dtype`` (conv weights channels-last
        when configured); no copy for float32 without channels-last."""
        out = {}
        for name, p in self.generator.named_parameters():
            q = p.detach().to(dtype)
            if self.config.precision.channels_last and q.dim() == 4:
                q = q.contiguous(memory_format=torch.channels_last)
            out[name] = q
        out.update({n: b.to(dtype) for n, b in self.generator.named_buffers()})
        return out

    def chain(self, which: str, **overrides: ChainOverrides) -> ChainConfig:
        """The ``prior`` or ``posterior`` chain settings with ``overrides`` (``None`` values
        ignored), checked."""
        base = {"prior": self.config.prior_chain, "posterior": self.config.posterior_chain}
        if which not in base:
            raise ValueError(f"chain must be prior or posterior, got {which!r}")
        changes = {k: v for k, v in overrides.items() if v is not None}
        if not changes:
            return base[which]
        chain: ChainConfig = dataclasses.replace(base[which], **changes)
        settings.check(chain, f"{which}_chain.")
        return chain

    def init_latent(self, n: int, generator: torch.Generator | None = None,
                    std: float | None = None) -> torch.Tensor:
        """Chain initialisation ``z0 ~ N(0, std² I)`` (default: the prior chain's
        ``init_std``), shape ``(n, dim)``."""
        s = self.config.prior_chain.init_std if std is None else std
        return self.latent.init(n, generator, s, self.device)

    def sample_latent(self, n: int, generator: torch.Generator | None = None, *,
                      z0: torch.Tensor | None = None, record: bool = False,
                      class_: int | None = None, step_scale: float = 1.0,
                      target: LogDensity | None = None,
                      **overrides: ChainOverrides) -> tuple[torch.Tensor, ChainTrace | None]:
        """Short-run prior chain from ``z0`` (default fresh noise): ``(z, trace)``.

        A prior that needs no chain returns its exact sample ``sample_base`` instead. With
        ``class_=k`` (a prior with symbols) the chain targets ``p(z | y=k)``; ``target``
        replaces the chain's log-density altogether (e.g. a stage of a staged prior).
        ``overrides`` (``n_steps``, ``step_size``, ``kernel``, …) replace the prior chain's
        settings; ``step_scale`` multiplies its step size (divergence recovery).
        """
        target = self.prior_target(class_) if target is None else target
        if not self.prior.needs_chain:
            return self.prior.sample_base(n, generator), None
        chain = self.chain("prior", **overrides)
        z0 = self.latent.init(n, generator, chain.init_std, self.device) if z0 is None else z0
        with self.chain_mode():
            return run_chain(chain.make_kernel(step_scale), target, z0, chain.n_steps,
                             generator=generator, record=record)

    def infer_latent(self, x: torch.Tensor, generator: torch.Generator | None = None, *,
                     z0: torch.Tensor | None = None, record: bool = False,
                     step_scale: float = 1.0, **overrides: ChainOverrides
                     ) -> tuple[torch.Tensor, ChainTrace | None]:
        """Posterior ``z`` for ``x``: ``(z, trace)``.

        By ``inference``: the posterior chain on ``ℓ_post(·; x)`` from ``N(0, init_std²)``
        (``langevin``), the encoder's mean (``encoder``; no trace), or the chain started
        from a sample of ``q(z|x)`` (``encoder+langevin``). An explicit ``z0`` always starts
        a chain there. ``overrides`` and ``step_scale`` as for ``sample_latent``.
        """
        self.check_data(x)
        inference = self.config.inference
        if z0 is None and inference != "langevin":
            with torch.no_grad(), self.eval_mode():
                mu, logvar = self.encode(x)
            if inference == "encoder":
                return mu, None
            z0 = reparameterize(mu, logvar, generator)
        chain = self.chain("posterior", **overrides)
        if z0 is None:
            z0 = self.latent.init(x.shape[0], generator, chain.init_std, self.device)
        with self.chain_mode():
            return run_chain(chain.make_kernel(step_scale), self.posterior_target(x), z0,
                             chain.n_steps, generator=generator, record=record)

    # ------------------------------------------------------------------ user API
    def infer(self, x: torch.Tensor, generator: torch.Generator | None = None,
              **chain_overrides: ChainOverrides) -> torch.Tensor:
        """Posterior samples ``z`` for ``x`` by the model's inference, ``(batch, dim)``."""
        return self.infer_latent(x, generator, **chain_overrides)[0]

    @torch.no_grad()
    def classify(self, x: torch.Tensor, generator: torch.Generator | None = None,
                 batch_size: int = 500) -> torch.Tensor:
        """Logits of ``p(y | z)`` at the inferred ``z`` (the encoder mean ``μ(x)`` for
        ``inference="encoder"``, REFERENCE §2.1), shape ``(batch, K)``; argmax = prediction."""
        if "symbols" not in self.prior.capabilities:
            raise ValueError("classify needs a symbol-vector prior (prior=symbol)")
        out = []
        for i in range(0, x.shape[0], batch_size):
            out.append(self.prior.logits(self.infer(x[i:i + batch_size], generator)))
        return torch.cat(out)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(μ(x), log σ²(x))`` of the amortised ``q(z|x)`` (with a graph to its weights)."""
        if self.encoder is None:
            raise ValueError("this model has no encoder (ModelConfig.encoder='none')")
        self.check_data(x)
        mu, logvar = self.encoder(x)
        return mu, logvar

    @torch.no_grad()
    def anomaly_score(self, x: torch.Tensor, generator: torch.Generator | None = None,
                      batch_size: int = 500, n_chains: int = 1) -> torch.Tensor:
        """``−log p̃(x, z) = −log p(x | g(z)) − log p̃(z)`` at the inferred ``z``.

        The negative unnormalised log-joint (REFERENCE §1.5: ``−f(z) + ‖z‖²/(2σ0²)`` for the
        prior term of a flat latent EBM; the layered log-density for a hierarchical model);
        higher means more anomalous.
        With ``n_chains > 1`` the mean over that many independent posterior draws. Shape
        ``(batch,)``; evaluated in batches of ``batch_size``.
        """
        if n_chains < 1:
            raise ValueError(f"n_chains must be >= 1, got {n_chains}")
        scores = []
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size]
            per_chain = []
            for _ in range(n_chains):
                z = self.infer(xb, generator)
                per_chain.append(-self.log_joint(z, xb))
            scores.append(torch.stack(per_chain).mean(0))
        return torch.cat(scores)

    def generate(self, z: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """``g(z)`` with a graph to the parameters, for the learning update (float32 out);
        ``x``, the data it will be scored against, is read by an autoregressive generator
        (``g(z, x)``, teacher forcing) and required for one.

        Runs under bf16 autocast when ``precision.update_dtype`` resolves to bfloat16.
        """
        dtype = resolve_dtype(self.config.precision.update_dtype, self.device)
        if self.reads_data and x is None:
            raise ValueError("this model's generator is autoregressive: generate(z, x) needs "
                             "the data x it is scored against")
        with torch.autocast(self.device.type, dtype=torch.bfloat16,
                            enabled=dtype == torch.bfloat16):
            out = self.generator(z, x) if self.reads_data else self.generator(z)
        return out.float()

    @torch.no_grad()
    def decode(self, z: torch.Tensor, generator: torch.Generator | None = None, *,
               greedy: bool = True, temperature: float = 1.0) -> torch.Tensor:
        """The data ``z`` stands for: the mean of ``p(x | g(z))`` (its mode for tokens); for
        an autoregressive generator the sentence decoded token by token (greedy, or sampled
        at ``temperature`` with ``greedy=False``), at most ``data_shape[0]`` ids. The
        networks run in eval mode (no dropout, BatchNorm's running statistics)."""
        return self._decode_with(self.generator, z, generator, greedy=greedy,
                                 temperature=temperature)

    def _decode_with(self, g: Callable[..., torch.Tensor], z: torch.Tensor,
                     generator: torch.Generator | None = None, *, greedy: bool = True,
                     temperature: float = 1.0) -> torch.Tensor:
        # in eval mode, as the chains: no dropout, BatchNorm's running statistics, so the
        # answer does not depend on the batch or on whether the model is being trained
        with self.eval_mode():
            if self.reads_data:
                return cast(Any, self.generator).generate_tokens(
                    z, self.data_shape[0], greedy=greedy, temperature=temperature,
                    generator=generator)
            return self.likelihood.to_data(g(z))

    def sample(self, n: int, generator: torch.Generator | None = None, batch_size: int = 500,
               *, class_: int | None = None, greedy: bool = True, temperature: float = 1.0,
               **chain_overrides: ChainOverrides) -> torch.Tensor:
        """``n`` samples ``x = decode(z)``, ``z`` from the prior chain; batched.

        ``chain_overrides`` (``n_steps``, ``step_size``, ``kernel``, …) replace the model's
        prior chain settings; ``class_=k`` samples symbol ``k`` of a prior with symbols. The
        data are generated at the chains' precision (``precision.chain_dtype``); sentences
        are decoded greedily, or sampled at ``temperature`` with ``greedy=False``.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        out = []
        with self.chain_mode() as g:  # one weight cast for every batch
            for start in range(0, n, batch_size):
                z, _ = self.sample_latent(min(batch_size, n - start), generator, class_=class_,
                                          **chain_overrides)
                with torch.no_grad():
                    out.append(self._decode_with(g, z, generator, greedy=greedy,
                                                 temperature=temperature))
        if self.reads_data:  # sentences of different lengths: pad to the longest
            return concat_padded(out)
        return torch.cat(out)

    def reconstruct(self, x: torch.Tensor, generator: torch.Generator | None = None,
                    **chain_overrides: ChainOverrides) -> torch.Tensor:
        """``decode(z)`` at the ``z`` inferred from ``x``."""
        return self.decode(self.infer(x, generator, **chain_overrides))

    def check_data(self, x: torch.Tensor) -> None:
        """A ``ValueError`` naming the problem if ``x`` is not a batch this model takes (shape,
        then what its likelihood accepts: finite values, binary values, token ids)."""
        want = self.data_shape
        if self.reads_data:  # sentences: any length
            if x.dim() != 2:
                raise ValueError(f"expected token ids of shape (batch, T), got {tuple(x.shape)}")
        elif tuple(x.shape[1:]) != want:
            raise ValueError(f"expected data of shape (batch, {', '.join(map(str, want))}), "
                             f"got {tuple(x.shape)}")
        self.likelihood.check(x)

    # ------------------------------------------------------------------ run pictures
    @torch.no_grad()
    def previews(self, stem: str | os.PathLike, *, n: int, seed: int, heldout: torch.Tensor,
                 data: torch.Tensor, title: str = "") -> list[Path]:
        """The pictures a training run writes at ``stem`` (``{stem}_samples.png``, …).

        Images: ``n`` prior samples from fixed noise, ``heldout`` beside its reconstructions and,
        for a prior with symbols, one row of samples per symbol. 2-D data: ``data`` against
        samples (coloured by predicted symbol where there are symbols). A 2-D latent with a
        learned prior: its density with the fixed-noise samples. Every random draw comes
        from generators seeded with ``seed``.
        """
        from lebm.viz import save_density, save_image_grid, save_pairs_grid, save_scatter

        dev = self.device
        symbols = "symbols" in self.prior.capabilities
        z0 = self.init_latent(n, torch.Generator(device=dev).manual_seed(seed + 2))
        chain_gen = torch.Generator(device=dev).manual_seed(seed + 3)
        if self.prior.needs_chain:
            z, _ = self.sample_latent(n, chain_gen, z0=z0)
        else:  # the same fixed noise, scaled to an exact draw of the Gaussian prior
            z = z0 * self.prior.sigma0 / self.config.prior_chain.init_std
        samples = self.decode(z)
        written: list[Path] = []
        if self.reads_data:
            return [self._text_previews(f"{stem}_samples.txt", samples, heldout, seed)]
        if samples.dim() == 4:
            x = heldout.to(dev)
            recon = self.reconstruct(x, torch.Generator(device=dev).manual_seed(seed + 4))
            written += [save_image_grid(samples, f"{stem}_samples.png"),
                        save_pairs_grid(x, recon, f"{stem}_recon.png")]
            if symbols:  # one row of 8 per symbol
                cls_gen = torch.Generator(device=dev).manual_seed(seed + 6)
                rows = [self.sample(8, cls_gen, class_=k) for k in range(self.prior.n_classes)]
                written.append(save_image_grid(torch.cat(rows), f"{stem}_classes.png", nrow=8))
            return written
        if samples.dim() == 2 and samples.shape[1] == 2 and samples.is_floating_point():
            more = self.sample(2000, torch.Generator(device=dev).manual_seed(seed + 5))
            real_name, colours = "data", None
            if symbols:  # colour by predicted symbol
                real_name = "data (predicted symbol)"
                colours = {real_name: self.classify(data.to(dev)).argmax(1)}
            written.append(save_scatter({real_name: data, "samples": more},
                                        f"{stem}_samples.png", title=title, colours=colours))
        if self.latent.dim == 2 and self.prior.needs_chain:
            extent = max(3.0 * self.prior.sigma0, 1.1 * float(z.abs().max()))
            axis = torch.linspace(-extent, extent, 121, device=dev)
            grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
            logp = self.prior_log_density(grid).reshape(121, 121)
            by_symbol = self.prior.logits(z).argmax(1) if symbols else None
            written.append(save_density(
                logp, extent, f"{stem}_prior.png", points=z, point_classes=by_symbol,
                title=f"learned prior p(z){', ' + title if title else ''}"
                + (", samples by symbol" if by_symbol is not None else "")))
        return written

    def sentences(self, ids: torch.Tensor) -> list[str]:
        """Token ids ``(batch, T)`` as one string each: the words (ids where the model has no
        vocabulary), up to ``<eos>``."""
        if self.vocab is None:
            return [" ".join(str(int(i)) for i in row if int(i) >= 0) for row in ids]
        return [self.vocab.decode(row.tolist()) for row in ids]

    def _text_previews(self, path: str, samples: torch.Tensor, heldout: torch.Tensor,
                       seed: int) -> Path:
        """The fixed-noise prior samples (greedy), and held-out sentences with their
        reconstructions, as a text file."""
        dev = self.device
        show = self.sentences
        lines = ["# samples (prior chain, greedy decoding)", *show(samples), ""]
        x = heldout.to(dev)
        if x.numel():
            recon = self.reconstruct(x, torch.Generator(device=dev).manual_seed(seed + 4))
            lines.append("# held-out sentence -> reconstruction (greedy)")
            for a, b in zip(show(x), show(recon)):
                lines += [f"  {a}", f"> {b}"]
        if "symbols" in self.prior.capabilities:
            cls_gen = torch.Generator(device=dev).manual_seed(seed + 6)
            for k in range(self.prior.n_classes):
                lines += ["", f"# symbol {k}", *show(self.sample(4, cls_gen, class_=k))]
        atomic_write_text(path, "\n".join(lines) + "\n")
        return Path(path)

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (atomically)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        atomic_write(directory / "model.safetensors", lambda tmp: save_file(state, tmp))
        if self.vocab is not None:
            self.vocab.save(directory / "vocab.json")
        atomic_write_json(directory / "config.json", {
            "format": MODEL_FORMAT, "class": type(self).__name__,
            "lebm_version": __version__, "config": dataclasses.asdict(self.config),
        })
        return directory

    @classmethod
    def from_pretrained(cls: type[M], directory: str | os.PathLike,
                        map_location: str | torch.device = "cpu") -> M:
        """Rebuild a model saved with ``save_pretrained``."""
        directory = Path(directory)
        meta = read_model_meta(directory)
        try:
            config = cls.Config.from_dict(meta["config"])  # type: ignore[attr-defined]
            model = cast(Any, cls)(config)  # every model kind is built from its config alone
        except (LebmError, ValueError) as exc:
            raise CheckpointError(f"{directory}: {exc}") from exc
        missing, unexpected = model.load_state_dict(read_weights(directory, map_location),
                                                    strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{directory}: weights do not match the config "
                                  f"(missing {missing}, unexpected {unexpected})")
        if (directory / "vocab.json").is_file():
            try:
                model.vocab = Vocabulary.load(directory / "vocab.json")
            except ValueError as exc:
                raise CheckpointError(f"{directory}: {exc}") from exc
        return model.to(map_location)


M = TypeVar("M", bound=LatentModel)


def _call(module: nn.Module, params: dict[str, torch.Tensor], *args: torch.Tensor
          ) -> torch.Tensor:
    return torch.func.functional_call(module, params, args)


@functools.cache
def _compiled_call(device_type: str) -> Callable[..., torch.Tensor]:
    """``_call`` under ``torch.compile``; on CUDA with CUDA graphs (``reduce-overhead``)."""
    mode = "reduce-overhead" if device_type == "cuda" else None
    return torch.compile(_call, mode=mode, dynamic=False)


def read_weights(directory: str | os.PathLike,
                 map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of ``directory/model.safetensors``; a torn or missing file is reported."""
    path = Path(directory) / "model.safetensors"
    try:
        return load_file(str(path), device=str(map_location))
    except Exception as exc:  # safetensors raises several types on a torn file
        raise CheckpointError(f"cannot read {path}: {exc}") from exc


def read_model_meta(directory: Path) -> dict[str, Any]:
    """Read and check a model folder's ``config.json``."""
    meta = read_json_config(directory / "config.json", MODEL_FORMAT, "model")
    if not (directory / "model.safetensors").is_file():
        raise CheckpointError(f"{directory} has no model.safetensors")
    return meta


MODEL_CLASSES: dict[str, type[LatentModel]] = {}


def register_model(cls: type[M]) -> type[M]:
    """Class decorator: make ``cls`` loadable by ``load_model`` / ``lebm.load``."""
    MODEL_CLASSES[cls.__name__] = cls
    return cls


def load_model(directory: str | os.PathLike,
               map_location: str | torch.device = "cpu") -> LatentModel:
    """Load any registered model class from a folder written by ``save_pretrained``."""
    meta = read_model_meta(Path(directory))
    cls = MODEL_CLASSES.get(meta.get("class", ""))
    if cls is None:
        raise CheckpointError(f"{directory}: unknown model class {meta.get('class')!r}; "
                              f"known: {', '.join(MODEL_CLASSES)}")
    return cls.from_pretrained(directory, map_location)
