"""Methods: one LightningModule per paper, all on the skeleton in ``base.py``."""

from mgan_lightning.methods.base import GANMethod, NonFiniteLossError
from mgan_lightning.methods.bourgan import BourGAN
from mgan_lightning.methods.gan import GAN
from mgan_lightning.methods.mgan import MGAN
from mgan_lightning.methods.mimgan import MIMGAN

__all__ = ["GANMethod", "GAN", "BourGAN", "MGAN", "MIMGAN", "NonFiniteLossError"]
