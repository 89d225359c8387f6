"""Energy networks: ``EnergyMLP`` on the latent space (``f``, the negative energy), and the
data-space energies ``E(x)`` of generalised EBMs (``build_data_energy``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lebm.nets.activations import make_activation
from lebm.nets.encoders import downsampling_trunk
from lebm.nets.sngan import ResNetEnergy, SNGANEnergy


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


DATA_ENERGIES = ("conv", "sngan", "resnet", "mlp")


class FlooredEnergy(nn.Module):
    """``max(E(x), floor)``: the GEBM authors' energies are cut off below at −10, so the
    base cannot fall into a hole of ever lower energy (zero gradient below the floor)."""

    def __init__(self, energy: nn.Module, floor: float) -> None:
        super().__init__()
        self.energy, self.floor = energy, float(floor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.energy(x).clamp(min=self.floor)


class ConvEnergy(nn.Module):
    """A DCGAN-style energy on images ``E: (batch, C, H, W) -> (batch,)``.

    Stride-2 convolutions (kernel 4, padding 1) with LeakyReLU(0.2) halve the resolution
    down to 7×7 (28×28 inputs) or 4×4 (16, 32, 64), widths ``ndf, 2·ndf, …``; a linear head
    gives one scalar per image. ``spectral_norm`` wraps every layer (the ``-sn`` variants of
    Arbel et al.). The output is an **energy** in the GEBM paper's sign: low on data.
    """

    def __init__(self, in_shape: Sequence[int], ndf: int = 64, spectral_norm: bool = False,
                 activation: str = "leaky_relu") -> None:
        super().__init__()
        wrap = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        self.trunk, features = downsampling_trunk(in_shape, lambda i: ndf * 2 ** i, activation,
                                                  "conv energy", "model.energy_net=mlp", wrap)
        self.head = wrap(nn.Linear(features, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x).flatten(1)).squeeze(-1)


def build_data_energy(kind: str, in_shape: Sequence[int], *, ndf: int = 64,
                      widths: Sequence[int] = (256, 256), activation: str = "leaky_relu",
                      spectral_norm: bool = False, floor: float | None = None) -> nn.Module:
    """A data-space energy ``E(x)`` (low on data) by name: ``conv`` (``ConvEnergy``, images),
    the SNGAN pair's ``sngan`` and ``resnet`` (``lebm.nets.sngan``; spectral norm built in),
    or ``mlp`` (an MLP on the flattened example); with ``floor``, ``max(E(x), floor)``."""
    energy = _data_energy(kind, in_shape, ndf, widths, activation, spectral_norm)
    return energy if floor is None else FlooredEnergy(energy, floor)


def _data_energy(kind: str, in_shape: Sequence[int], ndf: int, widths: Sequence[int],
                 activation: str, spectral_norm: bool) -> nn.Module:
    if kind in ("conv", "sngan", "resnet"):
        if len(in_shape) != 3:
            raise ValueError(f"{kind} energy needs image data (C, H, W), got shape "
                             f"{tuple(in_shape)}; use model.energy_net=mlp")
        if kind == "sngan":
            return SNGANEnergy(in_shape, ndf)
        if kind == "resnet":
            return ResNetEnergy(in_shape, ndf)
        return ConvEnergy(in_shape, ndf, spectral_norm, activation)
    if kind == "mlp":
        n_in = 1
        for s in in_shape:
            n_in *= int(s)
        return EnergyMLP(n_in, widths, activation, spectral_norm=spectral_norm)
    raise ValueError(f"unknown energy net {kind!r}; choose one of {', '.join(DATA_ENERGIES)}")
