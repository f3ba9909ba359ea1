"""Which code a benchmark measured: the git commit, and whether tracked files differed from it.

Every script under ``benchmarks/`` records this in its JSON and prints it in its table, so a
number can be traced to the code that produced it. Outside a git checkout (an unpacked
source archive) the commit reads ``"unknown"``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


def git_state() -> dict[str, object]:
    """``{"commit": HEAD, "dirty_files": ["M path", ...]}``: tracked files changed since HEAD
    (untracked files, such as results being written, do not count)."""
    try:
        return {
            "commit": _git("rev-parse", "HEAD").strip(),
            "dirty_files": [
                line.strip()
                for line in _git("status", "--porcelain", "--untracked-files=no").splitlines()
            ],
        }
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty_files": []}


def git_commit() -> str:
    """HEAD, with ``-dirty`` appended when tracked files differ from it."""
    state = git_state()
    return str(state["commit"]) + ("-dirty" if state["dirty_files"] else "")
