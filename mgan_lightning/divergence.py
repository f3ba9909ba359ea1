"""Divergence caught: training stops (or skips one update) as soon as it blows up.

A GAN with a learning rate far too high (``lr=1e9``) keeps finite losses while its weights
grow by orders of magnitude every step; without a check it trains to the end and saves a
useless model as ``last.ckpt``. :class:`DivergenceGuard`, owned by every
:class:`~mgan_lightning.methods.GANMethod`, looks at each generator step for:

- **non-finite losses**, before the update they would make (stop mode: the weights in memory
  are still those before it);
- **weight norms** of the generators and of the critic (the parameters their optimizers
  train) that are not finite or exceed ``max_weight_norm``, after the step's updates;
- **samples far outside the data**: the largest ``|x|`` of the fake batch the step trained
  on, over the data's scale (the largest ``|x|`` of the step's real batch, at least 1),
  above ``max_sample_ratio``, or not finite.

Cost: the loss checks read one number per update (as ``detect_nan`` always did); the other
checks reuse the step's fake and real batches, take every parameter's norm in one fused call
(:func:`mgan_lightning.private_api.tensor_norms`) and read the four numbers back in one
transfer per generator step:
0.13 ms per generator step for the ring MLP (12 parameter tensors) on a busy 2-core CPU,
against 9 ms for its bare D+G step; 0.24 ms in a Lightning run whose step took 14 ms (1-2%).
Under DDP each check is reduced over the processes first (one small all-reduce), so every
process takes the same decision and none waits for a peer that stopped.

When a check fails the run stops with a :class:`DivergenceError` that names the generator
step, the quantity, its value and what to change; the ``mgan`` command prints that message
alone and exits with code 1. Nothing of the failing state is written: the error is raised
inside the training step, before any callback can save it; ``save_on_exception`` of the
trainer's ``ModelCheckpoint`` callbacks is turned off for it; and the model refuses to be
checkpointed afterwards (:meth:`DivergenceGuard.check_before_save`, which also samples the
generators once before each save during fit, so the one-step lag of the sample check cannot
let a checkpoint through). Checkpoints already written are untouched and resume as usual.

``on_divergence: skip`` instead drops an update whose loss or gradients are not finite: its
gradients are discarded (set to ``None``) before ``optimizer.step()``, so the network's
weights and its optimizer's state (moments, step counts) stay bitwise what they were; the
generator step still counts (clock, schedulers, EMA, logged ``divergence/skipped_updates``).
Buffers the forward pass updates (batch-norm running statistics) are not rolled back. Weight
norms and samples out of range cannot be undone without a copy of every weight and optimizer
state each step, so they stop the run in both modes, as do updates skipped in
:data:`MAX_CONSECUTIVE_SKIPS` consecutive generator steps. Under 16-bit mixed precision
(``16-mixed``) the ``GradScaler`` already skips updates whose gradients are not finite (and
lowers its scale), so ``skip`` leaves those updates to it.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal, NoReturn

import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from mgan_lightning.errors import DivergenceError, NonFiniteLossError  # noqa: F401  (re-exported)
from mgan_lightning.private_api import attached_trainer, last_saved_checkpoint, tensor_norms

if TYPE_CHECKING:
    from mgan_lightning.methods.base import GANMethod

log = logging.getLogger(__name__)

OnDivergence = Literal["stop", "skip"]
ON_DIVERGENCE_CHOICES: tuple[str, ...] = ("stop", "skip")

#: ``on_divergence: skip`` stops the run once updates were skipped in this many generator
#: steps in a row: a model whose every step is non-finite does not recover by itself.
MAX_CONSECUTIVE_SKIPS = 10

#: Default bound on the norm of all the generators' (or all the critic's) parameters taken
#: together. Measured on this repository's configs: at initialisation (seed 0) the 2D
#: configs' networks have norms 9-40, the image configs' 10-705
#: (``stacked_mnist/mwu.yaml``: 705 over 174M parameters; CIFAR-10/STL-10/CelebA DCGANs
#: 99-440 for G, 43-45 for D); after 20,000 healthy steps the ring/grid checkpoints of
#: ``runs/benchmarks`` (101 runs, every method) reach at most 125 (G) and 27 (D). Adam moves
#: each weight by about ``lr`` per step, so even 100,000 steps at lr 2e-4 in one direction
#: would add at most ``20 * sqrt(n)`` (2.6e5 for 174M parameters). One step at lr 1e9 gives
#: ~1e9 per weight, norms above 1e10.
DEFAULT_MAX_WEIGHT_NORM = 1e6

#: Default bound on ``max |fake| / max(max |real|, 1)`` over a step's batches. Measured,
#: healthy: DCGAN generators end in tanh (<= 1 on [-1, 1] images); the 2D MLP generators
#: start at 0.08-0.4, overshoot to at most 5.7 in the first hundreds of steps (ring and grid
#: ``gan``/``mgan``, 300 steps; ``grid/gan`` and ``ring/mwu``, 2,000 steps: 3.6 and 4.9) and
#: end at most at 2.0 (2,500 samples of each of the 101 trained ``runs/benchmarks``
#: checkpoints). Generators blown up by a learning rate far too high exceed 1e4.
DEFAULT_MAX_SAMPLE_RATIO = 100.0


def total_norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all ``tensors`` taken together (float32); ``nan`` if any value is."""
    return group_norms([tensors])[0]


