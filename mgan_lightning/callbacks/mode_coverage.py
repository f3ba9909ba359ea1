"""Evaluate mode coverage every N generator steps, at the end of fit and at ``mgan test``."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import LightningModule, Trainer

from mgan_lightning.callbacks.evaluation import SampleEvaluation, generator_step
from mgan_lightning.callbacks.image_logging import log_image
from mgan_lightning.callbacks.scatter import render_scatter
from mgan_lightning.metrics.mode_coverage import ModeCoverage, kl_text


class ModeCoverageEvaluation(SampleEvaluation):
    """Samples the model, computes :class:`ModeCoverage` and draws a scatter plot.

    Any dimension d: high quality means within the d-dimensional radius of
    :func:`~mgan_lightning.metrics.mode_coverage.high_quality_radius` (3 std in 2D), and the
    scatter shows coordinates 1-2 for d >= 3, x against jitter for d = 1 (captioned).

    ``num_samples`` are split across processes and the metric state is summed, so the
    figures cover all of them; the scatter shows rank 0's share, coloured by generator.
    The modes come from the DataModule (``modes``, ``mode_std``, ``mode_weights``). Logged as
    ``coverage/<name>`` during fit and ``val/<name>`` / ``test/<name>`` outside it.

    Args:
        every_n_steps: generator steps between evaluations during fit (0: only at the end).
        num_samples: generated samples per evaluation (PacGAN protocol: 2,500).
        plot: write the scatter plot (PNG under the log dir, and to TensorBoard / W&B).
        batch_size: samples per ``sample()`` call.
        seed: seed of the evaluation's own random stream.
    """

    prefix = "coverage"

    def __init__(
        self,
        every_n_steps: int = 1000,
        num_samples: int = 2500,
        plot: bool = True,
        batch_size: int = 10_000,
        seed: int = 1234,
    ) -> None:
        super().__init__(every_n_steps, num_samples, batch_size, seed)
        self.plot = plot
        self.last_plot: Path | None = None
        self.num_modes = 0
        self._step = 0

    def key(self, name: str, stage: str | None = None) -> str:
        return f"{stage}/{name}" if stage else f"{self.prefix}/{name}"

    def _metric(self, trainer: Trainer, device: torch.device) -> ModeCoverage:
        data = getattr(trainer, "datamodule", None)
        modes = getattr(data, "modes", None)
        if data is None or modes is None or getattr(data, "mode_std", None) is None:
            raise ValueError(
                "ModeCoverageEvaluation needs a DataModule with known modes (e.g. "
                "GaussianMixture); remove this callback from trainer.callbacks for this data."
            )
        return ModeCoverage(modes, data.mode_std, getattr(data, "mode_weights", None)).to(device)

    def score(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
        """Score this process's share (summed across processes by the metric); on rank 0,
        plot it coloured by generator."""
        metric = self._metric(trainer, pl_module.device)
        shares = list(self.generated_with_index(trainer, pl_module))
        samples = torch.cat([s for s, _ in shares])
        index = torch.cat([i for _, i in shares])
        metric.update(samples)
        result = {k: float(v) for k, v in metric.compute().items()}
        step = generator_step(trainer, pl_module)
        if self.plot and trainer.global_rank == 0:
            title = (
                f"step {step}: {result['modes']:.0f}/{len(metric.modes)} modes, "
                f"high quality {100 * result['high_quality']:.1f}%, "
                f"reverse KL {kl_text(result['reverse_kl'], 3)}"
            )
            image = render_scatter(samples, index, metric.modes, title)
            self.last_plot = log_image(trainer, "coverage/scatter", image, step)
        self.num_modes = len(metric.modes)
        return result

    def summary(self, result: dict[str, float], step: int) -> str:
        text = (
            f"Mode coverage at generator step {step} ({self.num_samples} samples): "
            f"modes covered {result['modes']:.0f}/{self.num_modes}, "
            f"high-quality samples {100 * result['high_quality']:.1f}%, "
            f"reverse KL {kl_text(result['reverse_kl'], 4)}"
        )
        return text + (f"\nScatter plot: {self.last_plot}" if self.last_plot else "")
