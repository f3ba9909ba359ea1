"""The Bourgain embedding (mgan_lightning/embedding.py): its dimension, coordinates and
normalisation on hand-checked cases, its distortion, the scale against brute force, and the
chunked / cached / feature-extractor paths agreeing with the plain one."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mgan_lightning.embedding import (
    bourgain_embedding,
    draw_subsets,
    embedding_dim,
    normalise,
)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_dimension_is_repeats_times_ceil_log2_n() -> None:
    assert embedding_dim(1250) == 55  # the authors' grid: 5 * 11
    assert embedding_dim(2) == 5
    assert embedding_dim(3) == 10
    assert embedding_dim(1024) == 50
    assert embedding_dim(1025) == 55
    assert embedding_dim(20_000, repeats=3) == 45
    with pytest.raises(ValueError, match="at least 2 points"):
        embedding_dim(1)


def test_subsets_are_shared_and_thin_out_by_scale() -> None:
    n = 4096
    subsets = draw_subsets(n, p=0.5, repeats=5, generator=seeded())
    assert len(subsets) == embedding_dim(n)
    sizes = torch.tensor([len(s) for s in subsets], dtype=torch.float).reshape(-1, 5).mean(1)
    expected = torch.tensor([n * 0.5 ** (j + 1) for j in range(len(sizes))])
    # scale j keeps each point with probability 2^-(j+1): sizes halve (binomial noise)
    assert torch.allclose(sizes[:4], expected[:4], rtol=0.1)
    again = draw_subsets(n, p=0.5, repeats=5, generator=seeded())
    assert all(torch.equal(a, b) for a, b in zip(subsets, again))


def test_coordinates_are_min_distances_to_each_subset() -> None:
    """Four points on a line, coordinates checked one by one before normalisation."""
    points = torch.tensor([[0.0], [1.0], [3.0], [7.0]], dtype=torch.float64)
    subsets = draw_subsets(4, generator=seeded(3))
    raw = []
    for s in subsets:  # by hand: min |x - y| over y in S, 0 when S is empty
        members = [float(points[i]) for i in s.tolist()]
        raw.append([min(abs(float(x) - y) for y in members) if members else 0.0 for x in points])
    expected = normalise(torch.tensor(raw, dtype=torch.float64).T)
    got = bourgain_embedding(points, generator=seeded(3)).points
    assert torch.allclose(got, expected)


def test_normalisation_centres_and_fixes_the_mean_squared_norm() -> None:
    f = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 1.0]], dtype=torch.float64)
    g = normalise(f)
    assert torch.allclose(g.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-12)
    # ||F - mean||_F / sqrt(n) becomes sqrt(dim): the mean squared row norm is dim
    assert math.isclose(float((g**2).sum(1).mean()), 2.0)
    centred = f - f.mean(0)
    assert torch.allclose(g, centred * math.sqrt(2) * math.sqrt(3) / centred.norm())


@pytest.mark.parametrize("dim", [2, 10])
@pytest.mark.parametrize("n", [64, 256, 1024])
def test_distortion_stays_within_a_multiple_of_log_n(n: int, dim: int) -> None:
    """Bourgain: distortion O(log n). Distortion = (max expansion) x (max contraction) =
    max_ij r_ij / min_ij r_ij with r_ij = ||f_i - f_j|| / d_ij. Measured (seeds 0, 1, 2,
    Gaussian points): dim 2: n=64 3.9/4.3/5.2, n=256 6.9/5.4/6.0, n=1024 8.4/7.3/9.3;
    dim 10: n=64 6.3/3.9/4.4, n=256 5.7/4.9/5.0, n=1024 7.0/9.1/7.9; that is 0.89-1.52 times
    ln n. Asserted: below 3 ln n for each seed."""
    for seed in range(3):
        x = torch.randn(n, dim, generator=seeded(seed), dtype=torch.float64)
        f = bourgain_embedding(x, generator=seeded(seed)).points
        off = ~torch.eye(n, dtype=torch.bool)
        ratio = torch.cdist(f, f)[off] / torch.cdist(x, x)[off]
        distortion = float(ratio.max() / ratio.min())
        assert 1.0 <= distortion < 3 * math.log(n), (seed, distortion)


def brute_force_scale(x: torch.Tensor, f: torch.Tensor) -> float:
    best = 0.0
    for i in range(len(x)):
        for j in range(len(x)):
            e = float((f[i] - f[j]).norm())
            if i != j and e > 0:
                best = max(best, math.sqrt(float((x[i] - x[j]).norm()) / e))
    return best


def test_scale_matches_brute_force_and_skips_coinciding_embeddings() -> None:
    x = torch.randn(60, 3, generator=seeded(1), dtype=torch.float64)
    x = torch.cat([x, x[:5]])  # duplicates: identical embedded points, distance 0
    result = bourgain_embedding(x, generator=seeded(2), chunk_size=7)
    assert math.isfinite(result.scale)
    assert math.isclose(result.scale, brute_force_scale(x, result.points), rel_tol=1e-12)


def test_identical_points_have_no_scale() -> None:
    with pytest.raises(ValueError, match="scale is undefined"):
        bourgain_embedding(torch.ones(10, 2), generator=seeded())


def test_chunks_and_the_distance_cache_change_nothing() -> None:
    x = torch.randn(300, 5, generator=seeded(4), dtype=torch.float64)
    whole = bourgain_embedding(x, generator=seeded(5), chunk_size=1024)
    chunked = bourgain_embedding(x, generator=seeded(5), chunk_size=17)
    uncached = bourgain_embedding(x, generator=seeded(5), chunk_size=17, cache_bytes=0)
    for other in (chunked, uncached):
        assert torch.allclose(other.points, whole.points, atol=1e-12)
        assert math.isclose(other.scale, whole.scale, rel_tol=1e-12)


def test_metric_and_feature_extractor() -> None:
    x = torch.randn(80, 4, generator=seeded(6), dtype=torch.float64)
    manhattan = bourgain_embedding(
        x, metric=lambda a, b: torch.cdist(a, b, p=1), generator=seeded(7)
    )
    euclid = bourgain_embedding(x, generator=seeded(7))
    assert not torch.allclose(manhattan.points, euclid.points)

    images = torch.randn(80, 1, 4, 4, generator=seeded(8), dtype=torch.float64)
    extractor = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).double().train()
    by_features = bourgain_embedding(images, feature_extractor=extractor, generator=seeded(9))
    with torch.no_grad():
        features = extractor(images)
    direct = bourgain_embedding(features, generator=seeded(9))
    assert torch.allclose(by_features.points, direct.points)
    assert math.isclose(by_features.scale, direct.scale, rel_tol=1e-12)
    assert extractor.training  # its mode is restored
    with pytest.raises(ValueError, match="not both"):
        bourgain_embedding(images, metric=lambda a, b: a, feature_extractor=extractor)


def test_seeded_embedding_is_reproducible_and_seed_dependent() -> None:
    x = torch.randn(100, 2, generator=seeded(10))
    a = bourgain_embedding(x, generator=seeded(11)).points
    b = bourgain_embedding(x, generator=seeded(11)).points
    c = bourgain_embedding(x, generator=seeded(12)).points
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
