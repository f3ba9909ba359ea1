"""Latent priors: shapes, ranges / moments, validation, and the device following ``.to()``."""

from __future__ import annotations

import pytest
import torch

from mgan_lightning.latent import LatentPrior, NormalPrior, UniformPrior

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
