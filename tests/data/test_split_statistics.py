"""Every DataModule's train and test splits have the statistics its docstring claims.

Shape and dtype checks elsewhere cannot tell a mixture drawn with the wrong weights, a
holdout cut in the wrong place or Stacked-MNIST channels paired with the wrong labels from
correct data; these tests measure the drawn data instead:

- GaussianMixture2D (ring, grid, custom means/std/weights): mode frequencies against the
  weights (chi-square), per-mode mean, std and isotropy, train and test being two draws of
  one distribution (chi-square homogeneity, two-sample KS) that share no point;
- MNIST on the real t10k split (folder: ``MGAN_MNIST_ROOT``): range, shape, label balance, the
  ``holdout`` cut and ``image_size``;
- StackedMNIST: channel images and mode ids against the MNIST labels, mode frequencies
  against the product of the digit frequencies, seeding;
- ImageFolder on PNGs written here: exact pixel scaling, resize of the short side plus
  centre crop, labels, ``test_root``;
- the training loader under two DDP ranks: disjoint equal shares, a new order each epoch.

Every draw uses a fixed seed, so each p-value below is a constant; ``P_MIN`` and the other
tolerances are stated where they are used.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from mgan_lightning.data import MNIST, GaussianMixture2D, ImageFolder, StackedMNIST
from mgan_lightning.data.mnist import load_mnist_split, to_unit_range
from tests.mnist_data import MNIST_DIR, needs_mnist

P_MIN = 1e-3  # smallest accepted p-value of a goodness-of-fit test

# ---------------------------------------------------------------- Gaussian mixtures

MIXTURES = {
    "ring": {"preset": "ring"},
    "grid": {"preset": "grid"},
    "custom": {
        "preset": None,
        "means": [[0.0, 0.0], [3.0, 1.0], [-2.0, 5.0], [4.0, -3.0]],
        "std": 0.2,
        "weights": [5.0, 3.0, 2.0, 0.0],  # a zero weight: that mode never appears
    },
}


@pytest.fixture(scope="module", params=list(MIXTURES))
def mixture(request) -> GaussianMixture2D:
    dm = GaussianMixture2D(**MIXTURES[request.param], num_train=40_000, num_test=20_000, seed=11)
    dm.setup()
    return dm


def _split(dm, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    return (dm.train_set if split == "train" else dm.test_set).tensors


@pytest.mark.parametrize("split", ["train", "test"])
def test_mixture_mode_frequencies_match_the_weights(mixture, split: str) -> None:
    points, modes = _split(mixture, split)
    assert len(points) == (mixture.num_train if split == "train" else mixture.num_test)
    # Each point's mode is its nearest mean (means are >= 15 std apart in all three mixtures).
    assert torch.equal(torch.cdist(points.double(), mixture.modes.double()).argmin(1), modes)
    counts = torch.bincount(modes, minlength=len(mixture.modes)).double()
    weights = mixture.mode_weights.double()
    assert counts[weights == 0].sum() == 0
    live = weights > 0
    expected = len(points) * weights[live] / weights[live].sum()
    assert stats.chisquare(counts[live].numpy(), expected.numpy()).pvalue > P_MIN


@pytest.mark.parametrize("split", ["train", "test"])
def test_mixture_modes_have_the_claimed_mean_and_std(mixture, split: str) -> None:
    points, modes = _split(mixture, split)
    std = mixture.mode_std
    for k in torch.nonzero(mixture.mode_weights > 0).flatten().tolist():
        rows = points[modes == k].double()
        n = len(rows)
        # Tolerance: 5 standard errors; of a mean std/sqrt(n), of a sample std
        # std/sqrt(2(n-1)), of a correlation 1/sqrt(n).
        assert (rows.mean(0) - mixture.modes[k]).abs().max() < 5 * std / math.sqrt(n)
        assert (rows.std(0) - std).abs().max() < 5 * std / math.sqrt(2 * (n - 1))
        assert abs(torch.corrcoef(rows.T)[0, 1]) < 5 / math.sqrt(n)  # isotropic


def test_mixture_train_and_test_are_two_draws_of_one_distribution(mixture) -> None:
    (train, train_modes), (test, test_modes) = _split(mixture, "train"), _split(mixture, "test")
    live = mixture.mode_weights > 0
    m = len(mixture.modes)
    table = torch.stack(
        [torch.bincount(train_modes, minlength=m), torch.bincount(test_modes, minlength=m)]
    )
    assert stats.chi2_contingency(table[:, live].numpy()).pvalue > P_MIN
    train_noise = (train - mixture.modes[train_modes]).numpy()
    test_noise = (test - mixture.modes[test_modes]).numpy()
    for axis in (0, 1):
        assert stats.ks_2samp(train_noise[:, axis], test_noise[:, axis]).pvalue > P_MIN
    # Not the same points: no point occurs twice within or across the splits.
    assert len(torch.unique(torch.cat([train, test]), dim=0)) == len(train) + len(test)


@pytest.mark.parametrize("num_test", [0, -5])
def test_mixture_rejects_an_empty_test_split_when_built(num_test: int) -> None:
    # Like data.num_train here and data.test_length in StackedMNIST: a ValueError naming
    # the field when the DataModule is built (the CLI turns it into a one-line error).
    with pytest.raises(ValueError, match=r"data\.num_test"):
        GaussianMixture2D(num_train=256, num_test=num_test)


# ---------------------------------------------------------------- MNIST


@pytest.fixture(scope="module")
def t10k() -> tuple[torch.Tensor, torch.Tensor]:
    return load_mnist_split(MNIST_DIR, "test")


def assert_balanced(labels: torch.Tensor, tol: float = 0.03) -> None:
    """Every digit's frequency within ``tol`` of 1/10 (t10k itself spans 0.089..0.114)."""
    freq = torch.bincount(labels, minlength=10).double() / len(labels)
    assert len(freq) == 10 and (freq - 0.1).abs().max() < tol, freq.tolist()


