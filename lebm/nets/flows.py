"""A normalising-flow base generator (``zuko``), for generalised EBMs with a density base.

``FlowBase`` maps latent noise to data, ``x = G(z) = T⁻¹(z)`` with ``z ~ N(0, I)`` and
``T`` the flow's transform (data → noise), and gives the exact density
``log g(x) = log N(T(x); 0, I) + log |det ∂T/∂x|``. The flows themselves come from ``zuko``
(MAF, NSF); nothing here is a hand-written flow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

FLOWS = ("maf", "nsf")


def _zuko() -> Any:
    try:
        import zuko
    except ImportError as exc:  # an optional dependency
        raise ImportError("a flow base needs the package zuko: pip install 'lebm[flows]' "
                          "(or pip install zuko)") from exc
    return zuko


class FlowBase(nn.Module):
    """``G(z) = T⁻¹(z)`` and ``log g(x)`` of a ``zuko`` flow on ``dim`` features.

    ``kind`` is ``maf`` (affine autoregressive) or ``nsf`` (rational-quadratic splines),
    ``transforms`` stacked transforms with hidden widths ``hidden``; ``passes=2`` makes
    them coupling layers (fast in both directions) instead of fully autoregressive ones
    (whose inverse, ``G``, takes ``dim`` sequential passes).
    """

    def __init__(self, dim: int, kind: str = "maf", transforms: int = 5,
                 hidden: Sequence[int] = (64, 64), passes: int | None = None) -> None:
        super().__init__()
        if kind not in FLOWS:
            raise ValueError(f"unknown flow {kind!r}; choose one of {', '.join(FLOWS)}")
        zuko = _zuko()
        cls = zuko.flows.MAF if kind == "maf" else zuko.flows.NSF
        self.dim = int(dim)
        self.flow = cls(features=self.dim, transforms=transforms,
                        hidden_features=tuple(hidden), passes=passes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``x = T⁻¹(z)``, shape ``(batch, dim)``."""
        return self.flow().transform.inv(z)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log g(x)``, shape ``(batch,)``."""
        return self.flow().log_prob(x)
