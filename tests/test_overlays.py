"""The fragments under ``configs/overlays``, added after a run config, change what they say
and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mgan_lightning.callbacks import ModeCoverageEvaluation
from mgan_lightning.cli import build_cli

pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")

ROOT = Path(__file__).resolve().parents[1]
OVERLAYS = ROOT / "configs" / "overlays"


def built(*configs: str):
    args = ["--seed_everything=1"]
    for config in configs:
        args += ["--config", str(ROOT / "configs" / config)]
    return build_cli(args, run=False)


def test_every_overlay_is_tested_here() -> None:
    tested = {"prdc.yaml", "ring_rare_modes.yaml", "grid_rare_modes.yaml"}
    assert {p.name for p in OVERLAYS.glob("*.yaml")} == tested


def test_prdc_overlay_replaces_the_evaluation_with_one_that_adds_prdc() -> None:
    plain, with_prdc = built("ring/mgan.yaml"), built("ring/mgan.yaml", "overlays/prdc.yaml")
    (before,) = [c for c in plain.trainer.callbacks if isinstance(c, ModeCoverageEvaluation)]
    (after,) = [c for c in with_prdc.trainer.callbacks if isinstance(c, ModeCoverageEvaluation)]
    assert not before.prdc and after.prdc and after.every_n_steps == before.every_n_steps
    assert with_prdc.model.hparams == plain.model.hparams


@pytest.mark.parametrize(
    ("config", "overlay", "rare"),
    [
        ("ring/mwu.yaml", "ring_rare_modes.yaml", [[0.0, 1.0], [0.0, -1.0]]),
        ("grid/gan.yaml", "grid_rare_modes.yaml", [[-4, -4], [-2, 0], [0, 0], [4, 0]]),
    ],
)
def test_rare_mode_overlays_weigh_only_the_named_modes_down(config, overlay, rare) -> None:
    plain, rare_cli = built(config), built(config, f"overlays/{overlay}")
    data, base = rare_cli.datamodule, plain.datamodule
    assert torch.equal(data.modes, base.modes) and data.mode_std == base.mode_std
    weights = data.mode_weights / data.mode_weights.sum()
    low = weights < 0.5 / len(weights)
    assert torch.allclose(data.modes[low], torch.tensor(rare, dtype=torch.float), atol=1e-6)
    assert float(weights[low].max()) <= 0.01 + 1e-6
    assert rare_cli.model.hparams == plain.model.hparams
