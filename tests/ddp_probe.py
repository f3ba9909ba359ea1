"""A callback the DDP tests add to ``mgan fit`` (``--trainer.callbacks+=tests.ddp_probe.
RankRecorder``): each process writes what it saw to ``$MGAN_PROBE_DIR/rank<r>.pt``."""

from __future__ import annotations

import os

import torch
from lightning.pytorch import Callback

from mgan_lightning.callbacks import ModeCoverageEvaluation


class RankRecorder(Callback):
    """Records this process's first real batch and first latents, its final weights, the
    samples the coverage evaluation drew on it and the result it computed."""

    def __init__(self) -> None:
        self.first_batch: torch.Tensor | None = None
        self.first_latent: torch.Tensor | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.first_batch is None:
            self.first_batch = pl_module.real_samples(batch).detach().clone()
            # the draw the step is about to make (the generator is re-seeded every step)
            self.first_latent = pl_module.sample_latent(4, pl_module.training_generator())

    def on_train_end(self, trainer, pl_module) -> None:
        coverage = next(c for c in trainer.callbacks if isinstance(c, ModeCoverageEvaluation))
        result = dict(coverage.last)
        drawn: list[torch.Tensor] = []
        score = coverage.score
        coverage.score = lambda t, m: drawn.extend(coverage.generated(t, m)) or {}  # type: ignore[method-assign]
        try:
            coverage.evaluate(trainer, pl_module)  # the same draws, collected instead of scored
        finally:
            coverage.score = score  # type: ignore[method-assign]
            coverage.last = result
        torch.save(
            {
                "state_dict": {k: v.clone() for k, v in pl_module.state_dict().items()},
                "first_batch": self.first_batch,
                "first_latent": self.first_latent,
                "eval_samples": torch.cat(drawn),
                "eval_result": result,
                "modes": trainer.datamodule.modes,
                "example_weights": getattr(trainer.datamodule, "example_weights", None),
                "mode_std": trainer.datamodule.mode_std,
            },
            os.path.join(os.environ["MGAN_PROBE_DIR"], f"rank{trainer.global_rank}.pt"),
        )