@needs_mnist
def test_mnist_splits_are_t10k_scaled_to_unit_range(t10k) -> None:
    images, labels = t10k
    dm = MNIST(data_root=str(MNIST_DIR), train_split="test")  # holdout=0: test is t10k too
    dm.setup()
    for x, y in (dm.train_set.tensors, dm.test_set.tensors):
        assert x.shape == (10_000, 1, 28, 28) and x.dtype == torch.float32
        assert x.min() == -1 and x.max() == 1
        # Exactly the stored bytes p, as p / 127.5 - 1.
        assert torch.allclose((x + 1) * 127.5, images.unsqueeze(1).float(), atol=1e-4)
        assert torch.equal(y, labels)
        assert_balanced(y)


@needs_mnist
def test_mnist_resized_keeps_range_and_mean_intensity() -> None:
    full = MNIST(data_root=str(MNIST_DIR), train_split="test")
    big = MNIST(data_root=str(MNIST_DIR), train_split="test", image_size=32)
    full.setup("fit")
    big.setup("fit")
    x28, x32 = full.train_set.tensors[0], big.train_set.tensors[0]
    assert x32.shape == (10_000, *big.sample_shape) == (10_000, 1, 32, 32)
    assert x32.min() == -1 and 0.99 < x32.max() <= 1
    # Antialiased bilinear resizing keeps the mean intensity (tolerance 0.01 of a 2-wide range).
    assert abs(x32.mean() - x28.mean()) < 0.01


@needs_mnist
def test_mnist_holdout_cuts_the_training_split_without_overlap(t10k) -> None:
    images, labels = t10k
    dm = MNIST(batch_size=500, data_root=str(MNIST_DIR), train_split="test", holdout=2000)
    dm.setup()
    train_x, train_y = dm.train_set.tensors
    test_x, test_y = dm.test_set.tensors
    assert torch.equal(train_y, labels[:8000]) and torch.equal(test_y, labels[8000:])
    assert torch.equal(train_x, to_unit_range(images[:8000]))
    assert torch.equal(test_x, to_unit_range(images[8000:]))
    assert_balanced(train_y)
    assert_balanced(test_y, tol=0.04)  # 2,000 items: binomial sd of a frequency ~0.007
    # The test loader reads the held-out items in order.
    assert torch.equal(torch.cat([y for _, y in dm.test_dataloader()]), labels[8000:])


