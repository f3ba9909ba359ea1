"""Evaluate mode coverage every N generator steps, at the end of fit and at ``mgan test``."""

from __future__ import annotations

from collections.abc import Sized
from pathlib import Path
from typing import cast

import torch
from lightning.pytorch import LightningModule, Trainer

from mgan_lightning.callbacks.evaluation import SampleEvaluation, generator_step
from mgan_lightning.callbacks.fidelity import real_batches, real_dataset
from mgan_lightning.callbacks.image_logging import log_image
from mgan_lightning.callbacks.scatter import render_scatter
from mgan_lightning.metrics.mode_coverage import ModeCoverage, kl_text
from mgan_lightning.metrics.prdc import PRDC, flat_scores


class ModeCoverageEvaluation(SampleEvaluation):
    """Samples the model, computes :class:`ModeCoverage` and draws a scatter plot.

    Any dimension d: high quality means within the d-dimensional radius of
    :func:`~mgan_lightning.metrics.mode_coverage.high_quality_radius` (3 std in 2D), and the
    scatter shows coordinates 1-2 for d >= 3, x against jitter for d = 1 (captioned).

    ``num_samples`` are split across processes and the metric state is summed, so the
    figures cover all of them; the scatter shows rank 0's share, coloured by generator.
    The modes come from the DataModule (``modes``, ``mode_std``, ``mode_weights``). Logged as
    ``coverage/<name>`` during fit and ``val/<name>`` / ``test/<name>`` outside it.

    With ``prdc``, also precision, recall, density and coverage
    (:mod:`mgan_lightning.metrics.prdc`) on the raw coordinates, against ``num_samples``
    points of the DataModule's test split (a fixed random subset, split across processes
    like the samples): ``prdc/precision``, ``prdc/recall``, ``prdc/density``,
    ``prdc/coverage``, each generator's ``prdc/{precision,density,coverage}_g<i>`` and the
    shares of real balls reached by one, several and no generator
    (``prdc/covered_by_one``, ``_several``, ``_none``); ``val/prdc/...`` / ``test/prdc/...``
    outside fit. Off by default, so the PacGAN protocol's figures are what they were.

    Args:
        every_n_steps: generator steps between evaluations during fit (0: only at the end).
        num_samples: generated samples per evaluation (PacGAN protocol: 2,500).
        plot: write the scatter plot (PNG under the log dir, and to TensorBoard / W&B).
        batch_size: samples per ``sample()`` call.
        seed: seed of the evaluation's own random stream.
        prdc: also compute PRDC on the raw coordinates.
        prdc_nearest_k: k of PRDC's k-NN radii.
    """

    prefix = "coverage"

    def __init__(
        self,
        every_n_steps: int = 1000,
        num_samples: int = 2500,
        plot: bool = True,
        batch_size: int = 10_000,
        seed: int = 1234,
        prdc: bool = False,
        prdc_nearest_k: int = 5,
    ) -> None:
        super().__init__(every_n_steps, num_samples, batch_size, seed)
        if prdc_nearest_k < 1:
            raise ValueError(f"prdc_nearest_k must be >= 1, got {prdc_nearest_k}")
        self.plot = plot
        self.prdc = prdc
        self.prdc_nearest_k = prdc_nearest_k
        self.last_plot: Path | None = None
        self.num_modes = 0
        self.num_real = 0  # real test points PRDC compared against, last time
        self._step = 0

    def key(self, name: str, stage: str | None = None) -> str:
        """``coverage/<name>`` during fit (``prdc/...`` as it is), ``<stage>/<name>`` outside it."""
        if stage:
            return f"{stage}/{name}"
        return name if name.startswith("prdc/") else f"{self.prefix}/{name}"

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
        if self.prdc:
            result.update(self._prdc(trainer, pl_module, samples, index))
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

    def _prdc(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        samples: torch.Tensor,
        index: torch.Tensor,
    ) -> dict[str, float]:
        """PRDC of this process's samples against its share of the real test points; the
        metric gathers both from every process."""
        dataset = real_dataset(trainer, "test", type(self).__name__)
        size = len(cast(Sized, dataset))
        order = torch.randperm(size, generator=torch.Generator().manual_seed(self.seed))
        self.num_real = min(self.num_samples, size)
        mine = order[: self.num_real][trainer.global_rank :: trainer.world_size]
        metric = PRDC(
            self.prdc_nearest_k, num_generators=getattr(pl_module, "num_generators", None)
        )
        metric = metric.to(pl_module.device)
        for real in real_batches(dataset, mine, self.batch_size):
            metric.update(real.to(pl_module.device), real=True)
        metric.update(samples, real=False, generator_index=index)
        return {f"prdc/{k}": v for k, v in flat_scores(metric.compute()).items()}

    def summary(self, result: dict[str, float], step: int) -> str:
        """The line printed after each evaluation: modes covered, high-quality share, reverse KL."""
        text = (
            f"Mode coverage at generator step {step} ({self.num_samples} samples): "
            f"modes covered {result['modes']:.0f}/{self.num_modes}, "
            f"high-quality samples {100 * result['high_quality']:.1f}%, "
            f"reverse KL {kl_text(result['reverse_kl'], 4)}"
        )
        if "prdc/precision" in result:
            scores = ", ".join(
                f"{name} {result[f'prdc/{name}']:.3f}"
                for name in ("precision", "recall", "density", "coverage")
            )
            text += (
                f"\nPRDC (k={self.prdc_nearest_k}, raw coordinates, vs {self.num_real} real "
                f"test points): {scores}"
            )
        return text + (f"\nScatter plot: {self.last_plot}" if self.last_plot else "")
