"""The Bourgain embedding BourGAN builds its latent prior from (Xiao, Zhong, Zheng; NeurIPS
2018, sec. 3.1 and Algorithm 1), as the authors' code computes it.

For n points y_1..y_n under a distance d, with p = 0.5, m = 5 repeats and K = ceil(log2 n)
scales: for every scale j = 0..K-1 and repeat i = 0..m-1 draw ONE random subset S_ij of the
points, each kept with probability p^(j+1), shared by all points; coordinate (j, i) of y is

    f_ij(y) = min_{s in S_ij} d(y, s)            (0 when S_ij is empty)

so the embedding has m * K dimensions (Bourgain 1985: distortion O(log n)). It is then
normalised, F <- sqrt(m K) * (F - mean) / (||F - mean||_Frobenius / sqrt(n)), and the scale

    s = max_{i != j} sqrt( d(y_i, y_j) / ||f(y_i) - f(y_j)|| )

sets how latent distances map to data distances in the distance-preserving loss. Pairs whose
embedded points coincide are left out of the maximum (the authors' code divides by zero there).

Everything is tensor code on the points' device, row-chunked: the n x n distance matrix is
kept only when it fits ``cache_bytes`` (one pass over the data instead of two), and no
n x n x dim tensor is ever made. Subsets are drawn on the CPU from ``generator``, so the
embedding is the same on every device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from mgan_lightning.nets.modes import eval_mode

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``metric(a[r, ...], b[c, ...]) -> distances[r, c]``."""


def euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between the rows of ``a`` and ``b`` (samples flattened).

    Up to 64 dimensions the differences are formed directly (exact zeros for equal rows);
    above, through one matrix product (fast; equal rows may come out slightly above 0)."""
    a, b = a.flatten(1), b.flatten(1)
    return torch.cdist(a, b, compute_mode=_cdist_mode(a.shape[1]))


def _cdist_mode(dim: int) -> str:
    return "donot_use_mm_for_euclid_dist" if dim <= 64 else "use_mm_for_euclid_dist"


def embedding_dim(n: int, repeats: int = 5) -> int:
    """m * ceil(log2 n): the embedding's (and so BourGAN's latent) dimension."""
    if n < 2:
        raise ValueError(f"the Bourgain embedding needs at least 2 points, got {n}")
    return repeats * math.ceil(math.log2(n))


@dataclass
class BourgainEmbedding:
    """The normalised embedded points ``(n, m K)`` and the scale ``s``."""

    points: torch.Tensor
    scale: float


@torch.no_grad()
def extract_features(
    points: torch.Tensor, extractor: nn.Module, chunk_size: int = 1024
) -> torch.Tensor:
    """``extractor(points)`` in eval mode, chunk by chunk, flattened to ``(n, features)``;
    the extractor's own train/eval modes are restored afterwards."""
    with eval_mode(extractor):
        parts = [
            extractor(points[i : i + chunk_size]).flatten(1)
            for i in range(0, len(points), chunk_size)
        ]
    return torch.cat(parts)


class _DistanceRows:
    """Row blocks of the n x n distance matrix, cached whole when it fits in memory."""

    def __init__(self, points: torch.Tensor, metric: Metric, chunk_size: int, cache_bytes: int):
        self.points, self.metric, self.chunk_size = points, metric, chunk_size
        n = len(points)
        itemsize = torch.finfo(points.dtype).bits // 8 if points.is_floating_point() else 4
        self.cache: torch.Tensor | None = None
        self.keep = n * n * itemsize <= cache_bytes

    def blocks(self) -> Iterator[tuple[int, torch.Tensor]]:
        n = len(self.points)
        if self.cache is not None:
            for start in range(0, n, self.chunk_size):
                yield start, self.cache[start : start + self.chunk_size]
            return
        cache = None
        for start in range(0, n, self.chunk_size):
            block = self.metric(self.points[start : start + self.chunk_size], self.points)
            if self.keep:
                if cache is None:
                    cache = torch.empty(n, n, dtype=block.dtype, device=block.device)
                cache[start : start + len(block)] = block
            yield start, block
        self.cache = cache