@needs_mnist
def test_mnist_holdout_test_stage_and_limits() -> None:
    dm = MNIST(data_root=str(MNIST_DIR), train_split="test", holdout=2000)
    dm.setup("test")
    assert dm.train_set is None and len(dm.test_set) == 2000
    with pytest.raises(ValueError, match=r"data\.holdout=10000"):
        MNIST(data_root=str(MNIST_DIR), train_split="test", holdout=10_000).setup("fit")


# ---------------------------------------------------------------- Stacked MNIST


def stacked(seed: int = 0, length: int = 100_000, test_length: int = 20_000) -> StackedMNIST:
    dm = StackedMNIST(
        data_root=str(MNIST_DIR),
        seed=seed,
        length=length,
        test_length=test_length,
        source_split="test",
        image_size=32,
    )
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def stacked_draw() -> StackedMNIST:
    return stacked()


@needs_mnist
def test_stacked_channels_and_mode_ids_follow_the_digits(stacked_draw, t10k) -> None:
    images, labels = t10k
    for dataset in (stacked_draw.train_set, stacked_draw.test_set):
        digits = labels[dataset.indices]
        assert torch.equal(dataset.digit_labels(), digits)
        ids = dataset.mode_ids()
        assert torch.equal(ids, 100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2])
        assert ids.min() >= 0 and ids.max() <= 999
    batch, modes = next(iter(stacked_draw.test_dataloader()))  # sequential
    test = stacked_draw.test_set
    assert batch.shape == (64, 3, 32, 32) and batch.min() >= -1 and batch.max() <= 1
    assert torch.equal(modes, test.mode_ids()[:64])
    expected = to_unit_range(images[test.indices[:64].reshape(-1)], 32).view(64, 3, 32, 32)
    assert torch.allclose(batch, expected, atol=1e-6)


@needs_mnist
def test_stacked_modes_are_uniform_up_to_the_digit_frequencies(stacked_draw, t10k) -> None:
    p = torch.bincount(t10k[1], minlength=10).double() / len(t10k[1])
    # Mode 100a + 10b + c has probability p_a p_b p_c: index order of the outer product.
    expected = torch.einsum("i,j,k->ijk", p, p, p).reshape(1000)
    for dataset in (stacked_draw.train_set, stacked_draw.test_set):
        n = len(dataset)
        digits = dataset.digit_labels()
        for channel in range(3):
            counts = torch.bincount(digits[:, channel], minlength=10)
            assert stats.chisquare(counts.numpy(), (n * p).numpy()).pvalue > P_MIN
        counts = torch.bincount(dataset.mode_ids(), minlength=1000)
        assert stats.chisquare(counts.numpy(), (n * expected).numpy()).pvalue > P_MIN
    # Roughly uniform: t10k's imbalance puts modes at 0.71..1.46 of 1/1000; with ~100 draws
    # per mode every count lies within 0.4..2.5 of n/1000.
    ratio = torch.bincount(stacked_draw.train_set.mode_ids(), minlength=1000) / 100.0
    assert ratio.min() > 0.4 and ratio.max() < 2.5


@needs_mnist
def test_stacked_draws_are_seeded() -> None:
    first, again, other = stacked(3, 500, 500), stacked(3, 500, 500), stacked(4, 500, 500)
    assert torch.equal(first.train_set.indices, again.train_set.indices)
    assert torch.equal(first.test_set.indices, again.test_set.indices)
    assert not torch.equal(first.train_set.indices, other.train_set.indices)
    assert not torch.equal(first.train_set.indices, first.test_set.indices)
    # Seed s's test stream (2s + 1) is not seed s + 1's training stream (2s + 2).
    assert not torch.equal(first.test_set.indices, other.train_set.indices)


