"""MNIST and Stacked MNIST on the real MNIST test split (folder: ``MGAN_MNIST_ROOT``)."""

from __future__ import annotations

import pytest
import torch

from mgan_lightning.data.mnist import (
    MNIST,
    StackedMNIST,
    load_mnist_split,
    stacked_mode_digits,
    stacked_mode_ids,
    to_unit_range,
)
from tests.mnist_data import MNIST_DIR, needs_mnist

pytestmark = needs_mnist


@pytest.fixture(scope="module")
def t10k() -> tuple[torch.Tensor, torch.Tensor]:
    return load_mnist_split(MNIST_DIR, "test")


def stacked(seed: int = 0, length: int = 200, image_size: int | None = None) -> StackedMNIST:
    dm = StackedMNIST(
        batch_size=16,
        data_root=str(MNIST_DIR),
        seed=seed,
        length=length,
        test_length=50,
        source_split="test",
        image_size=image_size,
    )
    dm.setup()
    return dm


def test_real_test_split(t10k: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = t10k
    assert images.shape == (10_000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (10_000,)
    assert labels[0].item() == 7  # the known first t10k label
    counts = torch.bincount(labels, minlength=10)
    assert len(counts) == 10 and counts.sum().item() == 10_000 and counts.min().item() > 800
    pixels = to_unit_range(images[:500])
    assert pixels.dtype == torch.float32 and pixels.shape == (500, 1, 28, 28)
    assert pixels.min().item() == -1.0 and pixels.max().item() == 1.0


def test_mnist_datamodule_batches() -> None:
    dm = MNIST(batch_size=32, data_root=str(MNIST_DIR), train_split="test")
    assert dm.sample_shape == (1, 28, 28)
    dm.setup("fit")
    assert dm.train_set is not None and len(dm.train_set) == 10_000
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (32, 1, 28, 28) and labels.shape == (32,)
    assert images.min() >= -1 and images.max() <= 1
    test_images, test_labels = next(iter(dm.test_dataloader()))
    assert test_labels[0].item() == 7  # test loader is sequential over t10k


def test_mnist_resize_to_32() -> None:
    dm = MNIST(batch_size=8, data_root=str(MNIST_DIR), train_split="test", image_size=32)
    assert dm.sample_shape == (1, 32, 32)  # known before setup, for the CLI
    images, _ = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 1, 32, 32)
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0.3


def test_stacked_channels_are_the_drawn_digits(t10k: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = t10k
    dm = stacked()
    dataset = dm.train_set
    items = [0, 7, 199]
    batch, modes = dataset[items]
    assert batch.shape == (3, 3, 28, 28)
    for row, i in enumerate(items):
        for k in range(3):
            digit = dataset.indices[i, k]
            assert torch.equal(batch[row, k], to_unit_range(images[digit : digit + 1])[0, 0])
        a, b, c = (labels[dataset.indices[i]]).tolist()
        assert modes[row].item() == 100 * a + 10 * b + c
    assert torch.equal(dataset.digit_labels()[items], labels[dataset.indices[items]])


def test_stacked_reproducible_from_seed() -> None:
    first, again, other = stacked(seed=3), stacked(seed=3), stacked(seed=4)
    assert torch.equal(first.train_set.indices, again.train_set.indices)
    assert torch.equal(first.train_set[list(range(10))][0], again.train_set[list(range(10))][0])
    assert not torch.equal(first.train_set.indices, other.train_set.indices)
    assert not torch.equal(first.train_set.indices[:50], first.test_set.indices)


def test_stacked_global_rng_untouched() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    stacked(seed=1)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("length", [1, 37, 100_000])
def test_stacked_any_length(length: int) -> None:
    dm = stacked(length=length, image_size=32)
    assert len(dm.train_set) == length
    assert dm.sample_shape == (3, 32, 32)
    images, modes = dm.train_set[[length - 1]]
    assert images.shape == (1, 3, 32, 32) and modes.shape == (1,)
    image, mode = dm.train_set[length - 1]  # a single index works too
    assert image.shape == (3, 32, 32) and mode.ndim == 0


def test_stacked_loader_batches() -> None:
    images, modes = next(iter(stacked(image_size=32).train_dataloader()))
    assert images.shape == (16, 3, 32, 32) and images.dtype == torch.float32
    assert modes.shape == (16,) and modes.min() >= 0 and modes.max() < 1000


def test_stacked_covers_modes() -> None:
    modes = stacked(length=26_000).train_set.mode_ids()
    assert modes.min() >= 0 and modes.max() <= 999
    assert len(torch.unique(modes)) >= 990  # ~26 draws per mode: all but a few show up


def test_mode_id_round_trip() -> None:
    digits = torch.tensor([[0, 0, 0], [1, 2, 3], [9, 9, 9]])
    ids = stacked_mode_ids(digits)
    assert ids.tolist() == [0, 123, 999]
    assert torch.equal(stacked_mode_digits(ids), digits)
