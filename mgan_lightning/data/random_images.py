"""Random images, nothing to read: the data of smoke tests, timings and examples."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mgan_lightning.data.base import GANDataModule, TensorBatchDataset


class RandomImages(GANDataModule):
    """``num_train`` fixed images, uniform in [-1, 1] and drawn from ``seed`` (every pixel
    independent: no modes, nothing to learn), built in memory at first use. The test split
    is their first ``num_test``. For checking that a configuration runs, timing a step, or
    trying a callback, where real data would only add loading time.

    Args:
        sample_shape: ``(C, H, W)`` of one image.
        num_train / num_test: images in the training split / its first images used for test.
        **kwargs: :class:`~mgan_lightning.data.base.GANDataModule`'s (``batch_size``,
            ``seed``, ...).
    """

    downloadable = False

    def __init__(
        self,
        sample_shape: Sequence[int] = (3, 16, 16),
        num_train: int = 64,
        num_test: int = 16,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        shape = tuple(int(s) for s in sample_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"data.sample_shape must be (C, H, W) >= 1, got {tuple(sample_shape)}")
        if not 1 <= num_test <= num_train:
            raise ValueError(f"data.num_test must be in [1, num_train={num_train}], got {num_test}")
        self.sample_shape = shape
        self.num_train, self.num_test = num_train, num_test

    def setup(self, stage: str | None = None) -> None:
        """Draw the ``num_train`` images once from ``seed`` (labels all 0); the test split is
        their first ``num_test``."""
        if self.train_set is None:
            generator = torch.Generator().manual_seed(self.seed)
            images = torch.rand(self.num_train, *self.sample_shape, generator=generator) * 2 - 1
            labels = torch.zeros(self.num_train, dtype=torch.long)
            self.train_set = TensorBatchDataset(images, labels)
            self.test_set = TensorBatchDataset(images[: self.num_test], labels[: self.num_test])
