"""What a checkpoint remembers of its data, and when other data count as other."""

from __future__ import annotations

from mgan_lightning.data import GaussianMixture, GaussianMixture2D
from mgan_lightning.data.base import fingerprint_mismatch


def test_same_mixture_other_seed_and_size_is_the_same_data() -> None:
    a = GaussianMixture2D(preset="ring", seed=0, num_train=1000).fingerprint()
    b = GaussianMixture2D(preset="ring", seed=7, num_train=5000, batch_size=64).fingerprint()
    assert fingerprint_mismatch(a, b) is None


def test_other_modes_are_other_data() -> None:
    ring = GaussianMixture2D(preset="ring").fingerprint()
    grid = GaussianMixture2D(preset="grid").fingerprint()
    message = fingerprint_mismatch(ring, grid)
    assert message is not None and "8 modes" in message and "25 modes" in message


def test_other_std_or_shape_is_other_data() -> None:
    ring = GaussianMixture2D(preset="ring").fingerprint()
    wide = GaussianMixture2D(preset="ring", std=0.1).fingerprint()
    assert "std 0.01 against std 0.1" in (fingerprint_mismatch(ring, wide) or "")
    cube = GaussianMixture(preset="cube", dim=3).fingerprint()
    assert "(2,)" in (fingerprint_mismatch(ring, cube) or "")


def test_fingerprints_are_plain_values() -> None:
    """They go into checkpoints that torch.load(weights_only=True) must read."""
    fingerprint = GaussianMixture2D(preset="grid").fingerprint()
    assert isinstance(fingerprint["modes"], list) and isinstance(fingerprint["modes"][0][0], float)
    assert fingerprint["sample_shape"] == [2] and fingerprint["name"] == "GaussianMixture2D"
