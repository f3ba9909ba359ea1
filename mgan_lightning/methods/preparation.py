"""Preparing a method from its training data, once, before step 1.

A prior built from the data (BourGAN's Gaussian mixture over a Bourgain embedding) is fitted
at the start of a fresh fit: process 0 computes it and broadcasts the result
(``strategy.broadcast``), so every process trains with the same prior. A resumed run keeps
what its checkpoint holds. The latent size the prior imposes is known from the data's size
already at setup, before the optimizers exist, so the generators are built for it then.

A method that must look at the training data overrides :meth:`DataPreparation.needs_preparation`,
:meth:`~DataPreparation.prepare_from_data` and :meth:`~DataPreparation.receive_preparation`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from lightning.pytorch import LightningModule
from torch import nn

from mgan_lightning.latent import LatentPrior
from mgan_lightning.methods.networks import build_generators
from mgan_lightning.nets.architecture import Architecture
from mgan_lightning.nets.ema import averaged_copy
from mgan_lightning.private_api import attached_trainer
from mgan_lightning.rng import derive_seed


class DataPreparation(LightningModule):
    """The hooks that prepare a method from its training data, and their defaults (a prior
    built from data)."""

    prior: LatentPrior
    architecture: Architecture
    sample_shape: tuple[int, ...]
    num_generators: int
    latent_dim: int
    independent_generators: bool
    generators: nn.Module
    generators_ema: nn.Module | None
    resolved_run_seed: Callable[[], int]  # the run's seed (MixtureSampling's)

    # ------------------------------------------------------------------ hooks
    def needs_preparation(self) -> bool:
        """Whether the method must look at the training data before step 1 (by default:
        when its prior is built from data, as BourGAN's is, and has not been built yet)."""
        return self.prior.needs_data and not self.prior.prepared

    def prepare_from_data(self, datamodule) -> dict:
        """Runs once, on process 0, at the start of a fresh run; returns what every process
        needs (picklable) for :meth:`receive_preparation`. The default fits the prior to a
        seeded subsample of the training data, on the training device."""
        seed = self.resolved_run_seed()
        n = self.prior.points_to_embed(self.sample_shape, self.train_size())
        examples = datamodule.subsample(n, seed=derive_seed(seed, "prior-examples"))
        generator = torch.Generator().manual_seed(derive_seed(seed, "prior-fit"))
        trainer = attached_trainer(self)
        device = trainer.strategy.root_device if trainer is not None else self.device
        self.prior.fit(examples.to(device), generator)
        return {k: v.cpu() for k, v in self.prior.state_dict().items()}

    def receive_preparation(self, state: dict) -> None:
        """On every process: take the prepared state; the generators' input follows the
        prior's dimension."""
        self.prior.load_state_dict(state)
        if self.prior.dim is not None:
            self.set_latent_dim(self.prior.dim)

    # ------------------------------------------------------- when they run
    def size_for_data(self) -> None:
        """At setup (fit): the latent size a prior built from data will have."""
        if self.needs_preparation():
            self.set_latent_dim(self.prior.dim_for(self.sample_shape, self.train_size()))

    def on_fit_start(self) -> None:
        """At fit start, after a checkpoint was restored (resuming keeps what it holds),
        before step 1: process 0 prepares, every process receives."""
        if self.needs_preparation():
            trainer = self.trainer
            datamodule = getattr(trainer, "datamodule", None)
            state = self.prepare_from_data(datamodule) if trainer.is_global_zero else None
            self.receive_preparation(trainer.strategy.broadcast(state, src=0))  # type: ignore[arg-type]

    def train_size(self) -> int:
        """Training examples the DataModule holds."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "num_train_examples"):
            raise RuntimeError(
                f"{type(self).__name__}'s prior is built from the training data: train with a "
                "GANDataModule (mgan fit --data ...), which can subsample its training split"
            )
        return datamodule.num_train_examples()

    def set_latent_dim(self, dim: int) -> None:
        """Rebuild the generators (and their average) for latents of ``dim`` when it differs
        (a prior built from data fixes it from the data's size). Before the optimizers exist
        only: in ``setup`` or when a checkpoint is being loaded."""
        if dim == self.latent_dim:
            return
        self.latent_dim = dim
        self.hparams["latent_dim"] = dim  # so load_from_checkpoint builds the right shape
        self.generators = build_generators(
            self.architecture, self.num_generators, dim, self.sample_shape,
            self.independent_generators,
        ).to(self.device)  # fmt: skip
        if self.generators_ema is not None:
            self.generators_ema = averaged_copy(self.generators)
