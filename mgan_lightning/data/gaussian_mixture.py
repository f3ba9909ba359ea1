"""2D mixtures of Gaussians with known modes (VEEGAN / PacGAN synthetic benchmarks)."""

from __future__ import annotations

import math
from collections.abc import Sequence
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


PRESETS: dict[str, tuple[torch.Tensor, float]] = {
    # PacGAN / VEEGAN: 8 modes, radius 1, std 0.01; 25 modes {-4..4}^2 step 2, std 0.05.
    "ring": (ring_means(8, 1.0), 0.01),
    "grid": (grid_means(5, 2.0), 0.05),
}


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


class GaussianMixture2D(GANDataModule):
    """A mixture of isotropic Gaussians in 2D whose modes are known (for mode coverage).

    Args:
        preset: ``"ring"`` (8 modes, radius 1, std 0.01) or ``"grid"`` (25 modes,
            {-4,-2,0,2,4}^2, std 0.05), as in PacGAN; ``None`` to give ``means``.
        means: ``[[x, y], ...]`` mode centres (overrides the preset's).
        std: standard deviation of every mode (overrides the preset's).
        weights: mixture weights (default uniform); normalised here.
        num_train / num_test: points drawn once, from ``seed``, for training / testing.
    """

    def __init__(
        self,
        preset: Literal["ring", "grid"] | None = "ring",
        means: Sequence[Sequence[float]] | None = None,
        std: float | None = None,
        weights: Sequence[float] | None = None,
        num_train: int = 100_000,
        num_test: int = 10_000,
        batch_size: int = 256,
        num_workers: int = 0,
        data_root: str = "data",
        download: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers, data_root, download, seed)
        if preset is None and means is None:
            raise ValueError("GaussianMixture2D needs data.preset ('ring' or 'grid') or data.means")
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"data.preset must be one of {sorted(PRESETS)}, got {preset!r}")
        preset_means, preset_std = PRESETS[preset] if preset is not None else (None, None)
        modes = torch.as_tensor(means, dtype=torch.float32) if means is not None else preset_means
        assert modes is not None
        if modes.dim() != 2 or modes.shape[1] != 2 or len(modes) == 0:
            raise ValueError(
                f"data.means must be a list of [x, y] pairs, got shape {tuple(modes.shape)}"
            )
        if not modes.isfinite().all():
            raise ValueError(f"data.means must be finite, got {modes.tolist()}")
        mode_std = std if std is not None else preset_std
        if mode_std is None or not math.isfinite(mode_std) or mode_std <= 0:
            raise ValueError(f"data.std must be a finite number > 0, got {mode_std}")
        w = (
            torch.ones(len(modes))
            if weights is None
            else torch.as_tensor(weights, dtype=torch.float)
        )
        if w.shape != (len(modes),) or not w.isfinite().all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(
                f"data.weights must be {len(modes)} finite non-negative numbers with a positive "
                f"sum, got {weights}"
            )
        if num_train < batch_size:
            raise ValueError(
                f"data.num_train ({num_train}) must be >= data.batch_size ({batch_size})"
            )
        if num_test < 1:
            raise ValueError(f"data.num_test must be >= 1, got {num_test}")
        self.modes = modes
        self.mode_std = float(mode_std)
        self.mode_weights = w / w.sum()
        self.sample_shape = (2,)
        self.num_train, self.num_test = num_train, num_test

    def setup(self, stage: str | None = None) -> None:
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
