"""Mode coverage on data with known modes (VEEGAN, Srivastava et al. 2017;
PacGAN, Lin et al. 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric


def assign_modes(
    samples: torch.Tensor, modes: torch.Tensor, std: float, threshold: float = 3.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest mode of each sample, and whether the sample is *high quality*:
    within ``threshold`` standard deviations of that mode.

    Distances are computed directly, not through cdist's matrix-product shortcut
    (``|x|^2 + |m|^2 - 2 x.m``), which cancels catastrophically for modes away from the
    origin and misjudges samples near the threshold (e.g. on the PacGAN grid's corners)."""
    distances = torch.cdist(
        samples.float(), modes.float(), compute_mode="donot_use_mm_for_euclid_dist"
    )
    nearest_distance, nearest = distances.min(dim=1)
    return nearest, nearest_distance < threshold * std


class ModeCoverage(Metric):
    """Modes covered, high-quality fraction, and reverse KL over modes.

    For N generated samples (PacGAN protocol: N = 2,500):
    - a sample is *high quality* if its distance to the nearest mode is < 3 std;
    - a mode is *covered* if at least one high-quality sample has it as nearest mode;
    - reverse KL = ``sum_m q_m log(q_m / p_m)``, where ``q`` is the histogram of the
      high-quality samples over modes and ``p`` the data's mode weights (uniform by
      default). ``nan`` when no sample is high quality.

    State is per-mode counts and totals, summed across processes under DDP.
    """

    full_state_update = False
    higher_is_better = None
    modes: torch.Tensor
    weights: torch.Tensor
    mode_counts: torch.Tensor
    total: torch.Tensor

    def __init__(
        self,
        modes: torch.Tensor | Sequence[Sequence[float]],
        std: float,
        weights: torch.Tensor | Sequence[float] | None = None,
        threshold: float = 3.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        modes = torch.as_tensor(modes, dtype=torch.float32)
        if modes.dim() != 2 or len(modes) == 0:
            raise ValueError(f"modes must be (M, D), got shape {tuple(modes.shape)}")
        if std <= 0 or threshold <= 0:
            raise ValueError(f"std and threshold must be > 0, got std={std}, threshold={threshold}")
        w = (
            torch.ones(len(modes))
            if weights is None
            else torch.as_tensor(weights, dtype=torch.float)
        )
        self.register_buffer("modes", modes)
        self.register_buffer("weights", w / w.sum())
        self.std = std
        self.threshold = threshold
        self.add_state("mode_counts", torch.zeros(len(modes), dtype=torch.long), "sum")
        self.add_state("total", torch.zeros((), dtype=torch.long), "sum")

    def update(self, samples: torch.Tensor) -> None:
        samples = samples.reshape(len(samples), -1)
        nearest, good = assign_modes(samples, self.modes, self.std, self.threshold)
        self.mode_counts += torch.bincount(nearest[good], minlength=len(self.modes))
        self.total += len(samples)

    def compute(self) -> dict[str, torch.Tensor]:
        counts = self.mode_counts.double()
        good = counts.sum()
        q = counts / good.clamp_min(1)
        p = self.weights.double()
        terms = torch.where(q > 0, q * (q / p).log(), torch.zeros_like(q))
        kl = terms.sum() if good > 0 else torch.tensor(float("nan"), dtype=torch.float64)
        return {
            "modes": (self.mode_counts > 0).sum().float(),
            "high_quality": (good / self.total.clamp_min(1)).float(),
            "reverse_kl": kl.float(),
        }
