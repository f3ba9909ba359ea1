"""The benchmark harness, run as a user runs it (``python -m benchmarks.<protocol>``): a short
``mgan fit`` per seed, its figures read from the run's logger files, the run reused while its
effective configuration is unchanged and trained again when it changes; and the report
regenerating every committed table from the committed JSON."""

from __future__ import annotations

import copy
import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.benchmark_protocol import run_protocol
from tests.mnist_data import MNIST_DIR, needs_mnist

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# PRDC on: the evaluation the config's ModeCoverageEvaluation would do, on fewer samples.
PRDC_CALLBACKS = """\
trainer:
  callbacks:
    - class_path: mgan_lightning.callbacks.ModeCoverageEvaluation
      init_args: {every_n_steps: 10, num_samples: 400, plot: false, prdc: true}
"""


def protocol(name: str, *args: str) -> subprocess.CompletedProcess:
    return run_protocol(name, *args)


def coverage(tmp: Path, out: str, *fit_args: str) -> dict:
    done = protocol(
        "coverage", "--config", "configs/ring/mgan.yaml", "--seeds", "3", "--runs",
        str(tmp / "runs"), "--out", str(tmp / out), "--", "--config", str(tmp / "prdc.yaml"),
        "--trainer.enable_progress_bar=false", *fit_args,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((tmp / out).read_text())


@pytest.mark.benchmark
@pytest.mark.slow
def test_coverage_reads_the_logs_and_reuses_runs_by_effective_config(tmp_path: Path) -> None:
    (tmp_path / "prdc.yaml").write_text(PRDC_CALLBACKS)
    steps = "--model.init_args.max_generator_steps=20"
    first = coverage(tmp_path, "a.json", steps)
    (record,) = first["per_seed"]
    assert record["seed"] == 3 and record["generator_steps"] == 20
    assert record["reused"] is False and record["total_modes"] == 8
    assert 0 <= record["modes"] <= 8 and 0 <= record["high_quality"] <= 1
    assert set(record["prdc"]) >= {"precision", "recall", "density", "coverage"}
    assert "prdc_density" in first["summary"]
    assert record["num_generators"] == 8 and record["spread"] > 0 and "spread" in first["summary"]
    assert not [key for key in record if key.startswith("rare")]  # no rare modes on the ring
    run = ROOT / record["run_dir"] if not Path(record["run_dir"]).is_absolute() else None
    folder = run or Path(record["run_dir"])
    # the effective configuration counts what the command adds to the Trainer
    effective = (folder / "effective_config.yaml").read_text()
    assert "trainer_as_built:" in effective and "prdc: true" in effective
    assert "class_path: lightning.pytorch.loggers.csv_logs.CSVLogger" in effective
    # the figures are the callback's, as its logger wrote them
    rows = (next(folder.rglob("metrics.csv"))).read_text()
    assert f"{record['modes']}" in rows
    assert record["train_command"].startswith("mgan fit --config configs/ring/mgan.yaml")
    assert first["provenance"]["git"]["commit"]

    again = coverage(tmp_path, "b.json", steps)
    (same,) = again["per_seed"]
    assert same["reused"] is True and same["config_hash"] == record["config_hash"]
    for key in ("modes", "high_quality", "prdc"):
        assert same[key] == record[key]

    changed = coverage(
        tmp_path, "c.json", "--model.init_args.max_generator_steps=10",
        "--model.init_args.num_generators=4", "--config", "configs/overlays/ring_rare_modes.yaml",
    )  # fmt: skip
    (other,) = changed["per_seed"]
    assert other["reused"] is False and other["config_hash"] != record["config_hash"]
    assert other["generator_steps"] == 10 and other["num_generators"] == 4
    assert other["rare_modes_total"] == 2 and other["rare_weight"] == pytest.approx(0.02)
    assert 0 <= other["rare_modes"] <= 2 and other["rare_share_ratio"] >= 0
    assert "seeds_all_rare_modes" in changed["summary"]


@pytest.mark.benchmark
@pytest.mark.slow
def test_keep_finishes_a_row_with_the_seeds_another_machine_ran(tmp_path: Path) -> None:
    """A row's seeds run on two machines make one result: the kept seeds as they were, the
    new ones run now, the summary over all of them; another row's result is refused."""
    (tmp_path / "prdc.yaml").write_text(PRDC_CALLBACKS)
    steps = "--model.init_args.max_generator_steps=20"
    ran = coverage(tmp_path, "elsewhere.json", steps)  # seed 3
    other = copy.deepcopy(ran["per_seed"][0]) | {"seed": 7, "modes": 2.0, "all_modes": False}
    stale = copy.deepcopy(ran["per_seed"][0]) | {"seed": 3, "modes": -1.0}
    elsewhere = ran | {"per_seed": [stale, other]}
    (tmp_path / "elsewhere.json").write_text(json.dumps(elsewhere))

    def finish(*fit_args: str) -> subprocess.CompletedProcess:
        return protocol(
            "coverage", "--config", "configs/ring/mgan.yaml", "--seeds", "3", "--runs",
            str(tmp_path / "runs"), "--out", str(tmp_path / "row.json"), "--keep",
            str(tmp_path / "elsewhere.json"), "--", "--config", str(tmp_path / "prdc.yaml"),
            "--trainer.enable_progress_bar=false", *fit_args,
        )  # fmt: skip

    done = finish(steps)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    row = json.loads((tmp_path / "row.json").read_text())
    assert [r["seed"] for r in row["per_seed"]] == [3, 7] and row["seeds_requested"] == [3, 7]
    assert row["per_seed"][0]["modes"] == ran["per_seed"][0]["modes"]  # seed 3 run now
    assert row["per_seed"][1] == other  # seed 7 kept as it was
    elsewhere_ran = {"file": str(tmp_path / "elsewhere.json"), "provenance": ran["provenance"]}
    assert row["kept"] == [elsewhere_ran | {"seeds": [7]}]
    assert row["summary"]["modes"]["n"] == 2 and row["complete"] is True
    assert row["seeds_all_modes"] == int(ran["per_seed"][0]["all_modes"])

    # keeping the finished row again keeps where seed 7 ran, not where the row was finished
    (tmp_path / "elsewhere.json").write_text((tmp_path / "row.json").read_text())
    again = finish(steps)  # seed 3 reused
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert json.loads((tmp_path / "row.json").read_text())["kept"] == row["kept"]

    refused = finish("--model.init_args.max_generator_steps=10")
    assert refused.returncode != 0 and "keep only seeds of the same row" in refused.stderr


@pytest.mark.parametrize(("option", "given"), [("--keep", "missing"), ("--compare", "corrupt")])
def test_an_unreadable_committed_result_stops_before_any_seed_trains(
    tmp_path: Path, option: str, given: str
) -> None:
    (tmp_path / "corrupt.json").write_text("{not json")
    path = tmp_path / f"{given}.json"
    done = protocol(
        "coverage", "--config", "configs/ring/mgan.yaml", "--seeds", "3", "--runs",
        str(tmp_path / "runs"), "--out", str(tmp_path / "row.json"), option, str(path),
    )  # fmt: skip
    assert done.returncode != 0
    assert f"{option} {path}: cannot read it" in done.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "row.json").exists()


