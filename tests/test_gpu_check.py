"""``benchmarks/gpu_check.py`` on the CPU with a handful of steps, so the script a GPU session
runs first cannot rot: every method fits, resumes longer, tests and predicts from the
checkpoint alone under bf16-mixed precision (the GPU default), and the report names them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_every_method_on_the_cpu(tmp_path: Path) -> None:
    command = [
        sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--steps", "4", "--extend",
        "2", "--data", "ring", "--precision", "bf16-mixed", "--out", str(tmp_path / "out"),
        "--work", str(tmp_path / "runs"),
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert result["precision"] == "bf16-mixed"
    methods = {row["method"] for row in result["rows"]}
    assert {"gan", "mgan", "mimgan", "bourgan", "mwu"} <= methods
    for row in result["rows"]:
        assert row["status"] == "ok", row
        assert row["stages"]["resume"].endswith("generator step 6") or row["method"] == "mwu"
        assert row["generator_steps_per_second"] > 0 and row["peak_memory_mb"] > 0
        coverage = {"modes", "high_quality", "reverse_kl", "spread", "spread_max"}
        assert set(row["test"]) == {f"test/{name}" for name in coverage}
    table = (tmp_path / "out" / "gpu_check.md").read_text()
    assert table.count("| ring |") == len(result["rows"])
