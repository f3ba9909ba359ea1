"""A tiny image GAN and in-memory image data (the library's RandomImages) for the callback
tests."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger

from mgan_lightning.data import RandomImages
from mgan_lightning.methods import GAN
from mgan_lightning.nets import DCGAN


def tiny_gan(shape=(3, 16, 16), k: int = 3) -> GAN:
    torch.manual_seed(0)
    return GAN(sample_shape=shape, num_generators=k, latent_dim=8, architecture=DCGAN(width=4))


def make_trainer(tmp_path, callbacks, generator_steps: int = 4, **kwargs) -> Trainer:
    return Trainer(
        max_steps=2 * generator_steps,  # one D and one G optimizer step per training step
        accelerator="cpu",
        devices=1,
        logger=CSVLogger(tmp_path, name="logs"),
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **kwargs,
    )


@pytest.fixture
def data() -> RandomImages:
    return RandomImages(batch_size=16)


@pytest.fixture
def gan_factory():
    return tiny_gan


@pytest.fixture
def trainer_factory():
    return make_trainer
