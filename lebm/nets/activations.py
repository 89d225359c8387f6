"""Activation functions by name."""

from __future__ import annotations

from torch import nn

ACTIVATIONS = ("gelu", "leaky_relu", "silu", "relu", "tanh")


def make_activation(name: str, leak: float = 0.2) -> nn.Module:
    """Return a fresh activation module; ``leaky_relu`` uses slope ``leak`` (0.2 in LEBM)."""
    if name == "gelu":
        return nn.GELU()
    if name == "leaky_relu":
        return nn.LeakyReLU(leak)
    if name == "silu":
        return nn.SiLU()
    if name == "relu":
        return nn.ReLU()
    if name == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


def output_layers(output: str) -> list[nn.Module]:
    """A generator's last activation: ``[Tanh]`` for ``"tanh"`` (images in [-1, 1]), none
    for ``"identity"``; ``ValueError`` otherwise."""
    if output == "tanh":
        return [nn.Tanh()]
    if output == "identity":
        return []
    raise ValueError(f"unknown generator output {output!r}; choose tanh or identity")
