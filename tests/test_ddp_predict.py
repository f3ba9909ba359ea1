"""``mgan predict --trainer.devices=2`` on CPU (gloo): the two processes share the slots,
process 0 writes one file of exactly N samples, and it holds the very samples one process
writes for the same seed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mgan_lightning.cli import build_cli

pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "--config", str(ROOT / "configs" / "ring" / "mgan.yaml"),
    "--trainer.enable_progress_bar=false",
    "--trainer.logger=false",
    "--trainer.accelerator=cpu",
    "--model.init_args.max_generator_steps=3",
    "--model.init_args.architecture.init_args.g_hidden=16",
    "--model.init_args.architecture.init_args.d_hidden=16",
    "--data.init_args.num_train=512",
    "--data.init_args.batch_size=16",  # predict batches: 101 slots -> 51 + 50, in 4 batches
]  # fmt: skip
N = 101


@pytest.mark.slow
def test_two_process_predict_equals_one_process(tmp_path: Path) -> None:
    root = tmp_path / "run"
    args = [*SMALL, f"--trainer.default_root_dir={root}"]
    build_cli(["fit", *args])
    predict = ["predict", *args, f"--ckpt_path={root / 'checkpoints' / 'last.ckpt'}",
               f"--num_samples={N}", "--seed=11"]  # fmt: skip
    build_cli([*predict, f"--output_dir={tmp_path / 'single'}"])

    exe = shutil.which("mgan") or str(Path(sys.executable).with_name("mgan"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    command = [exe, *predict, "--trainer.devices=2", f"--output_dir={tmp_path / 'ddp'}"]
    proc = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (proc.stdout + proc.stderr).count(f"Wrote {N} samples") == 1  # process 0 only

    single, ddp = (torch.load(tmp_path / d / "samples.pt", weights_only=True)
                   for d in ("single", "ddp"))  # fmt: skip
    assert ddp["samples"].shape == (N, 2) and ddp["generator"].shape == (N,)
    assert len(torch.unique(ddp["latent"], dim=0)) == N  # no slot drawn twice
    assert torch.equal(ddp["generator"], single["generator"])
    assert torch.equal(ddp["latent"], single["latent"])
    torch.testing.assert_close(ddp["samples"], single["samples"], rtol=0, atol=1e-6)