def group_norms(groups: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """``(len(groups),)`` float32: the 2-norm of each group of tensors taken together, from one
    fused norm over all of them (overflows to ``inf`` past ~1e19)."""
    flat = [t for group in groups for t in group]
    if not flat:
        return torch.zeros(len(groups))
    with torch.no_grad():
        norms = tensor_norms(flat)
        if len({n.dtype for n in norms}) > 1:
            norms = [n.float() for n in norms]
        squares = torch.stack(norms).float().square()
        ids = _group_ids(tuple(len(group) for group in groups), squares.device)
        return squares.new_zeros(len(groups)).index_add_(0, ids, squares).sqrt()


@functools.lru_cache(maxsize=16)
def _group_ids(sizes: tuple[int, ...], device: torch.device) -> torch.Tensor:
    return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes)).to(device)


def optimized_parameters(optimizer) -> list[torch.Tensor]:
    """The parameters ``optimizer`` (a torch or Lightning optimizer) updates."""
    return [p for group in optimizer.param_groups for p in group["params"]]


def _fmt(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else str(value)


class DivergenceGuard:
    """The checks of one :class:`~mgan_lightning.methods.GANMethod` (see the module's text).

    Args:
        enabled: run the checks at all (``model.detect_nan``).
        on_divergence: ``"stop"`` the run, or ``"skip"`` updates whose loss or gradients
            are not finite.
        max_weight_norm: bound on the norm of all generator (or all critic) parameters;
            ``None`` turns the bound off (non-finite weights still stop the run).
        max_sample_ratio: bound on the largest ``|x|`` of a step's fake batch over
            ``max(largest |x| of its real batch, 1)``; ``None`` turns it off (non-finite
            samples still stop the run). Healthy runs stay below 6
            (:data:`DEFAULT_MAX_SAMPLE_RATIO`).
    """

    def __init__(
        self,
        enabled: bool = True,
        on_divergence: OnDivergence = "stop",
        max_weight_norm: float | None = DEFAULT_MAX_WEIGHT_NORM,
        max_sample_ratio: float | None = DEFAULT_MAX_SAMPLE_RATIO,
    ) -> None:
        if on_divergence not in ON_DIVERGENCE_CHOICES:
            raise ValueError(
                f"model.on_divergence must be one of {ON_DIVERGENCE_CHOICES}, got {on_divergence!r}"
            )
        for name, value in (("max_weight_norm", max_weight_norm),
                            ("max_sample_ratio", max_sample_ratio)):  # fmt: skip
            if value is not None and not value > 0:  # also rejects NaN
                raise ValueError(f"model.{name} must be > 0 or null, got {value}")
        self.enabled = enabled
        self.on_divergence = on_divergence
        self.max_weight_norm = max_weight_norm
        self.max_sample_ratio = max_sample_ratio
        self.skipped_updates = 0  # updates skipped so far in this process (skip mode)
        self.consecutive_skipped_steps = 0
        self._skipped_this_step = False
        self.data_scale: float | None = None  # of the last step's real batch, for saves
        self.error: DivergenceError | None = None  # set once the model diverged

    @property
    def skipping(self) -> bool:
        """Whether an update with a non-finite loss or gradients is skipped (the checks on and
        ``on_divergence: skip``) instead of stopping the run."""
        return self.enabled and self.on_divergence == "skip"

    # ------------------------------------------------------------- per update
    def check_loss(self, module: GANMethod, loss: torch.Tensor, which: str) -> None:
        """Stop mode: raise :class:`NonFiniteLossError` if ``loss`` (of the ``which``
        network's update) is not finite on any process, before its backward pass."""
        if not self.enabled or self.skipping:
            return
        value = loss.detach().float()
        if _world_size(module) == 1:
            if torch.isfinite(value):
                return
            shown = str(value.item())
        else:
            bad = _reduce_max(module, (~torch.isfinite(value)).float().reshape(1))
            if not bad.item():
                return
            shown = (
                str(value.item())
                if not torch.isfinite(value)
                else "finite here, not on another process"
            )
        self.stop(
            module,
            f"the {which} loss is {shown}",
            "Lower the learning rates ({lrs}) or check the data and the loss; "
            "model.init_args.on_divergence=skip skips such updates instead",
            error=NonFiniteLossError,
        )

    def keep_update(self, module: GANMethod, optimizer, loss: torch.Tensor, which: str) -> bool:
        """Skip mode, after the backward pass: when the loss or the gradients are not finite
        (on any process), discard the gradients so that ``optimizer.step()`` leaves the
        weights and the optimizer's state unchanged; return whether the update is kept."""
        if not self.skipping or _grad_scaler(module) is not None:
            return True  # a GradScaler (16-bit mixed precision) skips such updates itself
        grads = [p.grad for p in optimized_parameters(optimizer) if p.grad is not None]
        values = torch.stack([loss.detach().float().reshape(()), total_norm(grads).to(loss.device)])
        bad = (~torch.isfinite(values)).any().float().reshape(1)
        if _world_size(module) > 1:
            bad = _reduce_max(module, bad)
        loss_value, grad_norm, skip = torch.cat([values, bad]).tolist()
        if not skip:
            return True
        optimizer.zero_grad(set_to_none=True)
        self.skipped_updates += 1
        self._skipped_this_step = True
        if module.global_rank == 0:
            log.warning(
                "generator step %d: the %s update was skipped (model.init_args.on_divergence="
                "skip): loss %s, gradient norm %s; its weights and optimizer state are "
                "unchanged",
                module.generator_steps_done + 1,
                which,
                _fmt(loss_value),
                _fmt(grad_norm),
            )
        return False

    # ------------------------------------------------------- per generator step
    def end_step(
        self,
        module: GANMethod,
        real: torch.Tensor,
        fake: torch.Tensor,
        optimizers: dict[str, object],
    ) -> None:
        """After the step's updates, before anything can save them: check the weight norms
        of each network (``{"generators": opt_g, "critic": opt_d}``) and the fake batch's
        range; raise :class:`DivergenceError` when one is off. One read from the device."""
        if not self.enabled:
            return
        groups = [optimized_parameters(opt) for opt in optimizers.values()]
        with torch.no_grad():
            inf = math.inf
            stats = torch.cat(
                [
                    group_norms(groups).to(fake.device),
                    torch.linalg.vector_norm(fake.detach(), inf).float().reshape(1),
                    torch.linalg.vector_norm(real.detach().float(), inf).reshape(1),
                ]
            )
            if _world_size(module) > 1:
                stats = _reduce_max(module, torch.nan_to_num(stats, nan=inf))
            values = stats.tolist()  # the one read from the device
        *weight_norms, fake_max, real_max = values
        self.data_scale = max(real_max, 1.0) if math.isfinite(real_max) else None
        for name, norm in zip(optimizers, weight_norms):
            self._check_norm(module, name, norm)
        self._check_samples(
            module, fake_max, real_max,
            f"the samples it trained on (made by the generators after generator step "
            f"{module.generator_steps_done})",
        )  # fmt: skip
        if self.skipping:
            skipped, self._skipped_this_step = self._skipped_this_step, False
            self.consecutive_skipped_steps = self.consecutive_skipped_steps + 1 if skipped else 0
            if self.consecutive_skipped_steps >= MAX_CONSECUTIVE_SKIPS:
                self.stop(
                    module,
                    f"updates were skipped in {self.consecutive_skipped_steps} generator steps "
                    f"in a row ({self.skipped_updates} in all) because their loss or "
                    "gradients were not finite",
                    "Lower the learning rates ({lrs}) or check the data and the loss",
                )

    def _check_norm(self, module: GANMethod, name: str, norm: float) -> None:
        label = "the generators'" if name == "generators" else f"the {name}'s"
        bound = self.max_weight_norm
        if math.isnan(norm):
            self.stop(module, f"{label} weights include NaN", "Lower the learning rates ({lrs})")
        if math.isinf(norm):
            self.stop(
                module,
                f"{label} weight norm is inf (weights are infinite or above ~1e19)",
                "Lower the learning rates ({lrs})",
            )
        if bound is not None and norm > bound:
            self.stop(
                module,
                f"{label} weight norm is {_fmt(norm)} (bound {bound:g}, "
                "model.init_args.max_weight_norm)",
                "Lower the learning rates ({lrs}); if weights this large are expected, raise "
                "model.init_args.max_weight_norm (null turns the bound off)",
            )

    def _check_samples(
        self, module: GANMethod, fake_max: float, real_max: float, what: str, saving=False
    ) -> None:
        if not math.isfinite(fake_max):
            self.stop(module, f"{what} are not finite (max |x| {fake_max})",
                      "Lower the learning rates ({lrs})", saving=saving)  # fmt: skip
        bound = self.max_sample_ratio
        if bound is None or not math.isfinite(real_max):
            return
        scale = max(real_max, 1.0)
        if fake_max > bound * scale:
            self.stop(
                module,
                f"{what} reach max |x| = {_fmt(fake_max)}, {_fmt(fake_max / scale)} times the "
                f"data's scale {_fmt(scale)} (max |x| of the real batch, at least 1; bound "
                f"{bound:g} times, model.init_args.max_sample_ratio)",
                "Lower the learning rates ({lrs}); if such samples are expected, raise "
                "model.init_args.max_sample_ratio (null turns the bound off)",
                saving=saving,
            )

    # ------------------------------------------------------------------ saving
    def check_before_save(self, module: GANMethod) -> None:
        """Called by ``on_save_checkpoint``: refuse to checkpoint a model that diverged, and
        during fit sample the generators once (eval mode, a seeded stream of their own: no
        training state changes) to check the samples of the state about to be saved."""
        if self.error is not None:
            raise DivergenceError(f"Not saving a checkpoint of a diverged model. {self.error}")
        trainer = attached_trainer(module)
        if (
            not self.enabled
            or self.data_scale is None
            or trainer is None
            or getattr(trainer.state, "fn", None) != "fit"
        ):
            return
        from mgan_lightning.rng import derive_seed, seeded_generator

        rng = seeded_generator(
            derive_seed(module.resolved_run_seed(), "divergence-check"), module.device
        )
        modes = {m: m.training for m in module.modules()}
        module.eval()
        try:
            with torch.no_grad():
                fake, _, _ = module.fake_batch(256, rng)
                stats = torch.stack([fake.abs().amax().float()])
                if _world_size(module) > 1:
                    stats = _reduce_max(module, torch.nan_to_num(stats, nan=math.inf))
                fake_max = stats.item()
        finally:
            for m, training in modes.items():
                m.training = training
        self._check_samples(
            module, fake_max, self.data_scale,
            f"not saving a checkpoint after generator step {module.generator_steps_done}: "
            "the generators' samples",
            saving=True,
        )  # fmt: skip

    # -------------------------------------------------------------- stopping
    def stop(
        self,
        module: GANMethod,
        what: str,
        advice: str,
        error: type[DivergenceError] = DivergenceError,
        saving: bool = False,
    ) -> NoReturn:
        """Raise ``error`` with the message; mark the model as diverged so that it is never
        checkpointed; keep Lightning from saving it on the exception."""
        step = module.generator_steps_done + (0 if saving else 1)
        # Checkpoints (gstep=N) and logged rows count completed steps: name both.
        update = "the first update" if step == 1 else f"the update after generator step {step - 1}"
        where = (
            f"{what[0].upper()}{what[1:]}"
            if saving
            else f"Training diverged in generator step {step} ({update}): {what}"
        )
        latest = latest_checkpoint(module)
        saved = (
            f"Checkpoints already written are untouched (latest: {latest}); resume from one "
            "with --ckpt_path."
            if latest
            else "No checkpoint had been written; nothing of the diverged state was saved."
        )
        message = f"{where}. {advice.format(lrs=learning_rates(module))}. {saved}"
        trainer = attached_trainer(module)
        if trainer is not None:
            for callback in trainer.checkpoint_callbacks:
                if isinstance(callback, ModelCheckpoint):
                    callback.save_on_exception = False
        self.error = error(message)
        raise self.error


def learning_rates(module: GANMethod) -> str:
    """``model.init_args.optimizer_g.init_args.lr is 1e+09, ...`` of the module's optimizers."""
    try:
        optimizers = module.optimizers()
    except Exception:  # not attached to a trainer
        return "model.init_args.optimizer_g / optimizer_d"
    if not isinstance(optimizers, (list, tuple)):
        optimizers = [optimizers]
    parts = []
    for name, opt in zip(("optimizer_g", "optimizer_d"), optimizers):
        lrs = sorted({group.get("lr") for group in opt.param_groups if "lr" in group})
        if lrs:
            shown = "/".join(f"{lr:g}" for lr in lrs)
            parts.append(f"model.init_args.{name}.init_args.lr is {shown}")
    return ", ".join(parts) or "model.init_args.optimizer_g / optimizer_d"


def latest_checkpoint(module: GANMethod) -> str:
    """The newest file the trainer's ModelCheckpoints wrote (``""``: none)."""
    trainer = attached_trainer(module)
    paths: Iterable[str] = ()
    if trainer is not None:
        paths = (
            last_saved_checkpoint(cb) or cb.last_model_path or cb.best_model_path
            for cb in trainer.checkpoint_callbacks
            if isinstance(cb, ModelCheckpoint)
        )
    return next((p for p in paths if p), "")


def _grad_scaler(module: GANMethod):
    trainer = attached_trainer(module)
    return getattr(getattr(trainer, "precision_plugin", None), "scaler", None)


def _world_size(module: GANMethod) -> int:
    trainer = attached_trainer(module)
    return int(getattr(trainer, "world_size", 1)) if trainer is not None else 1


def _reduce_max(module: GANMethod, tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum over the processes (all of them get it)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        tensor = tensor.clone()
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor
