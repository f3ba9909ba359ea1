"""Evaluate mode coverage every N generator steps, at the end of fit and at ``mgan test``."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info

from mgan_lightning.callbacks.image_logging import log_image
from mgan_lightning.callbacks.scatter import render_scatter
from mgan_lightning.methods.base import GANMethod
from mgan_lightning.metrics.mode_coverage import ModeCoverage


def as_gan_method(pl_module: LightningModule) -> GANMethod:
    """The module as a :class:`GANMethod`, or a clear error for anything else."""
    if not isinstance(pl_module, GANMethod):
        raise TypeError(
            f"This callback evaluates GAN methods; {type(pl_module).__name__} is not a GANMethod"
        )
    return pl_module


class ModeCoverageEvaluation(Callback):
    """Samples the model, computes :class:`ModeCoverage` and draws a scatter plot.

    ``num_samples`` are split across processes and the metric state is summed, so the
    figures cover all of them; the scatter shows rank 0's share, coloured by generator.
    The modes come from the DataModule (``modes``, ``mode_std``, ``mode_weights``).

    Args:
        every_n_steps: generator steps between evaluations during fit (0: only at the end).
        num_samples: generated samples per evaluation (PacGAN protocol: 2,500).
        plot: write the scatter plot (PNG under the log dir, and to TensorBoard / W&B).
    """

    def __init__(
        self, every_n_steps: int = 1000, num_samples: int = 2500, plot: bool = True
    ) -> None:
        if every_n_steps < 0 or num_samples < 1:
            raise ValueError("ModeCoverageEvaluation needs every_n_steps >= 0 and num_samples >= 1")
        self.every_n_steps = every_n_steps
        self.num_samples = num_samples
        self.plot = plot
        self.last: dict[str, float] = {}
        self.last_plot: Path | None = None
        self.num_modes = 0

    def _metric(self, trainer: Trainer, device: torch.device) -> ModeCoverage:
        data = getattr(trainer, "datamodule", None)
        modes = getattr(data, "modes", None)
        if data is None or modes is None or getattr(data, "mode_std", None) is None:
            raise ValueError(
                "ModeCoverageEvaluation needs a DataModule with known modes (e.g. "
                "GaussianMixture2D); remove this callback from trainer.callbacks for this data."
            )
        return ModeCoverage(modes, data.mode_std, getattr(data, "mode_weights", None)).to(device)

    @torch.no_grad()
    def evaluate(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
        """Sample, score and (on rank 0) plot; returns the figures as floats."""
        method = as_gan_method(pl_module)
        metric = self._metric(trainer, pl_module.device)
        world, rank = trainer.world_size, trainer.global_rank
        share = self.num_samples // world + (1 if rank < self.num_samples % world else 0)
        was_training = pl_module.training
        pl_module.eval()
        try:
            samples, index = method.sample(share)
        finally:
            pl_module.train(was_training)
        metric.update(samples)
        result = {k: float(v) for k, v in metric.compute().items()}
        step = int(method.generator_step)
        if self.plot:
            title = (
                f"step {step}: {result['modes']:.0f}/{len(metric.modes)} modes, "
                f"high quality {100 * result['high_quality']:.1f}%, "
                f"reverse KL {result['reverse_kl']:.3f}"
            )
            image = render_scatter(samples, index, metric.modes, title)
            self.last_plot = log_image(trainer, "coverage/scatter", image, step)
        self.last, self.num_modes = result, len(metric.modes)
        return result

    def _summary(self, result: dict[str, float], trainer: Trainer, step: int) -> str:
        total = self.num_modes
        text = (
            f"Mode coverage at generator step {step} ({self.num_samples} samples): "
            f"modes covered {result['modes']:.0f}/{total}, "
            f"high-quality samples {100 * result['high_quality']:.1f}%, "
            f"reverse KL {result['reverse_kl']:.4f}"
        )
        return text + (f"\nScatter plot: {self.last_plot}" if self.last_plot else "")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = int(as_gan_method(pl_module).generator_step)
        if self.every_n_steps and step % self.every_n_steps == 0:
            result = self.evaluate(trainer, pl_module)
            pl_module.log_dict({f"coverage/{k}": v for k, v in result.items()})

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        result = self.evaluate(trainer, pl_module)
        step = int(as_gan_method(pl_module).generator_step)
        for logger in trainer.loggers:
            logger.log_metrics(
                {f"coverage/{k}": v for k, v in result.items()}, step=trainer.global_step
            )
        rank_zero_info(self._summary(result, trainer, step))

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """``mgan validate``: the same evaluation as at test time, logged under ``val/``."""
        if trainer.state.fn != TrainerFn.VALIDATING:
            return
        result = self.evaluate(trainer, pl_module)
        pl_module.log_dict({f"val/{k}": v for k, v in result.items()})
        rank_zero_info(self._summary(result, trainer, int(as_gan_method(pl_module).generator_step)))

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        result = self.evaluate(trainer, pl_module)
        pl_module.log_dict({f"test/{k}": v for k, v in result.items()})
        step = int(as_gan_method(pl_module).generator_step)
        rank_zero_info(self._summary(result, trainer, step))
