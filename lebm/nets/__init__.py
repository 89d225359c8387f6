"""Plain ``nn.Module`` building blocks: energy MLPs and generators.

Networks here know nothing about densities or sampling; ``lebm.priors`` and
``lebm.likelihoods`` give them their probabilistic meaning.
"""

from lebm.nets.activations import ACTIVATIONS, make_activation
from lebm.nets.encoders import ENCODERS, ConvEncoder, MLPEncoder, build_encoder, reparameterize
from lebm.nets.energy import DATA_ENERGIES, ConvEnergy, EnergyMLP, build_data_energy
from lebm.nets.generators import (
    GENERATORS,
    IMAGE_GENERATORS,
    ConvGenerator,
    MLPGenerator,
    build_generator,
)
from lebm.nets.layers import BottomLayerGenerator, ConditionalGaussian, LadderGenerator
from lebm.nets.text import GRUDecoder, GRUEncoder

__all__ = [
    "ACTIVATIONS",
    "BottomLayerGenerator",
    "LadderGenerator",
    "ConditionalGaussian",
    "ENCODERS",
    "ConvEncoder",
    "MLPEncoder",
    "build_encoder",
    "GENERATORS",
    "IMAGE_GENERATORS",
    "GRUDecoder",
    "GRUEncoder",
    "ConvGenerator",
    "EnergyMLP",
    "ConvEnergy",
    "DATA_ENERGIES",
    "build_data_energy",
    "MLPGenerator",
    "build_generator",
    "make_activation",
    "reparameterize",
]
