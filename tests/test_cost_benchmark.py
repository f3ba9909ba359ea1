"""benchmarks/cost.py end to end at toy size: both parts write JSON and Markdown whose numbers
are positive and finite, and the GAN's ratio to itself is 1."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--reps", "1", "--steps", "3", "--warmup", "1", "--image-steps", "3",
        "--image-warmup", "1", "--threads", "1", "--device", "cpu", "--images", "256"]  # fmt: skip


def load_cost():
    spec = importlib.util.spec_from_file_location("cost_benchmark", ROOT / "benchmarks/cost.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_cost_benchmark_writes_results(tmp_path: Path) -> None:
    cost = load_cost()
    out = ["--out-dir", str(tmp_path)]
    # part A: each measurement in a fresh process (the ring only, to keep the test short)
    cost.main([*TINY, *out, "--part", "methods", "--methods", "gan", "mgan",
               "--settings", "ring"])  # fmt: skip
    methods = json.loads((tmp_path / "cost.json").read_text())
    for key in ("command", "git_commit", "machine", "threads", "torch", "load_average_start",
                "load_average_end", "runs", "summary"):  # fmt: skip
        assert key in methods
    rows = methods["summary"]["ring"]
    assert set(rows) == {"gan", "mgan"}
    for row in rows.values():
        for key in ("seconds_per_1k", "cpu_seconds_per_1k", "peak_mb", "peak_rss_mb"):
            assert positive(row[key]), (key, row)
            assert positive(row[f"{key}_ratio"]), (key, row)
    for key in ("seconds_per_1k_ratio", "peak_mb_ratio", "cpu_seconds_per_1k_ratio"):
        assert rows["gan"][key] == pytest.approx(1.0)
    text = (tmp_path / "cost.md").read_text()
    assert "| mgan |" in text and "ratio to GAN" in text

    # part B: in one process, both settings
    cost.main([*TINY, *out, "--part", "kscaling", "--ks", "1", "2"])
    scaling = json.loads((tmp_path / "k_scaling.json").read_text())
    for setting in ("ring", "dcgan"):
        rows = scaling["summary"][setting]
        assert set(rows) == {"gan", "K=1", "K=2"}
        assert rows["gan"]["seconds_per_1k_ratio"] == pytest.approx(1.0)
        for row in rows.values():
            assert positive(row["seconds_per_1k"]) and positive(row["seconds_per_1k_ratio"])
        assert rows["K=2"]["fakes_per_step"] == rows["gan"]["fakes_per_step"]
    assert "Targets" in (tmp_path / "k_scaling.md").read_text()
    assert (tmp_path / "k_scaling.png").stat().st_size > 0
