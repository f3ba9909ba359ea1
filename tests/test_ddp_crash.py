"""Under DDP, one process dying ends the others within 60 s with a clear error, not a hang.

``mgan fit --trainer.devices=2`` on CPU (gloo). Lightning's launcher runs rank 1 as a child
of rank 0. Three deaths, each by SIGKILL:

- rank 1 in the middle of training: rank 0's next collective fails (the socket is closed);
  it prints one line naming the checkpoint to resume from and exits with code 1;
- rank 0 in the middle of training: the same on rank 1;
- rank 0 while rank 1 is still starting: rank 1 would wait in the rendezvous for the whole
  process-group timeout (30 minutes); it notices that its launcher is gone and exits.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mgan_lightning.peer_failure import is_peer_failure, peer_failure_message
from tests.crash_probe import ddp_death_trial


@pytest.mark.slow
@pytest.mark.parametrize("victim, moment", [(1, "training"), (0, "training"), (0, "startup")])
def test_survivor_exits_when_a_peer_dies(tmp_path: Path, victim: int, moment: str) -> None:
    death = ddp_death_trial(tmp_path, victim, moment, limit=90.0)
    assert death.seconds_to_exit is not None, f"rank {1 - victim} still running after 90 s"
    assert death.seconds_to_exit < 60
    assert "another training process died" in death.message
    assert f"rank {1 - victim}" in death.message
    if 1 - victim == 0:
        assert death.exit_code == 1
    if moment == "training":  # a checkpoint every 10 steps, and both were past step 20
        assert "resume with --ckpt_path" in death.message
        assert "last.ckpt" in death.message


GLOO_RESET = (
    "[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:31365: "
    "Connection reset by peer. This is typically caused by a remote worker hanging"
)


def test_peer_failure_is_recognised_and_described(tmp_path: Path) -> None:
    wrapped = RuntimeError("training step failed")
    wrapped.__cause__ = RuntimeError(GLOO_RESET)
    assert is_peer_failure(RuntimeError(GLOO_RESET)) and is_peer_failure(wrapped)
    # the same words from a library that is not torch.distributed, or another error
    assert not is_peer_failure(RuntimeError("wandb: Connection reset by peer"))
    assert not is_peer_failure(RuntimeError("CUDA out of memory"))
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"")
    text = peer_failure_message(RuntimeError(GLOO_RESET), 0, 2, 130, str(ckpt))
    assert text == (
        "another training process died: rank 0 of 2 stopped at generator step 130 "
        f"(gloo: Connection reset by peer). The last checkpoint is {ckpt}: resume with "
        f"--ckpt_path {ckpt}"
    )
    assert "No checkpoint was written yet" in peer_failure_message(RuntimeError(GLOO_RESET))
