"""Model kinds (``MODEL_CLASSES``), their shared base and settings, and loading."""

from lebm.models.base import (
    INFERENCE,
    MODEL_CLASSES,
    MODEL_FORMAT,
    LatentModel,
    load_model,
    read_model_meta,
    read_weights,
    register_model,
)
from lebm.models.config import CHAIN_DTYPES, ChainConfig, PrecisionConfig
from lebm.models.gebm import GEBM, DataEnergyPrior, GEBMConfig
from lebm.models.hierarchical import HierarchicalConfig, HierarchicalEBM
from lebm.models.latent_ebm import LatentEBM, ModelConfig

__all__ = ["CHAIN_DTYPES", "INFERENCE", "MODEL_CLASSES", "MODEL_FORMAT", "ChainConfig",
           "DataEnergyPrior", "GEBM", "GEBMConfig",
           "HierarchicalConfig", "HierarchicalEBM", "LatentEBM", "LatentModel", "ModelConfig",
           "PrecisionConfig", "load_model",
           "read_model_meta", "read_weights", "register_model"]
