"""The manual-optimisation skeleton every method shares.

One training step (Goodfellow et al. 2014, Algorithm 1, with ``n_critic`` D steps):

    for each of n_critic D steps:
        x ~ data;  z ~ prior;  x_fake = G(z)           (K generators at once)
        D step on  discriminator_loss(x, x_fake, k)
    G step on generator_loss(x_fake, k, z)

A method overrides hooks, not the loop: :meth:`sample_latent`, :meth:`generate`,
:meth:`discriminator_loss`, :meth:`generator_loss` (and :meth:`classifier_outputs` to give
the critic a classifier head).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import OptimizerCallable
from torch import nn

from mgan_lightning.latent import LatentPrior, NormalPrior
from mgan_lightning.nets.architecture import Architecture
from mgan_lightning.nets.mlp import MLP


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


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; training stops before the weights are corrupted."""


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
        detect_nan: raise :class:`NonFiniteLossError` as soon as a loss is not finite.
    """

    generator_step: torch.Tensor

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
    ) -> None:
        super().__init__()
        for name, value in (
            ("num_generators", num_generators),
            ("latent_dim", latent_dim),
            ("n_critic", n_critic),
        ):
            if value < 1:
                raise ValueError(f"model.{name} must be >= 1, got {value}")
        if fake_per_generator is not None and fake_per_generator < 1:
            raise ValueError(f"model.fake_per_generator must be >= 1, got {fake_per_generator}")
        if not sample_shape or min(sample_shape) < 1:
            raise ValueError(f"model.sample_shape must be positive sizes, got {sample_shape}")
        self.save_hyperparameters(ignore=["optimizer_g", "optimizer_d"])
        hparams_as_config(self.hparams)
        self.automatic_optimization = False
        self.sample_shape = tuple(sample_shape)
        self.num_generators = num_generators
        self.latent_dim = latent_dim
        self.fake_per_generator = fake_per_generator
        self.same_latent = same_latent
        self.n_critic = n_critic
        self.detect_nan = detect_nan
        self.optimizer_g = optimizer_g
        self.optimizer_d = optimizer_d
        self.architecture = architecture if architecture is not None else MLP()
        self.prior = prior if prior is not None else NormalPrior()
        self.generators = self.architecture.generator_bank(
            num_generators, latent_dim, self.sample_shape
        )
        self.critic = self.architecture.critic(self.sample_shape, self.classifier_outputs())
        # Generator updates so far; global_step counts every optimizer step (D and G).
        self.register_buffer("generator_step", torch.zeros((), dtype=torch.long))

    # ----------------------------------------------------------------- hooks
    def classifier_outputs(self) -> int:
        """Width of the critic's classifier head (0: no classifier)."""
        return 0

    def sample_latent(self, n: int) -> torch.Tensor:
        """``(n, latent)`` shared by all generators, or ``(K, n, latent)`` independent."""
        if self.same_latent:
            return self.prior.sample(n, self.latent_dim)
        z = self.prior.sample(self.num_generators * n, self.latent_dim)
        return z.reshape(self.num_generators, n, self.latent_dim)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Samples of every generator, ``(K, n, *sample_shape)``."""
        return self.generators(z)

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
        return [
            self.optimizer_g(self.generator_parameters()),
            self.optimizer_d(self.critic.parameters()),
        ]

    def fake_batch(self, real_batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(fake[K*n, ...], generator_index[K*n], z)`` for one step."""
        k = self.num_generators
        n = self.fake_per_generator or -(-real_batch_size // k)
        z = self.sample_latent(n)
        fake = self.generate(z)
        index = torch.arange(k, device=fake.device).repeat_interleave(n)
        return fake.reshape(k * n, *fake.shape[2:]), index, z

    @staticmethod
    def real_samples(batch) -> torch.Tensor:
        return batch[0] if isinstance(batch, (tuple, list)) else batch

    def _check_finite(self, loss: torch.Tensor, which: str) -> None:
        if self.detect_nan and not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"The {which} loss is {loss.item()} at generator step "
                f"{int(self.generator_step)} (global step {self.global_step}). Lower the "
                f"learning rate (model.optimizer_g / model.optimizer_d) or check the data; "
                f"checkpoints already written are untouched."
            )

    def training_step(self, batch, batch_idx: int) -> None:
        real = self.real_samples(batch)
        opt_g, opt_d = self.optimizers()  # type: ignore[attr-defined,misc]
        logs: dict[str, torch.Tensor] = {}
        for i in range(self.n_critic):
            if i < self.n_critic - 1:
                with torch.no_grad():
                    fake, index, z = self.fake_batch(len(real))
            else:
                fake, index, z = self.fake_batch(len(real))
            d_loss, d_logs = self.discriminator_loss(real, fake.detach(), index)
            self._check_finite(d_loss, "discriminator")
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            opt_d.step()
            logs.update(d_logs)

        self.toggle_optimizer(opt_g)
        g_loss, g_logs = self.generator_loss(fake, index, z)
        self._check_finite(g_loss, "generator")
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        logs.update(g_logs)

        self.generator_step += 1
        if self._logs_are_written_now():
            logs["generator_step"] = self.generator_step.float()
            self.log_dict({k: v.detach() for k, v in logs.items()}, prog_bar=False)

    def _logs_are_written_now(self) -> bool:
        """Whether Lightning writes on-step values to the loggers after this step.

        One ``self.log`` costs about 1 ms per key on a CPU (Lightning's result bookkeeping),
        as much as a whole 2D GAN step, and on-step values reach the loggers only every
        ``trainer.log_every_n_steps`` batches. So the step logs on those steps, on each
        epoch's last batch and on the last step: the loggers receive exactly the same rows,
        and ``trainer.callback_metrics`` holds the same values at epoch ends and at the end.
        """
        trainer = self._trainer
        connector = getattr(trainer, "_logger_connector", None)
        if trainer is None or connector is None or getattr(trainer, "fast_dev_run", False):
            return True
        return bool(
            connector.should_update_logs
            or trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
            or 0 < trainer.max_steps <= self.global_step
        )

    def validation_step(self, batch, batch_idx: int) -> None:
        """Nothing per batch: evaluation callbacks sample the model (``mgan validate``)."""

    def test_step(self, batch, batch_idx: int) -> None:
        """Nothing per batch: evaluation callbacks sample the model at test end."""

    def predict_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        samples, index = self.sample(len(self.real_samples(batch)))
        return {"samples": samples, "generator": index}

    # --------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(
        self, n: int, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` samples of the mixture and the generator that made each.

        Each sample's generator is drawn from ``weights`` (uniform by default), then all
        generators run once in one batched call on as many z as the busiest one needs.
        """
        k = self.num_generators
        if weights is None:
            index = torch.randint(k, (n,), device=self.device)
        else:
            index = torch.multinomial(weights.to(self.device, torch.float), n, replacement=True)
        counts = torch.bincount(index, minlength=k)
        most = int(counts.max()) if n > 0 else 0
        fake = self.generate(self.sample_latent(max(most, 1)))
        keep = torch.arange(fake.shape[1], device=self.device)[None, :] < counts[:, None]
        samples = fake[keep]
        index = torch.arange(k, device=self.device).repeat_interleave(counts)
        order = torch.randperm(n, device=self.device)
        return samples[order], index[order]
