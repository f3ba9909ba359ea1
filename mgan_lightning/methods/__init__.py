"""Methods: one LightningModule per paper, all on the skeleton in ``base.py``."""

from mgan_lightning.methods.base import GANMethod, NonFiniteLossError
from mgan_lightning.methods.gan import GAN

__all__ = ["GANMethod", "GAN", "NonFiniteLossError"]
