"""The layout of a latent vector: one flat ``(batch, dim)`` tensor made of named-by-position
blocks ``z_1 … z_L``.

Samplers only ever see the flat tensor; generators, energies, encoders and plots take the
``LatentSpec`` and split it where they need the layers. A single-layer model is
``LatentSpec((n_z,))``; a model with layers z1..zL is ``LatentSpec((d_1, …, d_L))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LatentSpec:
    """Sizes of the latent blocks, in the order they are concatenated."""

    sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        sizes = tuple(int(s) for s in self.sizes)
        if not sizes or any(s < 1 for s in sizes):
            raise ValueError(f"latent sizes must be one or more positive integers, got {sizes}")
        object.__setattr__(self, "sizes", sizes)

    @property
    def dim(self) -> int:
        """Length of the flat latent vector, ``Σ_l d_l``."""
        return sum(self.sizes)

    @property
    def n_layers(self) -> int:
        return len(self.sizes)

    def split(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(z_1, …, z_L)`` views of a flat ``(batch, dim)`` tensor."""
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(f"expected latents of shape (batch, {self.dim}), "
                             f"got {tuple(z.shape)}")
        return tuple(torch.split(z, list(self.sizes), dim=1))

    def cat(self, zs: tuple[torch.Tensor, ...] | list[torch.Tensor]) -> torch.Tensor:
        """The flat ``(batch, dim)`` tensor of blocks ``z_1 … z_L``."""
        got = tuple(int(z.shape[1]) for z in zs)
        if got != self.sizes:
            raise ValueError(f"expected latent blocks of sizes {self.sizes}, got {got}")
        return torch.cat(list(zs), dim=1)

    def init(self, n: int, generator: torch.Generator | None = None, std: float = 1.0,
             device: torch.device | str | None = None) -> torch.Tensor:
        """Chain initialisation ``z0 ~ N(0, std² I)``, shape ``(n, dim)``."""
        return std * torch.randn(n, self.dim, generator=generator, device=device)
