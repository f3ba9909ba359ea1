"""The ``mgan`` command end to end: fit, test, saved config, interpolation, links, and the
errors users see for wrong values and damaged checkpoints."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from mgan_lightning.cli import build_cli, checkpoint_problem
from mgan_lightning.data import GaussianMixture2D

pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")

ROOT = Path(__file__).resolve().parents[1]
RING = str(ROOT / "configs" / "ring" / "gan.yaml")
STEPS = 40  # optimizer steps: 20 D + 20 G steps

# Evaluate every 10 generator steps on 500 samples instead of every 5,000 on 2,500; the
# checkpoint and the logger write into the run's folder through interpolations.
FAST_CALLBACKS = """
trainer:
  logger:
    class_path: lightning.pytorch.loggers.CSVLogger
    init_args: {save_dir: "${trainer.default_root_dir}", name: logs}
  callbacks:
    - class_path: mgan_lightning.callbacks.ModeCoverageEvaluation
      init_args: {every_n_steps: 10, num_samples: 500}
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args:
        dirpath: ${trainer.default_root_dir}/checkpoints
        save_last: true
        every_n_train_steps: 20
"""


class ReshapedRing(GaussianMixture2D):
    """The ring, declared as (1, 2) samples: a sample shape the model would not guess."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sample_shape = (1, 2)


def run_cli(args: list[str], cwd: Path):
    """``build_cli(args)`` run from ``cwd`` (so a relative default folder would land there)."""
    old = Path.cwd()
    os.chdir(cwd)
    try:
        return build_cli(args)
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """One short fit shared by the tests below."""
    tmp = tmp_path_factory.mktemp("cli")
    fast = tmp / "fast_callbacks.yaml"
    fast.write_text(FAST_CALLBACKS)
    root = tmp / "run"
    args = ["--config", RING, "--config", str(fast), f"--trainer.default_root_dir={root}"]
    # trainer.max_steps counts generator steps on the command line: STEPS optimizer steps
    cli = run_cli(["fit", *args, f"--trainer.max_steps={STEPS // 2}"], cwd=tmp)
    return {"tmp": tmp, "root": root, "args": args, "cli": cli}


def test_fit_writes_the_last_checkpoint(run) -> None:
    ckpt = run["root"] / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert state["global_step"] == STEPS
    assert int(state["state_dict"]["generator_step"]) == STEPS // 2
    assert run["cli"].trainer.global_step == STEPS


def test_fit_writes_scatter_plots(run) -> None:
    images = sorted((run["root"] / "logs").glob("version_0/images/*.png"))
    names = [p.name for p in images]
    # every_n_steps=10 over 20 generator steps, plus the end of fit (same step 20).
    assert any("step0000010" in n for n in names), names
    assert any("step0000020" in n for n in names), names
    from PIL import Image

    with Image.open(images[-1]) as img:
        assert img.width >= 256 and img.height >= 256


def test_saved_config_resolves_the_interpolations(run) -> None:
    root = run["root"]
    path = root / "logs" / "version_0" / "config.yaml"
    assert path.is_file()
    config = yaml.safe_load(path.read_text())
    assert config["trainer"]["default_root_dir"] == str(root)
    assert config["trainer"]["logger"]["init_args"]["save_dir"] == str(root)
    dirpaths = [c["init_args"].get("dirpath") for c in config["trainer"]["callbacks"]]
    assert str(root / "checkpoints") in dirpaths
    assert config["data"]["init_args"]["seed"] == config["seed_everything"] == 0
    assert "${" not in path.read_text()


def test_logger_follows_the_overridden_root_dir(run) -> None:
    logger = run["cli"].trainer.logger
    assert Path(logger.save_dir) == run["root"]
    assert (run["root"] / "logs" / "version_0" / "metrics.csv").is_file()
    # Nothing went to the config's own default folder (relative to the working directory).
    assert not (run["tmp"] / "runs").exists()


def test_linked_sample_shape_reached_the_model(run) -> None:
    model = run["cli"].model
    assert tuple(model.sample_shape) == (2,) == tuple(run["cli"].datamodule.sample_shape)
    assert tuple(model.hparams.sample_shape) == (2,)


def test_sample_shape_comes_from_the_datamodule(tmp_path: Path) -> None:
    cli = build_cli(
        [
            "--config", RING,
            "--data.class_path", f"{__name__}.ReshapedRing",
            "--data.init_args.num_train=512",
            f"--trainer.default_root_dir={tmp_path}",
        ],
        run=False,
    )  # fmt: skip
    assert tuple(cli.model.sample_shape) == (1, 2)
    assert cli.model.generators(torch.randn(3, 2)).shape == (1, 3, 1, 2)


