"""Every use of a private or loop-internal name of Lightning, jsonargparse (and argparse under
it) and torch (``torch.optim``'s optimizer state, fused norms, a state-dict hook), in one
place, each with a test (``tests/test_private_api.py``) that fails loudly when a release
changes it.

These libraries rename their private names between minor releases; the rest of the package
uses their public API and calls the functions here where none serves. Version-dependent
behaviour is decided here too, by the switch below (``RequirementCache``), and nowhere
else. The declared version ranges (``pyproject.toml``) are the tested ones: CI runs the test
suite at the newest versions and the fast tests at the lowest.

Overrides of private hooks (``LightningCLI``'s and ``ModelCheckpoint``'s) are routed through
the mixins :class:`LightningCLIHooks` and :class:`ModelCheckpointHooks`: their private-named
methods call public-named ones, which our subclasses override, so no private name appears
outside this module.
"""

from __future__ import annotations

from argparse import Action, ArgumentParser
from collections.abc import Callable, Sequence
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.strategies import DDPStrategy, Strategy
from lightning_utilities.core.imports import RequirementCache

# ------------------------------------------------------------------ version switches
#: Lightning >= 2.5.5 replaces the model's configuration by a checkpoint's hyperparameters
#: when ``--ckpt_path`` is given (``LightningCLI._parse_ckpt_path``); the ``mgan`` command keeps
#: the configuration given now (:meth:`LightningCLIHooks._parse_ckpt_path`).
LIGHTNING_MERGES_CHECKPOINT_HPARAMS = RequirementCache("lightning>=2.5.5")

#: torch >= 2.5 has the public ``Module.register_load_state_dict_pre_hook``; 2.4 only the
#: private ``_register_load_state_dict_pre_hook(hook, with_module=True)``, same signature.
TORCH_HAS_PUBLIC_LOAD_PRE_HOOK = RequirementCache("torch>=2.5")


# ------------------------------------------------------------------ the Trainer's loops
def set_max_steps(trainer: Trainer, steps: int) -> None:
    """Change a Trainer's optimizer-step limit after it was built (``trainer.max_steps`` has
    no setter): the generator-step clock sets it from ``max_generator_steps`` at fit start,
    and a resumed run that is longer or shorter moves it."""
    trainer.fit_loop.epoch_loop.max_steps = steps


#: The epoch limit Lightning gives a fit that sets neither ``max_epochs`` nor ``max_steps``.
LIGHTNING_DEFAULT_MAX_EPOCHS = 1000


def lift_default_epoch_limit(trainer: Trainer) -> None:
    """A run whose length the model sets in generator steps must not stop at Lightning's
    implicit limit of 1000 epochs (set, with a warning, when the Trainer got neither
    ``max_epochs`` nor ``max_steps``): lift it. An explicit ``max_epochs=1000`` cannot be told
    from it and is lifted too; the ``mgan`` command's default is ``max_epochs: -1``."""
    if trainer.max_epochs == LIGHTNING_DEFAULT_MAX_EPOCHS:
        trainer.fit_loop.max_epochs = -1


def loggers_update_now(trainer: Trainer) -> bool:
    """Whether Lightning sends this step's on-step values to the loggers (every
    ``log_every_n_steps`` batches; ``True`` when this cannot be told)."""
    connector = getattr(trainer, "_logger_connector", None)
    return True if connector is None else bool(connector.should_update_logs)


def is_last_batch_of_epoch(trainer: Trainer) -> bool:
    """Whether the training batch being run is its epoch's last."""
    return bool(trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)


def batches_done_this_epoch(trainer: Trainer) -> int:
    """Batches of the current training epoch Lightning counts as started: non-zero before the
    first batch only when a run resumes mid-epoch from a checkpoint (its restored progress)."""
    return int(trainer.fit_loop.epoch_loop.batch_progress.current.ready)


def attached_trainer(module: LightningModule) -> Trainer | None:
    """The Trainer ``module`` is attached to, or ``None`` (``module.trainer`` raises then)."""
    try:
        return module.trainer
    except RuntimeError:
        return None


