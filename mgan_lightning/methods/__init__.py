"""Methods: one LightningModule per paper, all on the skeleton in ``base.py``."""

from mgan_lightning.methods.base import GANMethod, NonFiniteLossError
from mgan_lightning.methods.bourgan import BourGAN
from mgan_lightning.methods.gan import GAN
from mgan_lightning.methods.mgan import MGAN
from mgan_lightning.methods.mimgan import MIMGAN
from mgan_lightning.methods.mwu import MWU
from mgan_lightning.methods.pmgan import PMGAN

__all__ = ["GANMethod", "GAN", "BourGAN", "MGAN", "MIMGAN", "MWU", "PMGAN", "NonFiniteLossError"]
