"""Learning-rate schedules on the generator-step clock.

A method steps its schedulers once per generator step (after the G update), whatever
``n_critic`` is, so ``last_epoch`` counts generator steps. Any ``torch.optim.lr_scheduler``
class works as ``model.scheduler_g`` / ``model.scheduler_d``; this module adds the one most
GAN papers use.

Boundaries may be given as fractions of the run (``start: 0.5`` is half-way), so that a
shorter or longer run keeps its recipe: an ``int`` is a generator step, a ``float`` in
``[0, 1]`` a fraction of the run's length (:func:`resolve_step`).
"""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LRScheduler

StepOrFraction = int | float


def resolve_step(value: StepOrFraction, run_length: int | None, name: str = "step") -> int:
    """``value`` in generator steps: an ``int`` as it is, a ``float`` in ``[0, 1]`` as that
    fraction of ``run_length`` (rounded to the nearest step).

    >>> resolve_step(0.5, 4000), resolve_step(300, 4000)
    (2000, 300)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a step (int) or a fraction (float), got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
        return value
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"{name} must be a fraction of the run in [0, 1] or a step count (an int), got {value}"
        )
    if run_length is None:
        raise ValueError(
            f"{name}={value} is a fraction of the run: set model.init_args.max_generator_steps"
        )
    return round(value * run_length)


class LinearDecay(LRScheduler):
    """Constant learning rate until generator step ``start``, then linear decay to zero at
    ``end``, zero after: ``lr_t = lr_0 * clip((end - t) / (end - start), 0, 1)``.

    ``start`` and ``end`` are generator steps (``int``) or fractions of the run (``float``
    in ``[0, 1]``); the method that owns the scheduler tells it the run's length
    (:meth:`set_run_length`) before the first step, and again when a resumed run is longer.

    With ``period`` the schedule restarts every ``period`` steps (``t`` is taken modulo
    ``period``, and fractions are of the period): one decay per round of a method that trains
    its networks afresh in rounds, such as :class:`~mgan_lightning.methods.MWU` (``period`` =
    ``steps_per_round``).

    Why not torch's ``SequentialLR([ConstantLR, LinearLR])``: its milestones are steps fixed
    when the scheduler is built, so it cannot take fractions of a run whose length is known
    only at fit start nor be told a new length when a resumed run is longer
    (:meth:`set_run_length`); it has no ``period`` restart; and it is two nested schedulers
    in every config and checkpoint instead of one class with two numbers.

    YAML::

        scheduler_g:
          class_path: mgan_lightning.schedules.LinearDecay
          init_args: {start: 0.5, end: 1.0}   # decay over the second half of the run
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        start: StepOrFraction = 0,
        end: StepOrFraction = 1.0,
        period: int | None = None,
    ) -> None:
        self.start_given, self.end_given = start, end
        self.period = period
        self.start, self.end = self._resolve(period)
        super().__init__(optimizer)

    def _resolve(self, run_length: int | None) -> tuple[int, int]:
        """``(start, end)`` in steps for a run (or period) of ``run_length`` steps; before the
        length is known a fraction stands for itself times 1 (it is resolved again later)."""
        length = self.period if self.period is not None else run_length
        fractions = isinstance(self.start_given, float) or isinstance(self.end_given, float)
        if length is None and fractions:
            return 0, 1  # placeholder until set_run_length
        start = resolve_step(self.start_given, length, "LinearDecay start")
        end = resolve_step(self.end_given, length, "LinearDecay end")
        if not 0 <= start < end:
            raise ValueError(f"LinearDecay needs 0 <= start < end, got start={start}, end={end}")
        if self.period is not None and end > self.period:
            raise ValueError(
                f"LinearDecay needs end <= period, got end={end}, period={self.period}"
            )
        return start, end

    def set_run_length(self, run_length: int | None) -> None:
        """Resolve fractional boundaries for a run of ``run_length`` generator steps and set
        the learning rate of the current step accordingly."""
        self.start, self.end = self._resolve(run_length)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def factor(self, step: int) -> float:
        """The multiplier of the initial learning rate after ``step`` generator steps."""
        if self.period is not None:
            step %= self.period
        return min(max((self.end - step) / (self.end - self.start), 0.0), 1.0)

    def get_lr(self) -> list:  # type: ignore[override]
        """The learning rates after ``last_epoch`` scheduler steps (generator steps)."""
        return [base * self.factor(self.last_epoch) for base in self.base_lrs]