def test_the_report_regenerates_every_committed_table(tmp_path: Path) -> None:
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results)
    tables = sorted(results.glob("*.md"))
    for table in tables:
        table.write_text("")
    done = protocol("report", "--results", str(results), "--no-plot")
    assert done.returncode == 0, done.stderr[-3000:]
    for table in tables:
        assert table.read_text() == (RESULTS / table.name).read_text(), table.name


def test_the_report_shows_prdc_columns_only_where_the_results_have_them(tmp_path: Path) -> None:
    committed = json.loads((RESULTS / "ring_gan.json").read_text())
    prdc = {"precision": 0.9, "recall": 0.8, "density": 1.1, "coverage": 0.7}
    committed["per_seed"][0]["reverse_kl"] = math.nan  # printed in words, never "nan"
    (tmp_path / "ring_gan.json").write_text(json.dumps(committed))
    shutil.copy(RESULTS / "ring_bourgan.json", tmp_path)  # a row measured without PRDC
    done = protocol("report", "--results", str(tmp_path), "--no-plot")
    assert done.returncode == 0, done.stderr[-3000:]
    plain = (tmp_path / "coverage.md").read_text()
    assert "| density |" not in plain and "nan" not in plain.lower()
    for name, value in prdc.items():
        committed["summary"][f"prdc_{name}"] = {"mean": value, "se": 0.0, "n": 1}
    (tmp_path / "ring_gan.json").write_text(json.dumps(committed))
    protocol("report", "--results", str(tmp_path), "--no-plot")
    text = (tmp_path / "coverage.md").read_text()
    assert "| precision | recall | density | coverage |" in text
    assert "| 0.900 ± 0.000 | 0.800 ± 0.000 | 1.100 ± 0.000 | 0.700 ± 0.000 |" in text
    (bourgan,) = [line for line in text.splitlines() if line.startswith("| bourgan |")]
    assert bourgan.count("| not logged ") == 4


