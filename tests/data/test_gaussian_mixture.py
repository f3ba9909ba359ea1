"""GaussianMixture2D: presets, custom mixtures, the statistics of drawn points, seeding,
validation messages that name the field, and batch shapes."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from mgan_lightning.data import GaussianMixture2D


def _ring_means() -> torch.Tensor:
    return torch.tensor([[math.cos(math.pi * i / 4), math.sin(math.pi * i / 4)] for i in range(8)])


def _as_set(points: torch.Tensor) -> set[tuple[float, float]]:
    return {(round(float(x), 4), round(float(y), 4)) for x, y in points}


def test_ring_preset() -> None:
    dm = GaussianMixture2D(preset="ring", num_train=256, num_test=16)
    assert dm.modes.shape == (8, 2)
    assert _as_set(dm.modes) == _as_set(_ring_means())
    assert torch.allclose(dm.modes.norm(dim=1), torch.ones(8), atol=1e-6)
    assert dm.mode_std == pytest.approx(0.01)
    assert torch.allclose(dm.mode_weights, torch.full((8,), 1 / 8))
    assert dm.sample_shape == (2,)
    assert dm.num_channels == 0


def test_grid_preset() -> None:
    dm = GaussianMixture2D(preset="grid", num_train=256, num_test=16)
    expected = {(float(x), float(y)) for x, y in itertools.product([-4, -2, 0, 2, 4], repeat=2)}
    assert dm.modes.shape == (25, 2)
    assert _as_set(dm.modes) == expected
    assert dm.mode_std == pytest.approx(0.05)
    assert torch.allclose(dm.mode_weights, torch.full((25,), 1 / 25))


def test_custom_means_std_weights() -> None:
    means = [[0.0, 0.0], [3.0, 1.0], [-2.0, 5.0]]
    dm = GaussianMixture2D(
        preset=None, means=means, std=0.2, weights=[2, 1, 1], num_train=256, num_test=16
    )
    assert dm.modes.tolist() == means
    assert dm.mode_std == pytest.approx(0.2)
    assert torch.allclose(dm.mode_weights, torch.tensor([0.5, 0.25, 0.25]))


def test_means_and_std_override_the_preset() -> None:
    dm = GaussianMixture2D(preset="grid", means=[[1.0, 1.0], [2.0, 2.0]], num_train=256)
    assert dm.modes.shape == (2, 2) and dm.mode_std == pytest.approx(0.05)
    dm = GaussianMixture2D(preset="ring", std=0.3, num_train=256)
    assert dm.modes.shape == (8, 2) and dm.mode_std == pytest.approx(0.3)


def _drawn(dm: GaussianMixture2D) -> tuple[torch.Tensor, torch.Tensor]:
    dm.setup("fit")
    return dm.train_set.tensors


@pytest.mark.parametrize("preset", ["ring", "grid"])
def test_empirical_std_and_mode_frequencies_match(preset: str) -> None:
    n = 20_000
    dm = GaussianMixture2D(preset=preset, num_train=n, num_test=10, seed=3)
    points, labels = _drawn(dm)
    assert points.shape == (n, 2) and labels.shape == (n,)
    # The label of each point is its nearest mean (modes are >> std apart).
    nearest = torch.cdist(points.double(), dm.modes.double()).argmin(dim=1)
    assert torch.equal(nearest, labels)
    residual = points - dm.modes[labels]
    # Per-axis std within 3% (the std of the sample std is about std / sqrt(2n) ~ 0.5%).
    assert residual.std(dim=0).tolist() == pytest.approx([dm.mode_std] * 2, rel=0.03)
    assert residual.mean(dim=0).abs().max() < 4 * dm.mode_std / math.sqrt(n)
    m = len(dm.modes)
    freq = torch.bincount(labels, minlength=m).double() / n
    # Binomial tolerance: 5 standard deviations of a frequency.
    tol = 5 * math.sqrt((1 / m) * (1 - 1 / m) / n)
    assert (freq - 1 / m).abs().max() < tol


def test_mode_frequencies_follow_custom_weights() -> None:
    n = 20_000
    weights = [6.0, 3.0, 1.0, 0.0]
    dm = GaussianMixture2D(
        preset=None,
        means=[[0, 0], [1, 0], [0, 1], [1, 1]],
        std=0.05,
        weights=weights,
        num_train=n,
        num_test=10,
    )
    _, labels = _drawn(dm)
    freq = torch.bincount(labels, minlength=4).double() / n
    for f, w in zip(freq.tolist(), weights):
        p = w / 10
        assert abs(f - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-12
    assert freq[3] == 0


def test_reproducible_from_seed() -> None:
    a = _drawn(GaussianMixture2D(num_train=500, num_test=50, seed=7))
    b = _drawn(GaussianMixture2D(num_train=500, num_test=50, seed=7))
    c = _drawn(GaussianMixture2D(num_train=500, num_test=50, seed=8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_seed_does_not_depend_on_the_global_rng() -> None:
    torch.manual_seed(0)
    a = _drawn(GaussianMixture2D(num_train=300, seed=1))
    torch.manual_seed(123)
    b = _drawn(GaussianMixture2D(num_train=300, seed=1))
    assert torch.equal(a[0], b[0])


def test_train_and_test_sets_differ() -> None:
    dm = GaussianMixture2D(num_train=300, num_test=300)
    dm.setup("fit")
    assert len(dm.train_set) == 300 and len(dm.test_set) == 300
    assert not torch.equal(dm.train_set.tensors[0], dm.test_set.tensors[0])


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"preset": "hexagon"}, "data.preset"),
        ({"preset": None}, "data.preset"),
        ({"std": 0.0}, "data.std"),
        ({"std": -0.1}, "data.std"),
        ({"std": float("nan")}, "data.std"),
        ({"std": float("inf")}, "data.std"),
        ({"weights": [float("nan")] + [1.0] * 7}, "data.weights"),
        ({"preset": None, "means": [[0.0, float("nan")]], "std": 0.1}, "data.means"),
        ({"weights": [1.0] * 7}, "data.weights"),
        ({"weights": [1.0] * 7 + [-1.0]}, "data.weights"),
        ({"weights": [0.0] * 8}, "data.weights"),
        ({"preset": None, "means": [[0.0, 0.0, 0.0]], "std": 0.1}, "data.means"),
        ({"preset": None, "means": [1.0, 2.0], "std": 0.1}, "data.means"),
        ({"preset": None, "means": [], "std": 0.1}, "data.means"),
        ({"preset": None, "means": [[0.0, 0.0]]}, "data.std"),
        ({"batch_size": 0}, "data.batch_size"),
        ({"num_workers": -1}, "data.num_workers"),
        ({"num_train": 10, "batch_size": 64}, "data.num_train"),
    ],
)
def test_invalid_values_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        GaussianMixture2D(**kwargs)


@pytest.mark.parametrize("batch_size", [1, 32, 256])
def test_train_batches_have_batch_size_rows(batch_size: int) -> None:
    dm = GaussianMixture2D(num_train=1000, num_test=100, batch_size=batch_size)
    loader = dm.train_dataloader()
    batches = list(itertools.islice(iter(loader), 3))
    for batch in batches:
        x, y = batch
        assert x.shape == (batch_size, 2) and x.dtype == torch.float32
        assert y.shape == (batch_size,)
    # drop_last: every training batch is full
    assert len(loader) == 1000 // batch_size


def test_test_loader_covers_the_test_set_in_order() -> None:
    dm = GaussianMixture2D(num_train=256, num_test=100, batch_size=32)
    xs = torch.cat([x for x, _ in dm.test_dataloader()])
    dm.setup("test")
    assert torch.equal(xs, dm.test_set.tensors[0])


def test_train_batches_are_shuffled() -> None:
    dm = GaussianMixture2D(num_train=512, num_test=10, batch_size=64)
    dm.setup("fit")
    torch.manual_seed(0)
    first = next(iter(dm.train_dataloader()))[0]
    assert not torch.equal(first, dm.train_set.tensors[0][:64])
