"""Checkpoints on the generator-step clock, written so that a crash never costs more than the
steps since the last one."""

from __future__ import annotations

import os
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.plugins.io import TorchCheckpointIO

from mgan_lightning.checkpoint_io import (
    AtomicCheckpointIO,
    link_atomically,
    remove_stale_temp_files,
)
from mgan_lightning.peer_failure import (
    is_peer_failure,
    note_checkpoint,
    peer_failure_message,
    report_peer_failure,
)
from mgan_lightning.private_api import ModelCheckpointHooks, is_local_path


class GeneratorStepCheckpoint(ModelCheckpointHooks):
    """:class:`ModelCheckpoint` that saves every ``every_n_generator_steps`` generator steps,
    whatever ``n_critic`` is (``every_n_train_steps`` counts optimizer steps: ``n_critic + 1``
    per generator step). File names carry the generator step (``gstep=...``) by default.
    Every other argument is ``ModelCheckpoint``'s; with ``every_n_generator_steps`` set, there
    are no epoch-end saves unless ``every_n_epochs`` asks for them (with 0, Lightning's default
    of one save per epoch stays).

    Crash safety: a process killed at any moment leaves every checkpoint it had finished
    loadable. Files are written atomically (:class:`~mgan_lightning.checkpoint_io.
    AtomicCheckpointIO`, installed when the Trainer has Lightning's default writer), temp
    files a killed writer left are removed at the next start, and with ``save_last: link``
    the link is replaced in one rename and the file it points to is deleted only after the
    link has moved on (Lightning removes the previous top-k file first, leaving
    ``last.ckpt`` dangling until it is relinked). With ``save_last: true``, ``last.ckpt`` is
    a second atomic write after ``gstep=N.ckpt``: a kill between the two resumes from the
    previous ``last.ckpt``.

    YAML::

        - class_path: mgan_lightning.callbacks.GeneratorStepCheckpoint
          init_args: {every_n_generator_steps: 5000, save_last: true}
    """

    def __init__(
        self,
        every_n_generator_steps: int = 0,
        filename: str | None = "{gstep}",
        **kwargs: Any,
    ) -> None:
        if every_n_generator_steps < 0:
            raise ValueError(f"every_n_generator_steps must be >= 0, got {every_n_generator_steps}")
        if kwargs.get("every_n_train_steps"):
            raise ValueError(
                "GeneratorStepCheckpoint counts generator steps: give every_n_generator_steps, "
                "not every_n_train_steps"
            )
        if (
            every_n_generator_steps
            and kwargs.get("train_time_interval") is None
            and kwargs.get("every_n_epochs") is None
        ):
            # Without a trigger of its own, ModelCheckpoint also saves at every epoch end, off
            # the generator-step clock; asked for, every_n_epochs still adds those saves.
            kwargs["every_n_epochs"] = 0
        super().__init__(filename=filename, **kwargs)
        self.every_n_generator_steps = every_n_generator_steps
        self._pending_removals: list[str] = []

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Count the cadence in optimizer steps (``every_n_generator_steps`` times the method's
        optimizer steps per generator step), install the atomic checkpoint writer where the
        Trainer uses Lightning's default, and remove temp files that killed writers left."""
        super().setup(trainer, pl_module, stage)
        per_step = getattr(pl_module, "optimizer_steps_per_generator_step", 1)
        self.set_every_n_train_steps(self.every_n_generator_steps * per_step)
        strategy = trainer.strategy
        if type(strategy.checkpoint_io) is TorchCheckpointIO:  # the default, not a user's
            strategy.checkpoint_io = AtomicCheckpointIO()
        if trainer.is_global_zero and self.dirpath is not None and is_local_path(self.dirpath):
            remove_stale_temp_files(str(self.dirpath))

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """On resume, name the checkpoint resumed from until this run saves one (for the
        message a stopped DDP process prints)."""
        if trainer.ckpt_path:  # until this run saves, a stopped process names this one
            note_checkpoint(str(trainer.ckpt_path))

    def checkpoint_saved(self, trainer: Trainer, filepath: str) -> None:
        """Remember ``filepath`` as the checkpoint to resume from."""
        note_checkpoint(filepath)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Save the state training ended in, whatever the cadence: the generator-step cadence
        turns Lightning's epoch-end save off, which would otherwise have saved it."""
        if self.every_n_generator_steps and not self.should_skip_saving_checkpoint(trainer):
            candidates = self.monitor_candidates(trainer)
            if self.monitor is None or self.monitor in candidates:
                self.save_topk_checkpoint(trainer, candidates)
            self.save_last_checkpoint(trainer, candidates)
            return
        super().on_train_end(trainer, pl_module)

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        """Another DDP process died: say so in one line, with the checkpoint to resume from,
        and save nothing (``save_on_exception`` would wait on the dead process)."""
        if trainer.world_size > 1 and is_peer_failure(exception):
            resume = self.last_model_path or self.best_model_path or trainer.ckpt_path
            message = peer_failure_message(
                exception,
                rank=trainer.global_rank,
                world_size=trainer.world_size,
                generator_step=getattr(pl_module, "generator_steps_done", None),
                checkpoint=str(resume) if resume else None,
            )
            command = trainer.state.fn.value if trainer.state.fn is not None else "fit"
            report_peer_failure(exception, message, command)
            return
        super().on_exception(trainer, pl_module, exception)

    # ------------------------------------------------- crash-safe save_last="link"
    def link_checkpoint(self, trainer: Trainer, filepath: str, linkpath: str) -> None:
        """Lightning removes ``last.ckpt`` and then creates the link: a kill in between
        leaves none. Here the new link replaces the old one in one rename."""
        if trainer.is_global_zero and os.path.abspath(filepath) != os.path.abspath(linkpath):
            if is_local_path(linkpath):
                link_atomically(filepath, linkpath)
            else:
                super().link_checkpoint(trainer, filepath, linkpath)
                return
        trainer.strategy.barrier()

    def remove_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        """Keep the file ``last.ckpt`` links to until the link points elsewhere (Lightning
        saves and prunes the top-k files before it relinks ``last.ckpt``)."""
        if self.save_last == "link" and self._is_link_target(filepath):
            self._pending_removals.append(filepath)
            return
        super().remove_checkpoint(trainer, filepath)

    def save_last_checkpoint(self, trainer: Trainer, monitor_candidates: dict) -> None:
        """Save ``last.ckpt``, then remove the files whose removal waited for the link to move."""
        super().save_last_checkpoint(trainer, monitor_candidates)
        pending, self._pending_removals = self._pending_removals, []
        for filepath in pending:
            if self._is_link_target(filepath):  # still the target: keep it
                continue
            super().remove_checkpoint(trainer, filepath)

    def _is_link_target(self, filepath: str) -> bool:
        last = self.last_model_path
        return bool(
            last
            and is_local_path(last)
            and os.path.islink(last)
            and os.path.realpath(last) == os.path.realpath(filepath)
        )

    def monitor_candidates(self, trainer: Trainer) -> dict:
        """Lightning's candidates plus ``gstep``, the completed generator steps (file names
        such as ``gstep=N.ckpt`` read it)."""
        candidates = super().monitor_candidates(trainer)
        step = getattr(trainer.lightning_module, "generator_steps_done", trainer.global_step)
        candidates["gstep"] = torch.tensor(step)
        return candidates
