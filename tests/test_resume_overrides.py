"""Resume honours what the user asks: a longer run continues to the new length, optimizer,
schedule and EMA arguments given at resume take effect, network-shaping arguments are refused
naming both values, and a resumed run with the same recipe equals a straight one bit for bit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from mgan_lightning.cli import build_cli

pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")

# A small ring GAN whose recipe does not depend on the run's length (EMA from an absolute
# step, no decay), checkpointed every 2 generator steps.
CONFIG = """
seed_everything: 3
trainer:
  accelerator: cpu
  devices: 1
  enable_progress_bar: false
  logger: false
  callbacks:
    - class_path: mgan_lightning.callbacks.GeneratorStepCheckpoint
      init_args:
        dirpath: ${trainer.default_root_dir}/checkpoints
        save_last: true
        every_n_generator_steps: 2
        save_top_k: -1
model:
  class_path: mgan_lightning.methods.MGAN
  init_args:
    num_generators: 2
    latent_dim: 4
    max_generator_steps: 4
    ema_decay: 0.9
    ema_start: 1
    architecture:
      class_path: mgan_lightning.nets.MLP
      init_args: {g_hidden: 16, d_hidden: 16}
    optimizer_g:
      class_path: torch.optim.Adam
      init_args: {lr: 1.0e-3, betas: [0.5, 0.999]}
data:
  class_path: mgan_lightning.data.GaussianMixture2D
  init_args: {preset: ring, batch_size: 32, num_train: 256, num_test: 64}
"""


def fit(tmp_path: Path, root: Path, *extra: str):
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        return build_cli(
            ["fit", "--config", str(config), f"--trainer.default_root_dir={root}", *extra]
        )
    finally:
        os.chdir(old)


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_resume_to_a_longer_run_trains_to_the_new_length(tmp_path: Path) -> None:
    root = tmp_path / "run"
    fit(tmp_path, root)
    last = root / "checkpoints" / "last.ckpt"
    resumed = fit(tmp_path, root, "--model.init_args.max_generator_steps=8", f"--ckpt_path={last}")
    assert resumed.model.generator_steps_done == 8
    assert resumed.trainer.global_step == 16
    names = sorted(p.name for p in (root / "checkpoints").glob("gstep=*.ckpt"))
    assert names == [f"gstep={s}.ckpt" for s in (2, 4, 6, 8)]


def test_resumed_run_equals_a_straight_run_bitwise(tmp_path: Path) -> None:
    straight = fit(tmp_path, tmp_path / "straight", "--model.init_args.max_generator_steps=8")
    root = tmp_path / "resumed"
    fit(tmp_path, root)
    resumed = fit(
        tmp_path,
        root,
        "--model.init_args.max_generator_steps=8",
        f"--ckpt_path={root / 'checkpoints' / 'last.ckpt'}",
    )
    a, b = weights(straight.model), weights(resumed.model)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for opt_a, opt_b in zip(straight.trainer.optimizers, resumed.trainer.optimizers):
        for state_a, state_b in zip(opt_a.state.values(), opt_b.state.values()):
            assert torch.equal(state_a["exp_avg"], state_b["exp_avg"])


def test_new_learning_rate_and_ema_apply_from_the_resume_step(tmp_path: Path) -> None:
    root = tmp_path / "run"
    fit(tmp_path, root, "--model.init_args.ema_decay=null")
    last = root / "checkpoints" / "last.ckpt"
    resumed = fit(
        tmp_path,
        root,
        "--model.init_args.max_generator_steps=6",
        "--model.init_args.ema_decay=0.5",
        "--model.init_args.optimizer_g.init_args.lr=0.0005",
        f"--ckpt_path={last}",
    )
    opt_g, opt_d = resumed.trainer.optimizers
    assert opt_g.param_groups[0]["lr"] == 0.0005
    assert opt_d.param_groups[0]["lr"] == 2e-4  # D's default, unchanged
    assert opt_g.state, "Adam's moments were kept from the checkpoint"
    model = resumed.model
    assert model.generators_ema is not None
    ema, raw = model.generators_ema.state_dict(), model.generators.state_dict()
    assert any(not torch.equal(ema[k], raw[k]) for k in raw), "the EMA has started averaging"


def test_network_shaping_arguments_are_refused_naming_both_values(tmp_path: Path, capsys) -> None:
    root = tmp_path / "run"
    fit(tmp_path, root)
    with pytest.raises(SystemExit) as stop:
        fit(
            tmp_path,
            root,
            "--model.init_args.num_generators=3",
            f"--ckpt_path={root / 'checkpoints' / 'last.ckpt'}",
        )
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "num_generators 2 -> 3" in err[0] and "cannot change" in err[0]


def test_changed_arguments_are_listed_in_one_line(tmp_path: Path, capsys) -> None:
    root = tmp_path / "run"
    fit(tmp_path, root)
    capsys.readouterr()
    fit(
        tmp_path,
        root,
        "--model.init_args.max_generator_steps=5",
        "--model.init_args.beta=0.5",
        f"--ckpt_path={root / 'checkpoints' / 'last.ckpt'}",
    )
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "resuming" in x)
    assert "generator step 4" in line
    assert "max_generator_steps 4 -> 5" in line and "beta 0.01 -> 0.5" in line
