"""k-nearest-neighbour balls in feature space, computed block by block in float64.

The building blocks of precision / recall (Kynkäänniemi et al. 2019) and density / coverage
(Naeem et al. 2020), see :mod:`mgan_lightning.metrics.prdc`. A point's *ball* is centred on
it with radius ``r`` = the distance to its k-th nearest neighbour within its own set, the
point itself excluded. Membership is strict: ``y`` is inside the ball of ``x`` iff
``||y - x|| < r(x)``.

No full ``N x M`` distance matrix is ever held: distances are computed for a block of rows at
a time, ``max_block`` entries at most (64 MiB of float64 by default), and only per-point
results are kept. Distances come from ``|a|^2 + |b|^2 - 2 a.b`` (one matrix product per
block) in float64. The callers translate the data so that the real set's mean is at the
origin (:func:`centred`): distances do not change, and the cancellation in the formula,
which grows with ``|a|^2 / ||a - b||^2``, stays far below float64's resolution for any
realistic features.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

MAX_BLOCK = 1 << 23  # distance-matrix entries per block: 64 MiB of float64


def block_rows(columns: int, max_block: int = MAX_BLOCK) -> int:
    """Rows per block so that a ``rows x columns`` block holds at most ``max_block`` entries."""
    return max(1, max_block // max(columns, 1))


def row_blocks(n: int, columns: int, max_block: int = MAX_BLOCK) -> Iterator[slice]:
    """Consecutive row ranges of an ``n x columns`` matrix, one block at a time."""
    step = block_rows(columns, max_block)
    for start in range(0, n, step):
        yield slice(start, min(start + step, n))


def squared_norms(points: torch.Tensor) -> torch.Tensor:
    """``|p|^2`` of every row, float64."""
    return (points * points).sum(dim=1)


def block_distances(
    rows: torch.Tensor,
    columns: torch.Tensor,
    row_sq: torch.Tensor,
    column_sq: torch.Tensor,
) -> torch.Tensor:
    """Euclidean distances ``(len(rows), len(columns))`` from the precomputed squared norms
    (float64; tiny negative squares from rounding are clamped to 0)."""
    d = rows @ columns.T
    d.mul_(-2).add_(row_sq[:, None]).add_(column_sq[None, :])
    return d.clamp_(min=0).sqrt_()


def as_float64_points(points: torch.Tensor) -> torch.Tensor:
    """``(N, ...)`` -> ``(N, d)`` float64 (no copy when it already is)."""
    return points.reshape(len(points), -1).to(torch.float64)


def centred(points: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """``points - centre`` as a new ``(N, d)`` float64 tensor (one copy of the data)."""
    out = points.reshape(len(points), -1).to(torch.float64, copy=True)
    return out.sub_(centre)


def knn_radii(points: torch.Tensor, k: int, max_block: int = MAX_BLOCK) -> torch.Tensor:
    """Distance from each point to its ``k``-th nearest neighbour among the *other* points
    of the set (duplicates of a point count as neighbours at distance 0), float64 ``(N,)``.
    Give points centred near the origin (see :func:`centred`) for the best accuracy."""
    x = as_float64_points(points)
    n = len(x)
    if not 1 <= k < n:
        raise ValueError(f"the {k}-th nearest neighbour needs k >= 1 and more than {k} points, "
                         f"got {n}")  # fmt: skip
    sq = squared_norms(x)
    # Square blocks of the symmetric N x N matrix, each computed once (j >= i) and read both
    # ways: about half the matrix products of a row-by-row pass. ``best`` holds the k
    # smallest distances seen so far for every point, in ascending order.
    side = max(1, math.isqrt(max_block))
    best = torch.full((n, k), torch.inf, dtype=torch.float64, device=x.device)
    starts = range(0, n, side)
    for i in starts:
        rows = slice(i, min(i + side, n))
        for j in starts[i // side :]:
            cols = slice(j, min(j + side, n))
            d = block_distances(x[rows], x[cols], sq[rows], sq[cols])
            if i == j:
                d.fill_diagonal_(torch.inf)  # the point itself is not its own neighbour
            best[rows] = _merge_smallest(best[rows], d, k)
            if i != j:
                best[cols] = _merge_smallest(best[cols], d.T, k)
    return best[:, -1]


def _merge_smallest(best: torch.Tensor, block: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` smallest of each row of ``best`` (ascending) and ``block`` together."""
    nearest = block.topk(min(k, block.shape[1]), dim=1, largest=False).values
    return torch.cat([best, nearest], dim=1).topk(k, dim=1, largest=False, sorted=True).values


@dataclass
class BallMembership:
    """Per-point results of one pass over the real-fake distances.

    Attributes:
        real_balls_per_fake: ``(M,)`` number of real balls that contain each fake point.
        real_in_fake_ball: ``(N,)`` whether each real point lies in some fake ball.
        real_ball_hit: ``(N,)`` whether each real ball contains some fake point.
        real_ball_hit_by_group: ``(N, G)`` whether each real ball contains a fake point of
            group (generator) ``g``; ``None`` without groups.
    """

    real_balls_per_fake: torch.Tensor
    real_in_fake_ball: torch.Tensor
    real_ball_hit: torch.Tensor
    real_ball_hit_by_group: torch.Tensor | None = None


def ball_membership(
    real: torch.Tensor,
    fake: torch.Tensor,
    real_radii: torch.Tensor,
    fake_radii: torch.Tensor,
    fake_groups: torch.Tensor | None = None,
    num_groups: int | None = None,
    max_block: int = MAX_BLOCK,
) -> BallMembership:
    """Which fake points lie in which real balls and the reverse, from the real-fake
    distances computed one block of real rows at a time (strict ``<`` throughout).

    ``fake_groups``: ``(M,)`` group index of each fake point (``0 .. num_groups - 1``) for the
    per-group hits. Give points centred near the origin, as for :func:`knn_radii`."""
    x, y = as_float64_points(real), as_float64_points(fake)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"real and fake points differ in width: {x.shape[1]} != {y.shape[1]}")
    x_sq, y_sq = squared_norms(x), squared_norms(y)
    real_r = real_radii.to(device=x.device, dtype=torch.float64)
    fake_r = fake_radii.to(device=x.device, dtype=torch.float64)
    balls_per_fake = torch.zeros(len(y), dtype=torch.long, device=x.device)
    in_fake_ball = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    hit = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    by_group = None
    one_hot = None
    if fake_groups is not None:
        groups = fake_groups.to(device=x.device, dtype=torch.long)
        count = int(num_groups) if num_groups is not None else int(groups.max()) + 1
        one_hot = torch.nn.functional.one_hot(groups, count).to(torch.float32)
        by_group = torch.zeros(len(x), count, dtype=torch.bool, device=x.device)
    for rows in row_blocks(len(x), len(y), max_block):
        d = block_distances(x[rows], y, x_sq[rows], y_sq)
        inside_real = d < real_r[rows, None]  # fake j inside the ball of real i
        balls_per_fake += inside_real.sum(dim=0)
        hit[rows] = inside_real.any(dim=1)
        in_fake_ball[rows] = (d < fake_r[None, :]).any(dim=1)
        if by_group is not None and one_hot is not None:
            by_group[rows] = (inside_real.to(torch.float32) @ one_hot) > 0
    return BallMembership(balls_per_fake, in_fake_ball, hit, by_group)
