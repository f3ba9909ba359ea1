"""Kill a training run at any moment: what is lost, and does it end where it would have?

Three measurements, all on CPU:

1. **Kill / resume.** A real ``mgan fit`` (``configs/ring/gan.yaml`` made small: 32-wide
   MLPs, 2,000 points, ``--total`` generator steps, a checkpoint every ``--every`` with
   ``save_last: true``, schedules and EMA active in the second half) is killed with SIGKILL
   ``--kills`` times and resumed each time with ``--ckpt_path .../last.ckpt``. The moments
   (``tests/crash_probe.py``): seeded random generator steps (within two checkpoint
   intervals of the resumed step) plus a random fraction of a step; once half-way through
   writing a ``gstep=N.ckpt`` file and once half-way through ``last.ckpt`` (the checkpoint
   writer pauses ``--write-delay`` s in the middle of each file so that the kill lands
   inside it, with a partial file on disk); once during start-up (imports, restoring).
   After each kill: every checkpoint file is loaded (``torch.load`` with
   ``weights_only=True``, as ``mgan fit`` checks it), the step training had reached, the
   step ``last.ckpt`` holds. At the end the final checkpoint is compared bit for bit with an
   uninterrupted run of the same config and seed (weights, optimizer and scheduler states,
   loop counters).
2. **DDP: one process dies.** ``--trainer.devices=2`` (gloo, Lightning's launcher); rank 1
   or rank 0 killed during training, or rank 0 while rank 1 starts; the seconds until the
   survivor exits and the line it prints.
3. **Lightning's own writer** (``TorchCheckpointIO``, fsspec transaction: temp file from
   ``tempfile.mkstemp()`` in the system temp folder, then ``shutil.move``) killed half-way
   through moving a new checkpoint over an old one (a forked process that SIGKILLs itself
   just before the rename, or after copying half the bytes when the temp folder is on
   another file system, ``/dev/shm`` (tmpfs)): does the old checkpoint survive?

    python benchmarks/kill_resume.py                 # 10 kills, seed 0
    python benchmarks/kill_resume.py --kills 5 --no-ddp

Writes ``benchmarks/results/kill_resume.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from tests.crash_probe import ddp_death_trial, kill_resume_trial, plan  # noqa: E402


def lightning_writer(temp_root: Path, ckpt_dir: Path) -> dict:
    """Lightning's TorchCheckpointIO saving step 2 over step 1, SIGKILLed while moving its
    temp file (made in ``temp_root``) onto the checkpoint: just before the rename on one
    file system, half-way through the copy across two."""
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    temp_root.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / "last.ckpt"
    big = {"w": torch.zeros(1 << 20), "step": torch.tensor(1)}  # 4 MiB
    TorchCheckpointIO().save_checkpoint(big, path)
    size_before = path.stat().st_size
    pid = os.fork()
    if pid == 0:
        try:
            tempfile.tempdir = str(temp_root)

            def half_then_die(fsrc, fdst):  # Linux's copy (os.sendfile) of shutil.copyfile
                data = fsrc.read()
                fdst.write(data[: len(data) // 2])
                fdst.flush()
                os.kill(os.getpid(), signal.SIGKILL)

            real_rename = os.rename

            def die_before_rename(src, dst, *a, **k):  # same file system: just before it
                if os.stat(os.path.dirname(src)).st_dev == os.stat(os.path.dirname(dst)).st_dev:
                    os.kill(os.getpid(), signal.SIGKILL)
                return real_rename(src, dst, *a, **k)  # another: EXDEV, shutil.move copies

            shutil._fastcopy_sendfile = half_then_die  # type: ignore[attr-defined]
            os.rename = die_before_rename  # type: ignore[assignment]
            TorchCheckpointIO().save_checkpoint({**big, "step": torch.tensor(2)}, path)
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    try:
        step = int(torch.load(path, weights_only=True)["step"])
    except Exception as error:  # noqa: BLE001 - any failure: the checkpoint is lost
        step = None
        loaded = f"no ({type(error).__name__})"
    else:
        loaded = "yes"
    same_fs = os.stat(temp_root).st_dev == os.stat(ckpt_dir).st_dev
    leftovers = [p.name for p in temp_root.iterdir()]
    return {
        "temp_folder": str(temp_root),
        "same_file_system": same_fs,
        "killed": killed,
        "checkpoint_bytes_before": size_before,
        "checkpoint_bytes_after": path.stat().st_size if path.exists() else None,
        "checkpoint_loads": loaded,
        "checkpoint_step": step,
        "temp_files_left_in_temp_folder": len(leftovers),
    }


def markdown(result: dict) -> str:
    trial = result["kill_resume"]
    lines = [
        "# Kill / resume",
        "",
        f"`python benchmarks/kill_resume.py --kills {len(trial['kills'])} --seed {trial['seed']}`"
        f" on {result['machine']}, torch {result['torch']}, lightning {result['lightning']}.",
        "",
        "## 1. SIGKILL at any moment, resume from `last.ckpt`",
        "",
        f"`mgan fit` on the ring (GAN, {trial['total']} generator steps, a checkpoint every "
        f"{trial['every']} with `save_last: true`), killed {len(trial['kills'])} times "
        f"(seed {trial['seed']}) and resumed each time with `--ckpt_path .../last.ckpt`. "
        f"Checkpoint writes pause {trial['write_delay']} s half-way through each file so "
        "that kills can land inside them. *Step at kill*: last generator step completed; "
        "*resumed from*: the step `last.ckpt` held after the kill; *since checkpoint*: steps "
        "since the newest complete checkpoint file; *temp left*: a partial `*.tmp-<pid>` "
        "file was on disk (the kill fell inside a write).",
        "",
        "| # | kind | started from | step at kill | s after start | temp left | "
        "resumed from | steps lost | since checkpoint | all loadable | within bound |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in trial["kills"]:
        lines.append(
            f"| {k['attempt']} | {k['kind']} | {k['started_from']} | {k['step_at_kill']} | "
            f"{k['seconds_after_start']} | {', '.join(k['temp_files_left']) or '-'} | "
            f"{k['resumed_from']} | {k['steps_lost']} | {k['steps_since_checkpoint']} | "
            f"{'yes' if k['all_loadable'] else 'NO'} | {'yes' if k['within_bound'] else 'NO'} |"
        )
    lost = [k["steps_lost"] for k in trial["kills"]]
    same = trial["bitwise_identical"]
    lines += [
        "",
        f"- Checkpoints loadable after every kill: "
        f"**{'yes' if all(k['all_loadable'] for k in trial['kills']) else 'NO'}**; "
        f"`last.ckpt` always the newest checkpoint, or the one before when the kill fell in "
        f"the step whose checkpoint was being saved: "
        f"**{'yes' if all(k['within_bound'] for k in trial['kills']) else 'NO'}**.",
        f"- Steps lost per kill: max {max(lost)}, mean {sum(lost) / len(lost):.1f} "
        f"(checkpoint interval {trial['every']}).",
        f"- Temp files left at the end (removed at each start): "
        f"{trial['temp_files_at_end'] or 'none'}.",
        f"- Final step {trial['final_step']}; final weights, optimizer and scheduler states and "
        f"loop counters **{'bitwise identical' if same else 'DIFFERENT'}**"
        f" to the uninterrupted run{'' if same else ': ' + str(trial['differing'])}.",
        f"- Wall time: uninterrupted {trial['uninterrupted_seconds']} s; killed and resumed "
        f"{trial['interrupted_seconds']} s ({len(trial['kills']) + 1} process starts).",
        "",
    ]
    if result.get("ddp"):
        lines += [
            "## 2. DDP: one of two processes dies (CPU, gloo)",
            "",
            "| killed | when | survivor's step | seconds to exit | exit code "
            "| survivor's message |",
            "|---|---|---|---|---|---|",
        ]
        for d in result["ddp"]:
            code = "-" if d["exit_code"] is None else d["exit_code"]
            lines.append(
                f"| rank {d['victim']} | {d['moment']} | {d['step_at_kill']} | "
                f"{d['seconds_to_exit']} | {code} | {d['message'].replace('|', '/')} |"
            )
        lines += [
            "",
            "Exit code `-` : the survivor is rank 1, a child of the killed rank 0, whose "
            "status only its (dead) parent could read. Before this change the `startup` row "
            "hung: rank 1 waited for the rendezvous with its dead launcher for the process "
            "group's timeout (30 minutes; still running after 240 s when measured).",
            "",
        ]
    lines += [
        "## 3. Lightning's own writer killed while replacing a checkpoint",
        "",
        "`TorchCheckpointIO.save_checkpoint` -> `_atomic_save`: `torch.save` into memory, "
        "then an fsspec transaction: a temp file from `tempfile.mkstemp()` in the *system* "
        "temp folder, `shutil.move` onto the checkpoint at commit, no `fsync`. The process "
        "is SIGKILLed during the move: just before the rename (same file system), half-way "
        "through the copy (across file systems).",
        "",
        "| temp folder | same file system | old checkpoint loads after the kill "
        "| bytes before -> after | temp files left there |",
        "|---|---|---|---|---|",
    ]
    for b in result["lightning_writer"]:
        lines.append(
            f"| {b['temp_folder']} | {'yes' if b['same_file_system'] else 'no'} | "
            f"{b['checkpoint_loads']} (step {b['checkpoint_step']}) | "
            f"{b['checkpoint_bytes_before']} -> {b['checkpoint_bytes_after']} | "
            f"{b['temp_files_left_in_temp_folder']} |"
        )
    lines += [
        "",
        "Across file systems `shutil.move` copies into the checkpoint's own path (opened "
        "with truncation), so a kill during the copy destroys the previous checkpoint. "
        "`AtomicCheckpointIO` (installed by `GeneratorStepCheckpoint`) writes "
        "`<path>.tmp-<pid>` beside the target, fsyncs it, `os.replace`s it and fsyncs the "
        "folder; `tests/test_crash_safety.py` kills it half-way and loads the old file.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--total", type=int, default=100, help="generator steps")
    parser.add_argument("--every", type=int, default=10, help="checkpoint cadence")
    parser.add_argument("--write-delay", type=float, default=0.4)
    parser.add_argument("--no-ddp", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    import lightning

    work = args.workdir or Path(tempfile.mkdtemp(prefix="kill_resume-"))
    began = time.monotonic()
    baseline = [
        lightning_writer(work / "tmp-same-fs", work / "lightning-writer-a"),
        lightning_writer(
            Path("/dev/shm") / f"kill_resume-{os.getpid()}", work / "lightning-writer-b"
        ),
    ]
    shutil.rmtree(Path("/dev/shm") / f"kill_resume-{os.getpid()}", ignore_errors=True)
    print(json.dumps(baseline, indent=1))
    trial = kill_resume_trial(
        work / "trial",
        plan(args.kills, args.seed),
        total=args.total,
        every=args.every,
        seed=args.seed,
        write_delay=args.write_delay,
        timeout=300.0,
    )
    ddp = []
    if not args.no_ddp:
        for victim, moment in [(1, "training"), (0, "training"), (0, "startup")]:
            death = ddp_death_trial(work / f"ddp-{victim}-{moment}", victim, moment, limit=120.0)
            print(death)
            ddp.append(asdict(death))
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "seconds": round(time.monotonic() - began, 1),
        "kill_resume": trial.as_dict(),
        "ddp": ddp,
        "lightning_writer": baseline,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "kill_resume.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "kill_resume.md").write_text(markdown(result))
    print(markdown(result))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