def test_test_subcommand_reports_mode_coverage(run, capsys) -> None:
    ckpt = run["root"] / "checkpoints" / "last.ckpt"
    cli = run_cli(["test", *run["args"], f"--ckpt_path={ckpt}"], cwd=run["tmp"])
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    assert {"test/modes", "test/high_quality", "test/reverse_kl"} <= metrics.keys()
    assert 0 <= metrics["test/modes"] <= 8 and metrics["test/modes"] == int(metrics["test/modes"])
    assert 0 <= metrics["test/high_quality"] <= 1
    # The trained weights were restored, not a fresh model's.
    assert int(cli.model.generator_step) == STEPS // 2
    out = capsys.readouterr().out
    for key in ("test/modes", "test/high_quality", "test/reverse_kl"):
        assert key in out


def test_validate_subcommand_reports_mode_coverage(run) -> None:
    """``mgan validate`` evaluates on the test split and logs under ``val/`` the figures
    ``mgan test`` logs under ``test/``; each draws its own sample stream (so their values
    may differ), the same one at every run of the same checkpoint and seed."""
    ckpt = run["root"] / "checkpoints" / "last.ckpt"
    val = run_cli(["validate", *run["args"], f"--ckpt_path={ckpt}"], cwd=run["tmp"])
    again = run_cli(["validate", *run["args"], f"--ckpt_path={ckpt}"], cwd=run["tmp"])
    test = run_cli(["test", *run["args"], f"--ckpt_path={ckpt}"], cwd=run["tmp"])
    val_metrics = {k: float(v) for k, v in val.trainer.callback_metrics.items()}
    again_metrics = {k: float(v) for k, v in again.trainer.callback_metrics.items()}
    test_metrics = {k: float(v) for k, v in test.trainer.callback_metrics.items()}
    assert int(val.model.generator_step) == STEPS // 2
    assert {k.removeprefix("val/") for k in val_metrics} == {
        k.removeprefix("test/") for k in test_metrics
    }
    assert val_metrics == pytest.approx(again_metrics, nan_ok=True)
    for metrics, stage in ((val_metrics, "val"), (test_metrics, "test")):
        assert 0 <= metrics[f"{stage}/modes"] <= 8  # the ring's
        assert 0 <= metrics[f"{stage}/high_quality"] <= 1


def test_fit_runs_no_validation_loop(run) -> None:
    """Evaluation during fit is the callbacks' job; no validation batches are drawn."""
    trainer = run["cli"].trainer
    assert trainer.num_val_batches == [] or sum(trainer.num_val_batches) == 0


def test_second_fit_into_the_same_directory(run, tmp_path: Path) -> None:
    """The saved config is overwritten, not an error (SaveConfigCallback(overwrite=True)),
    here into the very same log folder. Runs in a copy of the first run's folder, so the
    other tests keep their checkpoint."""
    root = tmp_path / "run"
    shutil.copytree(run["root"], root)
    old = (root / "logs" / "version_0" / "config.yaml").read_text()
    args = [*run["args"][:-1], f"--trainer.default_root_dir={root}"]
    version = "--trainer.logger.init_args.version=0"
    cli = run_cli(["fit", *args, "--trainer.max_steps=2", version], cwd=tmp_path)
    assert cli.trainer.global_step == 4  # 2 generator steps, each one D and one G step
    new = yaml.safe_load((root / "logs" / "version_0" / "config.yaml").read_text())
    assert new != yaml.safe_load(old)
    # the length is saved where the model reads it, in generator steps
    assert new["model"]["init_args"]["max_generator_steps"] == 2
    assert new["trainer"]["max_steps"] == -1


def test_fit_names_the_checkpoint_folder_as_given(tmp_path: Path, capsys) -> None:
    """The stop line names the checkpoint folder relative to the working directory, as the
    user gave it, not Lightning's absolute path: captured output (a notebook's) holds no
    machine paths."""
    run_cli(["fit", "--config", RING, "--trainer.max_steps=2",
             "--trainer.default_root_dir=run"], cwd=tmp_path)  # fmt: skip
    (line,) = [s for s in capsys.readouterr().out.splitlines() if "checkpoints in" in s]
    assert line.endswith(f"checkpoints in {Path('run') / 'checkpoints'}"), line
    assert str(tmp_path) not in line and str(tmp_path.resolve()) not in line


