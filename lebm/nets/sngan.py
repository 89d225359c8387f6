"""The SNGAN network pairs of the generalised-EBM paper's CIFAR-10 experiments (Arbel, Zhou
& Gretton 2021, REFERENCE §5.5), after Miyato et al.'s spectrally normalised GANs.

* ``SNGANGenerator`` (``generator=sngan``): ``z`` → linear → ``8·ngf`` channels at 4×4 (7×7
  for 28×28 images) → [BatchNorm, ReLU, transposed conv 4×4 stride 2] per doubling, the
  channels halving to ``ngf`` → BatchNorm, ReLU, 3×3 conv to the image → tanh.
* ``SNGANEnergy`` (``energy_net=sngan``): a 3×3 conv to ``ndf`` channels, then per halving
  of the resolution a 4×4 stride-2 conv doubling the channels and a 3×3 conv keeping them
  (down to 4×4, or 7×7 for 28×28), every conv spectrally normalised, LeakyReLU(0.1); a plain
  linear head gives one scalar.
* ``ResNetGenerator`` / ``ResNetEnergy`` (``resnet``): the residual pair at constant width
  (``ngf`` / ``ndf``, 128 in the paper): three upsampling blocks (BatchNorm, ReLU, nearest ×2,
  3×3 conv, BatchNorm, ReLU, 3×3 conv, plus the upsampled input); the energy a first block
  and one more halving block, two blocks at that resolution, ReLU, global average pooling and
  a spectrally normalised linear head, every conv spectrally normalised, no BatchNorm.

Weights are Xavier-uniform (gain 1; √2 on the energy's 1×1 shortcut convs), biases PyTorch's
default. The generators' BatchNorm uses batch statistics in training and running statistics
in ``eval()`` mode, in which the library's chains run the networks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from lebm.nets.activations import output_layers

_sn = nn.utils.parametrizations.spectral_norm


def _xavier(module: nn.Module, gain: float = 1.0) -> nn.Module:
    nn.init.xavier_uniform_(module.weight, gain)  # type: ignore[arg-type]
    return module


def _start_size(size: int, what: str) -> tuple[int, int]:
    """``(s0, doublings)``: the square image ``size`` is ``s0 · 2^doublings`` with ``s0`` 4
    (or 7 for multiples of 7, e.g. 28) and at least one doubling."""
    s0 = 7 if size % 7 == 0 else 4
    n = int(math.log2(size // s0)) if size >= 2 * s0 else 0
    if n < 1 or s0 << n != size:
        raise ValueError(f"{what} supports square images of size 4·2^k or 7·2^k (k ≥ 1: 8, 14, "
                         f"16, 28, 32, 64, …), got {size}")
    return s0, n


def _image_shape(shape: Sequence[int], what: str) -> tuple[int, int, int]:
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(f"{what} needs square image data (C, H, W), got shape {tuple(shape)}")
    c, h, w = (int(s) for s in shape)
    return c, h, w


class SNGANGenerator(nn.Module):
    """The SNGAN ConvNet generator (module docstring); ``ngf=64`` at 32×32 is
    ``z → 512 (4×4) → 256 (8×8) → 128 (16×16) → 64 (32×32) → 3``."""

    def __init__(self, n_z: int, out_shape: Sequence[int], ngf: int = 64,
                 output: str = "tanh") -> None:
        super().__init__()
        channels, size, _ = _image_shape(out_shape, "generator sngan")
        self.s0, n_up = _start_size(size, "generator sngan")
        self.out_shape = (channels, size, size)
        self.c0 = ngf * 2 ** n_up
        self.dense = _xavier(nn.Linear(n_z, self.c0 * self.s0 * self.s0))
        layers: list[nn.Module] = []
        c = self.c0
        for _ in range(n_up):
            layers += [nn.BatchNorm2d(c), nn.ReLU(),
                       _xavier(nn.ConvTranspose2d(c, c // 2, 4, 2, 1))]
            c //= 2
        layers += [nn.BatchNorm2d(c), nn.ReLU(), _xavier(nn.ConvTranspose2d(c, channels, 3, 1, 1)),
                   *output_layers(output)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.dense(z.flatten(1)).view(-1, self.c0, self.s0, self.s0))


class SNGANEnergy(nn.Module):
    """The SNGAN ConvNet energy (module docstring); ``ndf=64`` at 32×32 has widths
    64, 128, 128, 256, 256, 512, 512 and a linear head on 512×4×4."""

    def __init__(self, in_shape: Sequence[int], ndf: int = 64, slope: float = 0.1) -> None:
        super().__init__()
        channels, size, _ = _image_shape(in_shape, "energy_net sngan")
        s0, n_down = _start_size(size, "energy_net sngan")
        layers: list[nn.Module] = [_sn(_xavier(nn.Conv2d(channels, ndf, 3, 1, 1))),
                                   nn.LeakyReLU(slope)]
        c = ndf
        for _ in range(n_down):
            layers += [_sn(_xavier(nn.Conv2d(c, 2 * c, 4, 2, 1))), nn.LeakyReLU(slope),
                       _sn(_xavier(nn.Conv2d(2 * c, 2 * c, 3, 1, 1))), nn.LeakyReLU(slope)]
            c *= 2
        self.trunk = nn.Sequential(*layers)
        self.head = _xavier(nn.Linear(c * s0 * s0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x).flatten(1)).squeeze(-1)


class _UpBlock(nn.Module):
    """BatchNorm, ReLU, nearest ×2, conv, BatchNorm, ReLU, conv; plus the upsampled input."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Upsample(scale_factor=2),
                                  _xavier(nn.Conv2d(c, c, 3, 1, 1)), nn.BatchNorm2d(c),
                                  nn.ReLU(), _xavier(nn.Conv2d(c, c, 3, 1, 1)))
        self.skip = nn.Upsample(scale_factor=2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.body(h) + self.skip(h)


class ResNetGenerator(nn.Module):
    """The residual SNGAN generator (module docstring): ``z`` → linear → ``ngf`` channels at
    4×4 (7×7) → one ``_UpBlock`` per doubling → BatchNorm, ReLU, 3×3 conv → tanh."""

    def __init__(self, n_z: int, out_shape: Sequence[int], ngf: int = 128,
                 output: str = "tanh") -> None:
        super().__init__()
        channels, size, _ = _image_shape(out_shape, "generator resnet")
        self.s0, n_up = _start_size(size, "generator resnet")
        self.out_shape, self.width = (channels, size, size), ngf
        self.dense = _xavier(nn.Linear(n_z, ngf * self.s0 * self.s0))
        self.net = nn.Sequential(*[_UpBlock(ngf) for _ in range(n_up)], nn.BatchNorm2d(ngf),
                                 nn.ReLU(), _xavier(nn.Conv2d(ngf, channels, 3, 1, 1)),
                                 *output_layers(output))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.dense(z.flatten(1)).view(-1, self.width, self.s0, self.s0))


