"""A GAN whose discriminator uses one-sided label smoothing: real targets 0.9 instead of 1."""

import torch
import torch.nn.functional as F

from mgan_lightning.methods import GAN


class SmoothedGAN(GAN):
    """The baseline GAN with one-sided label smoothing in D's loss.

    D minimises ``BCE(D(x), smoothing) + BCE(D(G(z)), 0)``; G's loss is the GAN's.

    Args:
        smoothing: D's target for real samples (1.0 is the plain GAN).
    """

    def __init__(self, smoothing: float = 0.9, **kwargs) -> None:
        if not 0.0 < smoothing <= 1.0:
            raise ValueError(f"model.smoothing must be in (0, 1], got {smoothing}")
        super().__init__(**kwargs)
        self.smoothing = smoothing

    def discriminator_loss(self, real, fake, generator_index):
        real_logits, _ = self.critic(real)
        fake_logits, _ = self.critic(fake)
        real_target = torch.full_like(real_logits, self.smoothing)
        loss = F.binary_cross_entropy_with_logits(real_logits, real_target)
        loss = loss + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        return loss, {"loss/d": loss}