# ------------------------------------------------------------------ DDP and optimizers
def finds_unused_parameters(strategy: Strategy) -> bool:
    """Whether a DDP strategy wraps the model with ``find_unused_parameters=True`` (``False``
    for any other strategy)."""
    if not isinstance(strategy, DDPStrategy):
        return False
    return bool(strategy._ddp_kwargs.get("find_unused_parameters", False))


def tolerate_unused_parameters(strategy: Strategy) -> None:
    """Make a DDP strategy that was not told otherwise look for unused parameters, before it
    wraps the model: a GAN's D step leaves G's parameters without gradient, which the default
    reducer reports as an error. The ``mgan`` command asks for the public
    ``ddp_find_unused_parameters_true`` strategy instead; this serves a ``Trainer`` built in
    Python with ``strategy="ddp"``."""
    if isinstance(strategy, DDPStrategy):
        strategy._ddp_kwargs.setdefault("find_unused_parameters", True)


def clear_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Forget an optimizer's per-parameter state (Adam's moments and step counts), keeping its
    parameter groups and hyperparameters: the next step is that of a fresh optimizer. torch
    has no public reset; its state lives in ``Optimizer.state``."""
    inner = getattr(optimizer, "optimizer", optimizer)  # a LightningOptimizer wraps it
    inner.state.clear()


def tensor_norms(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The 2-norm of each of ``tensors``, as ``torch.linalg.vector_norm`` gives it, in one
    fused call (``torch._foreach_norm``): one kernel per device and dtype instead of one per
    tensor on a GPU. torch's public ``get_total_norm`` (>= 2.6) returns one norm of all of
    them, not each one's."""
    return list(torch._foreach_norm(list(tensors)))


# ------------------------------------------------------------------ checkpoints
def register_load_state_dict_pre_hook(module: torch.nn.Module, hook: Callable[..., None]) -> Any:
    """Run ``hook(module, state_dict, prefix, local_metadata, strict, missing_keys,
    unexpected_keys, error_msgs)`` before ``module``'s own entries of a state dict are
    loaded (public in torch >= 2.5, private before)."""
    if TORCH_HAS_PUBLIC_LOAD_PRE_HOOK:
        return module.register_load_state_dict_pre_hook(hook)
    return module._register_load_state_dict_pre_hook(hook, with_module=True)


def is_local_path(path: str | Any) -> bool:
    """Whether ``path`` is on the local file system (no ``s3://`` or other fsspec protocol)."""
    return bool(_is_local_file_protocol(path))


def last_saved_checkpoint(callback: ModelCheckpoint) -> str:
    """The file ``callback`` wrote last (``""``: none yet), whichever kind (top-k or last)."""
    return str(getattr(callback, "_last_checkpoint_saved", "") or "")


