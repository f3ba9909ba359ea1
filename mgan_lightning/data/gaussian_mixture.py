"""Mixtures of isotropic Gaussians with known modes, in any dimension d >= 1 (the VEEGAN /
PacGAN synthetic benchmarks are the 2D ``ring`` and ``grid`` presets)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch

from mgan_lightning.data.base import GANDataModule, TensorBatchDataset


def ring_means(num_modes: int = 8, radius: float = 1.0) -> torch.Tensor:
    """``num_modes`` means evenly spaced on a circle."""
    angles = torch.arange(num_modes, dtype=torch.float64) * (2 * math.pi / num_modes)
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


def grid_means(side: int = 5, spacing: float = 2.0) -> torch.Tensor:
    """``side x side`` means on a square grid centred at 0 ({-4,-2,0,2,4}^2 by default)."""
    axis = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    xs, ys = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)


def cube_means(dim: int) -> torch.Tensor:
    """The ``2^dim`` corners of the cube ``{-1, 1}^dim`` (neighbours 2 apart)."""
    return torch.tensor(list(itertools.product([-1.0, 1.0], repeat=dim)))


def cross_means(dim: int) -> torch.Tensor:
    """The ``2 dim`` points ``±e_i`` (a cross-polytope: neighbours sqrt(2) apart)."""
    eye = torch.eye(dim)
    return torch.cat([eye, -eye])


PRESETS: dict[str, tuple[torch.Tensor, float]] = {
    # PacGAN / VEEGAN: 8 modes, radius 1, std 0.01; 25 modes {-4..4}^2 step 2, std 0.05.
    "ring": (ring_means(8, 1.0), 0.01),
    "grid": (grid_means(5, 2.0), 0.05),
}
# Layouts built for any ``dim`` (default std 0.05).
LAYOUTS: dict[str, Callable[[int], torch.Tensor]] = {"cube": cube_means, "cross": cross_means}
LAYOUT_STD = 0.05
MAX_CUBE_DIM = 12  # 4,096 modes


def sample_mixture(
    means: torch.Tensor,
    std: float,
    weights: torch.Tensor,
    n: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points of the isotropic mixture and the mode each came from."""
    mode = torch.multinomial(weights, n, replacement=True, generator=generator)
    noise = torch.randn(n, means.shape[1], generator=generator) * std
    return means[mode] + noise, mode


def preset_modes(preset: str, dim: int | None) -> tuple[torch.Tensor, float]:
    """Means and std of a named preset (2D ``ring``/``grid``) or layout (``cube``/``cross``
    in ``dim`` dimensions)."""
    if preset in PRESETS:
        if dim not in (None, 2):
            raise ValueError(f"data.dim must be 2 (or unset) for preset {preset!r}, got {dim}")
        return PRESETS[preset]
    if dim is None or dim < 1:
        raise ValueError(f"data.dim must be set to >= 1 for preset {preset!r}, got {dim}")
    if preset == "cube" and dim > MAX_CUBE_DIM:
        raise ValueError(f"data.dim must be <= {MAX_CUBE_DIM} for preset 'cube' (2^dim modes)")
    return LAYOUTS[preset](dim), LAYOUT_STD


def preset_std_of(preset: str | None) -> float | None:
    """The std a preset or layout uses (``None`` for no preset)."""
    if preset is None:
        return None
    return PRESETS[preset][1] if preset in PRESETS else LAYOUT_STD


def as_means(means: Sequence[Sequence[float]]) -> torch.Tensor:
    """``means`` as a float tensor; ragged lists are a ``data.means`` error."""
    try:
        return torch.as_tensor(means, dtype=torch.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"data.means must be points of equal width [[x1, ..., xd], ...] ({err})"
        ) from err


def check_means(modes: torch.Tensor, dim: int | None) -> None:
    """``modes`` must be ``(M, d)``, finite, with M >= 1 and d >= 1 (and d == ``dim`` if set)."""
    if modes.dim() != 2 or modes.numel() == 0:
        raise ValueError(
            f"data.means must be a list of points [[x1, ..., xd], ...], got shape "
            f"{tuple(modes.shape)}"
        )
    if not modes.isfinite().all():
        raise ValueError(f"data.means must be finite, got {modes.tolist()}")
    if dim is not None and modes.shape[1] != dim:
        raise ValueError(
            f"data.dim ({dim}) differs from the width of data.means ({modes.shape[1]})"
        )


def check_weights(weights: Sequence[float] | None, num_modes: int) -> torch.Tensor:
    """Mixture weights as a probability vector (uniform when ``None``)."""
    w = torch.ones(num_modes) if weights is None else torch.as_tensor(weights, dtype=torch.float)
    if w.shape != (num_modes,) or not w.isfinite().all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(
            f"data.weights must be {num_modes} finite non-negative numbers with a positive "
            f"sum, got {weights}"
        )
    return w / w.sum()


