"""W&B logging through ``mgan fit``, offline: the run's history, images, config and checkpoint
artifacts are read back from what W&B wrote to disk (``tests/wandb_records.py``).

One real ``mgan fit`` process (W&B keeps a run per process) with n_critic = 2, so an
optimizer-step axis and the generator-step axis differ and the test can tell them apart.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from tests.wandb_records import read_offline_run

ROOT = Path(__file__).resolve().parents[1]
STEPS, EVERY, LOG_EVERY = 40, 20, 10


def offline_env(tmp: Path) -> dict[str, str]:
    """W&B offline, silent, with its caches and settings under ``tmp``."""
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", WANDB_CONSOLE="off")
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        env[name] = str(tmp / "wandb_home")
    return env


def short_config(source: Path, tmp: Path, every: int) -> Path:
    """``source`` with its evaluation and checkpoint cadences set to ``every`` steps."""
    config = yaml.safe_load(source.read_text())
    for callback in config["trainer"]["callbacks"]:
        args = callback.setdefault("init_args", {})
        for key in ("every_n_steps", "every_n_generator_steps"):
            if key in args:
                args[key] = every
    path = tmp / source.name
    path.write_text(yaml.safe_dump(config))
    return path


def mgan(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("mgan")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "mgan_lightning.cli"]
    return subprocess.run(
        [*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("wandb")
    root = tmp / "run"
    proc = mgan(
        [
            "fit",
            "--config", str(short_config(ROOT / "configs/ring/mgan.yaml", tmp, EVERY)),
            "--config", str(ROOT / "configs/loggers/wandb.yaml"),
            f"--trainer.default_root_dir={root}",
            f"--trainer.log_every_n_steps={LOG_EVERY}",
            "--trainer.logger.init_args.log_model=all",
            f"--model.init_args.max_generator_steps={STEPS}",
            "--model.init_args.n_critic=2",
            "--model.init_args.beta=0.25",
        ],
        cwd=ROOT,
        env=offline_env(tmp),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (root / "wandb").glob("offline-run-*")
    return {"root": root, "run_dir": run_dir, **read_offline_run(run_dir)}


def test_scalars_are_on_the_generator_step_axis(run) -> None:
    losses = [row for row in run["history"] if "loss/d" in row]
    # n_critic = 2: 3 optimizer steps per generator step, so an optimizer-step axis would
    # read 30, 60, ... here
    assert [row["trainer/global_step"] for row in losses] == list(
        range(LOG_EVERY, STEPS + 1, LOG_EVERY)
    )
    coverage = {
        row["trainer/global_step"]: row for row in run["history"] if "coverage/modes" in row
    }
    assert sorted(coverage) == [EVERY, STEPS]
    for row in coverage.values():
        assert 0 <= row["coverage/modes"] <= 8 and 0 <= row["coverage/high_quality"] <= 1


def test_scatter_images_are_logged(run) -> None:
    rows = [
        row
        for row in run["history"]
        if "coverage/scatter" in row or "coverage/scatter/_type" in row
    ]
    assert [row["trainer/global_step"] for row in rows] == [EVERY, STEPS]
    pngs = [f for f in run["files"] if f.startswith("media/images/coverage/scatter")]
    assert len(pngs) == 2
    with Image.open(run["run_dir"] / "files" / pngs[0]) as image:
        assert image.width > 100 and image.height > 100


def test_resolved_config_is_the_run_config(run) -> None:
    config = run["config"]
    assert config["model"]["init_args"]["beta"] == 0.25  # the command line's value
    assert config["model"]["init_args"]["n_critic"] == 2
    # interpolations resolved, defaults filled in
    assert config["trainer"]["default_root_dir"] == str(run["root"])
    assert config["trainer"]["logger"]["init_args"]["save_dir"] == str(run["root"])
    assert config["data"]["init_args"]["seed"] == config["seed_everything"] == 0


def test_checkpoints_are_artifacts_when_asked(run) -> None:
    assert run["artifacts"] and all(name.startswith("model-") for name in run["artifacts"])
