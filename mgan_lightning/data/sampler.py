"""The order in which training examples are read: seeded, sharded across processes, resumable.

Epoch ``e`` is one permutation of the training set drawn from
``derive_seed(seed, "data-order", e)``: the same on every process, so process ``r`` of ``W``
reads the disjoint share ``perm[r::W]`` (cut to equal length so every process makes the same
number of steps). A run resumed in the middle of epoch ``e`` redraws the same permutation and
skips the batches already consumed, so it reads exactly what the uninterrupted run read.

Lightning would replace the sampler of a ``DataLoader`` under DDP; :class:`TrainBatches` wraps
the loader so that Lightning leaves our order alone, calls :meth:`EpochBatchSampler.set_epoch`
at every epoch start, and lets it ask how many batches of the epoch were already consumed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Sampler

from mgan_lightning.rng import derive_seed


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of indices of this process's share of a seeded permutation per epoch.

    Args:
        num_examples: size of the training set.
        batch_size: examples per batch (the last, incomplete batch is dropped).
        seed: the run's seed.
        rank / world_size: this process and how many read the data together.
    """

    def __init__(
        self, num_examples: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        share = num_examples // world_size
        if share < batch_size:
            raise ValueError(
                f"{num_examples} training examples split across {world_size} processes leave "
                f"{share} each, fewer than data.batch_size={batch_size}"
            )
        self.num_examples = num_examples
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0  # batches of this epoch to skip (already consumed before a resume)

    def set_epoch(self, epoch: int) -> None:
        """Read epoch ``epoch``'s permutation next (Lightning calls it at every epoch start)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return (self.num_examples // self.world_size) // self.batch_size

    def epoch_indices(self) -> torch.Tensor:
        """This process's share of the epoch's permutation, ``len(self) * batch_size`` long."""
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "data-order", self.epoch))
        order = torch.randperm(self.num_examples, generator=generator)
        share = order[: self.world_size * len(self) * self.batch_size][self.rank :: self.world_size]
        return share

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.epoch_indices().view(len(self), self.batch_size)
        for batch in batches[self.start :]:
            yield batch.tolist()


class TrainBatches:
    """The training loader: a ``DataLoader`` over :class:`EpochBatchSampler`, hidden from
    Lightning's sampler replacement (it is no ``DataLoader`` itself).

    ``consumed`` is asked at the start of each pass for how many batches of the current epoch
    were already trained on (non-zero only right after resuming mid-epoch).
    """

    def __init__(
        self,
        loader: DataLoader,
        batch_sampler: EpochBatchSampler,
        consumed: Callable[[], int] = lambda: 0,
    ) -> None:
        self.loader = loader
        self.batch_sampler = batch_sampler  # Lightning calls set_epoch on it
        self.consumed = consumed

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self):
        self.batch_sampler.start = min(max(int(self.consumed()), 0), len(self.batch_sampler))
        return iter(self.loader)

    # Lightning's resumable-loader protocol. The position needs no saving: it is the epoch
    # (restored by Lightning) and the batches consumed in it (asked for at the next pass).
    def state_dict(self) -> dict:
        """The order's seed, for Lightning's resumable-loader protocol. The position needs no
        saving: it is the epoch (restored by Lightning) and the batches consumed in it (asked for
        at the next pass)."""
        return {"seed": self.batch_sampler.seed}

    def load_state_dict(self, state_dict: dict) -> None:
        """Nothing to load: see :meth:`state_dict`."""
