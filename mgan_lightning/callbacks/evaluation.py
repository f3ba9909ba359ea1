"""The schedule, sampling and reporting every sample-based evaluation callback shares."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn

from mgan_lightning.methods.base import GANMethod
from mgan_lightning.nets.modes import eval_mode
from mgan_lightning.reporting import publish_metrics, report
from mgan_lightning.rng import derive_seed


def as_gan_method(pl_module: LightningModule) -> GANMethod:
    """The module as a :class:`GANMethod`, or a clear error for anything else."""
    if not isinstance(pl_module, GANMethod):
        raise TypeError(
            f"This callback evaluates GAN methods; {type(pl_module).__name__} is not a GANMethod"
        )
    return pl_module


def process_share(total: int, trainer: Trainer) -> int:
    """This process's part of ``total`` items (the first ``total % world`` ranks take one
    more), so the shares of all processes add up to ``total``."""
    world, rank = trainer.world_size, trainer.global_rank
    return total // world + (1 if rank < total % world else 0)


def generator_step(trainer: Trainer, pl_module: LightningModule) -> int:
    """Completed generator steps (``global_step`` counts D and G steps); the method's int
    mirror, so reading it never waits for the device."""
    step = getattr(pl_module, "generator_steps_done", None)
    return int(step) if step is not None else trainer.global_step


class SampleEvaluation(Callback):
    """Base class: every ``every_n_steps`` generator steps, at the end of fit, at
    ``mgan validate`` and at ``mgan test``, sample ``num_samples`` (split across processes)
    and score them.

    Sampling runs in eval mode, in batches of ``batch_size``, from this callback's own
    generator seeded with ``(seed, stage, rank)``: every evaluation of a fit sees the same
    latent draws (curves are less noisy), ``mgan test`` / ``mgan validate`` each draw a
    stream of their own, and the training stream is never touched, so turning an
    evaluation on or off does not change what is trained. Subclasses implement
    :meth:`score` (called on every process; it must reduce across processes itself, e.g.
    through torchmetrics) and :meth:`summary`.

    During fit, results go straight to the loggers once, at the generator step (``<prefix>/
    <name>``), into ``trainer.callback_metrics`` (for checkpoint monitors) and to the console;
    at ``mgan validate`` / ``mgan test`` they are logged as ``val/...`` / ``test/...``.
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
        self.last_step: int | None = None  # generator step of the last evaluation in fit
        self._generator: torch.Generator | None = None

    # ------------------------------------------------------------ subclasses
    def score(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
        """Score this process's share of the samples; the values must already be reduced
        across processes (e.g. through a torchmetrics ``Metric``). Subclasses implement it."""
        raise NotImplementedError

    def summary(self, result: dict[str, float], step: int) -> str:
        """The line printed for ``result`` at generator step ``step``."""
        items = ", ".join(f"{k} {v:.4g}" for k, v in result.items())
        return f"{type(self).__name__} at generator step {step}: {items}"

    def key(self, name: str, stage: str | None = None) -> str:
        """Logger key of result ``name``; ``stage`` is ``"val"``/``"test"`` outside fit."""
        return f"{stage}/{self.prefix}/{name}" if stage else f"{self.prefix}/{name}"

    # --------------------------------------------------------------- helpers
    def generated_with_index(
        self, trainer: Trainer, pl_module: LightningModule
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This process's share of ``num_samples`` samples with the index of the generator
        that made each, batch by batch (call inside :meth:`evaluate`, which sets eval mode
        and the generator)."""
        method = as_gan_method(pl_module)
        remaining = process_share(self.num_samples, trainer)
        while remaining > 0:
            n = min(self.batch_size, remaining)
            samples, index = method.sample(n, generator=self._generator)
            remaining -= n
            yield samples.float(), index

    def generated(self, trainer: Trainer, pl_module: LightningModule) -> Iterator[torch.Tensor]:
        """Like :meth:`generated_with_index`, samples only."""
        for samples, _ in self.generated_with_index(trainer, pl_module):
            yield samples

    @torch.no_grad()
    def evaluate(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
        """Score the model in eval mode with this callback's own random stream; the train
        mode, batch-norm statistics and the global RNG are as they were afterwards."""
        device = pl_module.device
        self._generator = torch.Generator(device=device)
        # fit's evaluations share one stream; mgan test and validate each draw their own.
        streams = {TrainerFn.TESTING: "test", TrainerFn.VALIDATING: "validation"}
        stream = streams.get(trainer.state.fn, "evaluation") if trainer.state.fn else "evaluation"
        self._generator.manual_seed(derive_seed(self.seed, stream, trainer.global_rank))
        # The fork also shields the global RNG from code that ignores the generator.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            try:
                with eval_mode(pl_module):
                    self.last = self.score(trainer, pl_module)
            finally:
                self._generator = None
        return self.last

    def publish(self, trainer: Trainer, result: dict[str, float], step: int) -> None:
        """Send a fit-time result to the loggers at ``step``, to ``callback_metrics`` and to
        the console."""
        publish_metrics(trainer, {self.key(name): value for name, value in result.items()}, step)
        self.last_step = step

    # ----------------------------------------------------------------- hooks
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Forget the previous fit's last evaluated step."""
        self.last_step = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Evaluate, log and print every ``every_n_steps`` generator steps."""
        step = generator_step(trainer, pl_module)
        if self.every_n_steps and step > 0 and step % self.every_n_steps == 0:
            result = self.evaluate(trainer, pl_module)
            self.publish(trainer, result, step)
            report(trainer, self.summary(result, step))

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Evaluate at the end of fit, unless the last step was just evaluated."""
        step = generator_step(trainer, pl_module)
        if self.last_step != step:  # not evaluated at this step yet: log and print once
            self.publish(trainer, self.evaluate(trainer, pl_module), step)
            report(trainer, self.summary(self.last, step))

    def _log_stage(self, pl_module: LightningModule, stage: str, result: dict[str, float]):
        pl_module.log_dict({self.key(name, stage): value for name, value in result.items()})

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """``mgan validate``: the same evaluation as at test time, logged under ``val/``."""
        if trainer.state.fn != TrainerFn.VALIDATING:
            return
        result = self.evaluate(trainer, pl_module)
        self._log_stage(pl_module, "val", result)
        report(trainer, self.summary(result, generator_step(trainer, pl_module)))

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """``mgan test``: evaluate on the test stream, logged under ``test/``."""
        result = self.evaluate(trainer, pl_module)
        self._log_stage(pl_module, "test", result)
        report(trainer, self.summary(result, generator_step(trainer, pl_module)))
