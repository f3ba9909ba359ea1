"""Latent priors: shapes, ranges / moments, validation, and the device following ``.to()``."""

from __future__ import annotations

import pytest
import torch

from mgan_lightning.latent import GaussianMixturePrior, LatentPrior, NormalPrior, UniformPrior

# Factories, so a test that moves its prior does not move another test's.
PRIORS = [
    pytest.param(NormalPrior, id="normal"),
    pytest.param(lambda: NormalPrior(std=0.5), id="normal-0.5"),
    pytest.param(UniformPrior, id="uniform"),
    pytest.param(lambda: UniformPrior(-3.0, 5.0), id="uniform-3-5"),
]


@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("n, dim", [(1, 1), (7, 3), (128, 64)])
def test_shape_and_dtype(prior, n: int, dim: int) -> None:
    z = prior().sample(n, dim)
    assert z.shape == (n, dim)
    assert z.dtype == torch.float32
    assert z.device == torch.device("cpu")


@pytest.mark.parametrize("std", [1.0, 0.5, 3.0])
def test_normal_moments(std: float) -> None:
    torch.manual_seed(0)
    z = NormalPrior(std).sample(20_000, 8)
    n = z.numel()
    assert abs(float(z.mean())) < 5 * std / n**0.5
    assert float(z.std()) == pytest.approx(std, rel=0.02)


@pytest.mark.parametrize("low, high", [(-1.0, 1.0), (0.0, 1.0), (-3.0, 5.0)])
def test_uniform_range_and_moments(low: float, high: float) -> None:
    torch.manual_seed(0)
    z = UniformPrior(low, high).sample(20_000, 8)
    assert float(z.min()) >= low and float(z.max()) <= high
    width = high - low
    # Fills the interval: the extremes are within 1% of its ends.
    assert float(z.min()) < low + 0.01 * width and float(z.max()) > high - 0.01 * width
    assert float(z.mean()) == pytest.approx((low + high) / 2, abs=0.01 * width)
    assert float(z.var()) == pytest.approx(width**2 / 12, rel=0.03)


def test_samples_follow_the_global_seed() -> None:
    prior = NormalPrior()
    torch.manual_seed(5)
    a = prior.sample(10, 4)
    torch.manual_seed(5)
    b = prior.sample(10, 4)
    c = prior.sample(10, 4)
    assert torch.equal(a, b)
    assert not torch.equal(b, c)


@pytest.mark.parametrize("prior", PRIORS)
def test_device_follows_to(prior) -> None:
    # The meta device stands in for an accelerator: no data, but real device placement.
    moved = prior().to("meta")
    assert moved.device.type == "meta"
    assert moved.sample(4, 3).device.type == "meta"
    back = moved.to_empty(device="cpu")  # a meta tensor has no data to copy back
    assert back.device.type == "cpu"
    assert back.sample(4, 3).device.type == "cpu"


def test_prior_inside_a_module_follows_the_module() -> None:
    parent = torch.nn.Module()
    parent.prior = UniformPrior()
    parent.to("meta")
    assert parent.prior.sample(2, 2).device.type == "meta"


def test_device_anchor_is_not_checkpointed() -> None:
    assert NormalPrior().state_dict() == {}


@pytest.mark.parametrize("std", [0.0, -1.0])
def test_normal_rejects_non_positive_std(std: float) -> None:
    with pytest.raises(ValueError, match="std"):
        NormalPrior(std)


@pytest.mark.parametrize("low, high", [(1.0, 1.0), (1.0, -1.0)])
def test_uniform_rejects_empty_interval(low: float, high: float) -> None:
    with pytest.raises(ValueError, match="high > low"):
        UniformPrior(low, high)


def test_base_class_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        LatentPrior().sample(1, 1)


# ------------------------------------------------------------ BourGAN's Gaussian mixture
def fitted_mixture(sigma: float = 0.01, n: int = 50) -> GaussianMixturePrior:
    prior = GaussianMixturePrior(sigma=sigma)
    points = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    prior.fit(points, torch.Generator().manual_seed(1))
    return prior


def test_mixture_prior_needs_its_centres_first() -> None:
    prior = GaussianMixturePrior()
    assert prior.needs_data and not prior.prepared and prior.dim is None
    with pytest.raises(RuntimeError, match="no centres yet"):
        prior.sample(4, 5)


def test_mixture_prior_samples_near_its_centres() -> None:
    prior = fitted_mixture(sigma=0.01)
    assert prior.prepared and prior.dim == 30  # 5 * ceil(log2 50)
    z = prior.sample(4000, 30, torch.Generator().manual_seed(2))
    nearest = torch.cdist(z, prior.centres).min(dim=1)
    # each sample is its centre plus N(0, 0.01^2 I): squared offset ~ 0.01^2 * chi2(30)
    assert torch.allclose((nearest.values**2).mean(), torch.tensor(30 * 1e-4), rtol=0.05)
    # every centre is picked, about uniformly (4000 draws over 50 centres: 80 each)
    counts = torch.bincount(nearest.indices, minlength=50)
    assert counts.min() > 40 and counts.max() < 130
    with pytest.raises(ValueError, match="30 dimensions"):
        prior.sample(3, 8)


def test_mixture_prior_draws_only_from_the_given_generator() -> None:
    prior = fitted_mixture()
    a = prior.sample(16, 30, torch.Generator().manual_seed(5))
    torch.manual_seed(123)
    b = prior.sample(16, 30, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_mixture_prior_state_loads_into_a_fresh_prior() -> None:
    prior = fitted_mixture()
    fresh = GaussianMixturePrior()
    fresh.load_state_dict(prior.state_dict())
    assert torch.equal(fresh.centres, prior.centres) and torch.equal(fresh.scale, prior.scale)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert torch.equal(fresh.sample(7, 30, g1), prior.sample(7, 30, g2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sigma": 0.0}, "sigma"),
        ({"num_points": 1}, "num_points"),
        ({"p": 1.0}, "p must"),
        ({"repeats": 0}, "repeats"),
    ],
)
def test_mixture_prior_rejects_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GaussianMixturePrior(**kwargs)


def test_mixture_prior_asks_for_no_more_points_than_the_data_has() -> None:
    assert GaussianMixturePrior().points_to_embed((2,), 1234) == 1234  # vector data: all
    assert GaussianMixturePrior().points_to_embed((3, 32, 32), 50_000) == 20_000  # images
    assert GaussianMixturePrior(num_points=100).points_to_embed((2,), 1234) == 100
    with pytest.raises(ValueError, match="between 2 and 50"):
        GaussianMixturePrior(num_points=100).points_to_embed((2,), 50)
