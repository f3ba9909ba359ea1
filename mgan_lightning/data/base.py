"""One base class for every DataModule: batch loading, and what the model must know about
the data."""

from __future__ import annotations

import math
import warnings

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import BatchSampler, DataLoader, Dataset, SequentialSampler

from mgan_lightning.data.sampler import EpochBatchSampler, TrainBatches
from mgan_lightning.data.slots import sample_slot_loader
from mgan_lightning.private_api import batches_done_this_epoch
from mgan_lightning.rng import run_seed

# val_dataloader returns no loader during fit on purpose (see there); Lightning warns about it.
warnings.filterwarnings("ignore", message="Total length of `list` across ranks is zero")


class TensorBatchDataset(Dataset):
    """A dataset of in-memory tensors indexed a whole batch at a time.

    ``dataset[list_of_indices]`` returns the stacked rows in one indexing operation,
    which avoids per-sample collation: for small 2D batches collation would cost more
    than the GAN step itself.
    """

    def __init__(self, *tensors: torch.Tensor) -> None:
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("TensorBatchDataset needs one or more tensors of equal length")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index):
        index = torch.as_tensor(index, dtype=torch.long)
        return tuple(t[index] for t in self.tensors)


class GANDataModule(LightningDataModule):
    """Base DataModule. Subclasses fill ``train_set``/``test_set`` in ``setup`` and say
    what the data is through attributes the CLI links into the model:

    - ``sample_shape``: shape of one sample, e.g. ``(2,)`` or ``(3, 32, 32)``;
    - ``num_channels``: image channels (``0`` for vector data);
    - ``modes`` / ``mode_std`` / ``mode_weights``: the known modes (mixtures), else ``None``.

    Args:
        batch_size: real samples per training step.
        num_workers: DataLoader worker processes.
        data_root: folder that holds (or will hold) the data files.
        download: fetch missing files from the internet (never done unless asked).
        seed: seed for anything random in building the data set.
    """

    sample_shape: tuple[int, ...] = ()
    modes: torch.Tensor | None = None
    mode_std: float | None = None
    mode_weights: torch.Tensor | None = None
    downloadable: bool = True  # whether ``download=True`` can fetch the data
    # Samples ``trainer.predict`` draws (None: as many as the test split holds).
    predict_samples: int | None = None

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        data_root: str = "data",
        download: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {num_workers}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.data_root = data_root
        self.download = download
        self.seed = seed
        self.train_set: Dataset | None = None
        self.test_set: Dataset | None = None
        # Seed of the training order: the run's seed, fixed when training first reads data
        # and kept in checkpoints, so a resumed run reads on in the same order.
        self.order_seed: int | None = None
        # Per-example weights of the training split (float64: they may grow as 2^T), or
        # None. A method that reweights the data (the multiplicative-weights mixture) turns
        # them on and updates them; they are kept in checkpoints.
        self.example_weights: torch.Tensor | None = None

    def state_dict(self) -> dict:
        """What a checkpoint keeps of the data: the training order's seed (once fixed) and the
        per-example weights (once a method turned them on)."""
        state: dict = {} if self.order_seed is None else {"order_seed": self.order_seed}
        if self.example_weights is not None:
            state["example_weights"] = self.example_weights.clone()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Take a checkpoint's training-order seed and per-example weights (float64), so a resumed
        run reads on in the same order with the same weights."""
        if state_dict.get("order_seed") is not None:
            self.order_seed = int(state_dict["order_seed"])
        if state_dict.get("example_weights") is not None:
            self.example_weights = state_dict["example_weights"].to(torch.float64)

    @property
    def num_channels(self) -> int:
        """Image channels, ``C`` of ``(C, H, W)`` samples; ``0`` for vector data."""
        return self.sample_shape[0] if len(self.sample_shape) == 3 else 0

    def fingerprint(self) -> dict:
        """What a model trained on these data depends on (plain values, kept in its
        checkpoints): the DataModule, the sample shape and, for mixtures, the modes. A
        checkpoint is tested or sampled only against data with the same fingerprint
        (:func:`fingerprint_mismatch`); seeds and sizes may differ."""
        known = self.modes is not None
        return {
            "name": type(self).__name__,
            "sample_shape": list(self.sample_shape),
            "modes": self.modes.tolist() if known else None,  # type: ignore[union-attr]
            "mode_std": self.mode_std if known else None,
        }

    def _dataset(self, train: bool) -> Dataset:
        dataset = self.train_set if train else self.test_set
        if dataset is None:
            self.setup("fit" if train else "test")
            dataset = self.train_set if train else self.test_set
        assert dataset is not None
        return dataset

    def _loader(self, dataset: Dataset, batches: BatchSampler | EpochBatchSampler) -> DataLoader:
        if isinstance(dataset, TensorBatchDataset):  # one indexing operation per batch
            return DataLoader(
                dataset, sampler=batches, batch_size=None, num_workers=self.num_workers
            )
        return DataLoader(
            dataset,
            batch_sampler=batches,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def _consumed_this_epoch(self) -> int:
        """Batches of the current epoch already trained on: non-zero only when Lightning
        resumes mid-epoch from a checkpoint (its restored batch progress)."""
        trainer = self.trainer
        if trainer is None:
            return 0
        return batches_done_this_epoch(trainer)

    def num_train_examples(self) -> int:
        """Size of the training split (set up on first use)."""
        return len(self._dataset(train=True))  # type: ignore[arg-type]

    def subsample(self, n: int, seed: int) -> torch.Tensor:
        """``n`` distinct training examples, ``(n, *sample_shape)``, chosen by a permutation
        seeded with ``seed`` (the same examples for the same seed, on every process).

        What a method asks for when it must look at the data before training (BourGAN's
        embedding); real statistics and per-example scoring use it too."""
        dataset = self._dataset(train=True)
        available = len(dataset)  # type: ignore[arg-type]
        if not 1 <= n <= available:
            raise ValueError(
                f"subsample: asked for {n} examples, the training split has {available}"
            )
        order = torch.randperm(available, generator=torch.Generator().manual_seed(seed))[:n]
        return self.examples(order)

    def examples(self, indices: torch.Tensor) -> torch.Tensor:
        """The training examples at ``indices`` (CPU), stacked: ``(len, *sample_shape)``."""
        dataset = self._dataset(train=True)
        if isinstance(dataset, TensorBatchDataset):
            return dataset[indices][0]
        items = [dataset[i] for i in indices.tolist()]
        return torch.stack([x[0] if isinstance(x, (tuple, list)) else x for x in items])

    # ------------------------------------------------------- per-example weights
    def enable_example_weights(self) -> torch.Tensor:
        """Turn per-example weights on (all 1) unless they already are (e.g. restored from
        a checkpoint); returns them."""
        if self.example_weights is None:
            self.example_weights = torch.ones(self.num_train_examples(), dtype=torch.float64)
        return self.example_weights

    def draw_weighted(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` training examples drawn with replacement, each with probability
        ``w_i / sum(w)`` (uniform while weights are off), from ``generator`` (CPU)."""
        weights = self.example_weights
        if weights is None:
            index = torch.randint(self.num_train_examples(), (n,), generator=generator)
        else:  # divided by the largest weight: no overflow however large they grow
            index = torch.multinomial(
                weights / weights.max(), n, replacement=True, generator=generator
            )
        return self.examples(index)

    def train_dataloader(self) -> TrainBatches:
        """This process's share of each epoch, in the run's seeded order (see
        :mod:`mgan_lightning.data.sampler`): no global RNG, disjoint across DDP processes, and
        a resumed run reads exactly the batches the uninterrupted run would have read."""
        dataset = self._dataset(train=True)
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        if self.order_seed is None:
            self.order_seed = run_seed(default=self.seed)
        if self.example_weights is not None:
            # Weighted training: the method draws each real batch in its step, with the weights
            # of that moment (draw_weighted); a loader would have prefetched batches drawn with
            # the weights before an update. The loader then only paces the steps: it yields
            # batches of indices, no data.
            dataset = TensorBatchDataset(torch.arange(len(dataset)))  # type: ignore[arg-type]
        sampler = EpochBatchSampler(
            len(dataset),  # type: ignore[arg-type]
            self.batch_size,
            seed=self.order_seed,
            rank=rank,
            world_size=world,
        )
        return TrainBatches(self._loader(dataset, sampler), sampler, self._consumed_this_epoch)

    def val_dataloader(self) -> DataLoader | list:
        """The test split, for ``mgan validate``. During ``fit`` there is no validation loop
        (GAN methods evaluate through callbacks every N steps), so none is returned then."""
        trainer = self.trainer
        if trainer is not None and trainer.state.fn == TrainerFn.FITTING:
            return []
        return self._eval_loader()

    def _eval_loader(self) -> DataLoader:
        dataset = self._dataset(train=False)
        in_order = SequentialSampler(dataset)  # type: ignore[arg-type]
        return self._loader(dataset, BatchSampler(in_order, self.batch_size, False))

    def test_dataloader(self) -> DataLoader:
        """The test split in order, in batches of ``batch_size`` (the last may be smaller), for
        ``mgan test``."""
        return self._eval_loader()

    def predict_dataloader(self) -> DataLoader:
        """Sample slots, not data (see :mod:`mgan_lightning.data.slots`): ``predict_samples``
        of them (default: the test split's size), seeded with the run's seed. ``mgan predict``
        builds its own loader from ``--num_samples`` and ``--seed`` and needs no data."""
        n = self.predict_samples or len(self._dataset(train=False))  # type: ignore[arg-type]
        return sample_slot_loader(n, seed=run_seed(default=self.seed), batch_size=self.batch_size)


