"""What ``mgan`` prints: no tips, deprecation warnings or accelerator lines by default (the
README's commands on a fresh install), all of them with ``--verbose``; tables of 4
significant figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mgan_lightning.console import results_table, significant

ROOT = Path(__file__).resolve().parents[1]
NOISE = ("Tip:", "TPU available", "GPU available", "LeafSpec", "Warning", "stopped: `max_steps")


def mgan(tmp_path: Path, *first: str) -> str:
    exe = Path(sys.executable).with_name("mgan")
    if not exe.exists():
        pytest.skip("mgan console script not installed")
    args = [str(exe), *first, "fit", "--config", str(ROOT / "configs" / "ring" / "mgan.yaml")]
    args += ["--trainer.max_steps=2", f"--trainer.default_root_dir={tmp_path / 'run'}"]
    proc = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_the_main_job_prints_no_noise_unless_verbose(tmp_path: Path) -> None:
    quiet = mgan(tmp_path)
    assert not [word for word in NOISE if word in quiet], quiet
    assert "mgan fit: stopped at generator step 2 of 2" in quiet
    verbose = mgan(tmp_path, "--verbose")
    assert "TPU available" in verbose and "stopped: `max_steps=4`" in verbose


def test_significant_figures() -> None:
    assert significant(0.01080000028014183) == "0.0108"
    assert significant(123456.0) == "1.235e+05"
    assert significant(8.0) == "8"


def test_results_table() -> None:
    table = results_table([{"test/modes": 8.0, "test/reverse_kl": 0.0007123456}], "test metric")
    lines = table.splitlines()
    assert lines[0].split() == ["test", "metric", "value"]
    assert lines[2].split() == ["test/modes", "8"]
    assert lines[3].split() == ["test/reverse_kl", "0.0007123"]
    assert "no metric" in results_table([], "test metric")
