"""An architecture builds the generator bank and the critic for a given data shape.

Methods take an ``Architecture`` object (chosen in YAML with ``class_path``), so a new
network family is a new subclass, not a new string in a dispatch table."""

from __future__ import annotations

from collections.abc import Sequence

from mgan_lightning.nets.critic import Critic
from mgan_lightning.nets.generator_bank import GeneratorBank
from mgan_lightning.nets.independent import IndependentGenerators


class Architecture:
    """Builds networks. Subclasses implement both methods."""

    def generator_bank(
        self, num_generators: int, latent_dim: int, sample_shape: Sequence[int]
    ) -> GeneratorBank:
        """K generators that share every layer but the first."""
        raise NotImplementedError

    def critic(self, sample_shape: Sequence[int], num_classes: int = 0) -> Critic:
        """The critic: a body, a real/fake head and, when ``num_classes > 0``, a classifier head."""
        raise NotImplementedError

    def independent_generators(
        self, num_generators: int, latent_dim: int, sample_shape: Sequence[int]
    ) -> IndependentGenerators:
        """K generators that share no layer: each one is this architecture's one-generator
        bank, initialised on its own."""
        shape = tuple(sample_shape)
        return IndependentGenerators(
            lambda: self.generator_bank(1, latent_dim, shape), num_generators
        )