class GaussianMixture(GANDataModule):
    """A mixture of isotropic Gaussians ``sum_m w_m N(mu_m, std^2 I_d)`` in any dimension
    ``d >= 1``, whose modes are known (for mode coverage). Samples have shape ``(d,)``.

    Args:
        preset: ``"ring"`` (8 modes, radius 1, std 0.01) or ``"grid"`` (25 modes,
            {-4,-2,0,2,4}^2, std 0.05), the 2D PacGAN benchmarks; ``"cube"`` (the 2^dim
            corners of {-1,1}^dim, dim <= 12) or ``"cross"`` (the 2 dim points ±e_i), both
            std 0.05, in ``dim`` dimensions; ``None`` to give ``means``.
        means: ``[[x1, ..., xd], ...]`` mode centres, any width d >= 1 (overrides the
            preset's).
        std: standard deviation of every mode, per coordinate (overrides the preset's).
        weights: mixture weights (default uniform); normalised here.
        dim: dimension of the ``cube`` / ``cross`` layouts (``ring``/``grid``: 2 or unset;
            with ``means``: unset or their width).
        num_train / num_test: points drawn once, from ``seed``, for training / testing.

    Your own mixture, e.g. three modes in 3D::

        data:
          class_path: mgan_lightning.data.GaussianMixture
          init_args:
            preset: null
            means: [[0, 0, 0], [2, 0, 0], [0, 2, 1]]
            std: 0.05

    or 20 modes at ±e_i in 10D: ``init_args: {preset: cross, dim: 10}``. Keep modes more
    than twice the high-quality radius apart (about ``std * sqrt(d)`` plus a few std; see
    :func:`mgan_lightning.metrics.mode_coverage.high_quality_radius`), or nearest-mode
    assignment becomes ambiguous.
    """

    def __init__(
        self,
        preset: Literal["ring", "grid", "cube", "cross"] | None = "ring",
        means: Sequence[Sequence[float]] | None = None,
        std: float | None = None,
        weights: Sequence[float] | None = None,
        dim: int | None = None,
        num_train: int = 100_000,
        num_test: int = 10_000,
        batch_size: int = 256,
        num_workers: int = 0,
        data_root: str = "data",
        download: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers, data_root, download, seed)
        name = type(self).__name__
        if preset is None and means is None:
            raise ValueError(f"{name} needs data.preset or data.means")
        choices = sorted(PRESETS) + sorted(LAYOUTS)
        if preset is not None and preset not in choices:
            raise ValueError(f"data.preset must be one of {choices}, got {preset!r}")
        if means is not None:  # the preset, if any, gives only the default std
            modes, preset_std = as_means(means), preset_std_of(preset)
        else:
            assert preset is not None
            modes, preset_std = preset_modes(preset, dim)
        check_means(modes, dim)
        mode_std = std if std is not None else preset_std
        if mode_std is None or not math.isfinite(mode_std) or mode_std <= 0:
            raise ValueError(f"data.std must be a finite number > 0, got {mode_std}")
        mode_weights = check_weights(weights, len(modes))
        if num_train < batch_size:
            raise ValueError(
                f"data.num_train ({num_train}) must be >= data.batch_size ({batch_size})"
            )
        if num_test < 1:
            raise ValueError(f"data.num_test must be >= 1, got {num_test}")
        self.modes = modes
        self.mode_std = float(mode_std)
        self.mode_weights = mode_weights
        self.sample_shape = (modes.shape[1],)
        self.num_train, self.num_test = num_train, num_test

    @property
    def dim(self) -> int:
        """Dimension d of the samples."""
        return self.sample_shape[0]

    def setup(self, stage: str | None = None) -> None:
        """Draw the training and test sets once from ``seed``: samples of the mixture with the
        index of the mode each came from (every stage gets both; later calls keep them)."""
        if self.train_set is not None:
            return
        gen = torch.Generator().manual_seed(self.seed)
        assert (
            self.modes is not None and self.mode_weights is not None and self.mode_std is not None
        )
        train = sample_mixture(self.modes, self.mode_std, self.mode_weights, self.num_train, gen)
        test = sample_mixture(self.modes, self.mode_std, self.mode_weights, self.num_test, gen)
        self.train_set = TensorBatchDataset(*train)
        self.test_set = TensorBatchDataset(*test)


class GaussianMixture2D(GaussianMixture):
    """:class:`GaussianMixture` restricted to 2D means: the name the ring and grid configs
    (and their checkpoints) use. ``preset``: ``"ring"`` or ``"grid"``, or ``None`` with
    ``means: [[x, y], ...]``; the other arguments are :class:`GaussianMixture`'s."""

    def __init__(self, preset: Literal["ring", "grid"] | None = "ring", **kwargs) -> None:
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"data.preset must be one of {sorted(PRESETS)}, got {preset!r}")
        super().__init__(preset=preset, **kwargs)
        if self.modes is not None and self.modes.shape[1] != 2:
            raise ValueError(
                f"data.means must be [x, y] pairs for GaussianMixture2D (GaussianMixture "
                f"takes any width), got shape {tuple(self.modes.shape)}"
            )
