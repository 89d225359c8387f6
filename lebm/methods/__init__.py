"""Estimators, one module each. ``METHODS`` maps a method name to its class."""

from lebm.methods.abp import ABP
from lebm.methods.base import Method, OptimizerSpec, StepOutput
from lebm.methods.lebm import LEBM, LEBMConfig
from lebm.methods.svebm import SVEBM, SVEBMConfig
from lebm.methods.vae import VAE, VAEConfig

METHODS: dict[str, type] = {"lebm": LEBM, "abp": ABP, "vae": VAE, "svebm": SVEBM}

__all__ = ["ABP", "LEBM", "METHODS", "SVEBM", "VAE", "LEBMConfig", "Method", "OptimizerSpec",
           "SVEBMConfig", "StepOutput", "VAEConfig"]