class ModelCheckpointHooks(ModelCheckpoint):
    """``ModelCheckpoint`` whose private steps go through public names: a subclass overrides
    :meth:`checkpoint_saved`, :meth:`link_checkpoint`, :meth:`remove_checkpoint`,
    :meth:`save_last_checkpoint` or :meth:`monitor_candidates`, and calls Lightning's own
    behaviour through ``super()`` or :meth:`save_topk_checkpoint` /
    :meth:`should_skip_saving_checkpoint` / :meth:`set_every_n_train_steps`."""

    # -------------------------------------------- Lightning's behaviour, public names
    def checkpoint_saved(self, trainer: Trainer, filepath: str) -> None:
        """Called after each checkpoint file was written (nothing by default)."""

    def link_checkpoint(self, trainer: Trainer, filepath: str, linkpath: str) -> None:
        """Point ``linkpath`` (``last.ckpt`` with ``save_last: link``) at ``filepath``."""
        ModelCheckpoint._link_checkpoint(trainer, filepath, linkpath)

    def remove_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        """Delete a checkpoint file that fell out of the top-k (or an older ``last``)."""
        ModelCheckpoint._remove_checkpoint(self, trainer, filepath)

    def save_last_checkpoint(self, trainer: Trainer, monitor_candidates: dict) -> None:
        """Write (or link) ``last.ckpt`` as ``save_last`` asks."""
        ModelCheckpoint._save_last_checkpoint(self, trainer, monitor_candidates)

    def monitor_candidates(self, trainer: Trainer) -> dict:
        """The values a file name and a monitor may use (``epoch``, ``step``, logged ones)."""
        return ModelCheckpoint._monitor_candidates(self, trainer)

    def save_topk_checkpoint(self, trainer: Trainer, monitor_candidates: dict) -> None:
        """Save a top-k file if the monitored value earns one (always, without a monitor)."""
        self._save_topk_checkpoint(trainer, monitor_candidates)

    def should_skip_saving_checkpoint(self, trainer: Trainer) -> bool:
        """Whether nothing may be saved now (sanity check, fast_dev_run, not fitting, ...)."""
        return bool(self._should_skip_saving_checkpoint(trainer))

    def set_every_n_train_steps(self, steps: int) -> None:
        """Change the optimizer-step cadence after ``__init__`` (``0``: none)."""
        self._every_n_train_steps = steps

    # -------------------------------------------- Lightning's private steps, routed
    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        self.checkpoint_saved(trainer, filepath)

    def _link_checkpoint(self, trainer: Trainer, filepath: str, linkpath: str) -> None:  # type: ignore[override]
        self.link_checkpoint(trainer, filepath, linkpath)

    def _remove_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        self.remove_checkpoint(trainer, filepath)

    def _save_last_checkpoint(self, trainer: Trainer, monitor_candidates: dict) -> None:
        self.save_last_checkpoint(trainer, monitor_candidates)

    def _monitor_candidates(self, trainer: Trainer) -> dict:
        return self.monitor_candidates(trainer)


# ------------------------------------------------------------------ the command line
class LightningCLIHooks(LightningCLI):
    """``LightningCLI`` whose private steps go through public names: a subclass overrides
    :meth:`run_subcommand` and :meth:`prepare_subcommand_parser` (calling ``super()`` for
    Lightning's behaviour) and reads its subcommands' parsers with :meth:`subcommand_parser`.
    Lightning >= 2.5.5 replaces the model's configuration by a checkpoint's hyperparameters
    right after parsing; here that is not done: the subclass checks the configuration given
    now against the checkpoint itself (in ``parse_arguments``)."""

    def run_subcommand(self, subcommand: str) -> None:
        """Run ``subcommand`` (Lightning's ``before_<cmd>``, the command, ``after_<cmd>``)."""
        LightningCLI._run_subcommand(self, subcommand)

    def prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> Any:
        """The parser of ``subcommand`` (Lightning adds the Trainer method's arguments)."""
        return LightningCLI._prepare_subcommand_parser(self, klass, subcommand, **kwargs)

    def subcommand_parser(self, subcommand: str | None) -> Any:
        """The parser of ``subcommand`` once the parsers exist (``None`` before, or if none)."""
        parsers = getattr(self, "_subcommand_parsers", None) or {}
        return parsers.get(subcommand) if subcommand else None

    def _run_subcommand(self, subcommand: str) -> None:
        self.run_subcommand(subcommand)

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> Any:
        return self.prepare_subcommand_parser(klass, subcommand, **kwargs)

    def _parse_ckpt_path(self) -> None:
        """Not done (Lightning >= 2.5.5 calls it; older releases have no such step)."""


def option_actions(parser: ArgumentParser) -> dict[str, Action]:
    """Every option string of ``parser`` and of its subcommands' parsers, with its action."""
    subcommands = getattr(parser, "_subcommands_action", None)
    parsers = [parser, *(subcommands._name_parser_map.values() if subcommands else [])]
    return {o: a for p in parsers for o, a in p._option_string_actions.items()}


def argument_names(parser: ArgumentParser) -> list[str]:
    """The destinations (``dest``) of every argument of ``parser``."""
    return [action.dest for action in parser._actions]


def subclass_paths(cls: type) -> list[str]:
    """The import paths of the subclasses of ``cls`` that jsonargparse would accept as a
    ``class_path`` (public, concrete, importable; each by its shortest import path)."""
    from jsonargparse._typehints import get_all_subclass_paths

    return list(get_all_subclass_paths(cls))
