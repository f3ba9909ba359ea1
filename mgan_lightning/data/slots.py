"""Sample slots: what ``mgan predict`` iterates over instead of data.

Slot ``i`` of a prediction with seed ``s`` stands for one sample, drawn from a random
generator seeded with ``(s, i)`` alone (:meth:`GANMethod.sample_slots`). Which process or
batch a slot lands in therefore does not matter: under DDP, Lightning hands each process a
disjoint share of the slots, and the union is the same ``N`` samples one process would draw.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset


class SampleSlots(Dataset):
    """Slots ``0 .. num_samples - 1``; item ``i`` is ``{"slot": i, "seed": seed}``."""

    def __init__(self, num_samples: int, seed: int) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.num_samples = num_samples
        self.seed = seed

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict[str, int]:
        return {"slot": int(index), "seed": self.seed}


def sample_slot_loader(num_samples: int, seed: int, batch_size: int = 256) -> DataLoader:
    """Batches ``{"slot": LongTensor[b], "seed": LongTensor[b]}`` over ``num_samples`` slots,
    in order. Under DDP, Lightning's predict loop splits it across processes without
    repeating a slot (keep ``trainer.use_distributed_sampler`` on, its default)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return DataLoader(SampleSlots(num_samples, seed), batch_size=batch_size, shuffle=False)


def slots_of(batch) -> tuple[torch.Tensor, torch.Tensor]:
    """``(slots, seeds)`` of a batch from :func:`sample_slot_loader`, or a clear error."""
    if not (isinstance(batch, dict) and "slot" in batch and "seed" in batch):
        raise TypeError(
            "predict samples slots, not data: give it batches from "
            "mgan_lightning.data.sample_slot_loader (dicts with 'slot' and 'seed'), "
            f"got {type(batch).__name__}"
        )
    return batch["slot"], batch["seed"]
