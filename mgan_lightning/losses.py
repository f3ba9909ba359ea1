"""Loss functions: pure functions of tensors (no modules, no state).

All adversarial losses take logits and use ``softplus`` for numerical safety:
``-log sigmoid(t) = softplus(-t)`` and ``-log(1 - sigmoid(t)) = softplus(t)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Goodfellow et al. (2014), eq. 1, as D minimises it:
    ``E_data[-log D(x)] + E_model[-log(1 - D(x))]``."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss ``E_z[-log D(G(z))]`` (Goodfellow et al. 2014, sec. 3)."""
    return F.softplus(-fake_logits).mean()