def test_shown_folder_is_relative_under_the_working_directory(tmp_path: Path) -> None:
    from mgan_lightning.cli import _shown_folder

    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        inside = str((tmp_path / "run" / "checkpoints").resolve())
        assert _shown_folder(inside) == str(Path("run") / "checkpoints")
        assert _shown_folder(str(tmp_path.resolve())) == "."
        outside = str(tmp_path.resolve().parent / "elsewhere")
        assert _shown_folder(outside) == outside
        assert _shown_folder("s3://bucket/run") == "s3://bucket/run"
    finally:
        os.chdir(old)


@pytest.mark.parametrize(
    "override, words",
    [
        ("--model.init_args.num_generators=0", ["model.num_generators"]),
        ("--data.init_args.preset=hexagon", ["preset", "hexagon"]),
        ("--data.init_args.std=-1", ["data.std"]),
        ("--model.init_args.architecture.init_args.g_hidden=0", ["architecture.g_hidden"]),
    ],
)
def test_wrong_values_exit_naming_the_field(
    tmp_path: Path, capsys, override: str, words: list[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        run_cli(
            ["fit", "--config", RING, f"--trainer.default_root_dir={tmp_path}", override],
            cwd=tmp_path,
        )
    assert info.value.code not in (0, None)
    err = capsys.readouterr().err
    for word in words:
        assert word in err
    assert "Traceback" not in err
    assert not (tmp_path / "checkpoints").exists()


def _damaged(kind: str, good: Path, tmp: Path) -> Path:
    bad = tmp / f"{kind}.ckpt"
    data = good.read_bytes()
    if kind == "garbage":
        bad.write_bytes(b"this is not a checkpoint\n" * 10)
    elif kind == "truncated":  # a run killed while writing
        bad.write_bytes(data[:4000])
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "scrambled":  # a valid zip whose pickled payload is overwritten
        with zipfile.ZipFile(good) as archive:
            info = next(i for i in archive.infolist() if i.filename.endswith("data.pkl"))
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
        bad.write_bytes(data[:start] + b"A" * 40 + data[start + 40 :])
        assert zipfile.is_zipfile(bad)
    return bad


@pytest.mark.parametrize("kind", ["garbage", "missing"])
def test_damaged_checkpoint_gives_a_clear_error(run, capsys, tmp_path: Path, kind: str) -> None:
    good = run["root"] / "checkpoints" / "last.ckpt"
    bad = _damaged(kind, good, tmp_path) if kind != "missing" else tmp_path / "nope.ckpt"
    with pytest.raises(SystemExit) as info:
        run_cli(["test", *run["args"], f"--ckpt_path={bad}"], cwd=run["tmp"])
    assert info.value.code not in (0, None)
    err = capsys.readouterr().err
    assert "ckpt_path" in err and str(bad) in err
    assert "Traceback" not in err
    assert ("not a checkpoint" if kind == "garbage" else "no checkpoint file") in err


@pytest.mark.parametrize(
    "kind, words",
    [
        ("garbage", ["not a checkpoint"]),
        ("truncated", ["not a checkpoint", "truncated"]),
        ("empty", ["not a checkpoint"]),
        ("scrambled", ["damaged"]),
    ],
)
def test_checkpoint_problem_explains_what_is_wrong(
    run, tmp_path: Path, kind: str, words: list[str]
) -> None:
    problem = checkpoint_problem(str(_damaged(kind, run["root"] / "checkpoints" / "last.ckpt",
                                              tmp_path)))  # fmt: skip
    assert problem is not None
    for word in words:
        assert word in problem
    # torch's advice to retry with weights_only=False is not passed on for a damaged file.
    assert "weights_only` set to `False`" not in problem


def test_checkpoint_problem_accepts_good_and_special_paths(run) -> None:
    assert checkpoint_problem(str(run["root"] / "checkpoints" / "last.ckpt")) is None
    for special in ("last", "best", "s3://bucket/x.ckpt"):
        assert checkpoint_problem(special) is None


def test_copied_checkpoint_still_loads(run, tmp_path: Path) -> None:
    """The check above does not reject good checkpoints stored elsewhere."""
    copy = tmp_path / "copy.ckpt"
    shutil.copy(run["root"] / "checkpoints" / "last.ckpt", copy)
    cli = run_cli(["test", *run["args"], f"--ckpt_path={copy}"], cwd=run["tmp"])
    assert int(cli.model.generator_step) == STEPS // 2


@pytest.mark.slow
def test_console_script_fit(tmp_path: Path) -> None:
    """The installed ``mgan`` entry point (a separate process: ~10 s of imports)."""
    exe = Path(sys.executable).with_name("mgan")
    if not exe.exists():
        pytest.skip("mgan console script not installed")
    root = tmp_path / "run"
    proc = subprocess.run(
        [str(exe), "fit", "--config", RING, "--trainer.max_steps=2",
         f"--trainer.default_root_dir={root}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (root / "checkpoints" / "last.ckpt").is_file()
    assert "Mode coverage at generator step 2" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "strategy, devices, num_nodes, expected",
    [
        ("auto", 2, 1, "ddp_find_unused_parameters_true"),
        ("ddp", "2", 1, "ddp_find_unused_parameters_true"),
        (None, [0, 1], 1, "ddp_find_unused_parameters_true"),
        ("auto", "0,1", 1, "ddp_find_unused_parameters_true"),
        ("auto", 1, 2, "ddp_find_unused_parameters_true"),
        ("auto", 1, 1, "auto"),
        ("auto", "auto", 1, "auto"),  # Lightning counts; the model tells its DDP itself
        ("ddp_spawn", 2, 1, "ddp_spawn"),  # the user's choice stays
        ("fsdp", 2, 1, "fsdp"),
    ],
)
def test_several_devices_get_ddp_that_finds_unused_parameters(
    strategy, devices, num_nodes, expected
) -> None:
    from mgan_lightning.cli_checks import gan_strategy

    assert gan_strategy(strategy, devices, num_nodes) == expected


# ------------------------------------------------------------ what a run gets by default
def _built(tmp_path: Path, *extra: str):
    """The CLI built (not run) on the ring GAN config, 400 generator steps, plus ``extra``."""
    args = ["--config", RING, f"--trainer.default_root_dir={tmp_path}"]
    return build_cli([*args, "--model.init_args.max_generator_steps=400", *extra], run=False)


def test_a_run_gets_evaluation_checkpoints_progress_and_logger_by_default(tmp_path) -> None:
    """The ring GAN config names no callback: the run gets the mode-coverage evaluation and
    checkpoints four times a run, the generator-step progress bar, a CSV logger in its
    folder, and one device."""
    from lightning.pytorch.loggers import CSVLogger

    from mgan_lightning.callbacks import GeneratorStepCheckpoint, ModeCoverageEvaluation
    from mgan_lightning.callbacks.progress import GeneratorStepProgressBar

    assert "callbacks" not in yaml.safe_load(Path(RING).read_text()).get("trainer", {})
    trainer = _built(tmp_path).trainer
    (coverage,) = [c for c in trainer.callbacks if isinstance(c, ModeCoverageEvaluation)]
    (checkpoint,) = [c for c in trainer.callbacks if isinstance(c, GeneratorStepCheckpoint)]
    assert coverage.every_n_steps == checkpoint.every_n_generator_steps == 100
    assert Path(checkpoint.dirpath) == (tmp_path / "checkpoints").resolve()
    assert any(isinstance(c, GeneratorStepProgressBar) for c in trainer.callbacks)
    assert isinstance(trainer.logger, CSVLogger) and Path(trainer.logger.save_dir) == tmp_path
    assert trainer.num_devices == 1


def test_checkpoints_follow_the_first_evaluation_that_runs(tmp_path) -> None:
    """An evaluation the config brings sets the checkpoints' cadence (one that never runs
    during training, every_n_steps 0, does not); no mode-coverage evaluation is added."""
    from mgan_lightning.callbacks import GeneratorStepCheckpoint, ModeCoverageEvaluation

    evaluations = tmp_path / "evaluations.yaml"
    evaluations.write_text(
        "trainer:\n  callbacks:\n"
        "    - {class_path: mgan_lightning.callbacks.ModeCoverageEvaluation,"
        " init_args: {every_n_steps: 0}}\n"
        "    - {class_path: mgan_lightning.callbacks.ModeCoverageEvaluation,"
        " init_args: {every_n_steps: 30}}\n"
    )
    trainer = _built(tmp_path, "--config", str(evaluations)).trainer
    coverage = [c for c in trainer.callbacks if isinstance(c, ModeCoverageEvaluation)]
    assert [c.every_n_steps for c in coverage] == [0, 30]
    (checkpoint,) = [c for c in trainer.callbacks if isinstance(c, GeneratorStepCheckpoint)]
    assert checkpoint.every_n_generator_steps == 30
