"""ABP baseline: alternating back-propagation (Han et al. 2017) on the same generator.

The generator model with the Gaussian prior ``N(0, σ0² I)`` (``f ≡ 0``), learned by
LEBM's update: posterior ``z`` by the short-run posterior chain on
``−‖z‖²/(2σ0²) + log p(x | g(z))``, then one gradient step on the likelihood's data term.
No prior chain, no energy network. Every LEBM preset has an ``abp-`` twin.
"""

from __future__ import annotations

from typing import ClassVar

from lebm.methods.base import Preset
from lebm.methods.lebm import BASE_PRESETS, LEBM


def abp_twin(name: str, p: Preset) -> Preset:
    """The ABP baseline of a LEBM preset: its data and generator, a Gaussian prior."""
    over = {k: dict(v) for k, v in p.overrides.items()}
    over.setdefault("model", {})["prior"] = "gaussian"
    return Preset(f"ABP baseline of '{name}': its generator, Gaussian prior, posterior "
                  "Langevin", "abp", over)


class ABP(LEBM):
    """LEBM's estimator restricted to the Gaussian prior."""

    name: ClassVar[str] = "abp"
    requires: ClassVar[frozenset[str]] = frozenset({"gaussian"})

    @classmethod
    def presets(cls) -> dict[str, Preset]:
        return {f"abp-{k}": abp_twin(k, v) for k, v in BASE_PRESETS.items()}
