"""Learning-rate schedules on the generator-step clock.

A method steps its schedulers once per generator step (after the G update), whatever
``n_critic`` is, so ``last_epoch`` counts generator steps. Any ``torch.optim.lr_scheduler``
class works as ``model.scheduler_g`` / ``model.scheduler_d``; this module adds the one most
GAN papers use.
"""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LRScheduler


class LinearDecay(LRScheduler):
    """Constant learning rate until generator step ``start``, then linear decay to zero at
    ``end``, zero after: ``lr_t = lr_0 * clip((end - t) / (end - start), 0, 1)``.

    With ``period`` the schedule restarts every ``period`` steps (``t`` is taken modulo
    ``period``): one decay per round of a method that trains its networks afresh in rounds,
    such as :class:`~mgan_lightning.methods.MWU` (``period`` = ``steps_per_round``).

    YAML::

        scheduler_g:
          class_path: mgan_lightning.schedules.LinearDecay
          init_args: {start: 10000, end: 20000}
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        start: int = 0,
        end: int = 1,
        period: int | None = None,
    ) -> None:
        if not 0 <= start < end:
            raise ValueError(f"LinearDecay needs 0 <= start < end, got start={start}, end={end}")
        if period is not None and not end <= period:
            raise ValueError(f"LinearDecay needs end <= period, got end={end}, period={period}")
        self.start = start
        self.end = end
        self.period = period
        super().__init__(optimizer)

    def factor(self, step: int) -> float:
        """The multiplier of the initial learning rate after ``step`` generator steps."""
        if self.period is not None:
            step %= self.period
        return min(max((self.end - step) / (self.end - self.start), 0.0), 1.0)

    def get_lr(self) -> list:  # type: ignore[override]
        return [base * self.factor(self.last_epoch) for base in self.base_lrs]
