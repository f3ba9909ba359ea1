"""The generator-step clock: the buffer and its int mirror, the EMA decay of a step, the
Trainer's limit in optimizer steps, and which steps log."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, Trainer

from mgan_lightning.data import GaussianMixture2D
from mgan_lightning.methods import GAN
from mgan_lightning.nets import MLP


def small_gan(**kwargs) -> GAN:
    return GAN(sample_shape=(2,), latent_dim=2, architecture=MLP(8, 1, 8, 1), **kwargs)


def test_advance_and_restore_the_step() -> None:
    model = small_gan()
    assert model.generator_steps_done == 0 and int(model.generator_step) == 0
    model.advance_clock()
    model.advance_clock()
    assert model.generator_steps_done == 2 and int(model.generator_step) == 2
    fresh = small_gan()
    fresh.load_state_dict(model.state_dict())
    assert fresh.generator_steps_done == 2  # the mirror follows the loaded buffer


@pytest.mark.parametrize("ema_start, copies", [(3, 3), (0.5, 5), (0, 0)])
def test_ema_decay_copies_until_ema_start(ema_start, copies: int) -> None:
    """``ema_start`` in steps, or as a fraction of the run (10 steps: 0.5 is 5)."""
    model = small_gan(ema_decay=0.9, ema_start=ema_start, max_generator_steps=10)
    decays = []
    for _ in range(10):
        model.advance_clock()
        decays.append(model.ema_decay_now())
    assert decays == [0.0] * copies + [0.9] * (10 - copies)


class Probe(Callback):
    def __init__(self) -> None:
        self.rows: list[tuple[int, bool]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.rows.append((pl_module.generator_steps_done, "loss/g" in trainer.callback_metrics))


@pytest.mark.parametrize("n_critic, trainer_steps, stop", [(1, -1, 6), (2, -1, 6), (2, 9, 3)])
def test_the_run_stops_at_max_generator_steps_or_the_trainers_limit(
    tmp_path: Path, n_critic: int, trainer_steps: int, stop: int
) -> None:
    """``max_generator_steps=6`` with ``n_critic + 1`` optimizer steps each, unless the
    Trainer's own ``max_steps`` (optimizer steps) comes first; logs reach the Trainer every
    ``log_every_n_steps`` batches and at the last step."""
    model = small_gan(n_critic=n_critic, max_generator_steps=6)
    probe = Probe()
    trainer = Trainer(
        accelerator="cpu", max_steps=trainer_steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
        callbacks=[probe], log_every_n_steps=4,
    )  # fmt: skip
    trainer.fit(model, datamodule=GaussianMixture2D(num_train=512, batch_size=32))
    assert model.generator_steps_done == stop == model.planned_generator_steps()
    assert trainer.global_step == stop * (n_critic + 1)
    logged = [step for step, seen in probe.rows if seen]
    assert logged[0] == min(4, stop) and logged[-1] == stop


def test_schedulers_step_once_per_generator_step(tmp_path: Path) -> None:
    model = small_gan(
        n_critic=3,
        max_generator_steps=4,
        scheduler_g=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5),
    )
    trainer = Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, datamodule=GaussianMixture2D(num_train=512, batch_size=32))
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(2e-4 * 0.5**4)
