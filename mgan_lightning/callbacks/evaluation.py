"""The schedule and sampling every sample-based evaluation callback shares."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info

from mgan_lightning.callbacks.mode_coverage import as_gan_method


def process_share(total: int, trainer: Trainer) -> int:
    """This process's part of ``total`` items (the first ``total % world`` ranks take one
    more), so the shares of all processes add up to ``total``."""
    world, rank = trainer.world_size, trainer.global_rank
    return total // world + (1 if rank < total % world else 0)


def generator_step(trainer: Trainer, pl_module: LightningModule) -> int:
    """The method's own generator-step counter (``global_step`` counts D and G steps)."""
    step = getattr(pl_module, "generator_step", None)
    return int(step) if step is not None else trainer.global_step


class SampleEvaluation(Callback):
    """Base class: every ``every_n_steps`` generator steps, at the end of fit and at
    ``mgan test``, sample ``num_samples`` images (split across processes) and score them.

    Sampling runs in eval mode, in batches of ``batch_size``, from a forked RNG seeded with
    ``seed + rank``: every evaluation sees the same latent draws (curves are less noisy) and
    the training RNG stream is left untouched. Subclasses implement :meth:`score` (called on
    every process; it must reduce across processes itself, e.g. through torchmetrics) and
    :meth:`summary`; results are logged as ``<prefix>/<name>`` during fit and
    ``test/<prefix>/<name>`` at test.
    """

    prefix = "eval"

    def __init__(
        self,
        every_n_steps: int = 1000,
        num_samples: int = 10_000,
        batch_size: int = 500,
        seed: int = 1234,
    ) -> None:
        if every_n_steps < 0 or num_samples < 1 or batch_size < 1:
            raise ValueError(
                f"{type(self).__name__} needs every_n_steps >= 0, num_samples >= 1 and "
                f"batch_size >= 1, got {every_n_steps}, {num_samples}, {batch_size}"
            )
        self.every_n_steps = every_n_steps
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.last: dict[str, float] = {}

    # ------------------------------------------------------------ subclasses
    def score(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
        raise NotImplementedError

    def summary(self, result: dict[str, float], step: int) -> str:
        items = ", ".join(f"{k} {v:.4g}" for k, v in result.items())
        return f"{type(self).__name__} at generator step {step}: {items}"

    # --------------------------------------------------------------- helpers
    def generated(self, trainer: Trainer, pl_module: LightningModule) -> Iterator[torch.Tensor]:
        """This process's share of ``num_samples`` generated samples, batch by batch (call
        inside :meth:`evaluate`, which sets eval mode and the RNG)."""
        method = as_gan_method(pl_module)
        remaining = process_share(self.num_samples, trainer)
        while remaining > 0:
            n = min(self.batch_size, remaining)
            samples, _ = method.sample(n)
            remaining -= n
            yield samples.float()

    @torch.no_grad()
    def evaluate(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
        device = pl_module.device
        was_training = pl_module.training
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed + trainer.global_rank)
            pl_module.eval()
            try:
                self.last = self.score(trainer, pl_module)
            finally:
                pl_module.train(was_training)
        return self.last

    # ----------------------------------------------------------------- hooks
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = generator_step(trainer, pl_module)
        if self.every_n_steps and step > 0 and step % self.every_n_steps == 0:
            result = self.evaluate(trainer, pl_module)
            pl_module.log_dict({f"{self.prefix}/{k}": v for k, v in result.items()})

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        result = self.evaluate(trainer, pl_module)
        for logger in trainer.loggers:
            logger.log_metrics(
                {f"{self.prefix}/{k}": v for k, v in result.items()}, step=trainer.global_step
            )
        rank_zero_info(self.summary(result, generator_step(trainer, pl_module)))

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """``mgan validate``: the same evaluation as at test time, logged under ``val/``."""
        if trainer.state.fn != TrainerFn.VALIDATING:
            return
        result = self.evaluate(trainer, pl_module)
        pl_module.log_dict({f"val/{self.prefix}/{k}": v for k, v in result.items()})
        rank_zero_info(self.summary(result, generator_step(trainer, pl_module)))

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        result = self.evaluate(trainer, pl_module)
        pl_module.log_dict({f"test/{self.prefix}/{k}": v for k, v in result.items()})
        rank_zero_info(self.summary(result, generator_step(trainer, pl_module)))
