"""Run a benchmark protocol as a user does (``python -m benchmarks.<name>``), never importing it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_protocol(name: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m benchmarks.<name> ARGS`` from the repository root, output captured."""
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
