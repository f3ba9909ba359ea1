"""Exponential moving average of a network's weights (Yazici et al., ICLR 2019).

    theta_ema <- decay * theta_ema + (1 - decay) * theta        after each generator step

Buffers (batch-norm statistics) are copied, not averaged. The averaged copy samples better
than the last iterate when the generators oscillate around an equilibrium.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def averaged_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` that no optimizer sees and no gradient reaches."""
    return copy.deepcopy(module).requires_grad_(False)


@torch.no_grad()
def update_average(average: nn.Module, module: nn.Module, decay: float) -> None:
    """One EMA step of ``average`` towards ``module``; ``decay = 0`` copies."""
    for avg, current in zip(average.parameters(), module.parameters()):
        if decay == 0.0:
            avg.copy_(current)
        else:
            avg.lerp_(current, 1.0 - decay)
    for avg_buffer, buffer in zip(average.buffers(), module.buffers()):
        avg_buffer.copy_(buffer)
