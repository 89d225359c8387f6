"""Estimators, one module each. ``METHODS`` maps a method name to its class; each class
declares its config, its model class, the capabilities it needs and its presets."""

from lebm.methods.abp import ABP
from lebm.methods.base import Batch, Method, OptimizerSpec, Preset, StepOutput
from lebm.methods.gebm import KALE, KALEConfig
from lebm.methods.joint import JointConfig, JointMLE
from lebm.methods.lebm import LEBM, LEBMConfig
from lebm.methods.nce import NCE, NCEConfig
from lebm.methods.svebm import SVEBM, SVEBMConfig
from lebm.methods.vae import VAE, VAEConfig

METHODS: dict[str, type[Method]] = {"lebm": LEBM, "abp": ABP, "vae": VAE, "svebm": SVEBM,
                                    "nce": NCE, "joint": JointMLE, "gebm": KALE}

__all__ = ["ABP", "KALE", "KALEConfig", "LEBM", "METHODS", "NCE", "SVEBM", "VAE", "Batch",
           "JointConfig",
           "JointMLE", "LEBMConfig", "Method", "NCEConfig", "OptimizerSpec", "Preset",
           "SVEBMConfig", "StepOutput", "VAEConfig"]
