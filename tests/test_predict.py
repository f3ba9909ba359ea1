"""``mgan predict``: N samples of a checkpoint with their generator, seeded, from the EMA
generators, written as tensors (and PNGs for images); the slot design that makes the result
independent of batches and processes; the errors for a missing checkpoint or count."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mgan_lightning.callbacks.sample_writer import merge_parts
from mgan_lightning.methods import GAN
from tests.mnist_data import HAS_MNIST, MNIST_DIR, SKIP_REASON
from tests.test_cli import run_cli

pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")

ROOT = Path(__file__).resolve().parents[1]
RING = str(ROOT / "configs" / "ring" / "mgan.yaml")  # K = 8, one latent shared by all
K_RING = 8

# Only a checkpoint callback, no evaluation; small nets; an EMA that differs from the live
# weights after a few steps.
RING_SMALL = """
trainer:
  enable_progress_bar: false
  logger: false
  callbacks:
    - class_path: mgan_lightning.callbacks.GeneratorStepCheckpoint
      init_args: {dirpath: "${trainer.default_root_dir}/checkpoints", save_last: true}
model:
  init_args:
    max_generator_steps: 3
    ema_decay: 0.5
    ema_start: 0
    architecture:
      class_path: mgan_lightning.nets.MLP
      init_args: {g_hidden: 16, d_hidden: 16}
data:
  init_args: {num_train: 512, batch_size: 64}
"""

# Three independent DCGAN generators (independent latents, batch norm) on 16 px MNIST digits.
IMAGES = """
seed_everything: 0
trainer:
  accelerator: cpu
  enable_progress_bar: false
  logger: false
  default_root_dir: {root}
  callbacks:
    - class_path: mgan_lightning.callbacks.GeneratorStepCheckpoint
      init_args: {{dirpath: "{root}/checkpoints", save_last: true}}
model:
  class_path: mgan_lightning.methods.GAN
  init_args:
    num_generators: 3
    latent_dim: 8
    max_generator_steps: 2
    architecture:
      class_path: mgan_lightning.nets.DCGAN
      init_args: {{width: 4}}
data:
  class_path: mgan_lightning.data.MNIST
  init_args:
    data_root: {mnist}
    train_split: test
    image_size: 16
    batch_size: 16
