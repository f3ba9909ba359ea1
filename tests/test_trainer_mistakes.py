"""Lightning-level mistakes get one line and exit status 2, before anything is built: lengths
that are not positive, an accelerator that is not there, a folder that cannot be written,
more CPU processes than cores, a checkpoint of other data; and ``mgan test|predict
--ckpt_path X`` works with nothing else."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.trainer.states import TrainerFn

from mgan_lightning import cli
from mgan_lightning.callbacks.evaluation import SampleEvaluation
from mgan_lightning.methods import GAN
from tests.test_bad_input import fit_args, refused

pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")


@pytest.mark.parametrize(
    "override, words",
    [
        ("--trainer.max_steps=-5", ["trainer.max_steps", ">= 1", "-5", "max_generator_steps"]),
        ("--trainer.max_steps=0", ["trainer.max_steps", ">= 1"]),
        ("--model.init_args.max_generator_steps=0", ["max_generator_steps", ">= 1", "0"]),
        ("--model.init_args.ema_start=1.5", ["ema_start", "[0, 1]"]),
        ("--trainer.devices=0", ["trainer.devices", ">= 1"]),
    ],
)
def test_lengths_and_counts(capsys, tmp_path: Path, override: str, words: list[str]) -> None:
    message = refused(capsys, fit_args("ring/gan.yaml", tmp_path, override), tmp_path)
    for word in words:
        assert word in message, message


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the accelerator exists")
def test_an_accelerator_that_is_not_there(capsys, tmp_path: Path) -> None:
    args = fit_args("ring/gan.yaml", tmp_path, "--trainer.accelerator=gpu")
    message = refused(capsys, args, tmp_path)
    assert "no CUDA GPU" in message and "--trainer.accelerator=auto" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine devices count GPUs")
def test_more_cpu_processes_than_cores(capsys, tmp_path: Path) -> None:
    cores = os.cpu_count() or 1
    args = fit_args("ring/gan.yaml", tmp_path, f"--trainer.devices={cores + 1}")
    message = refused(capsys, args, tmp_path)
    assert f"{cores} CPU cores" in message and f"trainer.devices={cores + 1}" in message


def test_a_folder_that_cannot_be_written(capsys, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    args = fit_args("ring/gan.yaml", tmp_path, f"--trainer.default_root_dir={blocker / 'run'}")
    message = refused(capsys, args, tmp_path)
    assert "default_root_dir" in message and "is a file" in message


def main(monkeypatch, cwd: Path, *args: str) -> None:
    """``mgan <args>`` as the console script runs it (``cli.main``), from ``cwd``."""
    monkeypatch.setattr(sys, "argv", ["mgan", *args])
    monkeypatch.chdir(cwd)
    cli.main()


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory) -> Path:
    """A 4-step ring GAN fitted through the console entry point; its run folder."""
    tmp = tmp_path_factory.mktemp("ring_run")
    mp = pytest.MonkeyPatch()
    try:
        args = fit_args("ring/gan.yaml", tmp, "--model.init_args.max_generator_steps=4")
        main(mp, tmp, *args)
    finally:
        mp.undo()
    return tmp / "run"


def test_test_with_the_checkpoint_alone(monkeypatch, capsys, ring_run: Path, tmp_path) -> None:
    """No --config: the run's configuration comes from the checkpoint, even when the run
    folder's logs are gone; the table has 4 significant figures."""
    copy = tmp_path / "copy"
    shutil.copytree(ring_run / "checkpoints", copy / "checkpoints")
    capsys.readouterr()
    main(monkeypatch, tmp_path, "test", "--ckpt_path", str(copy / "checkpoints" / "last.ckpt"))
    out = capsys.readouterr().out
    assert "test metric" in out and "test/high_quality" in out
    rows = dict(line.split() for line in out.splitlines() if line.startswith("test/"))
    coverage = {"modes", "high_quality", "reverse_kl", "spread", "spread_max"}
    assert set(rows) == {f"test/{name}" for name in coverage}
    assert all(len(v.replace(".", "").lstrip("0")) <= 4 for v in rows.values()), rows


class FirstSample(SampleEvaluation):
    def score(self, trainer, pl_module) -> dict[str, float]:
        return {"first": float(next(self.generated(trainer, pl_module))[0, 0])}


@pytest.mark.parametrize("stage", [TrainerFn.TESTING, TrainerFn.VALIDATING])
def test_test_and_validate_draw_their_own_samples(stage) -> None:
    """The fit's evaluations share one stream; mgan test / validate draw others (and each
    draws the same samples every time)."""
    model = GAN(latent_dim=2)
    callback = FirstSample(num_samples=4, batch_size=4)

    def first(fn) -> float:
        trainer = SimpleNamespace(state=SimpleNamespace(fn=fn), global_rank=0, world_size=1)
        return callback.evaluate(trainer, model)["first"]  # type: ignore[arg-type]

    assert first(TrainerFn.FITTING) == first(TrainerFn.FITTING)
    assert first(stage) == first(stage)
    assert first(stage) != first(TrainerFn.FITTING)


def test_a_checkpoint_of_other_data_is_refused(monkeypatch, capsys, ring_run: Path) -> None:
    ckpt = str(ring_run / "checkpoints" / "last.ckpt")
    grid = str(Path(__file__).resolve().parents[1] / "configs" / "grid" / "gan.yaml")
    for subcommand in (["test"], ["predict", "--num_samples", "10"]):
        with pytest.raises(SystemExit) as stop:
            main(monkeypatch, ring_run, *subcommand, "--config", grid, "--ckpt_path", ckpt)
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) <= 3 and "other data" in err[-1], err
        assert "8 modes" in err[-1] and "25 modes" in err[-1]


def test_version_and_help(monkeypatch, capsys, tmp_path: Path) -> None:
    from mgan_lightning import __version__

    main(monkeypatch, tmp_path, "--version")
    assert capsys.readouterr().out.strip() == f"mgan-lightning {__version__}"
    with pytest.raises(SystemExit):
        main(monkeypatch, tmp_path, "--help")
    text = " ".join(capsys.readouterr().out.split())
    for name in ("MGAN", "BourGAN", "MWU", "GaussianMixture2D", "StackedMNIST", "ring"):
        assert name in text, name


def test_no_config_run_has_the_defaults_a_run_needs(
    monkeypatch, capsys, caplog, tmp_path: Path
) -> None:
    """``mgan fit --model GAN --data GaussianMixture2D``: generator-step checkpoints, a CSV
    logger, the mode-coverage evaluation and a stop line in generator steps."""
    main(
        monkeypatch, tmp_path, "fit", "--model", "GAN", "--data", "GaussianMixture2D",
        "--model.max_generator_steps=8", "--data.num_train=512",
        "--trainer.enable_progress_bar=false",
    )  # fmt: skip
    out = capsys.readouterr()
    run = tmp_path / "runs" / "gan"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "checkpoints" / "gstep=8.ckpt").is_file()
    assert (run / "logs" / "version_0" / "metrics.csv").is_file()
    text = out.out + out.err + caplog.text
    assert "Mode coverage at generator step 8" in text
    assert "mgan fit: stopped at generator step 8 of 8" in text
    assert "max_steps=16" not in text and "max_epochs" not in text
