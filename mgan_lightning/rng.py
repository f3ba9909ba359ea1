"""Randomness owned by the run.

No training code reads torch's global RNG. Every draw comes from a ``torch.Generator``
seeded from a pure function of where it is used::

    seed = derive_seed(run_seed, purpose, rank, position)

so a run resumed at generator step N draws exactly what the uninterrupted run drew at step N
(nothing to save), each DDP process draws its own numbers (``rank`` differs), and an
evaluation that samples with its own generator cannot shift the training stream.
"""

from __future__ import annotations

import os

import torch

_MASK = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """One step of SplitMix64 (Steele et al. 2014): a bijective 64-bit mixer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed that depends on every part (ints, or short strings naming a purpose)."""
    h = 0
    for part in parts:
        value = int.from_bytes(part.encode(), "little") if isinstance(part, str) else int(part)
        h = _splitmix64(h ^ (value & _MASK))
    return h & ((1 << 63) - 1)


def run_seed(default: int = 0) -> int:
    """The seed given to ``seed_everything`` (LightningCLI's ``seed_everything:``), else
    ``default``."""
    value = os.environ.get("PL_GLOBAL_SEED")
    return int(value) if value not in (None, "") else default


def seeded_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh generator on ``device`` seeded with ``seed``."""
    generator = torch.Generator(device=torch.device(device))
    generator.manual_seed(seed)
    return generator
