"""Crashes lose nothing but the steps since the last checkpoint.

- A checkpoint write killed half-way (a real SIGKILL in a forked process) leaves the previous
  file intact and loadable; the temp file it leaves is removed at the next start.
- ``save_last: link``: ``last.ckpt`` never names a missing file, at any moment a kill could
  fall (Lightning deletes the previous top-k file before it relinks ``last.ckpt``).
- The checkpoint cadence is the generator-step clock alone, plus the final state.
- Slow: a real ``mgan fit`` killed with SIGKILL at seeded random moments and half-way through
  checkpoint writes, resumed from ``last.ckpt`` each time, ends bitwise identical to the
  uninterrupted run, and no kill cost more than the steps since the last checkpoint.
"""

from __future__ import annotations

import os
import signal
import warnings
from pathlib import Path

import pytest
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import Trainer, seed_everything

from mgan_lightning.callbacks import GeneratorStepCheckpoint
from mgan_lightning.checkpoint_io import (
    AtomicCheckpointIO,
    remove_stale_temp_files,
    temp_path,
)
from mgan_lightning.data import GaussianMixture2D
from mgan_lightning.methods import GAN
from mgan_lightning.nets import MLP
from tests.crash_probe import kill_resume_trial, plan


def _killed_while_writing(path: Path, state: dict) -> int:
    """Fork; the child writes ``state`` to ``path`` through AtomicCheckpointIO and SIGKILLs
    itself half-way through the bytes. Returns the child's pid."""
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        try:

            class Dying(AtomicCheckpointIO):
                def write(self, checkpoint, file):
                    file.write(b"PK\x03\x04 half a checkpoint")
                    file.flush()
                    os.kill(os.getpid(), signal.SIGKILL)

            Dying().save_checkpoint(state, path)
        finally:
            os._exit(3)  # only reached if the kill did not happen
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    return pid


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_killed_write_keeps_previous_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "ckpt" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(5)}, path)
    pid = _killed_while_writing(path, {"step": torch.tensor(10)})

    assert torch.load(path, weights_only=True)["step"] == 5  # the old file, whole
    stale = Path(f"{path}.tmp-{pid}")
    assert stale.exists()  # the killed writer's partial file, beside it
    live = tmp_path / "ckpt" / f"x.ckpt.tmp-{os.getppid()}"  # a writer still running
    live.write_bytes(b"")
    assert remove_stale_temp_files(str(path.parent)) == [str(stale)]
    assert live.exists() and not stale.exists()

    AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(10)}, path)
    assert torch.load(path, weights_only=True)["step"] == 10
    assert not Path(temp_path(str(path))).exists()


def _fit(root: Path, steps: int, checkpoint: GeneratorStepCheckpoint, **trainer) -> Trainer:
    seed_everything(3, verbose=False)
    data = GaussianMixture2D(preset="ring", num_train=256, num_test=64, batch_size=64)
    model = GAN(
        sample_shape=(2,),
        num_generators=1,
        latent_dim=2,
        architecture=MLP(g_hidden=8, g_layers=1, d_hidden=8, d_layers=1),
        max_generator_steps=steps,
    )
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[checkpoint],
        default_root_dir=root,
        **trainer,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        trainer.fit(model, datamodule=data)
    return trainer


