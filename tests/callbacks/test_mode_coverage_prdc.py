"""ModeCoverageEvaluation(prdc=True): PRDC on raw coordinates against the test split, logged
as ``prdc/...`` at the generator step beside ``coverage/...``; off by default."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.loggers import CSVLogger

from mgan_lightning.callbacks import ModeCoverageEvaluation
from mgan_lightning.data import GaussianMixture2D
from mgan_lightning.methods import GAN
from mgan_lightning.metrics import flat_scores, prdc
from mgan_lightning.nets import MLP

TINY = dict(g_hidden=16, g_layers=1, d_hidden=16, d_layers=1)


def fit(tmp_path: Path, callback: ModeCoverageEvaluation, steps: int = 4):
    seed_everything(0, verbose=False)
    data = GaussianMixture2D(preset="ring", num_train=256, num_test=300, batch_size=64)
    model = GAN(sample_shape=(2,), num_generators=2, latent_dim=4, architecture=MLP(**TINY))
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=2 * steps,
        logger=CSVLogger(tmp_path, name="logs"),
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=data)
    return trainer, model, data


def test_prdc_on_raw_coordinates_is_logged_beside_mode_coverage(tmp_path: Path) -> None:
    callback = ModeCoverageEvaluation(
        every_n_steps=2, num_samples=200, plot=False, batch_size=64, prdc=True, prdc_nearest_k=3
    )
    trainer, model, data = fit(tmp_path, callback)
    last = callback.last
    names = {"precision", "recall", "density", "coverage", "covered_by_one", "covered_by_none"}
    assert {"modes", "high_quality", "reverse_kl"} <= set(last)
    assert {f"prdc/{n}" for n in names} | {"prdc/coverage_g1", "prdc/precision_g0"} <= set(last)

    trainer.loggers[0].save()
    with open(Path(trainer.loggers[0].log_dir) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows if r.get("prdc/precision")]
    assert steps == [int(r["step"]) for r in rows if r.get("coverage/modes")] == [2, 4]
    assert not any(k.startswith("coverage/prdc") for k in rows[0])

    # the values are PRDC of the evaluation's samples against 200 fixed test points
    captured: list[tuple[torch.Tensor, torch.Tensor]] = []
    sample = callback.generated_with_index

    def spy(trainer, pl_module):
        for pair in sample(trainer, pl_module):
            captured.append(pair)
            yield pair

    callback.generated_with_index = spy  # type: ignore[method-assign]
    again = callback.evaluate(trainer, model)
    assert again == pytest.approx(last, nan_ok=True)
    fake = torch.cat([s for s, _ in captured])
    index = torch.cat([i for _, i in captured])
    order = torch.randperm(300, generator=torch.Generator().manual_seed(callback.seed))
    real = data.test_set[order[:200]][0]
    expected = flat_scores(prdc(real, fake, 3, index, num_generators=2))
    assert {k: again[f"prdc/{k}"] for k in expected} == pytest.approx(expected, nan_ok=True)
    text = callback.summary(again, 4)
    assert "PRDC (k=3, raw coordinates, vs 200 real test points): precision" in text

    results = trainer.test(model, datamodule=data, verbose=False)
    assert results[0]["test/prdc/coverage"] == pytest.approx(last["prdc/coverage"])
    assert results[0]["test/modes"] == last["modes"]


def test_prdc_is_off_by_default() -> None:
    callback = ModeCoverageEvaluation()
    assert callback.prdc is False
    callback.num_modes = 8
    text = callback.summary({"modes": 8.0, "high_quality": 1.0, "reverse_kl": 0.0}, 10)
    assert "PRDC" not in text
    assert (
        callback.key("modes") == "coverage/modes" and callback.key("prdc/recall") == "prdc/recall"
    )
    assert callback.key("prdc/recall", "test") == "test/prdc/recall"
    with pytest.raises(ValueError, match="prdc_nearest_k"):
        ModeCoverageEvaluation(prdc=True, prdc_nearest_k=0)
