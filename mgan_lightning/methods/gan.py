"""The single-generator baseline GAN with the non-saturating loss (Goodfellow et al. 2014)."""

from __future__ import annotations

import torch

from mgan_lightning import losses
from mgan_lightning.methods.base import GANMethod


class GAN(GANMethod):
    """Algorithm 1 of Goodfellow et al. (2014) with the non-saturating G loss:

    D minimises ``E_data[-log D(x)] + E_z[-log(1 - D(G(z)))]``;
    G minimises ``E_z[-log D(G(z))]``.
    With ``num_generators > 1`` it is a plain uniform mixture of generators with no
    diversity term (useful as an ablation of MGAN).
    """

    def discriminator_loss(self, real, fake, generator_index):
        """D's loss ``E_data[-log D(x)] + E_z[-log(1 - D(G(z)))]`` on the critic's real/fake
        logits, and ``{"loss/d": loss}`` to log."""
        real_logits, _ = self.critic(real)
        fake_logits, _ = self.critic(fake)
        loss = losses.discriminator_loss(real_logits, fake_logits)
        return loss, {"loss/d": loss}

    def generator_loss(self, fake, generator_index, z):
        """G's non-saturating loss ``E_z[-log D(G(z))]``, and ``{"loss/g": loss}`` to log."""
        fake_logits, _ = self.critic(fake)
        loss = losses.generator_loss_nonsaturating(fake_logits)
        return loss, {"loss/g": loss}

    def forward(self, n: int) -> torch.Tensor:
        """``n`` samples of the mixture."""
        return self.sample(n)[0]
