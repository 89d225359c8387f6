"""Estimators, one module each. ``METHODS`` maps a method name to its class."""

from lebm.methods.base import Method, OptimizerSpec, StepOutput
from lebm.methods.lebm import LEBM, LEBMConfig

METHODS: dict[str, type] = {"lebm": LEBM}

__all__ = ["LEBM", "METHODS", "LEBMConfig", "Method", "OptimizerSpec", "StepOutput"]
