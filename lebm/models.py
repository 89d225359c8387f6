"""The latent-space EBM model: generator, prior and observation model in one module.

    z ~ p(z) ∝ exp(f(z)) N(0, σ0² I),      x = g(z) + ε,  ε ~ N(0, σ² I).

``f`` is the negative energy (REFERENCE §0.1). With ``prior="gaussian"`` (``f ≡ 0``) the
same class is the ABP baseline. Sampling and inference use one Langevin kernel on two
targets (REFERENCE §0.2):

    ℓ_prior(z)     = f(z) − ‖z‖²/(2σ0²)
    ℓ_post(z; x)   = ℓ_prior(z) − ‖x − g(z)‖²/(2σ²)

Models know their config: ``save_pretrained(dir)`` writes ``config.json`` and
``model.safetensors``; ``LatentEBM.from_pretrained(dir)`` (or ``lebm.load``) rebuilds it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lebm.errors import CheckpointError
from lebm.io import atomic_write, atomic_write_json
from lebm.likelihoods import GaussianLikelihood
from lebm.nets import (
    ACTIVATIONS,
    ENCODERS,
    GENERATORS,
    EnergyMLP,
    build_encoder,
    build_generator,
    reparameterize,
)
from lebm.priors import EBMPrior, GaussianPrior, SymbolVectorPrior
from lebm.sampling import ChainTrace, frozen, run_chain
from lebm.sampling.precision import resolve_dtype

MODEL_FORMAT = "lebm-model"
CHAIN_DTYPES = ("float32", "bfloat16", "auto")
INFERENCE = ("langevin", "encoder", "encoder+langevin")


@dataclass
class ModelConfig:
    """Constructor arguments of ``LatentEBM``; saved as ``config.json``.

    ``metadata`` drives validation of ``--set`` values (see ``lebm.config``).
    """

    n_z: int = field(default=100, metadata={"min": 1, "help": "latent dimension"})
    generator: str = field(default="conv", metadata={"choices": GENERATORS})
    gen_widths: tuple[int, ...] = field(default=(256, 256), metadata={"min": 1})
    ngf: int = field(default=64, metadata={"min": 1, "help": "conv generator base width"})
    gen_activation: str = field(default="leaky_relu", metadata={"choices": ACTIVATIONS})
    gen_output: str = field(default="tanh", metadata={"choices": ("tanh", "identity")})
    prior: str = field(default="ebm", metadata={
        "choices": ("ebm", "gaussian", "symbol"),
        "help": "symbol = symbol-vector coupling: K logits, marginal F = logsumexp"})
    n_classes: int = field(default=0, metadata={"min": 0,
                                                "help": "K symbols of prior=symbol"})
    energy_widths: tuple[int, ...] = field(default=(200, 200), metadata={"min": 1})
    energy_activation: str = field(default="gelu", metadata={"choices": ACTIVATIONS})
    energy_spectral_norm: bool = False
    sigma0: float = field(default=1.0, metadata={"gt": 0, "help": "reference N(0, σ0²) std"})
    sigma: float = field(default=0.3, metadata={"gt": 0, "help": "observation noise std"})
    prior_steps: int = field(default=60, metadata={"min": 0})
    prior_step_size: float = field(default=0.4, metadata={"gt": 0})
    posterior_steps: int = field(default=20, metadata={"min": 0})
    posterior_step_size: float = field(default=0.1, metadata={"gt": 0})
    init_std: float = field(default=1.0, metadata={"gt": 0,
                                                   "help": "chains start at N(0, init_std²)"})
    langevin_noise: bool = True
    encoder: str = field(default="none", metadata={
        "choices": ENCODERS, "help": "amortised Gaussian q(z|x) (VAE; optional otherwise)"})
    inference: str = field(default="langevin", metadata={
        "choices": INFERENCE,
        "help": "posterior z: Langevin from noise, q's mean, or Langevin from a q sample"})
    chain_dtype: str = field(default="float32", metadata={
        "choices": CHAIN_DTYPES,
        "help": "generator precision inside Langevin chains (auto = bfloat16 where the "
                "hardware has native bf16 matmul); z, noise and updates stay float32"})
    channels_last: bool = field(default=False, metadata={
        "help": "channels-last conv weights inside chains (faster oneDNN/cuDNN kernels)"})
    compile: bool = field(default=False, metadata={
        "help": "torch.compile the networks inside chains (CUDA graphs on GPU)"})
    update_dtype: str = field(default="float32", metadata={
        "choices": CHAIN_DTYPES,
        "help": "autocast precision of g's forward/backward in the learning update; "
                "weights and optimiser stay float32"})
    data_shape: tuple[int, ...] = field(default=(), metadata={"internal": True})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise CheckpointError(f"model config has unknown keys {sorted(unknown)}")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)


class LatentEBM(nn.Module):
    """Generator ``g`` with a latent EBM prior (or a Gaussian prior for ABP)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not config.data_shape:
            raise ValueError("ModelConfig.data_shape must be set (the shape of one example)")
        self.config = config
        c = config
        self.generator = build_generator(
            c.generator, c.n_z, c.data_shape, widths=c.gen_widths, ngf=c.ngf,
            activation=c.gen_activation, output=c.gen_output,
        )
        if c.prior == "ebm":
            net = EnergyMLP(c.n_z, c.energy_widths, c.energy_activation, 1, c.energy_spectral_norm)
            self.prior: GaussianPrior = EBMPrior(net, c.n_z, c.sigma0)
        elif c.prior == "gaussian":
            self.prior = GaussianPrior(c.n_z, c.sigma0)
        elif c.prior == "symbol":
            if c.n_classes < 2:
                raise ValueError(f"prior=symbol needs n_classes >= 2, got {c.n_classes}")
            net = EnergyMLP(c.n_z, c.energy_widths, c.energy_activation, c.n_classes,
                            c.energy_spectral_norm)
            self.prior = SymbolVectorPrior(net, c.n_z, c.n_classes, c.sigma0)
        else:
            raise ValueError(f"unknown prior {c.prior!r}; choose ebm, gaussian or symbol")
        self.likelihood = GaussianLikelihood(c.sigma)
        self.encoder = build_encoder(c.encoder, c.data_shape, c.n_z, widths=c.gen_widths[::-1],
                                     ngf=c.ngf, activation=c.gen_activation)
        if c.inference != "langevin" and self.encoder is None:
            raise ValueError(f"inference={c.inference!r} needs an encoder (set encoder=conv "
                             "or encoder=mlp)")

    # ------------------------------------------------------------------ densities
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def prior_log_density(self, z: torch.Tensor) -> torch.Tensor:
        """``ℓ_prior(z) = f(z) − ‖z‖²/(2σ0²)``, shape ``(batch,)``."""
        return self.prior.log_density(z)

    def log_joint(self, z: torch.Tensor, x: torch.Tensor,
                  g: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """``ℓ_post(z; x) = f(z) − ‖z‖²/(2σ0²) − ‖x − g(z)‖²/(2σ²)``: one fused evaluation.

        ``g`` replaces the generator (chains pass the one ``chain_mode`` yields).
        """
        mean = (self.generator if g is None else g)(z)
        return self.prior.log_density(z) + self.likelihood.log_prob(x, mean)

    # ------------------------------------------------------------------ chains
    @contextlib.contextmanager
    def chain_mode(self) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
        """The networks as Langevin chains see them; yields the chain's generator ``g``.

        Inside, every parameter is frozen (no parameter graph), autocast is off, and the
        generator runs on a copy of its weights cast once to ``chain_dtype`` (and to
        channels-last when ``channels_last``), made on ``g``'s first call; ``g`` takes and
        returns float32, so ``z``, the noise and the update stay float32 (REFERENCE §0.2).
        """
        c = self.config
        dtype = resolve_dtype(c.chain_dtype, self.device)
        call = _compiled_call(self.device.type) if c.compile else _call
        params: dict[str, torch.Tensor] = {}

        def g(z: torch.Tensor) -> torch.Tensor:
            if not params:  # cast on first use: prior-only chains never pay for it
                params.update(self._chain_weights(dtype))
            return call(self.generator, params, z.to(dtype)).float()

        with frozen(self), torch.autocast(self.device.type, enabled=False):
            yield g

    def _chain_weights(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Detached generator parameters and buffers in ``dtype`` (conv weights channels-last
        when configured); no copy for float32 without channels-last."""
        out = {}
        for name, p in self.generator.named_parameters():
            q = p.detach().to(dtype)
            if self.config.channels_last and q.dim() == 4:
                q = q.contiguous(memory_format=torch.channels_last)
            out[name] = q
        out.update({n: b.to(dtype) for n, b in self.generator.named_buffers()})
        return out

    def init_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Chain initialisation ``z0 ~ N(0, init_std² I)``, shape ``(n, n_z)``."""
        dev = self.device
        return self.config.init_std * torch.randn(n, self.config.n_z, generator=generator,
                                                  device=dev)

    def sample_latent(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        z0: torch.Tensor | None = None,
        n_steps: int | None = None,
        step_size: float | None = None,
        record: bool = False,
        class_: int | None = None,
    ) -> tuple[torch.Tensor, ChainTrace | None]:
        """Short-run prior Langevin from ``z0`` (default fresh noise): ``(z, trace)``.

        For the Gaussian prior the exact sample ``σ0 · ε`` is returned instead. With
        ``class_=k`` (symbol-vector prior only) the chain targets ``p(z | y=k)``:
        ``f_k(z) − ‖z‖²/(2σ0²)``.
        """
        c = self.config
        target = self.prior_log_density
        if class_ is not None:
            prior = self.prior
            if not isinstance(prior, SymbolVectorPrior):
                raise ValueError("sampling a class needs a symbol-vector prior (prior=symbol)")
            if not 0 <= class_ < prior.n_classes:
                raise ValueError(f"class must be in 0..{prior.n_classes - 1}, got {class_}")
            k = class_

            def target(z: torch.Tensor) -> torch.Tensor:
                return prior.class_log_density(z, k)
        if not self.prior.has_energy:
            z = c.sigma0 * torch.randn(n, c.n_z, generator=generator, device=self.device)
            return z, None
        z0 = self.init_latent(n, generator) if z0 is None else z0
        with self.chain_mode():
            return run_chain(
                target, z0,
                c.prior_steps if n_steps is None else n_steps,
                c.prior_step_size if step_size is None else step_size,
                noise=c.langevin_noise, generator=generator, record=record,
            )

    def infer_latent(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        z0: torch.Tensor | None = None,
        n_steps: int | None = None,
        step_size: float | None = None,
        record: bool = False,
    ) -> tuple[torch.Tensor, ChainTrace | None]:
        """Posterior ``z`` for ``x``: ``(z, trace)``.

        By ``inference``: short-run Langevin on ``ℓ_post(·; x)`` from ``N(0, init_std²)``
        (``langevin``), the encoder's mean (``encoder``; no trace), or Langevin started
        from a sample of ``q(z|x)`` (``encoder+langevin``). An explicit ``z0`` always
        starts a Langevin chain there.
        """
        self._check_data(x)
        c = self.config
        if z0 is None and c.inference != "langevin":
            with torch.no_grad():
                mu, logvar = self.encode(x)
            if c.inference == "encoder":
                return mu, None
            z0 = reparameterize(mu, logvar, generator)
        z0 = self.init_latent(x.shape[0], generator) if z0 is None else z0
        with self.chain_mode() as g:
            return run_chain(
                lambda z: self.log_joint(z, x, g), z0,
                c.posterior_steps if n_steps is None else n_steps,
                c.posterior_step_size if step_size is None else step_size,
                noise=c.langevin_noise, generator=generator, record=record,
            )

    # ------------------------------------------------------------------ user API
    def infer(self, x: torch.Tensor, generator: torch.Generator | None = None,
              **chain_kwargs: Any) -> torch.Tensor:
        """Posterior samples ``z ~ q(z|x)`` by short-run Langevin, shape ``(batch, n_z)``."""
        return self.infer_latent(x, generator, **chain_kwargs)[0]

    @torch.no_grad()
    def classify(self, x: torch.Tensor, generator: torch.Generator | None = None,
                 batch_size: int = 500) -> torch.Tensor:
        """Logits of ``p(y | z)`` at the inferred ``z`` (the encoder mean ``μ(x)`` for
        ``inference="encoder"``, REFERENCE §2.1), shape ``(batch, K)``; argmax = prediction."""
        prior = self.prior
        if not isinstance(prior, SymbolVectorPrior):
            raise ValueError("classify needs a symbol-vector prior (prior=symbol)")
        out = []
        for i in range(0, x.shape[0], batch_size):
            out.append(prior.logits(self.infer(x[i:i + batch_size], generator)))
        return torch.cat(out)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(μ(x), log σ²(x))`` of the amortised ``q(z|x)`` (with a graph to its weights)."""
        if self.encoder is None:
            raise ValueError("this model has no encoder (ModelConfig.encoder='none')")
        self._check_data(x)
        mu, logvar = self.encoder(x)
        return mu, logvar

    @torch.no_grad()
    def anomaly_score(self, x: torch.Tensor, generator: torch.Generator | None = None,
                      batch_size: int = 500) -> torch.Tensor:
        """``−ℓ_post(z; x) = ‖x − g(z)‖²/(2σ²) − f(z) + ‖z‖²/(2σ0²)`` at the inferred ``z``.

        The negative unnormalised log-joint (REFERENCE §1.5); higher means more anomalous.
        Shape ``(batch,)``; evaluated in batches of ``batch_size``.
        """
        scores = []
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size]
            z = self.infer(xb, generator)
            scores.append(-self.log_joint(z, xb))
        return torch.cat(scores)

    def prior_log_normalizer(self, generator: torch.Generator | None = None, *,
                             n_chains: int = 1000, n_temps: int = 200) -> tuple[float, float]:
        """``log Z = log E_{N(0,σ0²)} exp f(z)`` of the EBM prior by annealed importance
        sampling, with its standard error; ``(0, 0)`` for the Gaussian prior. AIS follows
        modes that plain draws from ``N(0, σ0²)`` rarely reach."""
        from lebm.metrics.likelihood import ais_log_normalizer

        if not self.prior.has_energy:
            return 0.0, 0.0
        with frozen(self.prior):
            return ais_log_normalizer(self.prior.neg_energy, self.config.n_z,
                                      self.config.sigma0, n_chains=n_chains, n_temps=n_temps,
                                      generator=generator, device=self.device)

    def log_likelihood(self, x: torch.Tensor, generator: torch.Generator | None = None, *,
                       n_chains: int = 16, n_samples: int = 256,
                       log_z: tuple[float, float] | None = None, inflate: float = 1.5
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Importance-sampling estimate of ``log p(x)`` in nats, with its standard error.

        Proposal per example: a diagonal Gaussian fitted to ``n_chains`` posterior chains
        (their mean; their spread × ``inflate``, floored at 0.05 σ0) — or, for a model
        whose inference is its encoder, ``q(z|x)`` itself — from which ``n_samples`` draws
        weigh ``p̃(x, z)/q(z)``. The EBM prior's ``log Z`` is subtracted: ``log_z`` =
        ``(value, se)`` when already known (compute it once with ``prior_log_normalizer``
        for many batches), else estimated here; its error is added in quadrature.
        Unbiased for ``p(x)``; the log is biased low by about ``se²/2``.
        Returns two ``(batch,)`` tensors.
        """
        from lebm.metrics.likelihood import importance_log_likelihood

        self._check_data(x)
        b, d = x.shape[0], self.config.n_z
        if log_z is None:
            log_z = self.prior_log_normalizer(generator)
        with torch.no_grad():
            if self.config.inference == "encoder":  # the amortised q itself
                mean, logvar = self.encode(x)
                std = (0.5 * logvar).exp()
            else:
                xs = x.repeat_interleave(n_chains, 0)
                z = self.infer_latent(xs, generator)[0].view(b, n_chains, d)
                mean = z.mean(1)
                std = (z.std(1) * inflate).clamp_min(0.05 * self.config.sigma0)
            const = self.likelihood.log_normalizer(x[0].numel())
            const -= 0.5 * d * float(torch.log(torch.tensor(2 * torch.pi * self.config.sigma0**2)))

            def log_joint(zs: torch.Tensor) -> torch.Tensor:  # (S, B, d) → (S, B)
                s = zs.shape[0]
                xx = x.unsqueeze(0).expand(s, *x.shape).reshape(s * b, *x.shape[1:])
                return self.log_joint(zs.reshape(s * b, d), xx).view(s, b) + const

            ll, se = importance_log_likelihood(log_joint, mean, std, n_samples, generator)
        return ll - log_z[0], (se**2 + log_z[1] ** 2).sqrt()

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """``g(z)`` with a graph to the parameters, for the learning update (float32 out).

        Runs under bf16 autocast when ``update_dtype`` resolves to bfloat16.
        """
        dtype = resolve_dtype(self.config.update_dtype, self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16,
                            enabled=dtype == torch.bfloat16):
            out = self.generator(z)
        return out.float()

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``g(z)``: the mean of ``p(x|z)``."""
        return self.generator(z)

    def sample(self, n: int, generator: torch.Generator | None = None,
               batch_size: int = 500, **chain_kwargs: Any) -> torch.Tensor:
        """``n`` samples ``x = g(z)``, ``z`` from short-run prior Langevin; batched.

        ``chain_kwargs`` (``n_steps``, ``step_size``) override the model's prior chain;
        ``class_=k`` samples symbol ``k`` of a symbol-vector prior. The images are generated
        at the chains' precision (``chain_dtype``).
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        out = []
        with self.chain_mode() as g:  # one weight cast for every batch
            for start in range(0, n, batch_size):
                z, _ = self.sample_latent(min(batch_size, n - start), generator, **chain_kwargs)
                with torch.no_grad():
                    out.append(g(z))
        return torch.cat(out)

    def reconstruct(self, x: torch.Tensor, generator: torch.Generator | None = None,
                    **chain_kwargs: Any) -> torch.Tensor:
        """``g(z)`` at a posterior-Langevin ``z`` inferred from ``x``."""
        return self.decode(self.infer(x, generator, **chain_kwargs))

    def _check_data(self, x: torch.Tensor) -> None:
        want = tuple(self.config.data_shape)
        if tuple(x.shape[1:]) != want:
            raise ValueError(f"expected data of shape (batch, {', '.join(map(str, want))}), "
                             f"got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("input data contains NaN or inf")

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (atomically)."""
        from lebm import __version__

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        atomic_write(directory / "model.safetensors", lambda tmp: save_file(state, tmp))
        atomic_write_json(directory / "config.json", {
            "format": MODEL_FORMAT, "class": type(self).__name__,
            "lebm_version": __version__, "config": asdict(self.config),
        })
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike,
                        map_location: str | torch.device = "cpu") -> LatentEBM:
        """Rebuild a model saved with ``save_pretrained``."""
        directory = Path(directory)
        meta = read_model_meta(directory)
        model = cls(ModelConfig.from_dict(meta["config"]))
        missing, unexpected = model.load_state_dict(read_weights(directory, map_location),
                                                    strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{directory}: weights do not match the config "
                                  f"(missing {missing}, unexpected {unexpected})")
        return model.to(map_location)


def _call(module: nn.Module, params: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    return torch.func.functional_call(module, params, (z,))


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
    path = directory / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a model folder (no config.json)")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    if meta.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"{path} is not a lebm model config (format={meta.get('format')!r})")
    if not (directory / "model.safetensors").is_file():
        raise CheckpointError(f"{directory} has no model.safetensors")
    return meta


MODEL_CLASSES: dict[str, type[LatentEBM]] = {"LatentEBM": LatentEBM}


def load_model(directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> LatentEBM:
    """Load any registered model class from a folder written by ``save_pretrained``."""
    meta = read_model_meta(Path(directory))
    cls = MODEL_CLASSES.get(meta.get("class", ""))
    if cls is None:
        raise CheckpointError(f"{directory}: unknown model class {meta.get('class')!r}")
    return cls.from_pretrained(directory, map_location)