def _rare_result(method: str, rare_by_seed: list[int]) -> dict:
    """A ring result with two rare modes, ``rare_by_seed[i]`` of them covered in seed i."""
    per_seed = [
        {
            "seed": seed, "modes": 6 + rare, "high_quality": 0.9, "reverse_kl": 0.01,
            "total_modes": 8, "all_modes": rare == 2, "generator_steps": 100,
            "num_generators": 1, "rare_modes": rare, "rare_modes_total": 2,
            "rare_share_ratio": rare / 2, "rare_share_ratio_min": float(rare == 2),
            "spread": 1.25, "wall_seconds": 1.0,
        }
        for seed, rare in enumerate(rare_by_seed)
    ]  # fmt: skip
    summary = {
        key: {"mean": sum(r[k] for r in per_seed) / len(per_seed), "se": 0.0, "n": 2}
        for key, k in [
            ("modes", "modes"), ("high_quality_percent", "high_quality"),
            ("reverse_kl", "reverse_kl"), ("wall_seconds", "wall_seconds"),
            ("rare_modes", "rare_modes"), ("rare_share_ratio", "rare_share_ratio"),
            ("rare_share_ratio_min", "rare_share_ratio_min"), ("spread", "spread"),
        ]
    }  # fmt: skip
    summary["seeds_all_rare_modes"] = sum(r == 2 for r in rare_by_seed)
    return {
        "name": f"ring_rare_modes_{method}", "data": "ring_rare_modes", "method": method,
        "config": f"configs/ring/{method}.yaml",
        "overrides": ["--config", "configs/overlays/ring_rare_modes.yaml"],
        "per_seed": per_seed, "seeds_all_modes": summary["seeds_all_rare_modes"],
        "summary": summary, "train_command": "mgan fit", "provenance": {"command": "x"},
    }  # fmt: skip


def test_the_report_says_which_methods_drop_rare_modes_and_how_often(tmp_path: Path) -> None:
    longer = _rare_result("mwu", [2, 2])
    for row in longer["per_seed"]:
        row["generator_steps"] = 400
    (tmp_path / "a.json").write_text(json.dumps(longer))
    gan = _rare_result("gan", [2, 1, 0])
    elsewhere = {"command": "y", "git": {"commit": "0123456789abc"}, "hardware": "x86_64, 2 cores"}
    gan["kept"] = [{"file": "gan.json", "seeds": [0, 1], "provenance": elsewhere}]
    (tmp_path / "b.json").write_text(json.dumps(gan))
    (tmp_path / "c.json").write_text(json.dumps(_rare_result("bourgan", [1, 2, 1])))
    assert protocol("report", "--results", str(tmp_path), "--no-plot").returncode == 0
    text = (tmp_path / "coverage.md").read_text()
    assert "## Rare modes on the ring" in text
    assert "| rare modes covered | rare share / weight |" in text
    assert "| seeds with every rare mode |" in text
    assert (
        "Met by: mwu (2 seeds, 400 G steps). A rare mode dropped by: bourgan in 2 of 3 seeds "
        "(0, 2); gan in 2 of 3 seeds (1, 2)." in text
    )
    assert "ours, `configs/ring/gan.yaml` + `configs/overlays/ring_rare_modes.yaml`" in text
    assert "rare modes covered (2/2, 1/2, 0/2)" in text
    assert "; seeds 0, 1 kept from `y` (commit 0123456789, x86_64, 2 cores)" in text


