"""Checkpoints on the generator-step clock."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint


class GeneratorStepCheckpoint(ModelCheckpoint):
    """:class:`ModelCheckpoint` that saves every ``every_n_generator_steps`` generator steps,
    whatever ``n_critic`` is (``every_n_train_steps`` counts optimizer steps: ``n_critic + 1``
    per generator step). File names carry the generator step (``gstep=...``) by default.
    Every other argument is ``ModelCheckpoint``'s.

    YAML::

        - class_path: mgan_lightning.callbacks.GeneratorStepCheckpoint
          init_args: {every_n_generator_steps: 5000, save_last: true}
    """

    def __init__(
        self,
        every_n_generator_steps: int = 0,
        filename: str | None = "{gstep}",
        **kwargs: Any,
    ) -> None:
        if every_n_generator_steps < 0:
            raise ValueError(f"every_n_generator_steps must be >= 0, got {every_n_generator_steps}")
        if kwargs.get("every_n_train_steps"):
            raise ValueError(
                "GeneratorStepCheckpoint counts generator steps: give every_n_generator_steps, "
                "not every_n_train_steps"
            )
        super().__init__(filename=filename, **kwargs)
        self.every_n_generator_steps = every_n_generator_steps

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        per_step = getattr(pl_module, "optimizer_steps_per_generator_step", 1)
        self._every_n_train_steps = self.every_n_generator_steps * per_step

    def _monitor_candidates(self, trainer: Trainer) -> dict:
        candidates = super()._monitor_candidates(trainer)
        step = getattr(trainer.lightning_module, "generator_steps_done", trainer.global_step)
        candidates["gstep"] = torch.tensor(step)
        return candidates