class Watched(GeneratorStepCheckpoint):
    """Records each save's generator step, and whether ``last.ckpt`` resolved to a file at
    every point where the callback touches the folder (where a kill could fall)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.saved: list[tuple[str, int]] = []
        self.dangling: list[str] = []

    def _check(self, where: str) -> None:
        last = Path(self.dirpath) / "last.ckpt"
        if os.path.lexists(last) and not last.exists():
            self.dangling.append(where)

    def _save_checkpoint(self, trainer, filepath):
        super()._save_checkpoint(trainer, filepath)
        self.saved.append((Path(filepath).name, trainer.lightning_module.generator_steps_done))
        self._check(f"after saving {Path(filepath).name}")

    def _remove_checkpoint(self, trainer, filepath):
        super()._remove_checkpoint(trainer, filepath)
        self._check(f"after removing {Path(filepath).name}")

    def _link_checkpoint(self, trainer, filepath, linkpath):
        self._check("before relinking")
        super()._link_checkpoint(trainer, filepath, linkpath)
        self._check("after relinking")


def test_last_link_never_dangles(tmp_path: Path) -> None:
    stale = tmp_path / "ckpt" / "gstep=2.ckpt.tmp-999999999"  # a killed writer's leftover
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"partial")
    callback = Watched(dirpath=tmp_path / "ckpt", save_last="link", every_n_generator_steps=2)
    trainer = _fit(tmp_path, 7, callback)

    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    assert callback.dangling == []
    last = tmp_path / "ckpt" / "last.ckpt"
    assert last.is_symlink() and os.readlink(last) == "gstep=7.ckpt"
    assert sorted(p.name for p in last.parent.iterdir()) == ["gstep=7.ckpt", "last.ckpt"]
    assert not stale.exists()
    state = torch.load(last, weights_only=True)
    assert int(state["state_dict"]["generator_step"]) == 7


def test_cadence_is_generator_steps_and_the_end(tmp_path: Path) -> None:
    """4 batches an epoch, a checkpoint every 3 generator steps (n_critic=1: 6 optimizer
    steps), 7 steps: saves at 3, 6 and the final 7, none at the epoch ends (4)."""
    callback = Watched(dirpath=tmp_path / "ckpt", save_last=True, every_n_generator_steps=3)
    _fit(tmp_path, 7, callback)
    assert callback.saved == [
        ("gstep=3.ckpt", 3),
        ("last.ckpt", 3),
        ("gstep=6.ckpt", 6),
        ("last.ckpt", 6),
        ("gstep=7.ckpt", 7),
        ("last.ckpt", 7),
    ]


def test_users_checkpoint_io_is_kept(tmp_path: Path) -> None:
    class Mine(TorchCheckpointIO):
        pass

    mine = Mine()
    callback = GeneratorStepCheckpoint(dirpath=tmp_path / "ckpt", every_n_generator_steps=2)
    trainer = _fit(tmp_path, 2, callback, plugins=[mine])
    assert trainer.strategy.checkpoint_io is mine


@pytest.mark.slow
def test_sigkill_at_any_moment_resumes_exactly(tmp_path: Path) -> None:
    """Four SIGKILLs of a real ``mgan fit`` (seeded random moments, one half-way through a
    ``gstep=N.ckpt`` write, one half-way through a ``last.ckpt`` write), each followed by
    ``mgan fit --ckpt_path .../last.ckpt``; then the run ends bitwise identical to one that
    was never interrupted (weights, optimizer and scheduler states, loop counters)."""
    lines: list[str] = []
    trial = kill_resume_trial(
        tmp_path, plan(4, seed=1), total=60, every=10, seed=1, write_delay=0.4, log=lines.append
    )
    report = "\n".join(lines)
    assert [k.kind for k in trial.kills].count("during gstep write") == 1
    for kill in trial.kills:
        assert kill.all_loadable, report  # every checkpoint file loads after every kill
        assert kill.within_bound, report  # resumed from the newest checkpoint (see Kill)
        # lost: the steps since the newest checkpoint, except in the step whose checkpoint
        # was being saved, where last.ckpt (written after gstep=N.ckpt) may still be the one
        # before: then one interval more
        done = kill.started_from if kill.step_at_kill is None else kill.step_at_kill
        assert kill.steps_lost <= kill.steps_since_checkpoint or (
            done % trial.every == 0 and kill.steps_lost == trial.every
        ), report
        if kill.kind.startswith("during") and kill.kind != "during startup":
            assert kill.temp_files_left, report  # it really was killed inside a write
    assert trial.temp_files_at_end == []  # the next start removed the killed writers' files
    assert trial.final_step == 60
    assert trial.bitwise_identical, f"differs: {trial.differing}\n{report}"