"""
K_IMAGES = 3


def load(folder: Path) -> dict:
    return torch.load(folder / "samples.pt", map_location="cpu", weights_only=True)


def made_by_their_generator(model, out: dict, averaged: bool = True) -> torch.Tensor:
    """What generator ``generator[i]`` makes from ``latent[i]``, by running every generator
    on every latent (independently of the grouping :meth:`generate_assigned` does)."""
    model.eval()
    with torch.no_grad():
        every = model.generate(out["latent"], averaged=averaged)  # (K, N, ...)
    return every[out["generator"], torch.arange(len(out["latent"]))]


# ------------------------------------------------------------------ 2D ring model
@pytest.fixture(scope="module")
def ring(tmp_path_factory) -> dict:
    """A tiny ring MGAN (3 steps) and three predictions: the default seed (seed_everything),
    the same seed given explicitly, another seed."""
    tmp = tmp_path_factory.mktemp("predict_ring")
    small = tmp / "small.yaml"
    small.write_text(RING_SMALL)
    root = tmp / "run"
    args = ["--config", RING, "--config", str(small), f"--trainer.default_root_dir={root}"]
    run_cli(["fit", *args], cwd=tmp)
    ckpt = root / "checkpoints" / "last.ckpt"
    predict = ["predict", *args, f"--ckpt_path={ckpt}", "--num_samples=300"]
    default = run_cli(predict, cwd=tmp)
    run_cli([*predict, "--seed=0", f"--output_dir={tmp / 'seed0'}"], cwd=tmp)
    run_cli([*predict, "--seed=1", f"--output_dir={tmp / 'seed1'}"], cwd=tmp)
    return {"tmp": tmp, "root": root, "args": args, "ckpt": ckpt, "model": default.model}


def test_writes_n_samples_with_their_generator(ring) -> None:
    folder = ring["root"] / "samples"  # the default folder
    out = load(folder)
    assert out["samples"].shape == (300, 2) and out["samples"].dtype == torch.float32
    assert out["generator"].shape == (300,) and out["generator"].dtype == torch.long
    assert out["latent"].shape == (300, ring["model"].latent_dim)
    assert int(out["generator"].min()) >= 0 and int(out["generator"].max()) < K_RING
    assert out["seed"] == 0
    arrays = np.load(folder / "samples.npz")
    for name in ("samples", "generator", "latent"):
        assert np.array_equal(arrays[name], out[name].numpy())
    assert not (folder / "images").exists() and not (folder / "grid.png").exists()


def test_each_sample_is_made_by_its_generator_with_the_ema_weights(ring) -> None:
    model = ring["model"]  # the checkpoint's weights, restored by predict
    live = torch.cat([p.flatten() for p in model.generators.parameters()])
    ema = torch.cat([p.flatten() for p in model.generators_ema.parameters()])
    assert not torch.allclose(live, ema)  # otherwise the test could not tell them apart
    out = load(ring["root"] / "samples")
    torch.testing.assert_close(out["samples"], made_by_their_generator(model, out))
    assert not torch.allclose(out["samples"], made_by_their_generator(model, out, False))


def test_same_seed_same_samples_other_seed_different(ring) -> None:
    default, same, other = (load(p) for p in (ring["root"] / "samples", ring["tmp"] / "seed0",
                                               ring["tmp"] / "seed1"))  # fmt: skip
    for name in ("samples", "generator", "latent"):
        assert torch.equal(default[name], same[name])
    assert not torch.equal(default["latent"], other["latent"])
    assert not torch.equal(default["generator"], other["generator"])
    assert other["seed"] == 1


def test_generators_are_drawn_uniformly_by_default(ring) -> None:
    counts = torch.bincount(load(ring["root"] / "samples")["generator"], minlength=K_RING)
    expected = 300 / K_RING  # 37.5, standard deviation about 5.7
    assert ((counts - expected).abs() < 20).all(), counts


def test_slots_do_not_depend_on_batches_or_processes(ring) -> None:
    """Two 'processes' taking every other slot, in batches of 7, give the samples of one
    batch of all slots; the first 100 slots are the same whatever N is."""
    model = ring["model"].eval()
    slots = torch.arange(300)
    whole = dict(zip(("samples", "generator", "latent"), model.sample_slots(slots, 0)))
    parts = []
    for rank in (0, 1):
        for batch in slots[rank::2].split(7):
            samples, generator, latent = model.sample_slots(batch, 0)
            parts.append(
                {"slot": batch, "samples": samples, "generator": generator, "latent": latent}
            )
    merged = merge_parts(parts, num_samples=300)
    for name in whole:
        torch.testing.assert_close(merged[name], whole[name], rtol=0, atol=1e-6)
    prefix = model.sample_slots(torch.arange(100), 0)
    torch.testing.assert_close(prefix[0], whole["samples"][:100], rtol=0, atol=1e-6)


def test_merge_drops_repeated_slots_and_rejects_missing_ones() -> None:
    def part(slots: list[int]) -> dict:
        s = torch.tensor(slots)
        return {"slot": s, "samples": s[:, None].float(), "generator": s % 2}

    merged = merge_parts([part([3, 1]), None, part([0, 2, 1])], num_samples=4)
    assert merged["samples"].flatten().tolist() == [0.0, 1.0, 2.0, 3.0]
    with pytest.raises(RuntimeError, match="slots 0..4"):
        merge_parts([part([0, 1, 3])], num_samples=5)


class Weighted(GAN):
    """A GAN whose mixture gives generator 0 weight 0.75, generator 2 weight 0.25."""

    def mixture_weights(self) -> torch.Tensor:
        return torch.tensor([0.75, 0.0, 0.25, 0.0])


def test_generators_follow_the_mixture_weights() -> None:
    model = Weighted(sample_shape=(2,), num_generators=4, latent_dim=2).eval()
    _, generator, _ = model.sample_slots(torch.arange(2000), 3)
    counts = torch.bincount(generator, minlength=4)
    assert counts[1] == counts[3] == 0
    assert abs(counts[0] / 2000 - 0.75) < 0.05  # standard deviation about 0.01


@pytest.mark.parametrize(
    "change, words",
    [
        ({"ckpt": None}, ["--ckpt_path is required", "untrained"]),
        ({"n": 0}, ["--num_samples must be >= 1, got 0"]),
        ({"n": None}, ["--num_samples is required"]),
    ],
)
def test_missing_checkpoint_or_count_is_a_clear_error(
    ring, capsys, tmp_path: Path, change: dict, words: list[str]
) -> None:
    args = ["predict", *ring["args"], f"--output_dir={tmp_path / 'out'}"]
    ckpt = change.get("ckpt", ring["ckpt"])
    n = change.get("n", 5)
    args += [f"--ckpt_path={ckpt}"] if ckpt else []
    args += [f"--num_samples={n}"] if n is not None else []
    with pytest.raises(SystemExit) as info:
        run_cli(args, cwd=ring["tmp"])
    assert info.value.code not in (0, None)
    err = capsys.readouterr().err
    for word in words:
        assert word in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_fit_has_no_predict_flags(ring, capsys) -> None:
    with pytest.raises(SystemExit):
        run_cli(["fit", *ring["args"], "--num_samples=5"], cwd=ring["tmp"])
    assert "num_samples" in capsys.readouterr().err


# ------------------------------------------------------------------- image model
@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict:
    """A tiny 3-generator DCGAN on MNIST (2 steps), and 20 samples of it."""
    if not HAS_MNIST:
        pytest.skip(SKIP_REASON)
    tmp = tmp_path_factory.mktemp("predict_images")
    config = tmp / "images.yaml"
    config.write_text(IMAGES.format(root=tmp / "run", mnist=MNIST_DIR))
    run_cli(["fit", "--config", str(config)], cwd=tmp)
    ckpt = tmp / "run" / "checkpoints" / "last.ckpt"
    args = ["predict", "--config", str(config), f"--ckpt_path={ckpt}"]
    out = tmp / "out"
    cli = run_cli([*args, "--num_samples=20", f"--output_dir={out}", "--seed=7"], cwd=tmp)
    return {"tmp": tmp, "out": out, "args": args, "model": cli.model}


def test_image_samples_tensor_and_pngs(images) -> None:
    out = load(images["out"])
    assert out["samples"].shape == (20, 1, 16, 16)
    assert out["generator"].min() >= 0 and out["generator"].max() < K_IMAGES
    torch.testing.assert_close(out["samples"], made_by_their_generator(images["model"], out))
    pngs = sorted((images["out"] / "images").glob("*.png"))
    assert [p.name for p in pngs] == [
        f"{i:06d}_g{int(k)}.png" for i, k in enumerate(out["generator"])
    ]
    for png, sample in zip(pngs, out["samples"]):
        with Image.open(png) as picture:
            pixels = np.asarray(picture)
        assert pixels.shape == (16, 16)
        expected = ((sample[0].clamp(-1, 1) + 1) * 127.5).round()
        assert np.abs(pixels.astype(float) - expected.numpy()).max() <= 1


def test_grid_has_one_row_per_generator(images) -> None:
    out = load(images["out"])
    with Image.open(images["out"] / "grid.png") as picture:
        grid = np.asarray(picture.convert("L")).astype(float)
    scale, pad, size = 2, 2, 16
    assert grid.shape == ((pad + K_IMAGES * (size + pad)) * scale, (pad + 8 * (size + pad)) * scale)
    for k in range(K_IMAGES):  # the first tile of row k is generator k's first sample
        first = out["samples"][out["generator"] == k][0, 0]
        top, left = (pad + k * (size + pad)) * scale, pad * scale
        tile = grid[top : top + size * scale : scale, left : left + size * scale : scale]
        expected = ((first.clamp(-1, 1) + 1) * 127.5).round().numpy()
        assert np.abs(tile - expected).max() <= 1


def test_a_smaller_prediction_replaces_the_pngs(images, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(images["out"], out)
    (out / "images" / "notes.txt").write_text("not ours")
    run_cli([*images["args"], "--num_samples=4", f"--output_dir={out}"], cwd=images["tmp"])
    assert len(list((out / "images").glob("*.png"))) == 4
    assert (out / "images" / "notes.txt").is_file()  # only our own PNGs are replaced
    assert load(out)["samples"].shape == (4, 1, 16, 16)


def test_trainer_predict_with_a_datamodule_draws_its_predict_samples(tmp_path: Path) -> None:
    """From Python: ``trainer.predict(model, datamodule=dm)`` samples ``dm.predict_samples``
    slots and returns them with their generator."""
    from lightning.pytorch import Trainer

    from mgan_lightning.data import GaussianMixture2D

    data = GaussianMixture2D(num_train=64, batch_size=8)
    data.predict_samples = 20
    model = GAN(sample_shape=(2,), num_generators=2, latent_dim=2)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                      default_root_dir=tmp_path)  # fmt: skip
    batches = trainer.predict(model, datamodule=data)
    slots = torch.cat([b["slot"] for b in batches])
    assert torch.equal(slots, torch.arange(20))
    assert torch.cat([b["samples"] for b in batches]).shape == (20, 2)
