"""DataModules: Gaussian mixtures (any dimension) and image data sets on one base class."""

from mgan_lightning.data.base import GANDataModule, TensorBatchDataset
from mgan_lightning.data.errors import DataNotFoundError, DataUnreadableError
from mgan_lightning.data.gaussian_mixture import GaussianMixture, GaussianMixture2D
from mgan_lightning.data.mnist import MNIST, StackedMNIST
from mgan_lightning.data.random_images import RandomImages
from mgan_lightning.data.slots import SampleSlots, sample_slot_loader
from mgan_lightning.data.torchvision_images import CIFAR10, STL10, CelebA, ImageFolder

__all__ = [
    "GANDataModule",
    "TensorBatchDataset",
    "DataNotFoundError",
    "DataUnreadableError",
    "GaussianMixture",
    "GaussianMixture2D",
    "MNIST",
    "StackedMNIST",
    "CIFAR10",
    "STL10",
    "CelebA",
    "ImageFolder",
    "RandomImages",
    "SampleSlots",
    "sample_slot_loader",
]
