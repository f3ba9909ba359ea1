"""benchmarks/provenance.py: the commit a benchmark records is HEAD, flagged ``-dirty`` exactly
when tracked files differ from it, and ``unknown`` outside a git checkout."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_provenance(root: Path = ROOT):
    spec = importlib.util.spec_from_file_location(
        "benchmark_provenance", ROOT / "benchmarks" / "provenance.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.ROOT = root
    return module


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@example.org")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "a.txt").write_text("one\n")
    git(tmp_path, "add", "a.txt")
    git(tmp_path, "commit", "-qm", "first")
    return tmp_path


def test_clean_checkout_records_head(repo: Path):
    prov = load_provenance(repo)
    head = git(repo, "rev-parse", "HEAD")
    assert prov.git_state() == {"commit": head, "dirty_files": []}
    assert prov.git_commit() == head


def test_untracked_files_do_not_count_but_changed_tracked_files_do(repo: Path):
    prov = load_provenance(repo)
    head = git(repo, "rev-parse", "HEAD")
    (repo / "results.json").write_text("{}\n")  # a result being written: untracked
    assert prov.git_commit() == head
    (repo / "a.txt").write_text("two\n")
    assert prov.git_state()["dirty_files"] == ["M a.txt"]
    assert prov.git_commit() == head + "-dirty"


def test_outside_a_checkout_the_commit_is_unknown(tmp_path: Path):
    prov = load_provenance(tmp_path)
    assert prov.git_state() == {"commit": "unknown", "dirty_files": []}
    assert prov.git_commit() == "unknown"