class _DownBlock(nn.Module):
    """A residual block of the energy: ``[ReLU], conv, ReLU, conv, [avg-pool ×½]`` plus a
    shortcut (identity, or a 1×1 conv and the pool when the block halves or is the first)."""

    def __init__(self, c_in: int, c: int, down: bool, first: bool) -> None:
        super().__init__()
        body: list[nn.Module] = [] if first else [nn.ReLU()]
        body += [_sn(_xavier(nn.Conv2d(c_in, c, 3, 1, 1))), nn.ReLU(),
                 _sn(_xavier(nn.Conv2d(c, c, 3, 1, 1)))]
        if down:
            body.append(nn.AvgPool2d(2))
        self.body = nn.Sequential(*body)
        self.skip: nn.Module = nn.Identity()
        if down or c_in != c:
            conv = _sn(_xavier(nn.Conv2d(c_in, c, 1, 1, 0), math.sqrt(2)))
            pool = [nn.AvgPool2d(2)] if down else []
            # the first block pools before its shortcut conv, the others after (same map)
            self.skip = nn.Sequential(*pool, conv) if first else nn.Sequential(conv, *pool)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.body(h) + self.skip(h)


class ResNetEnergy(nn.Module):
    """The residual SNGAN energy (module docstring); ``ndf=128`` at 32×32 works at 16×16 and
    8×8 and pools 128 features into a spectrally normalised linear head."""

    def __init__(self, in_shape: Sequence[int], ndf: int = 128) -> None:
        super().__init__()
        channels, size, _ = _image_shape(in_shape, "energy_net resnet")
        if size < 8 or size % 4:
            raise ValueError(f"energy_net resnet halves the image twice: it needs a square "
                             f"size that is a multiple of 4 and at least 8, got {size}")
        self.trunk = nn.Sequential(_DownBlock(channels, ndf, down=True, first=True),
                                   _DownBlock(ndf, ndf, down=True, first=False),
                                   _DownBlock(ndf, ndf, down=False, first=False),
                                   _DownBlock(ndf, ndf, down=False, first=False), nn.ReLU())
        self.head = _sn(_xavier(nn.Linear(ndf, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x).mean((2, 3))).squeeze(-1)

