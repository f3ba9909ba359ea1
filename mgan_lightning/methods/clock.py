"""The generator-step clock of a method: what every count a user reads is measured in.

Every ``optimizer.step()`` advances Lightning's ``trainer.global_step``, so one generator step
with ``n_critic`` D steps counts ``n_critic + 1`` there. The clock counts generator updates
instead: the run's length (``max_generator_steps``), schedules, the moving average, evaluation
and checkpoint cadences and every logged row. Lightning has no clock of this kind (its
``max_steps`` counts optimizer steps and fractions of a run are not its notion), so the clock
translates: it sets the Trainer's optimizer-step limit from the length in generator steps at
setup, and again at a resume whose length or ``n_critic`` changed.
"""

from __future__ import annotations

import torch
from lightning.pytorch import LightningModule
from torch import nn

from mgan_lightning.private_api import (
    attached_trainer,
    is_last_batch_of_epoch,
    lift_default_epoch_limit,
    loggers_update_now,
    set_max_steps,
)
from mgan_lightning.schedules import StepOrFraction, resolve_step


class GeneratorClock(LightningModule):
    """Generator steps done (``generator_step``, a buffer saved in checkpoints, and its plain
    ``int`` mirror ``generator_steps_done``), the run's planned length, and what follows from
    them: the EMA decay of the step and whether this step's logs reach the loggers."""

    generator_step: torch.Tensor
    n_critic: int
    max_generator_steps: int | None
    ema_decay: float | None
    ema_start: StepOrFraction

    def start_clock(self) -> None:
        """At construction: no generator step done."""
        # Generator updates so far; global_step counts every optimizer step (D and G).
        self.register_buffer("generator_step", torch.zeros((), dtype=torch.long))
        # A plain-int mirror of the buffer: reading it never waits for the device.
        self.generator_steps_done = 0
        self.register_load_state_dict_post_hook(_sync_step_mirror)

    def advance_clock(self) -> None:
        """One generator step more."""
        self.generator_step += 1
        self.generator_steps_done += 1

    @property
    def optimizer_steps_per_generator_step(self) -> int:
        """Optimizer steps (``trainer.global_step``) one generator step makes."""
        return self.n_critic + 1

    def planned_generator_steps(self) -> int | None:
        """The generator step at which training stops, if it is fixed in steps."""
        trainer = attached_trainer(self)
        if trainer is not None and trainer.max_steps > 0:  # set from max_generator_steps too
            return trainer.max_steps // self.optimizer_steps_per_generator_step
        return self.max_generator_steps

    def schedule_length(self) -> int | None:
        """The length that fractions of the run (``ema_start: 0.5``, a schedule's
        ``start: 0.5``) refer to: the planned generator steps (a method with rounds
        answers the length of a round)."""
        return self.planned_generator_steps()

    def ema_clock(self) -> int:
        """The steps ``ema_start`` counts: generator steps done (a method that restarts its
        networks counts from its latest restart)."""
        return self.generator_steps_done

    def ema_decay_now(self) -> float:
        """The EMA decay of this generator step: 0 (the average copies) until ``ema_start``
        steps of :meth:`ema_clock` are done, ``ema_decay`` after."""
        assert self.ema_decay is not None
        start = resolve_step(self.ema_start, self.schedule_length(), "model.ema_start")
        return self.ema_decay if self.ema_clock() > start else 0.0

    def limit_training_length(self) -> None:
        """At setup: the Trainer stops after ``max_generator_steps`` generator steps, or at
        its own ``max_steps`` (optimizer steps) if that comes first, as with ``max_epochs``
        and ``max_steps``."""
        trainer = self.trainer
        if self.max_generator_steps is None:
            return
        steps = self.max_generator_steps * self.optimizer_steps_per_generator_step
        if trainer.max_steps != -1:
            steps = min(steps, trainer.max_steps)
        set_max_steps(trainer, steps)
        lift_default_epoch_limit(trainer)  # the length is in steps, not 1000 epochs

    def limit_remaining_steps(self) -> None:
        """At the start of training, after a checkpoint was restored: the run stops at the
        length asked now, its remaining generator steps counted in optimizer steps with
        today's ``n_critic`` (it may have changed)."""
        if self.max_generator_steps is None or self.planned_generator_steps() is None:
            return
        remaining = max(self.max_generator_steps - self.generator_steps_done, 0)
        steps = self.global_step + remaining * self.optimizer_steps_per_generator_step
        set_max_steps(self.trainer, min(steps, self.trainer.max_steps))

    def logs_are_written_now(self) -> bool:
        """Whether Lightning writes on-step values to the loggers after this step.

        One ``self.log`` costs about 1 ms per key on a CPU (Lightning's result bookkeeping),
        as much as a whole 2D GAN step, and on-step values reach the loggers only every
        ``trainer.log_every_n_steps`` batches. So the step logs on those steps, on each
        epoch's last batch and on the last step: the loggers receive exactly the same rows,
        and ``trainer.callback_metrics`` holds the same values at epoch ends and at the end.
        """
        trainer = attached_trainer(self)
        if trainer is None or getattr(trainer, "fast_dev_run", False):
            return True
        return (
            loggers_update_now(trainer)
            or is_last_batch_of_epoch(trainer)
            or 0 < trainer.max_steps <= self.global_step
        )

    def step_schedulers(self) -> None:
        """Step every learning-rate scheduler once (once per generator step)."""
        if attached_trainer(self) is None:
            return
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            scheduler.step()  # type: ignore[union-attr,call-arg]


def _sync_step_mirror(module: nn.Module, incompatible_keys) -> None:
    """After ``load_state_dict``: the int mirror follows the restored buffer (one read)."""
    if isinstance(module, GeneratorClock):
        module.generator_steps_done = int(module.generator_step)
