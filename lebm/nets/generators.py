"""Top-down generators ``g: R^n_z -> data space``.

Images are produced in [-1, 1] (tanh output); toy / tabular data use an identity output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lebm.latent import LatentSpec
from lebm.nets.activations import make_activation, output_layers
from lebm.nets.sngan import ResNetGenerator, SNGANGenerator
from lebm.nets.text import GRUDecoder

GENERATORS = ("mlp", "conv", "conv-wide", "sngan", "resnet", "gru")
# the non-autoregressive ones: g(z) alone
IMAGE_GENERATORS = ("mlp", "conv", "conv-wide", "sngan", "resnet")


class MLPGenerator(nn.Module):
    """``z -> MLP -> reshape(out_shape)``; for 8×8 digits, toy 2-D data and tables."""

    def __init__(
        self,
        n_z: int,
        out_shape: Sequence[int],
        widths: Sequence[int] = (256, 256),
        activation: str = "leaky_relu",
        output: str = "tanh",
    ) -> None:
        super().__init__()
        self.out_shape = tuple(out_shape)
        n_out = int(torch.tensor(self.out_shape).prod())
        layers: list[nn.Module] = []
        dims = [n_z, *widths]
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(d_in, d_out), make_activation(activation)]
        layers += [nn.Linear(dims[-1], n_out), *output_layers(output)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)


def _conv_plan(image_size: int, ngf: int) -> tuple[int, int, list[int]]:
    """(first kernel, first spatial size, channel widths) of the transposed-conv stack.

    32×32 is LEBM's SVHN generator exactly: 100 → 512 (4×4) → 256 (8×8) → 128 (16×16) → 3.
    64×64 adds one block (→ 64 at 32×32). 28×28 starts at 7×7: → 4·ngf (7×7) → 2·ngf (14×14).
    """
    if image_size == 32:
        return 4, 4, [ngf * 8, ngf * 4, ngf * 2]
    if image_size == 64:
        return 4, 4, [ngf * 8, ngf * 4, ngf * 2, ngf]
    if image_size == 28:
        return 7, 7, [ngf * 4, ngf * 2]
    if image_size == 16:
        return 4, 4, [ngf * 4, ngf * 2]
    raise ValueError(
        f"conv generator supports image sizes 16, 28, 32 and 64, got {image_size}; "
        "use generator=mlp or resize the data (data.image_size)"
    )


class ConvGenerator(nn.Module):
    """Transposed-convolution generator without normalisation, LeakyReLU(0.2), tanh output
    (``output="identity"``: unbounded, e.g. the logits of a Bernoulli likelihood).

    The first layer maps ``z`` (as ``n_z×1×1``) to ``k×k`` with a ``k×k`` kernel; every
    further layer doubles the resolution (kernel 4, stride 2, padding 1). Convolution
    weights are Xavier-normal, biases PyTorch's default (as in LEBM's ``train_svhn.py``).
    """

    def __init__(
        self,
        n_z: int,
        out_shape: Sequence[int],
        ngf: int = 64,
        activation: str = "leaky_relu",
        output: str = "tanh",
    ) -> None:
        super().__init__()
        tail = output_layers(output)
        channels, height, width = out_shape
        if height != width:
            raise ValueError(f"conv generator needs square images, got {height}×{width}")
        self.out_shape = (channels, height, width)
        k0, _, widths = _conv_plan(height, ngf)
        layers: list[nn.Module] = [nn.ConvTranspose2d(n_z, widths[0], k0, 1, 0)]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [make_activation(activation), nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)]
        layers += [make_activation(activation), nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1)]
        self.net = nn.Sequential(*layers, *tail)
        for m in self.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.xavier_normal_(m.weight)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class WideConvGenerator(nn.Module):
    """The joint-EBM papers' generator (Cui, Wu & Han 2023, REFERENCE §3.4): ``z`` (as
    ``n_z×1×1``) → ``16·ngf`` channels at ``s0×s0`` (``s0`` 8, or 7 for 28×28) with an
    ``s0×s0`` kernel; each further layer doubles the resolution and halves the channels
    (kernel 4, stride 2, padding 1); a final 3×3 stride-1 layer gives the image. LeakyReLU(0.2)
    by default, no normalisation, PyTorch's default initialisation. At 32×32 with ``ngf=64``:
    1024 (8×8) → 512 (16×16) → 256 (32×32) → 3.
    """

    def __init__(self, n_z: int, out_shape: Sequence[int], ngf: int = 64,
                 activation: str = "leaky_relu", output: str = "tanh") -> None:
        super().__init__()
        tail = output_layers(output)
        channels, height, width = out_shape
        if height != width:
            raise ValueError(f"conv generator needs square images, got {height}×{width}")
        s0 = 7 if height % 7 == 0 else 8
        n_up = (height // s0).bit_length() - 1
        if s0 << n_up != height:
            raise ValueError(f"generator conv-wide supports image sizes 8·2^k and 7·2^k "
                             f"(e.g. 28, 32, 64), got {height}")
        self.out_shape = (channels, height, width)
        c = 16 * ngf
        layers: list[nn.Module] = [nn.ConvTranspose2d(n_z, c, s0, 1, 0)]
        for _ in range(n_up):
            layers += [make_activation(activation), nn.ConvTranspose2d(c, c // 2, 4, 2, 1)]
            c //= 2
        layers += [make_activation(activation), nn.ConvTranspose2d(c, channels, 3, 1, 1)]
        self.net = nn.Sequential(*layers, *tail)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


def build_generator(
    kind: str,
    latent: LatentSpec,
    out_shape: Sequence[int],
    *,
    widths: Sequence[int] = (256, 256),
    ngf: int = 64,
    activation: str = "leaky_relu",
    output: str = "tanh",
    embed_dim: int = 512,
    hidden_dim: int = 512,
    dropout: float = 0.0,
) -> nn.Module:
    """Build a generator by name (``mlp``, ``conv``, ``conv-wide``, the SNGAN pair's ``sngan``
    and ``resnet`` (``lebm.nets.sngan``), or ``gru`` for sentences:
    ``out_shape`` is then ``(T, V)``, the logits of ``T`` tokens over ``V`` ids) reading the
    flat latent of ``latent``."""
    if kind == "gru":
        if len(out_shape) != 2:
            raise ValueError(f"the gru generator needs token data (likelihood=categorical), "
                             f"got output shape {tuple(out_shape)}")
        return GRUDecoder(latent.dim, out_shape[1], embed_dim, hidden_dim, dropout)
    if kind == "mlp":
        return MLPGenerator(latent.dim, out_shape, widths, activation, output)
    if kind == "conv":
        if len(out_shape) != 3:
            raise ValueError(f"conv generator needs image data (C, H, W), got shape {out_shape}")
        return ConvGenerator(latent.dim, out_shape, ngf, activation, output)
    if kind == "conv-wide":
        if len(out_shape) != 3:
            raise ValueError(f"conv generator needs image data (C, H, W), got shape {out_shape}")
        return WideConvGenerator(latent.dim, out_shape, ngf, activation, output)
    if kind == "sngan":
        return SNGANGenerator(latent.dim, out_shape, ngf, output)
    if kind == "resnet":
        return ResNetGenerator(latent.dim, out_shape, ngf, output)
    raise ValueError(f"unknown generator {kind!r}; choose one of {', '.join(GENERATORS)}")
