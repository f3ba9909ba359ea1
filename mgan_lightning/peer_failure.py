"""When one training process of a DDP run dies, the others stop with one clear line.

A process killed outright (SIGKILL, out of memory, a crash in native code) closes its
sockets; the others' next collective (every backward pass all-reduces gradients) then fails
with a transport error such as gloo's ``Read error ...: Connection reset by peer``, within
seconds, and Lightning's launcher kills its remaining children. What reaches the user is an
80-line traceback through DDP's forward per process, which does not say that the cause is
in another process. :func:`peer_failure_message` turns it into::

    another training process died: rank 0 of 2 stopped at generator step 130 (gloo: Connection
    reset by peer). The last checkpoint is runs/x/checkpoints/last.ckpt: resume with
    --ckpt_path runs/x/checkpoints/last.ckpt

A peer that hangs without dying (or a host lost without closing its connections) is caught
only by the process group's timeout instead: ``DDPStrategy(timeout=...)``, 30 minutes by
default for gloo and NCCL in Lightning.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

import torch.distributed as dist

# What collectives and the rendezvous store say when the process at the other end is gone.
_PEER_GONE = re.compile(
    r"Connection reset by peer|Connection closed by peer|Broken pipe|Socket closed"
    r"|failed to recv, got 0 bytes|Connection refused|NCCL communicator was aborted"
    r"|ProcessGroupNCCL.*(?:aborted|Watchdog caught collective operation timeout)"
    r"|Timed out waiting \d+ms for (?:recv|send) operation",
    re.IGNORECASE,
)
# ... said by torch.distributed itself, not by some other library's connection
_DISTRIBUTED = re.compile(r"gloo|nccl|c10d|TCPStore|ProcessGroup", re.IGNORECASE)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and the errors it was raised from or during."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_peer_failure(error: BaseException) -> bool:
    """Whether ``error`` (or an error it came from) is a collective or the rendezvous store
    failing because another process of the run is gone."""
    for e in _chain(error):
        if isinstance(e, dist.DistNetworkError):
            return True
        text = str(e)
        distributed = isinstance(e, dist.DistError) or _DISTRIBUTED.search(text)
        if isinstance(e, RuntimeError) and distributed and _PEER_GONE.search(text):
            return True
    return False


def _cause(error: BaseException) -> str:
    for e in _chain(error):
        match = _PEER_GONE.search(str(e))
        if match:
            backend = "gloo" if "gloo" in str(e) else "nccl" if "nccl" in str(e).lower() else ""
            return f"{backend}: {match.group(0)}" if backend else match.group(0)
    return type(error).__name__


def peer_failure_message(
    error: BaseException,
    rank: int | None = None,
    world_size: int | None = None,
    generator_step: int | None = None,
    checkpoint: str | None = None,
) -> str:
    """One paragraph: which process noticed, at which generator step, the transport error in
    a few words, and the checkpoint to resume from."""
    where = ""
    if rank is not None and world_size is not None:
        where = f"rank {rank} of {world_size} stopped"
        if generator_step is not None:
            where += f" at generator step {generator_step}"
        where += " "
    text = f"another training process died: {where}({_cause(error)})."
    if checkpoint and os.path.exists(checkpoint):
        text += f" The last checkpoint is {checkpoint}: resume with --ckpt_path {checkpoint}"
    else:
        text += " No checkpoint was written yet: start again."
    return text


def report_peer_failure(error: BaseException, message: str, command: str = "fit") -> None:
    """Print ``message`` to stderr now (Lightning's launcher may kill this process seconds
    later) and mark ``error`` as reported so that the command prints it only once."""
    import sys

    print(f"mgan {command}: error: {message}", file=sys.stderr, flush=True)
    with contextlib.suppress(AttributeError):  # exceptions with __slots__
        error.mgan_reported = True  # type: ignore[attr-defined]


# ------------------------------------------------------------ the launcher is gone
_checkpoint_hint: str | None = None
_watching = False
_LAUNCHER_PID = "MGAN_LAUNCHER_PID"


def note_checkpoint(path: str | None) -> None:
    """The checkpoint a stopped process should tell the user to resume from (set by
    :class:`~mgan_lightning.callbacks.GeneratorStepCheckpoint` as it saves)."""
    global _checkpoint_hint
    _checkpoint_hint = path


def _launched_worker() -> bool:
    """A process started by a launcher that should not outlive it: Lightning's subprocess
    launcher (``LOCAL_RANK`` > 0 in the child's environment) or torchrun (every worker)."""
    local_rank = os.environ.get("LOCAL_RANK")
    if local_rank is None:
        return False
    return local_rank != "0" or "TORCHELASTIC_RUN_ID" in os.environ


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return not os.path.isdir("/proc/self")  # /proc exists but not this pid: gone


def watch_parent_process(period: float = 1.0, command: str | None = None) -> bool:
    """In a launched DDP worker, start a daemon thread that ends this process (exit code 1,
    one line on stderr) within ``period`` seconds of its launcher's death. Without it, a
    worker whose rank-0 launcher is killed while the process group is being set up waits
    for the rendezvous for the whole process-group timeout (30 minutes). Returns whether a
    watch was started (once per process)."""
    global _watching
    if not _launched_worker():
        # the launcher's children (which inherit the environment) learn whom to watch
        os.environ[_LAUNCHER_PID] = str(os.getpid())
        return False
    if _watching or os.name != "posix":
        return False
    import sys
    import threading
    import time

    # The launcher may already be gone when this process gets here (after its imports): the
    # pid it left in the environment tells, unless that process lives on and is not our
    # parent (an unrelated value inherited from further up; torchrun's agent).
    parent = os.getppid()
    launcher = os.environ.get(_LAUNCHER_PID, "")
    if launcher.isdigit() and int(launcher) != parent and not _running(int(launcher)):
        parent = int(launcher)
    rank = os.environ.get("RANK") or os.environ.get("LOCAL_RANK")
    if command is None:
        commands = ("fit", "validate", "test", "predict")
        command = next((a for a in sys.argv[1:] if a in commands), "fit")

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                text = (
                    f"another training process died: the process that launched this one "
                    f"(pid {parent}, rank 0) is gone; rank {rank} stops."
                )
                hint = _checkpoint_hint
                if hint and os.path.exists(hint):
                    text += f" The last checkpoint is {hint}: resume with --ckpt_path {hint}"
                print(f"mgan {command}: error: {text}", file=sys.stderr, flush=True)
                os._exit(1)
            time.sleep(period)

    threading.Thread(target=watch, name="mgan-parent-watch", daemon=True).start()
    _watching = True
    return True
