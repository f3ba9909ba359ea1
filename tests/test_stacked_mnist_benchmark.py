"""benchmarks/stacked_mnist.py: parsing a run's summary, the per-method summary and report."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "stacked_mnist_benchmark", ROOT / "benchmarks" / "stacked_mnist.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ALL = "  rule 'all' (every predicted triple counts (PacGAN/VEEGAN)): "
SUMMARY = (
    "noise\n"
    "Stacked MNIST at generator step 1000 (26000 samples):\n"
    f"{ALL}modes 5/1000, KL 6.0000, counted 100.0%\n"
    "Stacked MNIST at generator step 2000 (26000 samples):\n"
    f"{ALL}modes 153/1000, KL 4.1595, counted 100.0%\n"
    "  rule 'confident' (only samples ... > 0.95 (MWU/AdaGAN)): modes 0/1000, "
    "KL undefined (no sample counted), counted 0.0%\n"
)


def test_parse_summary_reads_the_last_block_and_undefined_kl(bench):
    rules = bench.parse_summary(SUMMARY)
    assert rules["all"] == {"modes": 153, "kl": 4.1595, "counted_percent": 100.0}
    assert rules["confident"]["modes"] == 0 and math.isnan(rules["confident"]["kl"])


def run(method: str, seed: int, all_modes: int, confident_modes: int) -> dict:
    return {
        "method": method,
        "seed": seed,
        "generator_steps": 2000,
        "wall_seconds": 1.0,
        "command": f"mgan fit --config configs/stacked_mnist/{method}.yaml",
        "rules": {
            "all": {"modes": all_modes, "kl": 3.0, "counted_percent": 100.0},
            "confident": {"modes": confident_modes, "kl": 4.0, "counted_percent": 50.0},
        },
        "curve": [{"step": 2000.0, "all/modes": all_modes, "confident/modes": confident_modes}],
    }


def test_summary_says_whether_a_method_beats_the_baseline_in_every_seed(bench):
    results = [
        run("gan", 0, 100, 10),
        run("gan", 1, 200, 20),
        run("mgan", 0, 300, 30),
        run("mgan", 1, 150, 40),  # fewer modes than gan's 200 under 'all' in seed 1
    ]
    summary = bench.summarise(results)
    assert summary["gan"]["all"]["beats_baseline_every_seed"] is None
    assert summary["mgan"]["all"]["beats_baseline_every_seed"] is False
    assert summary["mgan"]["confident"]["beats_baseline_every_seed"] is True
    assert summary["mgan"]["all"]["modes_mean"] == pytest.approx(225.0)
    assert summary["mgan"]["all"]["modes_se"] == pytest.approx(75.0)
    text = bench.markdown(results, summary, None)
    assert "| mgan | 2 | 225.0 ± 75.0 |" in text
    assert "**no** / yes" in text
    assert "PacDCGAN2 | **published**" in text


def test_write_produces_json_markdown_and_plot(bench, tmp_path):
    import argparse
    import json

    results = [run("gan", 0, 100, 10), run("mgan", 0, 300, 30)]
    bench.write(results, argparse.Namespace(seeds=1), tmp_path)
    payload = json.loads((tmp_path / "stacked_mnist.json").read_text())
    assert payload["summary"]["mgan"]["all"]["beats_baseline_every_seed"] is True
    assert (tmp_path / "stacked_mnist.md").read_text().count("| mgan | 0 |") == 1
    assert (tmp_path / "stacked_mnist.png").stat().st_size > 1000


def test_a_suite_writes_its_own_files_title_and_command(bench, tmp_path):
    import argparse

    results = [run("gan", 0, 100, 10), run("mgan", 0, 300, 30)]
    bench.write(results, argparse.Namespace(seeds=1, suite="stacked_mnist_weak_d"), tmp_path)
    text = (tmp_path / "stacked_mnist_weak_d.md").read_text()
    assert text.startswith("# Stacked MNIST (1,000 modes), weak discriminator")
    assert "`configs/stacked_mnist_weak_d/`" in text
    assert "`python benchmarks/stacked_mnist.py --suite stacked_mnist_weak_d`" in text
    assert not (tmp_path / "stacked_mnist.md").exists()


def test_a_method_without_a_config_in_the_suite_is_refused(bench, tmp_path):
    with pytest.raises(SystemExit, match="configs/stacked_mnist_weak_d/nonexistent.yaml"):
        bench.main(
            [
                "--suite",
                "stacked_mnist_weak_d",
                "--methods",
                "nonexistent",
                "--out-dir",
                str(tmp_path),
            ]
        )
    assert not list(tmp_path.iterdir())


def test_sample_sheet_puts_each_methods_last_grid_side_by_side(bench, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    results = []
    for method in ("gan", "mgan"):
        images = tmp_path / method / "logs" / "version_0" / "images"
        images.mkdir(parents=True)
        for step in (1000, 2000):
            plt.imsave(images / f"samples_grid_step{step:07d}.png", np.random.rand(8, 8, 3))
        results.append(dict(run(method, 0, 10, 1), run_dir=str(tmp_path / method)))
    name = bench.sample_sheet(results, tmp_path / "sheet.png")
    assert name == "sheet.png" and (tmp_path / "sheet.png").stat().st_size > 1000
    assert bench.sample_sheet([run("gan", 0, 10, 1)], tmp_path / "none.png") is None
