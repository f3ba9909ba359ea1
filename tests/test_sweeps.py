"""Every W&B sweep in ``configs/sweeps/`` runs as ``wandb agent`` would run it, and logs the
metric it optimises under exactly the name the sweep file gives.

The agent's arguments are built by wandb's own function (``create_sweep_command_args``, which
turns ``{"model.init_args.beta": 0.01}`` into ``--model.init_args.beta=0.01``) and substituted
into the sweep's ``command`` as the agent does; a short-run suffix (root folder, a few
generator steps) follows. Each run is offline and read back from what W&B wrote.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

from tests.mnist_data import HAS_MNIST, MNIST_DIR, SKIP_REASON
from tests.test_wandb import mgan, offline_env
from tests.wandb_records import read_offline_run

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "configs" / "sweeps").glob("*.yaml"))
STEPS = 6


def one_point(parameters: dict) -> dict:
    """A point of the search space: a list's first value, a range's lower end."""
    point = {}
    for name, spec in parameters.items():
        if "values" in spec:
            point[name] = spec["values"][0]
        elif "value" in spec:
            point[name] = spec["value"]
        else:
            point[name] = spec["min"]
    return point


def agent_command(sweep: dict, point: dict) -> list[str]:
    """The sweep's command with ``${args}`` replaced as ``wandb agent`` replaces it."""
    variables = create_sweep_command_args({"args": {k: {"value": v} for k, v in point.items()}})
    variables["env"] = []  # the agent's /usr/bin/env: the test calls mgan directly
    command: list[str] = []
    for chunk in map(str, sweep["command"]):
        if chunk.startswith("${") and chunk.endswith("}"):
            command += variables[chunk[2:-1]]
        else:
            command.append(chunk)
    return command


def small_evaluation(command: list[str], folder: Path) -> Path:
    """An overlay with the sweep's own evaluation callbacks at 500 samples (real and fake)
    instead of 26,000 and 10,000: the metric's name and its logging are what is tested, and the
    full-size evaluation (FID, precision/recall) made the test 136 s instead of 33 s here."""
    path = ROOT / command[command.index("--config") + 1]
    callbacks = yaml.safe_load(path.read_text())["trainer"]["callbacks"]
    if isinstance(callbacks, str):  # a file of its own, relative to the config
        callbacks = yaml.safe_load((path.parent / callbacks).read_text())
    for callback in callbacks:
        init_args = callback.setdefault("init_args", {})
        if callback["class_path"].endswith(("StackedMNISTEvaluation", "FidelityEvaluation")):
            init_args["num_samples"] = 500
        if callback["class_path"].endswith("FidelityEvaluation"):
            init_args["num_real"] = 500
    overlay = folder / "small_evaluation.yaml"
    overlay.write_text(yaml.safe_dump({"trainer": {"callbacks": callbacks}}))
    return overlay


def test_there_are_the_sweeps_the_library_promises() -> None:
    names = {path.stem for path in SWEEPS}
    assert {"mgan_ring_beta_k", "bourgan_grid_alpha", "stacked_mnist_lr"} <= names


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_sweep_file_has_the_fields_wandb_needs(path: Path) -> None:
    """What the W&B server checks: a search method, a metric with a goal, a space per
    parameter; and a command that takes the agent's arguments after the config."""
    sweep = yaml.safe_load(path.read_text())
    assert sweep["method"] in ("grid", "random", "bayes")
    assert sweep["metric"]["goal"] in ("minimize", "maximize") and sweep["metric"]["name"]
    for name, spec in sweep["parameters"].items():
        assert name.startswith(("model.", "data.", "trainer.")), name
        assert "values" in spec or "value" in spec or {"min", "max"} <= set(spec), name
        if sweep["method"] == "grid":
            assert "values" in spec or "value" in spec, f"grid search needs values: {name}"
    command = list(map(str, sweep["command"]))
    assert command[-1] == "${args}" and "--config" in command
    configs = [command[i + 1] for i, c in enumerate(command) if c == "--config"]
    assert all((ROOT / c).is_file() for c in configs), configs


@pytest.mark.slow
@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_sweep_runs_and_logs_its_metric(path: Path, tmp_path: Path) -> None:
    sweep = yaml.safe_load(path.read_text())
    point = one_point(sweep["parameters"])
    command = agent_command(sweep, point)
    assert command[:2] == ["mgan", "fit"] and "${args}" not in command
    root = tmp_path / "run"
    data: list[str] = []
    if "mnist" in path.stem:  # image sweeps read MNIST's test split from where CI keeps it
        if not HAS_MNIST:
            pytest.skip(SKIP_REASON)
        data = [f"--data.init_args.data_root={MNIST_DIR}", "--data.init_args.source_split=test"]
        data += ["--config", str(small_evaluation(command, tmp_path))]
    proc = mgan(
        [*command[1:], f"--trainer.default_root_dir={root}",
         f"--model.init_args.max_generator_steps={STEPS}", *data],
        cwd=ROOT, env=offline_env(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (root / "wandb").glob("offline-run-*")
    run = read_offline_run(run_dir)
    metric = sweep["metric"]["name"]
    values = [row[metric] for row in run["history"] if metric in row]
    assert values, f"{metric} was never logged; logged: {sorted(set().union(*run['history']))}"
    assert isinstance(values[-1], (int, float)) and math.isfinite(values[-1])
    # the agent's values reached the model: the run's config holds them
    for name, value in point.items():
        node = run["config"]
        for part in name.split("."):
            node = node[part]
        assert node == pytest.approx(value)
