"""Energy networks on the latent space."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lebm.nets.activations import make_activation


class EnergyMLP(nn.Module):
    """MLP ``f: R^n_z -> R^out_dim``; with ``out_dim=1`` the output is squeezed to ``(batch,)``.

    ``f`` is the **negative energy**: the prior is ``p(z) ∝ exp(f(z)) N(0, σ0² I)``, so a
    higher ``f`` means a more probable ``z``. Linear layers keep PyTorch's default
    initialisation (as in the LEBM reference code); LEBM's SVHN network is
    ``EnergyMLP(100, (200, 200), "gelu")``.
    """

    def __init__(
        self,
        n_z: int,
        widths: Sequence[int] = (200, 200),
        activation: str = "gelu",
        out_dim: int = 1,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.n_z, self.out_dim = n_z, out_dim
        layers: list[nn.Module] = []
        dims = [n_z, *widths]
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            layers += [self._linear(d_in, d_out, spectral_norm), make_activation(activation)]
        layers.append(self._linear(dims[-1], out_dim, spectral_norm))
        self.net = nn.Sequential(*layers)

    @staticmethod
    def _linear(d_in: int, d_out: int, sn: bool) -> nn.Module:
        layer = nn.Linear(d_in, d_out)
        return nn.utils.parametrizations.spectral_norm(layer) if sn else layer

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.net(z.flatten(1))
        return out.squeeze(-1) if self.out_dim == 1 else out
