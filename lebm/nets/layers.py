"""Networks of multi-layer latent models: the conditional Gaussians between latent layers
and the generator that reads the bottom layer of a flat latent."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from lebm.latent import LatentSpec
from lebm.nets.activations import make_activation, output_layers


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


class LadderGenerator(nn.Module):
    """A generator that reads every latent layer, top-down: ``h_L = top(z_L)``, then
    ``h_i = block_i([h_{i+1}, a(proj_i(z_i))])`` for ``i = L−1 … 1`` (the layer's projection
    joined to the features as extra channels), and ``x = head(h_1)``: the ICCV'23
    hierarchical generator ``h_i = g_i([z_i, h_{i+1}])`` (REFERENCE §3.1).

    Images ``(C, H, W)``: ``h_L`` is a ``base×base`` map from an MLP of width ``widths[0]``,
    ``base = H / 2^k`` with ``k`` as large as the ``L − 1`` blocks and ``H`` allow (32×32 with
    five layers: 2×2, as the ICCV'23 code); each block is a 3×3 convolution, a stride-2
    transposed convolution while the resolution is below ``H`` and another 3×3 convolution;
    the head finishes any doubling left and ends in a 3×3 convolution to ``C`` channels. A
    map at resolution ``r`` has ``ngf · max(1, H / 4r)`` channels (ngf 128 at 32×32: 1024 at
    2×2 down to 128, near the code's widths). Other data: MLP blocks of width ``widths[0]``.
    """

    def __init__(self, latent: LatentSpec, out_shape: Sequence[int], ngf: int = 64,
                 widths: Sequence[int] = (256, 256), activation: str = "leaky_relu",
                 output: str = "tanh") -> None:
        super().__init__()
        if latent.n_layers < 2:
            raise ValueError("a ladder generator needs at least two latent layers")
        self.latent, self.out_shape = latent, tuple(out_shape)
        sizes, act = latent.sizes, activation
        n_blocks = latent.n_layers - 1
        if len(self.out_shape) == 3:
            c, h, w = self.out_shape
            if h != w:
                raise ValueError(f"ladder generator needs square images, got {h}×{w}")
            base, k = h, 0
            while k < n_blocks and base % 2 == 0 and base // 2 >= 2:
                base, k = base // 2, k + 1

            def ch(r: int) -> int:
                return ngf * max(1, h // (4 * r))

            res = base
            self.shapes: list[tuple[int, ...]] = [(ch(res), res, res)]
            self.top = nn.Sequential(
                nn.Linear(sizes[-1], widths[0]), make_activation(act),
                nn.Linear(widths[0], widths[0]), make_activation(act),
                nn.Linear(widths[0], ch(res) * res * res), make_activation(act))
            blocks = []
            for _ in range(n_blocks):
                c_in = ch(res)
                layers: list[nn.Module] = [nn.Conv2d(2 * c_in, c_in, 3, 1, 1),
                                           make_activation(act)]
                if res < h:
                    res *= 2
                    layers += [nn.ConvTranspose2d(c_in, ch(res), 4, 2, 1), make_activation(act)]
                layers += [nn.Conv2d(ch(res), ch(res), 3, 1, 1),
                           make_activation(act)]
                blocks.append(nn.Sequential(*layers))
                self.shapes.append((ch(res), res, res))
            head: list[nn.Module] = []
            while res < h:
                head += [nn.ConvTranspose2d(ch(res), ch(2 * res), 4, 2, 1), make_activation(act)]
                res *= 2
            head += [nn.Conv2d(ch(res), c, 3, 1, 1), *output_layers(output)]
        else:
            width = widths[0]
            self.shapes = [(width,)] * latent.n_layers
            self.top = nn.Sequential(nn.Linear(sizes[-1], width), make_activation(act),
                                     nn.Linear(width, width), make_activation(act))
            blocks = [nn.Sequential(nn.Linear(2 * width, width), make_activation(act))
                      for _ in range(n_blocks)]
            head = [nn.Linear(width, math.prod(self.out_shape)), *output_layers(output)]
        self.blocks = nn.ModuleList(blocks)
        # z_i joins the input of block L−1−i (0-based i): the features of the layer above
        self.projections = nn.ModuleList(
            nn.Sequential(nn.Linear(sizes[i], math.prod(self.shapes[n_blocks - 1 - i])),
                          make_activation(act))
            for i in range(n_blocks))
        self.head = nn.Sequential(*head)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        zs = self.latent.split(z)
        n, n_blocks = z.shape[0], len(self.blocks)
        h = self.top(zs[-1].contiguous()).view(n, *self.shapes[0])
        for k, block in enumerate(self.blocks):  # block k reads z_i, i = L−2−k (0-based)
            i = n_blocks - 1 - k
            side = self.projections[i](zs[i].contiguous()).view(n, *self.shapes[k])
            h = block(torch.cat([h, side], 1))
        out: torch.Tensor = self.head(h)
        return out.view(n, *self.out_shape)

