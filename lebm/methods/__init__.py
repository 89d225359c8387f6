"""Estimators, one module each. ``METHODS`` maps a method name to its class."""

from lebm.methods.abp import ABP
from lebm.methods.base import Method, OptimizerSpec, StepOutput
from lebm.methods.lebm import LEBM, LEBMConfig
from lebm.methods.vae import VAE, VAEConfig

METHODS: dict[str, type] = {"lebm": LEBM, "abp": ABP, "vae": VAE}

__all__ = ["ABP", "LEBM", "METHODS", "VAE", "LEBMConfig", "Method", "OptimizerSpec",
           "StepOutput", "VAEConfig"]
