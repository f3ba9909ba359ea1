"""Latent priors. Every prior is an ``nn.Module`` (so any state it has is checkpointed)
with one contract: ``sample(n, dim, generator) -> Tensor[n, dim]`` on the prior's device.

Training passes the method's own ``torch.Generator`` (see :mod:`mgan_lightning.rng`), so a
prior must draw from ``generator`` and never from the global RNG when one is given."""

from __future__ import annotations

import torch
from torch import nn


class LatentPrior(nn.Module):
    """Base class. A subclass overrides :meth:`sample`."""

    _device_anchor: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        # An empty buffer tells the prior which device it lives on.
        self.register_buffer("_device_anchor", torch.empty(0), persistent=False)

    @property
    def device(self) -> torch.device:
        return self._device_anchor.device

    def sample(self, n: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError


class NormalPrior(LatentPrior):
    """z ~ N(0, std^2 I)."""

    def __init__(self, std: float = 1.0) -> None:
        super().__init__()
        if std <= 0:
            raise ValueError(f"NormalPrior.std must be > 0, got {std}")
        self.std = std

    def sample(self, n: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, dim, device=self.device, generator=generator) * self.std


class UniformPrior(LatentPrior):
    """z ~ U[low, high]^dim (MGAN uses U[-1, 1])."""

    def __init__(self, low: float = -1.0, high: float = 1.0) -> None:
        super().__init__()
        if not high > low:
            raise ValueError(f"UniformPrior needs high > low, got low={low}, high={high}")
        self.low = low
        self.high = high

    def sample(self, n: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.empty(n, dim, device=self.device)
        return z.uniform_(self.low, self.high, generator=generator)
