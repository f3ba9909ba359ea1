"""The documentation's examples run as the pages say: the subclass on the "Your own method"
page trains through the CLI and comes back from its checkpoint, and the ImageFolder config on
the "Data" page trains on a folder of images. Both files are included into the pages as they
are (``docs/examples/``), so what is tested is what a reader copies."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mgan_lightning.cli import build_cli
from mgan_lightning.methods import GAN

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
RING_GAN = str(ROOT / "configs" / "ring" / "gan.yaml")


@pytest.fixture
def examples(monkeypatch, tmp_path: Path) -> Path:
    """Run from an empty folder with ``docs/examples`` importable, as the page's
    ``PYTHONPATH=docs/examples mgan fit ...`` does; ``sys.argv`` is the command's alone."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setattr(sys, "argv", ["mgan"])
    return tmp_path


def test_the_pages_include_the_tested_files() -> None:
    extending = (ROOT / "docs" / "extending.md").read_text()
    data = (ROOT / "docs" / "data.md").read_text()
    assert '--8<-- "docs/examples/smoothed_gan.py"' in extending
    assert '--8<-- "docs/examples/image_folder_mgan.yaml"' in data


def test_subclass_example_trains_through_the_cli_and_loads_back(examples: Path) -> None:
    cli = build_cli(
        [
            "fit",
            "--config", RING_GAN,
            "--model.class_path=smoothed_gan.SmoothedGAN",
            "--model.init_args.smoothing=0.8",
            "--model.init_args.max_generator_steps=5",
            "--data.init_args.num_train=512",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={examples / 'run'}",
        ]
    )  # fmt: skip
    model = cli.model
    assert type(model).__name__ == "SmoothedGAN" and model.smoothing == 0.8
    assert model.generator_steps_done == 5
    assert torch.isfinite(cli.trainer.callback_metrics["loss/d"])

    loaded = type(model).load_from_checkpoint(
        examples / "run" / "checkpoints" / "last.ckpt", map_location="cpu"
    )
    assert type(loaded).__name__ == "SmoothedGAN" and loaded.smoothing == 0.8


def test_subclass_example_changes_only_the_real_target(examples: Path) -> None:
    """With ``smoothing=1`` the loss is the GAN's; below 1 it differs."""
    from smoothed_gan import SmoothedGAN

    torch.manual_seed(0)
    plain = GAN(sample_shape=(2,))
    smoothed = SmoothedGAN(smoothing=1.0, sample_shape=(2,))
    smoothed.load_state_dict(plain.state_dict())
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    index = torch.zeros(16, dtype=torch.long)
    expected, _ = plain.discriminator_loss(real, fake, index)
    same, _ = smoothed.discriminator_loss(real, fake, index)
    torch.testing.assert_close(same, expected)
    smoothed.smoothing = 0.9
    assert not torch.allclose(smoothed.discriminator_loss(real, fake, index)[0], expected)


def test_image_folder_config_trains_on_a_folder_of_images(examples: Path) -> None:
    folder = examples / "my_images" / "unlabeled"
    folder.mkdir(parents=True)
    pixels = np.random.default_rng(0).integers(0, 256, size=(12, 40, 48, 3), dtype=np.uint8)
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(folder / f"{i}.png")
    cli = build_cli(
        [
            "fit",
            "--config", str(EXAMPLES / "image_folder_mgan.yaml"),
            f"--data.init_args.data_root={examples / 'my_images'}",
            "--data.init_args.image_size=16",
            "--data.init_args.batch_size=6",
            "--model.init_args.num_generators=2",
            "--model.init_args.architecture.init_args.width=8",
            "--model.init_args.max_generator_steps=2",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={examples / 'run'}",
        ]
    )  # fmt: skip
    assert type(cli.datamodule).__name__ == "ImageFolder"
    assert cli.model.sample_shape == (3, 16, 16)
    assert cli.model.generator_steps_done == 2
    assert (examples / "run" / "checkpoints" / "last.ckpt").exists()
    assert list((examples / "run").rglob("samples_grid_step*.png"))


def test_readme_reads_in_five_minutes() -> None:
    """At most 150 lines, with the two commands; the reference lives in the docs."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert "mgan fit --config configs/ring/mgan.yaml" in readme
    assert "bash scripts/test.sh" in readme


# What a user of the repository sees: every file outside tests/ that git would track.
SEEN = ("docs", "configs", "benchmarks", "mgan_lightning", "notebooks", "scripts", ".ci")
SEEN_FILES = ("README.md", "mkdocs.yml", "CHANGELOG.md", "CITATION.cff", "pyproject.toml")
TRACKER = re.compile(r"\b(issue|task) #?\d+|item \d+ of the", re.IGNORECASE)


def seen_files() -> list[Path]:
    files = [ROOT / name for name in SEEN_FILES]
    for folder in SEEN:
        files += [
            p for p in (ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ]
    return [p for p in files if p.suffix not in (".png", ".ckpt", ".pt", ".gz", ".pyc")]


def test_nothing_a_user_sees_names_a_file_outside_the_repository() -> None:
    """No other machine's folders, no shared notes and no tracker numbers: only the tests
    read data locations, from an environment variable."""
    for path in seen_files():
        text = path.read_text(errors="replace")
        for outside in ("../shared", "METHODS.md", "/work/"):
            assert outside not in text, f"{path.relative_to(ROOT)} names {outside}"
        assert not TRACKER.search(text), f"{path.relative_to(ROOT)}: {TRACKER.search(text)}"
