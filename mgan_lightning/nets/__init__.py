"""Networks: architectures (MLP, DCGAN), the generator bank, the critic and mixture
normalization."""

from mgan_lightning.nets.architecture import Architecture
from mgan_lightning.nets.critic import Critic
from mgan_lightning.nets.dcgan import DCGAN
from mgan_lightning.nets.generator_bank import GeneratorBank
from mgan_lightning.nets.independent import IndependentGenerators
from mgan_lightning.nets.mixture_norm import MixtureNorm, MixtureNorm1d, MixtureNorm2d
from mgan_lightning.nets.mlp import MLP

__all__ = [
    "MLP",
    "DCGAN",
    "Architecture",
    "Critic",
    "GeneratorBank",
    "IndependentGenerators",
    "MixtureNorm",
    "MixtureNorm1d",
    "MixtureNorm2d",
]
