"""ABP baseline: alternating back-propagation (Han et al. 2017) on the same generator.

The generator model with the Gaussian prior ``N(0, σ0² I)`` (``f ≡ 0``), learned by
LEBM's update: posterior ``z`` by short-run Langevin on ``−‖z‖²/(2σ0²) − ‖x − g(z)‖²/(2σ²)``,
then one gradient step on ``‖x − g(z)‖²``. No prior chain, no energy network.
"""

from __future__ import annotations

from typing import ClassVar

from lebm.errors import ConfigError
from lebm.methods.lebm import LEBM, LEBMConfig
from lebm.models import LatentEBM


class ABP(LEBM):
    """LEBM's estimator restricted to the Gaussian prior."""

    name: ClassVar[str] = "abp"

    def __init__(self, model: LatentEBM, config: LEBMConfig) -> None:
        if model.prior.has_energy:
            raise ConfigError("method abp needs model.prior=gaussian")
        super().__init__(model, config)