def test_the_report_shows_the_widest_mode_only_in_the_bourgan_alpha_table(tmp_path: Path) -> None:
    for data, method in (("grid_bourgan_alpha", "bourgan_alpha1"), ("ring_rare_modes", "gan")):
        result = _rare_result(method, [2, 2]) | {"name": f"{data}_{method}", "data": data}
        result["summary"]["spread_max"] = {"mean": 3.5, "se": 0.25, "n": 2}
        (tmp_path / f"{data}.json").write_text(json.dumps(result))
    assert protocol("report", "--results", str(tmp_path), "--no-plot").returncode == 0
    text = (tmp_path / "coverage.md").read_text()
    alpha = text[text.index("## BourGAN's distance-preserving weight") :]
    assert "| spread | rare modes covered |" in text
    assert "| widest mode's spread |" in alpha and "| 3.50 ± 0.25 |" in alpha
    assert text.count("widest mode's spread") == 1


def test_the_report_reads_the_ablations_together_and_marks_k_set_to_the_modes(
    tmp_path: Path,
) -> None:
    for name in ("ring_mgan", "ring_gan"):
        shutil.copy(RESULTS / f"{name}.json", tmp_path)
    ablation = json.loads((RESULTS / "ring_mgan.json").read_text())
    ablation |= {"name": "ring_mgan_k4_beta0", "method": "mgan_k4_beta0"}
    ablation["overrides"] = ["--model.init_args.num_generators=4", "--model.init_args.beta=0"]
    (tmp_path / "ring_mgan_k4_beta0.json").write_text(json.dumps(ablation))
    assert protocol("report", "--results", str(tmp_path), "--no-plot").returncode == 0
    text = (tmp_path / "coverage.md").read_text()
    assert "| mgan | 8 (= modes) | ours, `configs/ring/mgan.yaml` |" in text
    assert (
        "| mgan_k4_beta0 | 4 | ours, `configs/ring/mgan.yaml` + `num_generators=4` + `beta=0` |"
        in text
    )
    section = text[text.index("### Where the gains come from (ring)") :]
    assert "| mgan_k4_beta0 | 4 | 0 | off |" in section and "| gan | 1 | - | - |" in section


def test_benchmarks_import_no_test_and_load_no_script_by_path() -> None:
    for script in (ROOT / "benchmarks").glob("*.py"):
        text = script.read_text()
        assert "spec_from_file_location" not in text, script.name
        assert "from tests" not in text and "import tests" not in text, script.name
        assert "manual_seed" not in text, script.name  # scoring uses the library's streams