def fingerprint_mismatch(trained: dict, configured: dict) -> str | None:
    """How the data a checkpoint was trained on (``trained``) differ from the configured data
    (``configured``), in words; ``None`` if they are the same as far as a model can tell."""
    if trained.get("sample_shape") != configured.get("sample_shape"):
        return (
            f"samples of shape {tuple(trained.get('sample_shape') or ())} "
            f"({trained.get('name')}) against {tuple(configured.get('sample_shape') or ())} "
            f"({configured.get('name')})"
        )
    a, b = trained.get("modes"), configured.get("modes")
    if a is None or b is None:
        if a is not b:
            return f"{_modes_text(trained)} against {_modes_text(configured)}"
        return None
    if not _same_modes(a, b):
        return f"{_modes_text(trained)} against {_modes_text(configured)}"
    if not math.isclose(trained["mode_std"], configured["mode_std"]):
        return f"modes of std {trained['mode_std']:g} against std {configured['mode_std']:g}"
    return None


def _same_modes(a: list, b: list) -> bool:
    return len(a) == len(b) and torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-6)


def _modes_text(fingerprint: dict) -> str:
    modes = fingerprint.get("modes")
    if modes is None:
        return f"{fingerprint.get('name')} (no known modes)"
    first = ", ".join(f"{x:.3g}" for x in modes[0])
    return f"{fingerprint.get('name')} with {len(modes)} modes (first at ({first}))"
