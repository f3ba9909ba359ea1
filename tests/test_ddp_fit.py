"""``mgan fit --trainer.devices=2`` on CPU (gloo) trains every method with no strategy chosen
by the user; both processes end with the same weights (BourGAN: the same prior), drew
different latents and data, and the coverage computed under DDP equals the single-process
value on the same samples."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mgan_lightning.metrics.mode_coverage import ModeCoverage

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "--model.init_args.max_generator_steps=6",
    "--model.init_args.architecture.init_args.g_hidden=16",
    "--model.init_args.architecture.init_args.d_hidden=16",
    "--data.init_args.num_train=2000",
    "--trainer.enable_progress_bar=false",
]

EXTRA = {  # MWU: two rounds of 3 steps, so the weights are updated twice under DDP
    "mwu": [
        "--model.init_args.num_rounds=2",
        "--model.init_args.steps_per_round=3",
        "--model.init_args.delta=1.0",
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gan", "mgan", "mimgan", "bourgan", "mwu"])
def test_two_process_fit(tmp_path: Path, method: str) -> None:
    exe = shutil.which("mgan") or str(Path(sys.executable).with_name("mgan"))
    env = {
        **os.environ,
        "MGAN_PROBE_DIR": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "PL_DISABLE_FORK": "1",
    }
    command = [
        exe, "fit", "--config", str(ROOT / "configs" / "ring" / f"{method}.yaml"),
        "--trainer.devices=2", "--trainer.accelerator=cpu",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
        "--trainer.callbacks+=tests.ddp_probe.RankRecorder",
        *SMALL,
        *EXTRA.get(method, []),
    ]  # fmt: skip
    proc = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]

    a, b = ranks[0]["state_dict"], ranks[1]["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "processes ended with different weights"
    if method == "bourgan":  # the prior was built on process 0 and received by process 1
        assert a["prior.centres"].shape == (2000, 55)
    if method == "mwu":  # scores gathered from both processes: the same update on each
        w0, w1 = ranks[0]["example_weights"], ranks[1]["example_weights"]
        assert w0.shape == (2000,) and torch.equal(w0, w1)
        assert (w0 > 1).any()
    assert int(a["generator_step"]) == 6
    assert not torch.equal(ranks[0]["first_latent"], ranks[1]["first_latent"])
    assert not torch.equal(ranks[0]["first_batch"], ranks[1]["first_batch"])

    samples = torch.cat([r["eval_samples"] for r in ranks])
    assert len(samples) == 2500  # the config's num_samples, split over two processes
    single = ModeCoverage(ranks[0]["modes"], ranks[0]["mode_std"])
    single.update(samples)
    expected = {k: float(v) for k, v in single.compute().items()}
    for r in ranks:
        assert r["eval_result"] == pytest.approx(expected, rel=1e-6, abs=1e-9, nan_ok=True)
