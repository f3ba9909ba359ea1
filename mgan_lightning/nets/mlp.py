"""Fully connected networks for low-dimensional (e.g. 2D) data."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from mgan_lightning.nets.architecture import Architecture
from mgan_lightning.nets.critic import Critic
from mgan_lightning.nets.generator_bank import GeneratorBank


class MLP(Architecture):
    """G: ``z -> [per-generator Linear+ReLU] -> (Linear+ReLU) x (g_layers-1) -> Linear``;
    D/C: ``x -> (Linear+LeakyReLU) x d_layers -> heads``.

    The defaults (128 wide, two hidden layers each) are the PacGAN/MGAN 2D networks.
    """

    def __init__(
        self,
        g_hidden: int = 128,
        g_layers: int = 2,
        d_hidden: int = 128,
        d_layers: int = 2,
        leaky_slope: float = 0.2,
    ) -> None:
        sizes = dict(g_hidden=g_hidden, g_layers=g_layers, d_hidden=d_hidden, d_layers=d_layers)
        for name, value in sizes.items():
            if value < 1:
                raise ValueError(
                    f"MLP.{name} (model.architecture.{name}) must be >= 1, got {value}"
                )
        self.g_hidden, self.g_layers = g_hidden, g_layers
        self.d_hidden, self.d_layers = d_hidden, d_layers
        self.leaky_slope = leaky_slope

    def generator_bank(
        self, num_generators: int, latent_dim: int, sample_shape: Sequence[int]
    ) -> GeneratorBank:
        """K MLP generators: a per-generator input layer, shared hidden layers."""
        out = math.prod(sample_shape)
        layers: list[nn.Module] = []
        for _ in range(self.g_layers - 1):
            layers += [nn.Linear(self.g_hidden, self.g_hidden), nn.ReLU()]
        layers += [nn.Linear(self.g_hidden, out), nn.Unflatten(1, tuple(sample_shape))]
        return GeneratorBank(num_generators, latent_dim, self.g_hidden, nn.Sequential(*layers))

    def critic(self, sample_shape: Sequence[int], num_classes: int = 0) -> Critic:
        """The MLP critic, with a classifier head when ``num_classes > 0``."""
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(sample_shape)
        for _ in range(self.d_layers):
            layers += [nn.Linear(width, self.d_hidden), nn.LeakyReLU(self.leaky_slope)]
            width = self.d_hidden
        return Critic(nn.Sequential(*layers), self.d_hidden, num_classes)
