"""Checkpoint files that a crash cannot destroy.

A checkpoint is written to ``<path>.tmp-<pid>`` in the target's own folder, flushed to disk
(``fsync``), then renamed over ``<path>`` (``os.replace``, atomic on POSIX file systems) and the
folder is synced. A process killed at any moment (SIGKILL, out of memory, a node lost) leaves
either the old file or the new one at ``<path>``, never a part of one; at worst a stale
``*.tmp-<pid>`` file remains, which :func:`remove_stale_temp_files` removes at the next start.

Lightning's own ``TorchCheckpointIO`` (2.6) writes through an fsspec transaction: a temporary
file made by ``tempfile.mkstemp()`` in the system temp folder, then ``shutil.move`` onto the
target. That is a rename only when the temp folder and the checkpoint are on the same file
system; otherwise (``/tmp`` on local disk or tmpfs, checkpoints on a network file system, the
usual cluster layout) ``shutil.move`` copies into the target path, truncating the previous
checkpoint first, and a kill during the copy leaves a truncated file. It never calls
``fsync``, and a killed save leaves its temp file in ``/tmp`` for good.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from mgan_lightning.private_api import is_local_path

_TEMP = re.compile(r"\.tmp-(\d+)$")


def temp_path(path: str) -> str:
    """The temporary name ``path`` is written under before the rename: same folder (a rename
    never crosses file systems), this process's id (two writers never share one)."""
    return f"{path}.tmp-{os.getpid()}"


def fsync_dir(dirpath: str) -> None:
    """Make a rename in ``dirpath`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(dirpath or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomically(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a temporary file next to ``path`` and rename it over ``path``
    once it is complete and on disk."""
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.remove(tmp)
        raise
    fsync_dir(folder)


def link_atomically(target: str, linkpath: str) -> None:
    """Point the symbolic link ``linkpath`` at ``target`` (relative to the link's folder) in
    one rename: ``linkpath`` names the old target or the new one at every moment. Where
    symbolic links are not allowed, ``linkpath`` becomes an atomically written copy."""
    linkpath = os.path.abspath(linkpath)
    folder = os.path.dirname(linkpath)
    if os.path.isdir(linkpath) and not os.path.islink(linkpath):
        shutil.rmtree(linkpath)
    tmp = temp_path(linkpath)
    if os.path.lexists(tmp):
        os.remove(tmp)
    try:
        os.symlink(os.path.relpath(os.path.abspath(target), folder), tmp)
    except OSError:  # e.g. Windows without the privilege: a copy instead
        with open(target, "rb") as source:
            write_atomically(linkpath, lambda f: shutil.copyfileobj(source, f))
        return
    os.replace(tmp, linkpath)
    fsync_dir(folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temp_files(dirpath: str) -> list[str]:
    """Remove the ``*.tmp-<pid>`` files in ``dirpath`` that a killed writer left behind (its
    process no longer runs). Returns the paths removed."""
    removed: list[str] = []
    if not os.path.isdir(dirpath):
        return removed
    for name in os.listdir(dirpath):
        match = _TEMP.search(name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and _alive(pid):
            continue  # another run writing to this folder right now
        path = os.path.join(dirpath, name)
        try:
            os.remove(path)
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local writes are atomic and durable (temporary file in the
    target folder, ``fsync``, ``os.replace``, folder ``fsync``). Remote paths (``s3://`` ...)
    keep Lightning's writer: an object store replaces an object in one request.

    :class:`~mgan_lightning.callbacks.GeneratorStepCheckpoint` installs it when the Trainer
    uses the default ``TorchCheckpointIO``; elsewhere give it as a Trainer plugin::

        trainer:
          plugins: [{class_path: mgan_lightning.checkpoint_io.AtomicCheckpointIO}]
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` atomically when it is a local path; Lightning's
        writer otherwise."""
        if storage_options is not None or not is_local_path(path):
            super().save_checkpoint(checkpoint, path, storage_options=storage_options)
            return
        path = str(path)
        if path.startswith("file://"):
            path = path[len("file://") :]
        write_atomically(path, lambda f: self.write(checkpoint, f))

    def write(self, checkpoint: dict[str, Any], file: IO[bytes]) -> None:
        """Serialise ``checkpoint`` into the open temporary ``file`` (a hook: the crash tests
        slow it down to kill a process in the middle of a write)."""
        torch.save(checkpoint, file)
