"""Observation models ``log p(x | z)`` given the generator output ``out = g(z)``.

A likelihood is anything with this protocol (``Likelihood``):

* ``log_prob(x, out)``   ``log p(x|z)`` per example, shape ``(batch,)``, up to a constant that
                         depends on neither ``x``'s values nor ``out`` (``log_normalizer``);
* ``distance(x, out)``   the data term it is made of, ``log_prob = −scale · distance``:
                         ``‖x − out‖²`` (Gaussian), the summed cross-entropy (Bernoulli,
                         categorical). LEBM's official generator loss is ``mean distance``
                         (REFERENCE §0.4);
* ``check(x)``           a ``ValueError`` naming the problem for data it cannot take;
* ``to_data(out)``       what the model shows for ``out``: the mean of ``p(x|z)`` (Gaussian,
                         Bernoulli) or its mode (categorical tokens);
* ``output_shape(shape)`` the generator's output shape for data of ``shape``;
* ``metrics(x, out)``    scalars to log: ``recon_error`` (mean ``distance``), ``mse`` (per
                         coordinate, of ``to_data(out)``) or ``token_accuracy``.

``LIKELIHOODS`` maps a config name to a class; every class is built as
``cls(sigma=…, n_categories=…)`` and takes what it needs.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

import torch
import torch.nn.functional as F


class Likelihood(Protocol):
    name: ClassVar[str]
    scale: float

    def log_prob(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor: ...
    def distance(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor: ...
    def log_normalizer(self, x: torch.Tensor) -> float: ...
    def check(self, x: torch.Tensor) -> None: ...
    def to_data(self, out: torch.Tensor) -> torch.Tensor: ...
    def output_shape(self, data_shape: tuple[int, ...]) -> tuple[int, ...]: ...
    def metrics(self, x: torch.Tensor, out: torch.Tensor) -> dict[str, torch.Tensor]: ...


def squared_error(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """``‖x − mean‖²`` summed over all non-batch dimensions, shape ``(batch,)``."""
    return (x - mean).flatten(1).pow(2).sum(1)


def _check_finite(x: torch.Tensor) -> None:
    if not torch.is_floating_point(x):
        raise ValueError(f"expected floating-point data, got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError("input data contains NaN or inf")


class GaussianLikelihood:
    """``x = g(z) + ε``, ``ε ~ N(0, σ² I)``:  ``log p(x|z) = −‖x − g(z)‖² / (2σ²) + const``.

    The norm is summed over every non-batch dimension (all pixels).
    """

    name: ClassVar[str] = "gaussian"

    def __init__(self, sigma: float = 1.0, n_categories: int = 0) -> None:
        if not sigma > 0:
            raise ValueError(f"likelihood sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)
        self.scale = 1.0 / (2 * self.sigma**2)

    def log_prob(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Unnormalised ``log p(x|z)`` per example, shape ``(batch,)``."""
        return -squared_error(x, out) / (2 * self.sigma**2)

    def distance(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``‖x − g(z)‖²`` per example."""
        return squared_error(x, out)

    def log_normalizer(self, x: torch.Tensor) -> float:
        """The dropped constant ``−(D/2) log(2πσ²)`` for one example like ``x[0]``."""
        return -0.5 * x[0].numel() * float(torch.log(torch.tensor(2 * torch.pi * self.sigma**2)))

    def check(self, x: torch.Tensor) -> None:
        _check_finite(x)

    def to_data(self, out: torch.Tensor) -> torch.Tensor:
        return out

    def output_shape(self, data_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(data_shape)

    @torch.no_grad()
    def metrics(self, x: torch.Tensor, out: torch.Tensor) -> dict[str, torch.Tensor]:
        sq = squared_error(x, out).mean()
        return {"recon_error": sq, "mse": sq / x[0].numel()}


class BernoulliLikelihood:
    """Binary data: each coordinate of ``x`` is ±1 (a binarised image in the library's
    [−1, 1] convention, ``b = (x + 1)/2 ∈ {0, 1}``) and the generator outputs logits ``l``:

        log p(x|z) = Σ_j [ b_j log σ(l_j) + (1 − b_j) log σ(−l_j) ]   (normalised)

    Binarise data with ``data.binarize=true``. The model shows the mean ``2σ(l) − 1``.
    """

    name: ClassVar[str] = "bernoulli"

    def __init__(self, sigma: float = 1.0, n_categories: int = 0) -> None:
        self.scale = 1.0

    def distance(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Summed binary cross-entropy ``−log p(x|z)`` per example."""
        target = (x + 1) * 0.5
        return F.binary_cross_entropy_with_logits(out, target, reduction="none").flatten(1).sum(1)

    def log_prob(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return -self.distance(x, out)

    def log_normalizer(self, x: torch.Tensor) -> float:
        return 0.0

    def check(self, x: torch.Tensor) -> None:
        _check_finite(x)
        if not bool(((x == 1) | (x == -1)).all()):
            raise ValueError("the Bernoulli likelihood needs binary data (every value −1 or 1, "
                             "the [−1, 1] image convention); binarise with data.binarize=true")

    def to_data(self, out: torch.Tensor) -> torch.Tensor:
        return 2 * torch.sigmoid(out) - 1

    def output_shape(self, data_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(data_shape)

    @torch.no_grad()
    def metrics(self, x: torch.Tensor, out: torch.Tensor) -> dict[str, torch.Tensor]:
        mse = squared_error(x, self.to_data(out)).mean() / x[0].numel()
        return {"recon_error": self.distance(x, out).mean(), "mse": mse}


class CategoricalLikelihood:
    """Tokens: ``x`` holds integer ids in ``[0, V)`` of shape ``(batch, T)`` (negative ids
    are padding and are skipped), and the generator outputs logits of shape ``(batch, T, V)``:

        log p(x|z) = Σ_{t: x_t ≥ 0} log softmax(l_t)[x_t]      (normalised)

    The model shows the most likely token at each position.
    """

    name: ClassVar[str] = "categorical"
    PAD: ClassVar[int] = -1

    def __init__(self, sigma: float = 1.0, n_categories: int = 0) -> None:
        if n_categories < 2:
            raise ValueError(f"the categorical likelihood needs n_categories >= 2, "
                             f"got {n_categories}")
        self.n_categories = int(n_categories)
        self.scale = 1.0

    def distance(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Summed token cross-entropy over the non-padding positions, per example."""
        mask = x >= 0  # the softmax at the real positions only (padding can be most of it)
        real = F.log_softmax(out[mask], dim=-1).gather(-1, x[mask].unsqueeze(-1)).squeeze(-1)
        picked = out.new_zeros(x.shape, dtype=real.dtype).masked_scatter(mask, real)
        return -picked.flatten(1).sum(1)

    def log_prob(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return -self.distance(x, out)

    def log_normalizer(self, x: torch.Tensor) -> float:
        return 0.0

    def check(self, x: torch.Tensor) -> None:
        if torch.is_floating_point(x) or x.dtype == torch.bool:
            raise ValueError(f"the categorical likelihood needs integer token ids, got {x.dtype}")
        if bool((x >= self.n_categories).any()) or bool((x < self.PAD).any()):
            raise ValueError(f"token ids must be in [0, {self.n_categories}) or {self.PAD} "
                             f"(padding), got values in [{int(x.min())}, {int(x.max())}]")

    def to_data(self, out: torch.Tensor) -> torch.Tensor:
        return out.argmax(-1)

    def output_shape(self, data_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*data_shape, self.n_categories)

    @torch.no_grad()
    def metrics(self, x: torch.Tensor, out: torch.Tensor) -> dict[str, torch.Tensor]:
        mask = x >= 0
        correct = ((out.argmax(-1) == x) & mask).sum()
        n_tok = mask.sum().clamp_min(1)
        nll = self.distance(x, out)
        return {"recon_error": nll.mean(), "token_accuracy": correct / n_tok,
                "nll_per_token": nll.sum() / n_tok, "ppl": torch.exp(nll.sum() / n_tok)}


LIKELIHOODS: dict[str, type] = {"gaussian": GaussianLikelihood, "bernoulli": BernoulliLikelihood,
                                "categorical": CategoricalLikelihood}


def build_likelihood(name: str, *, sigma: float = 1.0, n_categories: int = 0) -> Likelihood:
    """The likelihood registered as ``name``; ``ValueError`` for an unknown one."""
    if name not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {name!r}; choose one of {', '.join(LIKELIHOODS)}")
    lik: Likelihood = LIKELIHOODS[name](sigma=sigma, n_categories=n_categories)
    return lik


__all__ = ["LIKELIHOODS", "BernoulliLikelihood", "CategoricalLikelihood", "GaussianLikelihood",
           "Likelihood", "build_likelihood", "squared_error"]