# ---------------------------------------------------------------- ImageFolder


def _png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def test_image_folder_scales_resizes_and_centre_crops(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    noise[0, 0], noise[0, 1] = 0, 255
    _png(tmp_path / "a_noise" / "0.png", noise)  # already 16 px: no resampling
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, 20:40] = 255  # black | white | black thirds
    _png(tmp_path / "b_wide" / "0.png", wide)
    _png(tmp_path / "b_wide" / "1.png", np.full((30, 40), 64, np.uint8))  # grayscale
    dm = ImageFolder(batch_size=3, data_root=str(tmp_path), image_size=16)
    images, labels = next(iter(dm.test_dataloader()))  # no test_root: the training folder
    assert images.shape == (3, 3, 16, 16) and labels.tolist() == [0, 1, 1]
    assert images.min() == -1 and images.max() == 1
    exact = torch.from_numpy(noise).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.allclose(images[0], exact, atol=1e-6)
    # Short side to 16 (60x20 -> 48x16), then the centre 16 columns: the white third.
    # A squashing resize would keep the black thirds; only the edge columns blend (>= 0.8).
    assert torch.all(images[1][:, :, 1:-1] == 1) and images[1].min() > 0.8
    assert torch.allclose(images[2], torch.full((3, 16, 16), 64 / 127.5 - 1), atol=1e-6)


def test_image_folder_test_root_is_its_own_split(tmp_path: Path) -> None:
    for split, count in (("train", 4), ("test", 2)):
        for cls, value in (("dark", 10), ("light", 240)):
            for i in range(count):
                _png(tmp_path / split / cls / f"{i}.png", np.full((24, 24, 3), value, np.uint8))
    dm = ImageFolder(
        batch_size=2,
        data_root=str(tmp_path / "train"),
        test_root=str(tmp_path / "test"),
        image_size=8,
    )
    dm.setup()
    assert len(dm.train_set) == 8 and len(dm.test_set) == 4
    test = list(dm.test_dataloader())
    labels = torch.cat([y for _, y in test])
    means = torch.cat([x.mean((1, 2, 3)) for x, _ in test])
    assert labels.tolist() == [0, 0, 1, 1]
    assert torch.allclose(means, torch.tensor([10, 10, 240, 240]) / 127.5 - 1, atol=1e-6)


# ---------------------------------------------------------------- training order


def _rank_reads(monkeypatch, rank: int, epochs: int = 2) -> list[list[int]]:
    """Indices of the training items rank ``rank`` of 2 reads in each epoch."""
    monkeypatch.setenv("PL_GLOBAL_SEED", "5")  # the run's seed: the same on both ranks
    dm = GaussianMixture2D(num_train=1000, num_test=10, batch_size=32)
    progress = SimpleNamespace(current=SimpleNamespace(ready=0))
    dm.trainer = SimpleNamespace(
        global_rank=rank,
        world_size=2,
        fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress)),
    )
    loader = dm.train_dataloader()
    assert dm.order_seed == 5 and len(loader) == 1000 // 2 // 32
    row_of = {tuple(p.tolist()): i for i, p in enumerate(dm.train_set.tensors[0])}
    reads = []
    for epoch in range(epochs):
        loader.batch_sampler.set_epoch(epoch)  # what Lightning does at each epoch start
        reads.append([row_of[tuple(p.tolist())] for x, _ in loader for p in x])
    return reads


def test_two_ranks_read_disjoint_shares_in_a_new_order_each_epoch(monkeypatch) -> None:
    rank0, rank1 = _rank_reads(monkeypatch, 0), _rank_reads(monkeypatch, 1)
    share = 15 * 32  # 500 items per rank, cut to whole batches of 32
    for epoch in range(2):
        a, b = rank0[epoch], rank1[epoch]
        assert len(a) == len(b) == share == len(set(a)) == len(set(b))
        assert not set(a) & set(b)
    for reads in (rank0, rank1):
        assert reads[0] != reads[1]  # a new permutation each epoch
        assert set(reads[0]) != set(reads[1])  # and a new share of the data
