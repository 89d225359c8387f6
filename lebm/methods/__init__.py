"""Estimators, one module each. ``METHODS`` maps a method name to its class; each class
declares its config, its model class, the capabilities it needs and its presets."""

from lebm.methods.abp import ABP
from lebm.methods.base import Batch, Method, OptimizerSpec, Preset, StepOutput
from lebm.methods.lebm import LEBM, LEBMConfig
from lebm.methods.svebm import SVEBM, SVEBMConfig
from lebm.methods.vae import VAE, VAEConfig

METHODS: dict[str, type[Method]] = {"lebm": LEBM, "abp": ABP, "vae": VAE, "svebm": SVEBM}

__all__ = ["ABP", "LEBM", "METHODS", "SVEBM", "VAE", "Batch", "LEBMConfig", "Method",
           "OptimizerSpec", "Preset", "SVEBMConfig", "StepOutput", "VAEConfig"]
