"""Networks of multi-layer latent models: the conditional Gaussians between latent layers
and the generator that reads the bottom layer of a flat latent."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lebm.latent import LatentSpec
from lebm.nets.activations import make_activation


class ConditionalGaussian(nn.Module):
    """``z_{i+1} ↦ (μ, σ)`` of ``p(z_i | z_{i+1}) = N(μ, diag σ²)``: an MLP with a
    ``2·d_out`` head, ``σ = exp(·) + 0.01`` (the CVPR'23 joint-EBM backbone, REFERENCE §3.1)."""

    def __init__(self, d_in: int, d_out: int, widths: Sequence[int] = (200, 200, 200),
                 activation: str = "leaky_relu") -> None:
        super().__init__()
        dims = [d_in, *widths]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), make_activation(activation)]
        layers.append(nn.Linear(dims[-1], 2 * d_out))
        self.net = nn.Sequential(*layers)

    def forward(self, z_above: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, raw = self.net(z_above).chunk(2, dim=1)
        return mu, raw.exp() + 0.01


class BottomLayerGenerator(nn.Module):
    """``g(z) = net(z_1)``: a generator of the flat latent that reads its first block only
    (the layers above shape ``z_1`` through the prior)."""

    def __init__(self, latent: LatentSpec, net: nn.Module) -> None:
        super().__init__()
        self.latent, self.net = latent, net

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(self.latent.split(z)[0].contiguous())
        return out
