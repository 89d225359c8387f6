"""Bottom-up inference networks ``x -> (μ(x), log σ²(x))`` of a diagonal Gaussian q(z|x).

Used by the VAE baseline (amortised inference) and by any model that sets
``encoder`` (its posterior chain may then start from q instead of noise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from lebm.latent import LatentSpec
from lebm.nets.activations import make_activation
from lebm.nets.text import GRUEncoder

ENCODERS = ("none", "mlp", "conv", "gru")


class MLPEncoder(nn.Module):
    """``flatten(x) -> MLP -> (μ, log σ²)``, each ``(batch, n_z)``."""

    def __init__(self, in_shape: Sequence[int], n_z: int, widths: Sequence[int] = (256, 256),
                 activation: str = "leaky_relu") -> None:
        super().__init__()
        dims = [int(torch.tensor(tuple(in_shape)).prod()), *widths]
        layers: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(d_in, d_out), make_activation(activation)]
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(dims[-1], 2 * n_z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.trunk(x.flatten(1))).chunk(2, dim=1)
        return mu, logvar


def downsampling_trunk(in_shape: Sequence[int], width: Callable[[int], int],
                       activation: str, what: str, instead: str,
                       wrap: Callable[[nn.Module], nn.Module] = lambda m: m
                       ) -> tuple[nn.Sequential, int]:
    """Stride-2 convolutions (kernel 4, padding 1) with ``activation`` that halve a square
    image of size 16, 28, 32 or 64 down to 4×4 (7×7 for 28×28); level ``i`` has
    ``width(i)`` channels and every convolution goes through ``wrap`` (e.g. spectral norm).
    Returns the trunk and its flattened output size. ``what`` / ``instead`` name the
    network and the setting to use otherwise, for the error on other sizes."""
    channels, height, width_px = in_shape
    if height != width_px or height not in (16, 28, 32, 64):
        raise ValueError(f"{what} supports square images of size 16, 28, 32 or 64, "
                         f"got {height}×{width_px}; use {instead}")
    layers: list[nn.Module] = []
    c_in, size = channels, height
    for i in range({16: 2, 28: 2, 32: 3, 64: 4}[height]):
        layers += [wrap(nn.Conv2d(c_in, width(i), 4, 2, 1)), make_activation(activation)]
        c_in, size = width(i), size // 2
    return nn.Sequential(*layers), c_in * size * size


class ConvEncoder(nn.Module):
    """Mirror of ``ConvGenerator``: stride-2 convolutions (kernel 4, padding 1) halve the
    resolution down to 4×4 (7×7 for 28×28), widths ``ngf·2 … ngf·2^L``, then a linear head.
    """

    def __init__(self, in_shape: Sequence[int], n_z: int, ngf: int = 64,
                 activation: str = "leaky_relu") -> None:
        super().__init__()
        height = in_shape[1]
        self.trunk, features = downsampling_trunk(
            in_shape, lambda i: ngf * 2 ** (i + 1) if height != 64 else ngf * 2 ** i,
            activation, "conv encoder", "encoder=mlp")
        self.head = nn.Linear(features, 2 * n_z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.trunk(x).flatten(1)).chunk(2, dim=1)
        return mu, logvar


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """One draw ``z = μ + σ ε``, ``ε ~ N(0, I)``, of ``q = N(μ, diag e^{logvar})`` (with a
    graph to ``μ`` and ``logvar``)."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + (0.5 * logvar).exp() * eps


def build_encoder(kind: str, in_shape: Sequence[int], latent: LatentSpec, *,
                  widths: Sequence[int] = (256, 256), ngf: int = 64,
                  activation: str = "leaky_relu", vocab_size: int = 0, embed_dim: int = 512,
                  hidden_dim: int = 512, dropout: float = 0.0) -> nn.Module | None:
    """Build an encoder of the flat latent of ``latent`` by name (``mlp``, ``conv``, ``gru``
    for sentences of ``vocab_size`` ids), or ``None`` for ``none``."""
    if kind == "none":
        return None
    if kind == "gru":
        if len(in_shape) != 1 or vocab_size < 3:
            raise ValueError("the gru encoder reads token data (likelihood=categorical with "
                             "its n_categories)")
        return GRUEncoder(vocab_size, latent.dim, embed_dim, hidden_dim, dropout)
    if kind == "mlp":
        return MLPEncoder(in_shape, latent.dim, widths, activation)
    if kind == "conv":
        if len(in_shape) != 3:
            raise ValueError(f"conv encoder needs image data (C, H, W), got shape {in_shape}")
        return ConvEncoder(in_shape, latent.dim, ngf, activation)
    raise ValueError(f"unknown encoder {kind!r}; choose one of {', '.join(ENCODERS)}")
