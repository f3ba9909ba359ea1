"""The cost benchmarks run as a user runs them (``python -m benchmarks.cost``,
``python -m benchmarks.metric_cost``) at a tiny size, into a temporary folder: each writes
JSON with positive figures and a Markdown table that the report rewrites identically from
that JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.benchmark_protocol import run_protocol

ROOT = Path(__file__).resolve().parents[1]


def command(name: str, *args: str) -> None:
    done = run_protocol(name, *args, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def rerendered(out: Path, name: str) -> None:
    """The report writes the same table from the JSON as the benchmark did."""
    written = (out / f"{name}.md").read_text()
    (out / f"{name}.md").write_text("")
    command("report", "--results", str(out), "--no-plot")
    assert (out / f"{name}.md").read_text() == written


@pytest.mark.benchmark
def test_cost_measures_every_case_through_the_harness(tmp_path: Path) -> None:
    out, runs = tmp_path / "results", tmp_path / "runs"
    mgan = "K=2 configs/ring/mgan.yaml --model.init_args.num_generators=2"
    command(
        "cost", "--name", "tiny", "--steps", "4", "--warmup", "2", "--reps", "1",
        "--runs", str(runs), "--out", str(out), "--target", "K=2=1000",
        "--case", "configs/ring/gan.yaml", "--case", mgan,
    )  # fmt: skip
    result = json.loads((out / "tiny.json").read_text())
    rows = result["summary"]["ring"]
    assert list(rows) == ["gan", "K=2"]  # one row per case, in the order given
    for row in rows.values():
        assert row["seconds_per_1k"] > 0 and row["peak_mb"] > 0
        assert row["measured_steps"] == 4 and len(row["seconds_per_1k_reps"]) == 1
    assert rows["gan"]["seconds_per_1k_ratio"] == 1.0 and rows["K=2"]["num_generators"] == 2
    assert rows["K=2"]["overrides"] == ["--model.init_args.num_generators=2"]
    assert result["targets"]["ring K=2"]["met"] is True
    (run,) = result["runs"]["ring K=2"]
    assert run["train_command"].startswith("mgan fit --config configs/ring/mgan.yaml")
    folder = next(runs.rglob("callback_results.json")).parent  # what the harness kept
    assert "GeneratorStepRate" in (folder / "effective_config.yaml").read_text()
    assert result["provenance"]["command"].startswith("python -m benchmarks.cost")
    rerendered(out, "tiny")


def test_metric_cost_measures_prdc_and_keeps_what_it_does_not_measure(tmp_path: Path) -> None:
    out = tmp_path / "results"
    out.mkdir()
    committed = ROOT / "benchmarks" / "results" / "metric_cost.json"
    shutil.copy(committed, out)
    command("metric_cost", "--sizes", "200", "--samples", "300", "--out", str(out))
    result = json.loads((out / "metric_cost.json").read_text())
    (row,) = result["prdc"]["rows"]
    assert row["points"] == 200 and row["features"] == 2048
    assert row["seconds"] > 0 and row["peak_rss_mb"] > 0
    assert 0 <= row["precision"] <= 1 and 0 <= row["coverage"] <= 1
    for name in ("stacked_mnist", "mode_coverage"):
        assert result["cost"][name]["samples"] == 300
        assert result["cost"][name]["seconds_per_10k"] > 0 and result["cost"][name]["modes"] >= 1
    # what the retired script measured stays, and the table says so
    assert result["real_data"] == json.loads(committed.read_text())["real_data"]
    assert "cost.fid_custom" in result["kept_from_earlier"]
    assert "Kept from an earlier measurement" in (out / "metric_cost.md").read_text()
    rerendered(out, "metric_cost")
