"""The callback behind ``mgan predict``: gather every process's samples, write one set of
files (:mod:`mgan_lightning.callbacks.sample_files`)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

from mgan_lightning.callbacks.sample_files import (
    is_image_shape,
    write_grid,
    write_pngs,
    write_tensors,
)

Part = dict[str, torch.Tensor]


def join_batches(batches: list[Part]) -> Part | None:
    """One process's predictions, concatenated (``None`` when it drew no batch)."""
    if not batches:
        return None
    return {key: torch.cat([b[key] for b in batches]) for key in batches[0]}


def gather_on_rank_zero(trainer: Trainer, local: Part | None) -> list[Part | None] | None:
    """Every process's part, on global rank 0 (``None`` on the others). Objects travel
    through ``torch.distributed``, so no shared file system is needed."""
    if trainer.world_size == 1 or not (dist.is_available() and dist.is_initialized()):
        return [local]
    parts: list | None = [None] * trainer.world_size if trainer.global_rank == 0 else None
    dist.gather_object(local, parts, dst=0)
    return parts


def merge_parts(parts: list[Part | None], num_samples: int | None = None) -> Part:
    """The parts in slot order, each slot once (a slot drawn twice, e.g. with
    ``use_distributed_sampler=False``, is the same sample both times). Raises when slots
    ``0 .. num_samples - 1`` are not all there."""
    present = [p for p in parts if p is not None]
    if not present:
        raise RuntimeError("predict drew no samples on any process")
    joined = join_batches(present)
    assert joined is not None
    slots = joined.pop("slot").long()
    order = torch.argsort(slots, stable=True)
    first = torch.ones(len(order), dtype=torch.bool)
    first[1:] = slots[order][1:] != slots[order][:-1]
    order = order[first]
    expected = torch.arange(num_samples if num_samples is not None else len(order))
    if not torch.equal(slots[order], expected):
        raise RuntimeError(
            f"predict expected sample slots 0..{len(expected) - 1}, the processes drew "
            f"{len(order)} distinct slots"
        )
    return {key: value[order] for key, value in joined.items()}


class SampleWriter(BasePredictionWriter):
    """Collects the samples of ``trainer.predict`` (from :meth:`GANMethod.predict_step`) on
    every process; at the end, process 0 merges them in slot order and writes, into
    ``output_dir``, ``samples.pt`` / ``samples.npz`` (``samples``, ``generator``, ``latent``)
    and, for images, ``images/<slot>_g<generator>.png`` and ``grid.png`` (row k = generator k).

    Args:
        output_dir: folder to write into (created if missing).
        num_samples: how many slots the prediction covers (checked; ``None``: not checked).
        seed: the prediction's seed, stored in ``samples.pt``.
        samples_per_row: columns of the grid.
        scale: enlargement of the grid picture (nearest neighbour).
    """

    def __init__(
        self,
        output_dir: str | Path,
        num_samples: int | None = None,
        seed: int | None = None,
        samples_per_row: int = 8,
        scale: int = 2,
    ) -> None:
        super().__init__(write_interval="batch")
        if samples_per_row < 1 or scale < 1:
            raise ValueError("SampleWriter needs samples_per_row >= 1 and scale >= 1")
        self.output_dir = Path(output_dir)
        self.num_samples = num_samples
        self.seed = seed
        self.samples_per_row = samples_per_row
        self.scale = scale
        self.written: list[Path] = []
        self.num_written = 0
        self._batches: list[Part] = []

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start collecting this process's samples."""
        self._batches = []

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ) -> None:
        """Keep one batch of predictions (samples, generator index, latent) on the CPU."""
        self._batches.append({key: value.detach().cpu() for key, value in prediction.items()})

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Gather every process's samples on rank 0 and write the files."""
        parts = gather_on_rank_zero(trainer, join_batches(self._batches))
        self._batches = []
        if parts is not None:
            k = int(getattr(pl_module, "num_generators", 0))
            self.written = self.write(merge_parts(parts, self.num_samples), k)
            rank_zero_info(f"Wrote {self.num_written} samples to {self.output_dir}")
        trainer.strategy.barrier("sample-writer")  # the files exist when predict returns

    def write(self, arrays: Part, num_generators: int) -> list[Path]:
        """Write the merged arrays; returns the paths written."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        arrays = {**arrays, "samples": arrays["samples"].float()}
        self.num_written = len(arrays["samples"])
        written = write_tensors(self.output_dir, arrays, self.seed)
        samples, generator = arrays["samples"], arrays["generator"]
        if is_image_shape(tuple(samples.shape[1:])):
            k = max(num_generators, int(generator.max()) + 1)
            written.append(write_pngs(self.output_dir, samples, generator))
            written.append(
                write_grid(
                    self.output_dir / "grid.png",
                    samples,
                    generator,
                    k,
                    self.samples_per_row,
                    self.scale,
                )
            )
        return written
