"""Every YAML under ``configs/`` builds through the ``mgan`` CLI, whether or not its data is
on this machine.

The configs are globbed, so a new one is covered without editing this file. For each:

- it parses and its model and DataModule are instantiated by ``build_cli(..., run=False)``;
  the built classes are the ``class_path`` the YAML names, and the data's sample shape
  reached the model;
- every GAN config fixes its length in generator steps (``model.max_generator_steps``);
  the digit classifier, which is no GAN, fixes it in epochs instead;
- building the DataModule does not touch its ``data_root`` (no open, listdir, scandir or
  stat below it): construction must work on a machine without the data, as the CLI builds
  the DataModule for every subcommand, and only ``setup`` reads files;
- ``setup`` then either works offline (synthetic data) or raises ``DataNotFoundError``
  naming the folder; with the config's own ``data_root``, data that is here loads and
  matches the declared sample shape.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from mgan_lightning.cli import build_cli
from mgan_lightning.data import CIFAR10, MNIST, DataNotFoundError
from mgan_lightning.methods import GANMethod

pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")

ROOT = Path(__file__).resolve().parents[1]
# Run configs only: logger fragments (configs/loggers, tested in test_wandb.py), sweep files
# (configs/sweeps, tested in test_sweeps.py), overlays added after a run config
# (configs/overlays, tested where used) and the parts a family's configs share
# (configs/<family>/_*.yaml) are not whole configs.
PARTS = ("loggers", "sweeps", "overlays")
CONFIGS = sorted(
    p
    for p in (ROOT / "configs").rglob("*.yaml")
    if p.relative_to(ROOT / "configs").parts[0] not in PARTS and not p.name.startswith("_")
)
IDS = [str(path.relative_to(ROOT / "configs")) for path in CONFIGS]
SEED = 5  # a run's seed, which each config's data follow

# Paths touched while ``_touched`` is a list (an audit hook cannot be removed, so it stays
# installed and records only then). ``os.stat`` raises no audit event: it is wrapped below.
_touched: list[str] | None = None


def _record(target) -> None:
    if _touched is not None and isinstance(target, (str, bytes, os.PathLike)):
        _touched.append(os.path.abspath(os.fsdecode(target)))


def _audit(event: str, args: tuple) -> None:
    if _touched is not None and event in ("open", "os.listdir", "os.scandir", "os.mkdir"):
        _record(args[0] if args else None)


sys.addaudithook(_audit)


@contextmanager
def recording(monkeypatch) -> Iterator[list[str]]:
    """Absolute paths opened, listed, created or stat-ed inside the ``with`` block."""
    global _touched
    real_stat = os.stat

    def stat(target, *args, **kwargs):
        _record(target)
        return real_stat(target, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    _touched = touched = []
    try:
        yield touched
    finally:
        _touched = None
        monkeypatch.setattr(os, "stat", real_stat)


def _below(paths: list[str], folder: str | Path) -> list[str]:
    folder = os.path.abspath(folder)
    return [p for p in paths if p == folder or p.startswith(folder + os.sep)]


def _class(class_path: str) -> type:
    module, name = class_path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def _build(path: Path, tmp_path: Path, monkeypatch, *overrides: str):
    """``build_cli`` on ``path`` from the current directory; the CLI and the paths touched."""
    # build_cli seeds everything and exports the seed: give the variables back afterwards.
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")
    monkeypatch.setenv("PL_SEED_WORKERS", "0")
    args = ["--config", str(path), f"--trainer.default_root_dir={tmp_path / 'run'}", *overrides]
    with recording(monkeypatch) as touched:
        cli = build_cli(args, run=False)
    return cli, touched


def test_recording_sees_setup_look_for_files(tmp_path: Path, monkeypatch) -> None:
    """The check below is not vacuous: the recorder sees ``setup`` look in ``data_root``."""
    absent = tmp_path / "absent"
    for datamodule in (MNIST(data_root=str(absent)), CIFAR10(data_root=str(absent))):
        with recording(monkeypatch) as touched, pytest.raises(DataNotFoundError):
            datamodule.setup("fit")
        assert _below(touched, absent)


@pytest.mark.parametrize("path", CONFIGS, ids=IDS)
def test_config_builds_without_reading_data(path: Path, tmp_path: Path, monkeypatch) -> None:
    """From the project root with the config's own ``data_root``, as its header runs it (a
    clean clone has no data there, so this is the offline case in CI): the classes it names,
    its length, its data following ``--seed_everything``; construction reads nothing below
    ``data_root``; ``setup`` loads data that is there with the declared sample shape and names
    the folder of data that is not."""
    config = yaml.safe_load(path.read_text())
    monkeypatch.chdir(ROOT)
    cli, touched = _build(path, tmp_path, monkeypatch, f"--seed_everything={SEED}")
    model, dm = cli.model, cli.datamodule
    assert type(model) is _class(config["model"]["class_path"])
    assert type(dm) is _class(config["data"]["class_path"])
    assert tuple(model.sample_shape) == tuple(dm.sample_shape)
    assert dm.seed == SEED  # data.init_args.seed: ${seed_everything}, as seed fan-outs expect
    assert dm.batch_size == config["data"]["init_args"].get("batch_size", dm.batch_size)
    if isinstance(model, GANMethod):
        init = config["model"]["init_args"]
        # the length in generator steps: given, or (MWU) rounds x steps per round
        steps = init.get("max_generator_steps") or (
            init.get("num_rounds", 0) * init.get("steps_per_round", 0) or None
        )
        assert steps is not None and steps >= 1, "a GAN config must fix its length"
        assert model.max_generator_steps == steps
    else:  # the digit classifier: a bounded number of epochs instead
        assert not hasattr(model, "max_generator_steps")
        assert 0 < cli.trainer.max_epochs == config["trainer"]["max_epochs"]
    data_root = config["data"]["init_args"].get("data_root", "data")
    assert dm.data_root == data_root
    assert _below(touched, data_root) == [], "constructing the DataModule read data_root"
    try:
        dm.setup("fit")
    except DataNotFoundError as error:
        assert data_root in str(error)
        return
    images = next(iter(dm.train_dataloader()))[0]
    assert tuple(images.shape) == (dm.batch_size, *dm.sample_shape)
