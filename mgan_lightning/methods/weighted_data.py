"""Training on reweighted data: each real batch drawn with probability proportional to
per-example weights that the method changes between rounds (MWU's w_i).

The weights live in the DataModule (``example_weights``, float64, saved in checkpoints by
it). Each real batch is drawn in the step from this process's own stream of the step, so DDP
processes draw different batches with the same weights and a resumed run draws the same ones;
the DataLoader's batch only gives its size (a weighted sampler in the loader would draw
before the step, from a stream a resume cannot restore).

A value for every training point (a critic's score) is computed by the processes together:
process ``r`` of ``W`` computes the points ``r, r + W, ...`` in chunks, and one ``all_reduce``
sum of zero-filled vectors combines the shares. Every entry is one process's value plus
zeros, so it is that value exactly, and no share is padded as an ``all_gather`` would need.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mgan_lightning.methods.base import GANMethod


class WeightedData(GANMethod):
    """Real batches ``x ~ w / sum(w)`` from a GANDataModule's ``example_weights`` (all 1
    until the method changes them)."""

    #: names this process's stream of the weighted draws of a step
    data_stream = "weighted-data"

    def weighted_data(self):
        """The DataModule, which must be able to draw by weight."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "draw_weighted"):
            raise RuntimeError(
                f"{type(self).__name__} reweights the training data: train it with a "
                "GANDataModule (mgan fit --data ...)"
            )
        return datamodule

    def setup(self, stage: str) -> None:
        """:meth:`GANMethod.setup`, then at ``fit`` turn the DataModule's per-example weights on
        (all 1; a resumed run's checkpoint replaces them when it loads)."""
        super().setup(stage)
        if stage == "fit":
            self.weighted_data().enable_example_weights()  # a checkpoint's replace them later

    def real_samples(self, batch) -> torch.Tensor:  # type: ignore[override]
        """As many examples as the loader's batch holds, drawn by weight (on the CPU, where
        the weights are)."""
        n = len(super().real_samples(batch))
        generator = torch.Generator().manual_seed(self.step_seed(self.data_stream))
        return self.weighted_data().draw_weighted(n, generator).to(self.device)

    @torch.no_grad()
    def on_every_training_point(
        self, value: Callable[[torch.Tensor], torch.Tensor], batch_size: int
    ) -> torch.Tensor:
        """``value(x_i)`` for every training point, ``(n,)`` float64 on the CPU, the same on
        every process; ``value`` maps a chunk of examples on the model's device to one number
        each."""
        datamodule = self.weighted_data()
        n = datamodule.num_train_examples()
        world = self.trainer.world_size
        mine = torch.arange(self.global_rank, n, world)
        share = [
            value(datamodule.examples(chunk).to(self.device)).flatten()
            for chunk in mine.split(batch_size)
        ]
        values = torch.cat(share).to(torch.float64)
        if world == 1:
            return values.cpu()
        full = torch.zeros(n, dtype=torch.float64, device=self.device)
        full[mine.to(self.device)] = values
        return self.trainer.strategy.reduce(full, reduce_op="sum").cpu()
