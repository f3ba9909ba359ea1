"""Helpers the PMGAN parallel test adds to ``mgan fit``: an MLP whose generators batch-normalise
(so their running statistics must be exchanged too), and a callback
(``--trainer.callbacks+=tests.pmgan_probe.StepRecorder``) that writes what each process did
to ``$MGAN_PROBE_DIR/w<world>_rank<r>.pt``."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from lightning.pytorch import Callback

from mgan_lightning.nets import MLP
from mgan_lightning.nets.generator_bank import GeneratorBank


class BatchNormMLP(MLP):
    """:class:`MLP` with batch norm after each generator's input layer."""

    def generator_bank(
        self, num_generators: int, latent_dim: int, sample_shape: Sequence[int]
    ) -> GeneratorBank:
        bank = super().generator_bank(num_generators, latent_dim, sample_shape)
        return GeneratorBank(num_generators, latent_dim, self.g_hidden, bank.body, batch_norm=True)


class StepRecorder(Callback):
    """Records the initial and final weights, the optimizers' states, and which generators
    this process ran in its training steps."""

    def __init__(self) -> None:
        self.slots: list[tuple[int, int, int]] = []
        self.whole_bank_calls = 0
        self.in_step = False
        self.initial: dict[str, torch.Tensor] = {}

    def on_train_start(self, trainer, pl_module) -> None:
        self.initial = {k: v.clone() for k, v in pl_module.state_dict().items()}
        generate_slots, generate = pl_module.generate_slots, pl_module.generate

        def slots_spy(z, slots):
            if self.in_step:
                self.slots.append((slots.start, slots.stop, slots.step))
            return generate_slots(z, slots)

        def generate_spy(z, averaged=False):
            if self.in_step:
                self.whole_bank_calls += 1
            return generate(z, averaged)

        pl_module.generate_slots = slots_spy
        pl_module.generate = generate_spy

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.in_step = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.in_step = False

    def on_train_end(self, trainer, pl_module) -> None:
        torch.save(
            {
                "initial": self.initial,
                "state_dict": {k: v.clone() for k, v in pl_module.state_dict().items()},
                "optimizers": [o.state_dict() for o in trainer.optimizers],
                "slots": self.slots,
                "whole_bank_calls": self.whole_bank_calls,
                "generator_steps": pl_module.generator_steps_done,
            },
            os.path.join(
                os.environ["MGAN_PROBE_DIR"], f"w{trainer.world_size}_rank{trainer.global_rank}.pt"
            ),
        )
