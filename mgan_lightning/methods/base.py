"""The manual-optimisation skeleton every method shares.

One training step (Goodfellow et al. 2014, Algorithm 1, with ``n_critic`` D steps):

    for each of n_critic D steps:
        x ~ data;  z ~ prior;  x_fake = G(z)           (K generators at once)
        D step on  discriminator_loss(x, x_fake, k)
    G step on generator_loss(x_fake, k, z)
    end_generator_step(): schedules, the clock, the moving average (and rounds: rounds.py)

A method overrides hooks, not the loop: ``sample_latent``, ``generate``,
:meth:`~GANMethod.discriminator_loss`, :meth:`~GANMethod.generator_loss`; one that trains a
classifier head on the critic passes its width (``_classifier_outputs``) to this constructor.
The moving average is our own (``nets/ema.py``), not Lightning's weight-averaging callback:
it restarts with each round of a method that has rounds and resumes bitwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from mgan_lightning.divergence import (
    DEFAULT_MAX_SAMPLE_RATIO,
    DEFAULT_MAX_WEIGHT_NORM,
    DivergenceGuard,
    NonFiniteLossError,  # noqa: F401  (re-exported: mgan_lightning.methods imports it here)
    OnDivergence,
)
from mgan_lightning.latent import LatentPrior, NormalPrior
from mgan_lightning.methods.clock import GeneratorClock
from mgan_lightning.methods.hparams import check_arguments, hparams_as_config
from mgan_lightning.methods.networks import build_generators
from mgan_lightning.methods.preparation import DataPreparation
from mgan_lightning.methods.resume import ConfiguredOptimization, restore_run_state, save_run_state
from mgan_lightning.methods.sampling import MixtureSampling
from mgan_lightning.nets.architecture import Architecture
from mgan_lightning.nets.ema import averaged_copy, update_average
from mgan_lightning.nets.mlp import MLP
from mgan_lightning.private_api import tolerate_unused_parameters
from mgan_lightning.rng import run_seed
from mgan_lightning.schedules import StepOrFraction


def default_adam(params) -> torch.optim.Optimizer:
    """Adam(lr 2e-4, betas (0.5, 0.999)), the DCGAN setting most GAN papers use."""
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))


class GANMethod(GeneratorClock, MixtureSampling, DataPreparation):
    """Base class of every method: K generators (a :class:`GeneratorBank`), one critic.

    Beside the step and its hooks: the generator-step clock (``clock.py``), latent hooks,
    random streams and sampling (``sampling.py``), preparation from the training data
    (``preparation.py``); hyperparameters are saved by ``hparams.py``.

    Args:
        sample_shape: shape of one data sample; linked from the DataModule by the CLI.
        num_generators: K, generators in the bank (1 for a plain GAN).
        latent_dim: size of z.
        architecture: builds the generator bank and the critic (default :class:`MLP`).
        prior: the latent distribution (default standard normal).
        fake_per_generator: fake samples each generator makes per step
            (default: the real batch size divided by K, rounded up).
        same_latent: feed the same z batch to every generator (MGAN's authors do).
        n_critic: D steps per G step.
        optimizer_g / optimizer_d: optimizer factories for the generators / the critic.
        detect_nan: check every generator step for divergence and stop the run
            (:mod:`mgan_lightning.divergence`): non-finite losses, weights and samples that
            blow up (below). ``False`` turns every such check off.
        max_generator_steps: training length in generator steps (default 10,000; sets the
            Trainer's limit to ``max_generator_steps * (n_critic + 1)`` optimizer steps; in
            Python a smaller ``Trainer(max_steps=...)``, which counts optimizer steps, still
            stops training first; on the command line ``--trainer.max_steps`` counts
            generator steps and is passed here). ``None``: the Trainer alone decides.
        scheduler_g / scheduler_d: learning-rate schedulers (e.g.
            :class:`mgan_lightning.schedules.LinearDecay`), stepped once per generator step.
        ema_decay: keep an exponential moving average of the generators with this decay
            (e.g. 0.999); ``sample()``, evaluation and ``mgan predict`` then use it.
        ema_start: generator steps before averaging starts (the average copies until then);
            a ``float`` in ``[0, 1]`` is a fraction of the run (``0.5``: half-way).
        independent_generators: K generators that share no layer
            (:class:`mgan_lightning.nets.IndependentGenerators`) instead of MGAN's shared body.
        max_weight_norm: stop when the norm of all the generators' (or all the critic's)
            parameters exceeds this (``None``: no bound; see
            :data:`~mgan_lightning.divergence.DEFAULT_MAX_WEIGHT_NORM`).
        max_sample_ratio: stop when the fake batch's largest ``|x|`` exceeds this many times
            the data's scale (``None``: no bound; see
            :data:`~mgan_lightning.divergence.DEFAULT_MAX_SAMPLE_RATIO`).
        on_divergence: ``"stop"`` (default), or ``"skip"``: drop an update whose loss or
            gradients are not finite and go on (weights and samples out of bounds still stop).
        _classifier_outputs: width of the critic's classifier head (0: none), given by a
            subclass that trains one (MGAN, PMGAN). Not an option: the CLI and the saved
            hyperparameters leave out arguments whose name starts with ``_``.
    """

    # Arguments that shape the networks: a checkpoint is resumed, tested or sampled only
    # with the values it was trained with (the CLI refuses others, naming both).
    fixed_hparams: tuple[str, ...] = (
        "sample_shape",
        "num_generators",
        "latent_dim",
        "architecture",
        "prior",
        "independent_generators",
    )
    #: Arguments of a parent's constructor that a subclass sets itself and does not take:
    #: left out of the saved hyperparameters (MIM-GAN fixes MGAN's ``diversity``).
    derived_hparams: tuple[str, ...] = ()

    def __init__(
        self,
        sample_shape: Sequence[int] = (2,),
        num_generators: int = 1,
        latent_dim: int = 64,
        architecture: Architecture | None = None,
        prior: LatentPrior | None = None,
        fake_per_generator: int | None = None,
        same_latent: bool = False,
        n_critic: int = 1,
        optimizer_g: OptimizerCallable = default_adam,
        optimizer_d: OptimizerCallable = default_adam,
        detect_nan: bool = True,
        max_generator_steps: int | None = 10_000,
        scheduler_g: LRSchedulerCallable | None = None,
        scheduler_d: LRSchedulerCallable | None = None,
        ema_decay: float | None = None,
        ema_start: StepOrFraction = 0,
        independent_generators: bool = False,
        max_weight_norm: float | None = DEFAULT_MAX_WEIGHT_NORM,
        max_sample_ratio: float | None = DEFAULT_MAX_SAMPLE_RATIO,
        on_divergence: OnDivergence = "stop",
        *,
        _classifier_outputs: int = 0,
    ) -> None:
        super().__init__()
        check_arguments(
            sample_shape, num_generators, latent_dim, fake_per_generator, n_critic,
            max_generator_steps, ema_decay, ema_start,
        )  # fmt: skip
        ignored = [
            "optimizer_g",
            "optimizer_d",
            "scheduler_g",
            "scheduler_d",
            "_classifier_outputs",
        ]
        self.save_hyperparameters(ignore=[*ignored, *self.derived_hparams])
        hparams_as_config(self.hparams)
        self.automatic_optimization = False
        self.sample_shape = tuple(sample_shape)
        self.num_generators = num_generators
        self.latent_dim = latent_dim
        self.fake_per_generator, self.same_latent = fake_per_generator, same_latent
        self.n_critic, self.detect_nan = n_critic, detect_nan
        self.divergence_guard = DivergenceGuard(
            detect_nan, on_divergence, max_weight_norm, max_sample_ratio
        )
        self.optimizer_g, self.optimizer_d = optimizer_g, optimizer_d
        self.scheduler_g, self.scheduler_d = scheduler_g, scheduler_d
        self.max_generator_steps = max_generator_steps
        self.ema_decay, self.ema_start = ema_decay, ema_start
        self.architecture = architecture if architecture is not None else MLP()
        self.prior = prior if prior is not None else NormalPrior()
        self.independent_generators = independent_generators
        self.classifier_outputs = _classifier_outputs
        self.generators = build_generators(
            self.architecture, num_generators, latent_dim, self.sample_shape, independent_generators
        )
        self.critic = self.architecture.critic(self.sample_shape, _classifier_outputs)
        # The averaged generators (a submodule, so checkpoints hold them), or None.
        self.generators_ema = averaged_copy(self.generators) if ema_decay is not None else None
        self.start_clock()
        self.run_seed: int | None = None  # set at fit start, or restored from the checkpoint
        self._training_rngs = {}

    # ----------------------------------------------------------------- hooks
    def discriminator_loss(
        self, real: torch.Tensor, fake: torch.Tensor, generator_index: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss the critic minimises; ``fake`` is ``(K*n, ...)`` and detached."""
        raise NotImplementedError

    def generator_loss(
        self, fake: torch.Tensor, generator_index: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss the generators minimise; ``fake`` is ``(K*n, ...)`` with gradients."""
        raise NotImplementedError

    def generator_parameters(self) -> list[nn.Parameter]:
        """What the generators' optimizer trains."""
        return list(self.generators.parameters())

    @staticmethod
    def real_samples(batch) -> torch.Tensor:
        """The real samples of a loader's batch: its first element when it is a tuple or list
        (samples, labels), else the batch itself. A method that draws its own real batches
        (:class:`~mgan_lightning.methods.weighted_data.WeightedData`) overrides it."""
        return batch[0] if isinstance(batch, (tuple, list)) else batch

    # --------------------------------------------------------------- the step
    def training_step(self, batch, batch_idx: int) -> None:
        """The step above; a loss that is not finite raises before its update (under
        ``on_divergence: skip`` the guard decides after the backward pass instead)."""
        real = self.real_samples(batch)
        opt_g, opt_d = self.optimizers()  # type: ignore[attr-defined,misc]
        rng = self.training_generator()
        logs: dict[str, torch.Tensor] = {}
        for i in range(self.n_critic):
            with torch.set_grad_enabled(i == self.n_critic - 1):  # G's graph: last fakes only
                fake, index, z = self.fake_batch(len(real), rng)
            d_loss, d_logs = self.discriminator_loss(real, fake.detach(), index)
            self.divergence_guard.check_loss(self, d_loss, "discriminator")
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            self.divergence_guard.keep_update(self, opt_d, d_loss, "discriminator")
            opt_d.step()  # a skipped update has no gradients: weights and state unchanged
            logs.update(d_logs)

        self.toggle_optimizer(opt_g)
        g_loss, g_logs = self.generator_loss(fake, index, z)
        self.divergence_guard.check_loss(self, g_loss, "generator")
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        self.divergence_guard.keep_update(self, opt_g, g_loss, "generator")
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        logs.update(g_logs)
        # Weights and samples, before any callback can checkpoint this step.
        self.divergence_guard.end_step(self, real, fake, {"generators": opt_g, "critic": opt_d})
        if self.divergence_guard.skipping:
            logs["divergence/skipped_updates"] = torch.tensor(
                float(self.divergence_guard.skipped_updates), device=self.device
            )
        self.end_generator_step()

        if self.logs_are_written_now():
            # "step" sets the loggers' x axis: completed generator steps.
            logs["step"] = self.generator_step.float()
            self.log_dict({k: v.detach() for k, v in logs.items()}, prog_bar=False)

    def end_generator_step(self) -> None:
        """After each G update: step the schedulers, advance the clock, average the
        generators."""
        self.step_schedulers()
        self.advance_clock()
        if self.generators_ema is not None and self.ema_decay is not None:
            update_average(self.generators_ema, self.generators, self.ema_decay_now())

    def configure_optimizers(self):
        """The generators' optimizer (on :meth:`generator_parameters`) and the critic's, in that
        order, with their schedulers (logged as ``lr/g``, ``lr/d``; stepped once per generator step
        by :meth:`end_generator_step`); a schedule given in fractions of the run learns its length
        in generator steps. What was configured is recorded for a resumed run to re-apply
        (:meth:`on_train_start`)."""
        optimizers = [
            self.optimizer_g(self.generator_parameters()),
            self.optimizer_d(self.critic.parameters()),
        ]
        schedulers = [
            {"scheduler": make(optimizer), "interval": "step", "name": f"lr/{name}"}
            for make, optimizer, name in zip(
                (self.scheduler_g, self.scheduler_d), optimizers, ("g", "d")
            )
            if make is not None
        ]
        for config in schedulers:
            if hasattr(config["scheduler"], "set_run_length"):  # fractions of the run
                config["scheduler"].set_run_length(self.schedule_length())
        # What the configuration asks for; a resumed run re-applies it over the checkpoint's.
        self._configured = ConfiguredOptimization.record(optimizers, schedulers)
        return optimizers, schedulers

    # ------------------------------------------------------------- the run
    def setup(self, stage: str) -> None:
        """Before DDP wraps the model: let it tolerate alternating G/D updates; fix the run's
        seed; size the generators for a prior built from data; put the training length on
        the generator-step clock."""
        tolerate_unused_parameters(self.trainer.strategy)
        if stage != "fit":
            return
        if self.run_seed is None:
            self.run_seed = run_seed()
        self.size_for_data()
        self.limit_training_length()

    def on_train_start(self) -> None:
        """After a checkpoint was restored: the optimizer and schedule arguments given now
        apply from this step on (Lightning restores the checkpoint's), the moments of Adam
        and the schedule's step count are kept, and the run stops at the length asked now."""
        configured = getattr(self, "_configured", None)
        if configured is not None and self.generator_steps_done > 0:
            configured.reapply(self.schedule_length())
        self.limit_remaining_steps()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Refuse to save a model that diverged (and check the samples of the state about to be
        saved), then add the run's seed and the data's fingerprint to the checkpoint."""
        self.divergence_guard.check_before_save(self)  # a diverged state is never saved
        save_run_state(self, checkpoint)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Before the weights load: forget a divergence (the checkpoint's state replaces the
        diverged one), take the run's seed, fit the checkpoint's moving average to whether this
        model keeps one, and size the generators for a prior built from data."""
        self.divergence_guard.error = None  # a good state replaces a diverged one
        restore_run_state(self, checkpoint)
