"""``GANDataModule.subsample``: seeded, distinct training examples, the same on every call
with the same seed, for in-memory and per-item datasets."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from mgan_lightning.data import GaussianMixture2D
from mgan_lightning.data.base import GANDataModule


def test_subsample_is_seeded_distinct_and_from_the_training_split() -> None:
    data = GaussianMixture2D(preset="grid", num_train=500, num_test=50, batch_size=10)
    a = data.subsample(100, seed=3)
    assert a.shape == (100, 2)
    assert torch.equal(a, data.subsample(100, seed=3))
    assert not torch.equal(a, data.subsample(100, seed=4))
    train = data.train_set.tensors[0]
    # every row is a training row, and no row is taken twice
    match = (a[:, None, :] == train[None, :, :]).all(-1)
    assert (match.sum(1) >= 1).all()
    assert len(torch.unique(match.float().argmax(1))) == 100
    assert data.num_train_examples() == 500
    with pytest.raises(ValueError, match="training split has 500"):
        data.subsample(501, seed=0)


class Items(Dataset):
    """A per-item dataset that returns (image, label) like torchvision's."""

    def __len__(self) -> int:
        return 40

    def __getitem__(self, i: int):
        return torch.full((1, 2, 2), float(i)), i


class ItemData(GANDataModule):
    sample_shape = (1, 2, 2)

    def setup(self, stage: str | None = None) -> None:
        self.train_set = Items()


def test_subsample_of_a_per_item_dataset_stacks_the_examples() -> None:
    data = ItemData(batch_size=4)
    sub = data.subsample(10, seed=1)
    assert sub.shape == (10, 1, 2, 2)
    chosen = sub[:, 0, 0, 0].long()
    assert len(set(chosen.tolist())) == 10
    assert torch.equal(chosen, torch.randperm(40, generator=torch.Generator().manual_seed(1))[:10])
