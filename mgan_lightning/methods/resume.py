"""What a resumed run takes from its checkpoint and what it takes from the arguments given now.

Lightning restores the optimizers' and schedulers' saved state whole, hyperparameters
included, so a learning rate or a schedule given at resume would be silently replaced by the
checkpoint's. Here the state that is training history (Adam's moments, the schedule's step
count, the weights) comes from the checkpoint, and the arguments (learning rate, betas, the
schedule's boundaries, whether an EMA is kept) come from the configuration given now.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from mgan_lightning.private_api import attached_trainer

if TYPE_CHECKING:
    from mgan_lightning.methods.base import GANMethod

# The scheduler state that is history, not configuration.
_SCHEDULE_HISTORY = ("last_epoch", "_step_count")


def _initial_lr(group: Mapping[str, Any]) -> Any:
    return group.get("initial_lr", group["lr"])


@dataclass
class ConfiguredOptimization:
    """The optimizers' and schedulers' arguments as configured, before any checkpoint."""

    optimizers: list[tuple[torch.optim.Optimizer, list[dict[str, Any]]]]
    schedulers: list[tuple[Any, dict[str, Any]]]

    @classmethod
    def record(cls, optimizers: list, schedulers: list[dict]) -> ConfiguredOptimization:
        """Remember the arguments of ``optimizers`` and of the ``{"scheduler": ...}`` configs."""
        groups = [
            (opt, [{k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
                   for g in opt.param_groups])
            for opt in optimizers
        ]  # fmt: skip
        states = [
            (config["scheduler"], copy.deepcopy(config["scheduler"].state_dict()))
            for config in schedulers
        ]
        return cls(groups, states)

    def reapply(self, run_length: int | None) -> None:
        """Over a restored state: the configured arguments, the restored history.

        Without a schedule the learning rate becomes the configured one; under a schedule
        that is not :class:`~mgan_lightning.schedules.LinearDecay` it is scaled by the ratio
        of the new initial rate to the old (every torch schedule multiplies the initial rate
        by a factor); LinearDecay recomputes it for the run's new length. When nothing
        changed, nothing changes, bit for bit."""
        scheduled = set()
        for scheduler, configured_state in self.schedulers:
            restored = scheduler.state_dict()
            state = {**configured_state, **{k: restored[k] for k in _SCHEDULE_HISTORY}}
            scheduler.load_state_dict(state)
            scheduled.add(id(scheduler.optimizer))
        for optimizer, configured_groups in self.optimizers:
            for group, configured in zip(optimizer.param_groups, configured_groups):
                old, new = _initial_lr(group), _initial_lr(configured)
                for key, value in configured.items():
                    if key not in ("lr", "initial_lr"):
                        group[key] = copy.deepcopy(value)
                if "initial_lr" in group:
                    group["initial_lr"] = new
                if new != old:
                    scaled = id(optimizer) in scheduled and old != 0
                    group["lr"] = group["lr"] * (new / old) if scaled else new
        for scheduler, _ in self.schedulers:
            if hasattr(scheduler, "set_run_length"):
                scheduler.set_run_length(run_length)


def match_ema_to_model(state_dict: MutableMapping[str, Any] | None, has_ema: bool) -> None:
    """Make a checkpoint's weights fit a model whose EMA was switched on or off at resume:
    an EMA switched on starts from the current generators; one switched off is dropped."""
    if state_dict is None:
        return
    ema = [key for key in state_dict if key.startswith("generators_ema.")]
    if not has_ema:
        for key in ema:
            del state_dict[key]
    elif not ema:
        for key in [k for k in state_dict if k.startswith("generators.")]:
            ema_key = "generators_ema." + key.removeprefix("generators.")
            state_dict[ema_key] = state_dict[key].clone()


def save_run_state(model: GANMethod, checkpoint: dict) -> None:
    """What a checkpoint holds beside Lightning's: the run's seed (its random streams) and
    what the data were (checked at test and predict)."""
    checkpoint["mgan_run_seed"] = model.run_seed
    datamodule = getattr(attached_trainer(model), "datamodule", None)
    if hasattr(datamodule, "fingerprint"):
        checkpoint["mgan_data"] = datamodule.fingerprint()  # type: ignore[union-attr]


def restore_run_state(model: GANMethod, checkpoint: dict) -> None:
    """Before the weights load: the EMA as the model keeps it now, the run's seed, and
    generators sized for a prior built from data (the model was built from a config, before
    the data was seen)."""
    match_ema_to_model(checkpoint.get("state_dict"), model.generators_ema is not None)
    if checkpoint.get("mgan_run_seed") is not None:
        model.run_seed = int(checkpoint["mgan_run_seed"])
    saved_dim = checkpoint.get("hyper_parameters", {}).get("latent_dim")
    if model.prior.needs_data and isinstance(saved_dim, int):
        model.set_latent_dim(saved_dim)
