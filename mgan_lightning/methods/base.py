"""The manual-optimisation skeleton every method shares.

One training step (Goodfellow et al. 2014, Algorithm 1, with ``n_critic`` D steps):

    for each of n_critic D steps:
        x ~ data;  z ~ prior;  x_fake = G(z)           (K generators at once)
        D step on  discriminator_loss(x, x_fake, k)
    G step on generator_loss(x_fake, k, z)

A method overrides hooks, not the loop: :meth:`sample_latent`, :meth:`generate`,
:meth:`discriminator_loss`, :meth:`generator_loss` (and :meth:`classifier_outputs` to give
the critic a classifier head).

The clock is the generator step: ``max_generator_steps``, schedules, EMA, evaluation and
checkpoint cadences and every logged row count G updates, whatever ``n_critic`` is. Every
random draw of a step comes from :meth:`GANMethod.training_generator`, seeded from (run
seed, process rank, generator step), so resumed runs are exact and DDP processes differ.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from mgan_lightning.data.slots import slots_of
from mgan_lightning.divergence import (
    DEFAULT_MAX_SAMPLE_RATIO,
    DEFAULT_MAX_WEIGHT_NORM,
    DivergenceGuard,
    NonFiniteLossError,  # noqa: F401  (re-exported: mgan_lightning.methods imports it here)
    OnDivergence,
)
from mgan_lightning.latent import LatentPrior, NormalPrior
from mgan_lightning.methods.resume import ConfiguredOptimization, match_ema_to_model
from mgan_lightning.nets.architecture import Architecture
from mgan_lightning.nets.ema import averaged_copy, update_average
from mgan_lightning.nets.mlp import MLP
from mgan_lightning.private_api import (
    attached_trainer,
    is_last_batch_of_epoch,
    lift_default_epoch_limit,
    loggers_update_now,
    set_max_steps,
    tolerate_unused_parameters,
)
from mgan_lightning.rng import derive_seed, run_seed, seeded_generator
from mgan_lightning.schedules import StepOrFraction, resolve_step


def default_adam(params) -> torch.optim.Optimizer:
    """Adam(lr 2e-4, betas (0.5, 0.999)), the DCGAN setting most GAN papers use."""
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))


def object_config(obj: object) -> dict | None:
    """``{"class_path", "init_args"}`` of ``obj`` when every ``__init__`` argument is an
    attribute of the same name with a plain (YAML) value; ``None`` otherwise."""
    plain = (type(None), bool, int, float, str)

    def is_plain(v) -> bool:
        return isinstance(v, plain) or (
            isinstance(v, (list, tuple)) and all(is_plain(x) for x in v)
        )

    init_args = {}
    for name, p in list(inspect.signature(type(obj).__init__).parameters.items())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or not is_plain(getattr(obj, name, ())):
            return None
        init_args[name] = getattr(obj, name)
    return {
        "class_path": f"{type(obj).__module__}.{type(obj).__qualname__}",
        "init_args": init_args,
    }


def hparams_as_config(hparams) -> None:
    """Replace architecture / prior objects in ``hparams`` by their ``class_path`` configs, as
    LightningCLI does. Otherwise a checkpoint made from Python pickles the objects, and
    ``load_from_checkpoint`` / ``Trainer.fit(ckpt_path=...)`` fail under torch's default
    ``weights_only=True``. Objects that cannot be described are kept as they are."""
    if "_instantiator" in hparams:  # built by LightningCLI: already plain configs
        return
    configs = {}
    for key, value in hparams.items():
        if isinstance(value, (Architecture, LatentPrior)):
            config = object_config(value)
            if config is None:
                return
            configs[key] = config
    if configs:
        hparams.update(configs)
        hparams["_instantiator"] = "lightning.pytorch.cli.instantiate_module"


class GANMethod(LightningModule):
    """Base class of every method: K generators (a :class:`GeneratorBank`), one critic.

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
            (:mod:`mgan_lightning.divergence`): a loss that is not finite
            (:class:`NonFiniteLossError`, before its update), weights and samples that blow
            up (below). ``False`` turns every such check off.
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
            parameters exceeds this (``None``: no bound; non-finite weights always stop).
            Default 1e6: healthy ring/grid runs end at <= 125, the image configs start at
            <= 705 (:data:`mgan_lightning.divergence.DEFAULT_MAX_WEIGHT_NORM`).
        max_sample_ratio: stop when the fake batch's largest ``|x|`` exceeds this many times
            the data's scale (the real batch's largest ``|x|``, at least 1); ``None``: no
            bound. Healthy runs measured stay below 6 (below 2.1 once trained).
        on_divergence: ``"stop"`` (default), or ``"skip"``: an update whose loss or
            gradients are not finite is dropped, leaving the weights and optimizer state
            unchanged, and training goes on (weights and samples out of bounds still stop).
    """

    generator_step: torch.Tensor
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
    ) -> None:
        super().__init__()
        for name, value in (
            ("num_generators", num_generators),
            ("latent_dim", latent_dim),
            ("n_critic", n_critic),
            ("max_generator_steps", 1 if max_generator_steps is None else max_generator_steps),
        ):
            if value < 1:
                raise ValueError(f"model.{name} must be >= 1, got {value}")
        if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"model.ema_decay must be in [0, 1) or null, got {ema_decay}")
        resolve_step(ema_start, 1, "model.ema_start")  # an int >= 0 or a fraction
        if fake_per_generator is not None and fake_per_generator < 1:
            raise ValueError(f"model.fake_per_generator must be >= 1, got {fake_per_generator}")
        if not sample_shape or min(sample_shape) < 1:
            raise ValueError(f"model.sample_shape must be positive sizes, got {sample_shape}")
        self.save_hyperparameters(
            ignore=["optimizer_g", "optimizer_d", "scheduler_g", "scheduler_d"]
        )
        hparams_as_config(self.hparams)
        self.automatic_optimization = False
        self.sample_shape = tuple(sample_shape)
        self.num_generators = num_generators
        self.latent_dim = latent_dim
        self.fake_per_generator = fake_per_generator
        self.same_latent = same_latent
        self.n_critic = n_critic
        self.detect_nan = detect_nan
        self.divergence_guard = DivergenceGuard(
            detect_nan, on_divergence, max_weight_norm, max_sample_ratio
        )
        self.optimizer_g = optimizer_g
        self.optimizer_d = optimizer_d
        self.scheduler_g = scheduler_g
        self.scheduler_d = scheduler_d
        self.max_generator_steps = max_generator_steps
        self.ema_decay = ema_decay
        self.ema_start = ema_start
        self.architecture = architecture if architecture is not None else MLP()
        self.prior = prior if prior is not None else NormalPrior()
        self.independent_generators = independent_generators
        self.generators = self.build_generators(latent_dim)
        self.critic = self.architecture.critic(self.sample_shape, self.classifier_outputs())
        # The averaged generators (a submodule, so checkpoints hold them), or None.
        self.generators_ema = averaged_copy(self.generators) if ema_decay is not None else None
        # Generator updates so far; global_step counts every optimizer step (D and G).
        self.register_buffer("generator_step", torch.zeros((), dtype=torch.long))
        # A plain-int mirror of the buffer: reading it never waits for the device.
        self.generator_steps_done = 0
        self.register_load_state_dict_post_hook(_sync_step_mirror)
        self.run_seed: int | None = None  # set at fit start, or restored from the checkpoint
        self._training_rngs: dict[str, torch.Generator] = {}

    # ----------------------------------------------------------------- hooks
    def build_generators(self, latent_dim: int) -> nn.Module:
        """The K generators: a shared-body bank, or K independent networks."""
        build = (
            self.architecture.independent_generators
            if self.independent_generators
            else self.architecture.generator_bank
        )
        return build(self.num_generators, latent_dim, self.sample_shape)

    def classifier_outputs(self) -> int:
        """Width of the critic's classifier head (0: no classifier)."""
        return 0

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, latent)`` shared by all generators, or ``(K, n, latent)`` independent,
        drawn from ``generator``."""
        if self.same_latent:
            return self.prior.sample(n, self.latent_dim, generator)
        z = self.prior.sample(self.num_generators * n, self.latent_dim, generator)
        return z.reshape(self.num_generators, n, self.latent_dim)

    def generate(self, z: torch.Tensor, averaged: bool = False) -> torch.Tensor:
        """Samples of every generator, ``(K, n, *sample_shape)``; ``averaged`` runs the EMA
        generators (when the method keeps them)."""
        bank = self.generators_ema if averaged and self.generators_ema is not None else None
        return (bank or self.generators)(z)

    def mixture_weights(self) -> torch.Tensor | None:
        """Probability of each generator in the model's mixture (``None``: uniform)."""
        return None

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

    # --------------------------------------------------------------- the loop
    def generator_parameters(self) -> list[nn.Parameter]:
        return list(self.generators.parameters())

    def configure_optimizers(self):
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

    def on_train_start(self) -> None:
        """After a checkpoint was restored: the optimizer and schedule arguments given now
        apply from this step on (Lightning restores the checkpoint's), the moments of Adam
        and the schedule's step count are kept, and the run stops at the length asked now."""
        configured = getattr(self, "_configured", None)
        if configured is not None and self.generator_steps_done > 0:
            configured.reapply(self.schedule_length())
        planned = self.planned_generator_steps()
        if self.max_generator_steps is not None and planned is not None:
            # The optimizer steps left, counted with today's n_critic (it may have changed).
            remaining = max(self.max_generator_steps - self.generator_steps_done, 0)
            steps = self.global_step + remaining * self.optimizer_steps_per_generator_step
            set_max_steps(self.trainer, min(steps, self.trainer.max_steps))

    # ------------------------------------------------------------- the clock
    @property
    def optimizer_steps_per_generator_step(self) -> int:
        """Optimizer steps (``trainer.global_step``) one generator step makes."""
        return self.n_critic + 1

    def setup(self, stage: str) -> None:
        """Before DDP wraps the model: let it tolerate alternating G/D updates; put the
        training length on the generator-step clock; fix the run's seed."""
        trainer = self.trainer
        # A D step leaves G's parameters without gradient (and a G step D's), which the
        # default DDP reducer reports as an error; it must look for unused parameters. The
        # mgan command asks for strategy ddp_find_unused_parameters_true itself; a Trainer
        # built in Python with strategy="ddp" is told here.
        tolerate_unused_parameters(trainer.strategy)
        if stage != "fit":
            return
        if self.run_seed is None:
            self.run_seed = run_seed()
        if self.needs_preparation():
            # The shapes a prior built from data imposes are known from the data's size
            # now, before the optimizers exist; the prior itself is built at fit start.
            self.set_latent_dim(self.prior.dim_for(self.sample_shape, self._train_size()))
        if self.max_generator_steps is not None:
            # Whichever limit comes first stops training, as with max_epochs and max_steps.
            steps = self.max_generator_steps * self.optimizer_steps_per_generator_step
            if trainer.max_steps != -1:
                steps = min(steps, trainer.max_steps)
            set_max_steps(trainer, steps)
            lift_default_epoch_limit(trainer)  # the length is in steps, not 1000 epochs

    def on_fit_start(self) -> None:
        """Prepare from the training data, once: after a checkpoint was restored (resuming
        keeps what the checkpoint holds), before step 1. Process 0 computes, the others
        receive the result."""
        if self.needs_preparation():
            trainer = self.trainer
            datamodule = getattr(trainer, "datamodule", None)
            state = self.prepare_from_data(datamodule) if trainer.is_global_zero else None
            self.receive_preparation(trainer.strategy.broadcast(state, src=0))  # type: ignore[arg-type]

    def _train_size(self) -> int:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "num_train_examples"):
            raise RuntimeError(
                f"{type(self).__name__}'s prior is built from the training data: train with a "
                "GANDataModule (mgan fit --data ...), which can subsample its training split"
            )
        return datamodule.num_train_examples()

    # ------------------------------------------- preparing from the training data
    def needs_preparation(self) -> bool:
        """Whether the method must look at the training data before step 1 (by default:
        when its prior is built from data, as BourGAN's is, and has not been built yet)."""
        return self.prior.needs_data and not self.prior.prepared

    def prepare_from_data(self, datamodule) -> dict:
        """Runs once, on process 0, at the start of a fresh run; returns what every process
        needs (picklable) for :meth:`receive_preparation`. The default fits the prior to a
        seeded subsample of the training data, on the training device."""
        seed = self.resolved_run_seed()
        n = self.prior.points_to_embed(self.sample_shape, self._train_size())
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

    def set_latent_dim(self, dim: int) -> None:
        """Rebuild the generators (and their average) for latents of ``dim`` when it differs
        (a prior built from data fixes it from the data's size). Before the optimizers exist
        only: in ``setup`` or when a checkpoint is being loaded."""
        if dim == self.latent_dim:
            return
        self.latent_dim = dim
        self.hparams["latent_dim"] = dim  # so load_from_checkpoint builds the right shape
        self.generators = self.build_generators(dim).to(self.device)
        if self.generators_ema is not None:
            self.generators_ema = averaged_copy(self.generators)

    def planned_generator_steps(self) -> int | None:
        """The generator step at which training stops, if it is fixed in steps."""
        trainer = attached_trainer(self)
        if trainer is not None and trainer.max_steps > 0:  # set from max_generator_steps too
            return trainer.max_steps // self.optimizer_steps_per_generator_step
        return self.max_generator_steps

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        self.divergence_guard.check_before_save(self)  # a diverged state is never saved
        checkpoint["mgan_run_seed"] = self.run_seed
        datamodule = getattr(attached_trainer(self), "datamodule", None)
        if hasattr(datamodule, "fingerprint"):  # what the data were: checked at test/predict
            checkpoint["mgan_data"] = datamodule.fingerprint()  # type: ignore[union-attr]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.divergence_guard.error = None  # a good state replaces a diverged one
        match_ema_to_model(checkpoint.get("state_dict"), self.generators_ema is not None)
        if checkpoint.get("mgan_run_seed") is not None:
            self.run_seed = int(checkpoint["mgan_run_seed"])
        saved_dim = checkpoint.get("hyper_parameters", {}).get("latent_dim")
        if self.prior.needs_data and isinstance(saved_dim, int):
            self.set_latent_dim(saved_dim)  # built from a config before the data was seen

    def training_generator(self, stream: str = "train") -> torch.Generator:
        """The generator every draw of this training step uses, seeded from (run seed,
        ``stream``, process rank, generator step): a resumed run redraws the same numbers,
        and each DDP process draws its own. A loss that needs draws of its own (BourGAN's
        second latent batch) asks for another ``stream``."""
        rng = self._training_rngs.get(stream)
        if rng is None or rng.device != self.device:
            rng = self._training_rngs[stream] = torch.Generator(device=self.device)
        rng.manual_seed(self.step_seed(stream))
        return rng

    def resolved_run_seed(self) -> int:
        """The run's seed (set at fit start or restored), else the environment's."""
        return self.run_seed if self.run_seed is not None else run_seed()

    def step_seed(self, stream: str) -> int:
        """Seed of ``stream``'s draws in this generator step on this process."""
        return derive_seed(
            self.resolved_run_seed(), stream, self.global_rank, self.generator_steps_done
        )

    def fake_batch(
        self, real_batch_size: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(fake[K*n, ...], generator_index[K*n], z)`` for one step."""
        k = self.num_generators
        n = self.fake_per_generator or -(-real_batch_size // k)
        z = self.sample_latent(n, generator)
        fake = self.generate(z)
        index = torch.arange(k, device=fake.device).repeat_interleave(n)
        return fake.reshape(k * n, *fake.shape[2:]), index, z

    @staticmethod
    def real_samples(batch) -> torch.Tensor:
        return batch[0] if isinstance(batch, (tuple, list)) else batch

    def _check_finite(self, loss: torch.Tensor, which: str) -> None:
        """Raise :class:`NonFiniteLossError` before the update if ``loss`` is not finite
        (``on_divergence: skip`` decides after the backward pass instead)."""
        self.divergence_guard.check_loss(self, loss, which)

    def training_step(self, batch, batch_idx: int) -> None:
        real = self.real_samples(batch)
        opt_g, opt_d = self.optimizers()  # type: ignore[attr-defined,misc]
        rng = self.training_generator()
        logs: dict[str, torch.Tensor] = {}
        for i in range(self.n_critic):
            with torch.set_grad_enabled(i == self.n_critic - 1):  # G's graph: last fakes only
                fake, index, z = self.fake_batch(len(real), rng)
            d_loss, d_logs = self.discriminator_loss(real, fake.detach(), index)
            self._check_finite(d_loss, "discriminator")
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            self.divergence_guard.keep_update(self, opt_d, d_loss, "discriminator")
            opt_d.step()  # a skipped update has no gradients: weights and state unchanged
            logs.update(d_logs)

        self.toggle_optimizer(opt_g)
        g_loss, g_logs = self.generator_loss(fake, index, z)
        self._check_finite(g_loss, "generator")
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

        if self._logs_are_written_now():
            # "step" sets the loggers' x axis: completed generator steps.
            logs["step"] = self.generator_step.float()
            self.log_dict({k: v.detach() for k, v in logs.items()}, prog_bar=False)

    def end_generator_step(self) -> None:
        """After each G update: step the schedulers, average the generators, advance the
        clock."""
        for scheduler in self._schedulers():
            scheduler.step()
        self.generator_step += 1
        self.generator_steps_done += 1
        if self.generators_ema is not None and self.ema_decay is not None:
            update_average(self.generators_ema, self.generators, self.ema_decay_now())

    def ema_decay_now(self) -> float:
        """The EMA decay of this generator step: 0 (the average copies) until ``ema_start``
        steps of :meth:`ema_clock` are done, ``ema_decay`` after."""
        assert self.ema_decay is not None
        start = resolve_step(self.ema_start, self.schedule_length(), "model.ema_start")
        return self.ema_decay if self.ema_clock() > start else 0.0

    def schedule_length(self) -> int | None:
        """The length that fractions of the run (``ema_start: 0.5``, a schedule's
        ``start: 0.5``) refer to: the planned generator steps (a method with rounds may
        answer the length of a round)."""
        return self.planned_generator_steps()

    def ema_clock(self) -> int:
        """The steps ``ema_start`` counts: generator steps done (a method that restarts its
        networks, such as MWU, counts from its latest restart)."""
        return self.generator_steps_done

    def _schedulers(self) -> list:
        if attached_trainer(self) is None:
            return []
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return []
        return schedulers if isinstance(schedulers, list) else [schedulers]

    def _logs_are_written_now(self) -> bool:
        """Whether Lightning writes on-step values to the loggers after this step.

        One ``self.log`` costs about 1 ms per key on a CPU (Lightning's result bookkeeping),
        as much as a whole 2D GAN step, and on-step values reach the loggers only every
        ``trainer.log_every_n_steps`` batches. So the step logs on those steps, on each
        epoch's last batch and on the last step: the loggers receive exactly the same rows,
        and ``trainer.callback_metrics`` holds the same values at epoch ends and at the end.
        """
        trainer = attached_trainer(self)
        if trainer is None or getattr(trainer, "fast_dev_run", False):
            return True
        return (
            loggers_update_now(trainer)
            or is_last_batch_of_epoch(trainer)
            or 0 < trainer.max_steps <= self.global_step
        )

    def validation_step(self, batch, batch_idx: int) -> None:
        """Nothing per batch: evaluation callbacks sample the model (``mgan validate``)."""

    def test_step(self, batch, batch_idx: int) -> None:
        """Nothing per batch: evaluation callbacks sample the model at test end."""

    def predict_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        """The samples of a batch of sample slots (:func:`mgan_lightning.data.
        sample_slot_loader`), with their slot, generator and latent."""
        slots, seeds = slots_of(batch)
        samples, index, latent = self.sample_slots(slots, seeds)
        return {"slot": slots, "samples": samples, "generator": index, "latent": latent}

    # --------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(
        self,
        n: int,
        weights: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` samples of the mixture and the generator that made each.

        Each sample's generator is drawn from ``weights`` (default: :meth:`mixture_weights`,
        uniform unless a method says otherwise), then all generators run once in one
        batched call on as many z as the busiest one needs. The EMA generators are used when
        the method keeps them. Draws come from ``generator`` (on the model's device) when
        given, else from the global RNG.
        """
        k = self.num_generators
        weights = self.mixture_weights() if weights is None else weights
        if weights is None:
            index = torch.randint(k, (n,), device=self.device, generator=generator)
        else:
            probs = weights.to(self.device, torch.float)
            index = torch.multinomial(probs, n, replacement=True, generator=generator)
        counts = torch.bincount(index, minlength=k)
        most = int(counts.max()) if n > 0 else 0
        z = self.sample_latent(max(most, 1), generator)
        fake = self.generate(z, averaged=True)
        keep = torch.arange(fake.shape[1], device=self.device)[None, :] < counts[:, None]
        samples = fake[keep]
        index = torch.arange(k, device=self.device).repeat_interleave(counts)
        order = torch.randperm(n, device=self.device, generator=generator)
        return samples[order], index[order]

    # ------------------------------------------------------- sampling by slot
    @torch.no_grad()
    def sample_slots(
        self, slots: torch.Tensor, seeds: torch.Tensor | int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(samples, generator_index, latent)`` of sample slots ``slots`` (``(n,)`` ints).

        Slot ``i``'s generator and latent are drawn by :meth:`draw_slot` from ``(seed, i)``
        alone, so the result for a slot does not depend on the batch or the process it is
        drawn in: ``mgan predict`` gives the same ``N`` samples on one process or several.
        Generators follow :meth:`mixture_weights`; the EMA generators are used when kept.
        Call in eval mode (``predict`` is), so batch norm does not mix the slots.
        """
        slots = torch.as_tensor(slots).reshape(-1)
        seeds = torch.as_tensor(seeds).expand_as(slots)
        weights = self.mixture_weights()
        draws = [self.draw_slot(s, i, weights) for s, i in zip(seeds.tolist(), slots.tolist())]
        index = torch.tensor([k for k, _ in draws], dtype=torch.long, device=self.device)
        if draws:
            latent = torch.stack([z for _, z in draws])
        else:
            latent = torch.empty(0, self.latent_dim, device=self.device)
        return self.generate_assigned(latent, index, averaged=True), index, latent

    def draw_slot(
        self, seed: int, slot: int, weights: torch.Tensor | None = None
    ) -> tuple[int, torch.Tensor]:
        """Generator (drawn from ``weights``, uniform when ``None``) and latent ``(latent,)``
        of one sample slot, from a random generator seeded with ``(seed, slot)`` only."""
        rng = seeded_generator(derive_seed(seed, "sample-slot", slot), self.device)
        if weights is None:
            k = int(torch.randint(self.num_generators, (1,), device=self.device, generator=rng))
        else:
            probs = weights.to(self.device, torch.float)
            k = int(torch.multinomial(probs, 1, generator=rng))
        z = self.sample_latent(1, rng)  # (1, latent) shared, or (K, 1, latent)
        return k, (z[0] if z.ndim == 2 else z[k, 0])

    def generate_assigned(
        self, latent: torch.Tensor, index: torch.Tensor, averaged: bool = False
    ) -> torch.Tensor:
        """Sample ``i`` made by generator ``index[i]`` from ``latent[i]``: ``(n, latent)`` and
        ``(n,)`` -> ``(n, *sample_shape)``. All generators run once, together, each on its own
        latents (zero-padded to the busiest one's count)."""
        k, n = self.num_generators, len(index)
        counts = torch.bincount(index, minlength=k)
        order = torch.argsort(index, stable=True)
        starts = torch.cumsum(counts, 0) - counts  # first position of each generator
        position = torch.arange(n, device=index.device) - starts[index[order]]
        width = max(int(counts.max()) if n else 0, 1)
        z = latent.new_zeros(k, width, latent.shape[-1])
        z[index[order], position] = latent[order]
        fake = self.generate(z, averaged=averaged)
        samples = torch.empty((n, *fake.shape[2:]), dtype=fake.dtype, device=fake.device)
        samples[order] = fake[index[order], position]
        return samples


def _sync_step_mirror(module: nn.Module, incompatible_keys) -> None:
    """After ``load_state_dict``: the int mirror follows the restored buffer (one read)."""
    if isinstance(module, GANMethod):
        module.generator_steps_done = int(module.generator_step)
