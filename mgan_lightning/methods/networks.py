"""A method's networks, built from explicit arguments (never from hooks a subclass overrides,
so a constructor needs nothing of its subclass's state)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from mgan_lightning.nets.architecture import Architecture


def build_generators(
    architecture: Architecture,
    num_generators: int,
    latent_dim: int,
    sample_shape: Sequence[int],
    independent: bool,
) -> nn.Module:
    """The K generators: a shared-body bank (MGAN's), or K networks that share no layer."""
    build = architecture.independent_generators if independent else architecture.generator_bank
    return build(num_generators, latent_dim, tuple(sample_shape))
