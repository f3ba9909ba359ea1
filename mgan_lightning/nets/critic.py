"""The critic: one shared body with a real/fake head and an optional classifier head."""

from __future__ import annotations

import torch
from torch import nn


class Critic(nn.Module):
    """Discriminator D and classifier C sharing every layer but the last (MGAN, sec. 3.1).

    ``forward(x)`` returns ``(d_logits[N], c_logits[N, num_classes] or None)``.
    The classifier head draws its initial weights from a forked random state, so adding it
    changes no other random draw: a K=1 MGAN and a GAN from the same seed start from the
    same weights and then see the same data order and latents.
    """

    def __init__(self, body: nn.Module, feature_dim: int, num_classes: int = 0) -> None:
        super().__init__()
        self.body = body
        self.real_fake = nn.Linear(feature_dim, 1)
        self.classifier: nn.Linear | None = None
        if num_classes > 0:
            with torch.random.fork_rng(devices=[]):
                self.classifier = nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's real/fake logits ``(N,)`` and C's class logits ``(N, num_classes)`` (or ``None``)."""
        features = self.body(x)
        d_logits = self.real_fake(features).squeeze(-1)
        c_logits = self.classifier(features) if self.classifier is not None else None
        return d_logits, c_logits