@pytest.mark.benchmark
@pytest.mark.slow
@needs_mnist
def test_stacked_mnist_reads_both_rules_from_the_logs(tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = protocol(
        "stacked_mnist", "--methods", "gan", "--seeds", "0", "--steps", "2", "--runs",
        str(tmp_path / "runs"), "--out-dir", str(out), "--",
        f"--data.init_args.data_root={MNIST_DIR}", "--data.init_args.source_split=test",
        "--trainer.enable_progress_bar=false",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((out / "stacked_mnist.json").read_text())
    (run,) = result["runs"]
    assert run["generator_steps"] == 2 and set(run["rules"]) == {"all", "confident"}
    logged = next((tmp_path / "runs").rglob("metrics.csv")).read_text()
    assert "stacked_mnist/all/modes" in logged and "stacked_mnist/confident/counted" in logged
    assert 1 <= run["rules"]["all"]["modes"] <= 1000 and run["curve"][-1]["step"] == 2
    assert run["fidelity"]["density"] >= 0 and 0 <= run["fidelity"]["coverage"] <= 1
    assert run["fidelity"]["fid"] >= 0 and "density" in result["summary"]["gan"]
    written = (out / "stacked_mnist.md").read_text()
    (out / "stacked_mnist.md").write_text("")
    assert protocol("report", "--results", str(out), "--no-plot").returncode == 0
    assert (out / "stacked_mnist.md").read_text() == written


def test_the_stacked_mnist_table_shows_density_and_coverage_where_runs_logged_them(
    tmp_path: Path,
) -> None:
    payload = json.loads((RESULTS / "stacked_mnist.json").read_text())
    for entry in payload["summary"].values():  # as if no run had logged them
        for name in ("fid", "kid_mean", "precision", "recall", "density", "coverage"):
            entry.pop(name, None)
    for name in ("precision", "recall", "density", "coverage"):
        payload["summary"]["mgan"][name] = {"mean": 0.25, "se": 0.01}
    (tmp_path / "stacked_mnist.json").write_text(json.dumps(payload))
    assert protocol("report", "--results", str(tmp_path), "--no-plot").returncode == 0
    text = (tmp_path / "stacked_mnist.md").read_text()
    assert "| KL (confident) | density | coverage |" in text
    (mgan,) = [line for line in text.splitlines() if line.startswith("| mgan | 3 |")]
    assert "| 0.250 ± 0.010 | 0.250 ± 0.010 |" in mgan
    (gan,) = [line for line in text.splitlines() if line.startswith("| gan | 3 |")]
    assert gan.count("| not logged") == 2
    baseline = {r["git_commit"] for r in payload["runs"] if r["method"] == "gan"}
    older = sorted({r["method"] for r in payload["runs"] if r["git_commit"] not in baseline})
    if older:  # runs kept from other commits are named
        assert "Kept from earlier runs (their commits in the table below" in text
        assert ", ".join(older) in text


def test_mixture_norm_is_compared_with_batch_norm_seed_by_seed(tmp_path: Path) -> None:
    payload = json.loads((RESULTS / "stacked_mnist.json").read_text())
    fid_curves = {"gan": [30.0, 20.0, 12.0], "gan_mixture_norm": [25.0, 11.5, 9.0]}
    runs = []
    for method, fids in fid_curves.items():
        run = copy.deepcopy(next(r for r in payload["runs"] if r["method"] == "gan"))
        run["method"] = method
        run["curve"] = [{"step": 1000.0 * (i + 1), "fid": f} for i, f in enumerate(fids)]
        run["fidelity"] = {"fid": fids[-1], "kid_mean": 0.01, "density": 0.9, "coverage": 0.8}
        run["fidelity"] |= {"precision": 0.7, "recall": 0.6}
        runs.append(run)
    payload["runs"] = runs
    (tmp_path / "stacked_mnist.json").write_text(json.dumps(payload))
    assert protocol("report", "--results", str(tmp_path), "--no-plot").returncode == 0
    text = (tmp_path / "stacked_mnist.md").read_text()
    section = text[text.index("## Mixture Normalization against batch norm") :]
    seed = runs[0]["seed"]
    # BN ends at 12.0: the mixture model reached it at its second evaluation, BN at its third
    assert f"| {seed} | mixture | 9.00 | 0.0100 | 0.900 | 0.800 |" in section
    assert section.split("\n| " + str(seed) + " | mixture")[1].split("\n")[0].endswith("| 2,000 |")
    assert section.split("\n| " + str(seed) + " | batch")[1].split("\n")[0].endswith("| 3,000 |")