def draw_subsets(
    n: int, p: float = 0.5, repeats: int = 5, generator: torch.Generator | None = None
) -> list[torch.Tensor]:
    """The m * K random subsets (index tensors, CPU), scale-major: subset ``j * m + i`` keeps
    each point with probability p^(j+1)."""
    scales = embedding_dim(n, repeats) // repeats
    subsets = []
    for j in range(scales):
        for _ in range(repeats):
            keep = torch.rand(n, generator=generator) < p ** (j + 1)
            subsets.append(keep.nonzero().squeeze(1))
    return subsets


def normalise(f: torch.Tensor) -> torch.Tensor:
    """Centre the columns, then scale so the mean squared row norm equals the dimension:
    ``sqrt(dim) * (F - mean) / (||F - mean||_F / sqrt(n))``."""
    centred = f - f.mean(dim=0, keepdim=True)
    norm = torch.linalg.matrix_norm(centred)
    if norm == 0:
        return centred
    return centred * (math.sqrt(f.shape[1]) * math.sqrt(len(f)) / norm)


def bourgain_embedding(
    points: torch.Tensor,
    metric: Metric | None = None,
    feature_extractor: nn.Module | None = None,
    p: float = 0.5,
    repeats: int = 5,
    generator: torch.Generator | None = None,
    chunk_size: int = 1024,
    cache_bytes: int = 2 * 1024**3,
) -> BourgainEmbedding:
    """Embed ``points`` (``(n, ...)``) and compute the scale ``s`` (module docstring).

    Args:
        metric: distance between point sets (default Euclidean on the flattened points).
        feature_extractor: if given, distances are Euclidean between its outputs (images).
        p / repeats: subset probability base and repeats per scale (paper: 0.5 and 5).
        generator: CPU generator the subsets are drawn from (seeded: the same embedding).
        chunk_size: rows of the distance matrix computed at once.
        cache_bytes: keep the whole distance matrix when it fits (one pass, not two).
    """
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    n = len(points)
    if feature_extractor is not None:
        if metric is not None:
            raise ValueError("give a metric or a feature extractor, not both")
        points = extract_features(points, feature_extractor, chunk_size)
    metric = metric or euclidean
    subsets = draw_subsets(n, p, repeats, generator)
    subsets = [s.to(points.device) for s in subsets]

    rows = _DistanceRows(points, metric, chunk_size, cache_bytes)
    blocks = []
    for _, block in rows.blocks():
        columns = [
            block[:, s].amin(dim=1) if len(s) else block.new_zeros(len(block)) for s in subsets
        ]
        blocks.append(torch.stack(columns, dim=1))
    embedded = normalise(torch.cat(blocks))
    return BourgainEmbedding(embedded, embedding_scale(rows, embedded))


def embedding_scale(rows: _DistanceRows, embedded: torch.Tensor) -> float:
    """s = max over pairs i != j with f_i != f_j of sqrt(d_ij / ||f_i - f_j||)."""
    best = torch.zeros((), dtype=embedded.dtype, device=embedded.device)
    for start, block in rows.blocks():
        # formed directly, so coinciding embedded points give exactly 0 and are left out
        rows_f = embedded[start : start + len(block)]
        apart = torch.cdist(rows_f, embedded, compute_mode="donot_use_mm_for_euclid_dist")
        ratio = block.to(apart.dtype) / apart
        ratio = torch.where(apart > 0, ratio, torch.zeros_like(ratio))  # i == j, coinciding f
        best = torch.maximum(best, ratio.max())
    if best == 0:
        raise ValueError(
            "the Bourgain embedding's scale is undefined: no two points are at a positive "
            "distance with distinct embeddings (are all points identical?)"
        )
    return float(best.sqrt())
