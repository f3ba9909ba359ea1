"""Evaluation callbacks under DDP (2 CPU processes, gloo): shares add up, states reduce."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from mgan_lightning.classifiers.digit import DigitClassifier

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    from torch import nn
    from lightning.pytorch import Trainer
    from mgan_lightning.callbacks import FidelityEvaluation, StackedMNISTEvaluation
    from mgan_lightning.data import RandomImages
    from mgan_lightning.methods import GAN
    from mgan_lightning.nets import DCGAN


    if __name__ == "__main__":
        out, classifier = sys.argv[1], sys.argv[2]
        torch.manual_seed(0)
        model = GAN(sample_shape=(3, 16, 16), num_generators=2, latent_dim=8,
                    architecture=DCGAN(width=4))
        torch.manual_seed(1)
        feature = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 6))
        fid = FidelityEvaluation(num_samples=41, num_real=37, feature=feature, kid=False,
                                 inception_score=False, batch_size=8)
        modes = StackedMNISTEvaluation(num_samples=41, classifier=classifier, batch_size=8)
        trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False,
                          callbacks=[fid, modes], enable_checkpointing=False,
                          enable_progress_bar=False, enable_model_summary=False)
        trainer.test(model, datamodule=RandomImages(num_train=40, num_test=8, batch_size=4),
                     verbose=False)
        metric = modes.metrics["all"]
        record = {
            "rank": trainer.global_rank,
            "modes": modes.last,
            "fid": fid.last,
            "local_total": int(metric.total),
            "local_counts": metric.mode_counts.tolist(),
            "local_real": fid.metrics.real_count,
        }
        with open(f"{out}/rank{trainer.global_rank}.json", "w") as f:
            json.dump(record, f)
    """
)


@pytest.mark.slow
def test_two_processes_split_samples_and_reduce_states(tmp_path):
    torch.manual_seed(0)
    classifier = tmp_path / "digits.pt"
    net = DigitClassifier(sample_shape=(1, 16, 16), width=4)
    hp = {"sample_shape": [1, 16, 16], "width": 4}
    torch.save({"hyper_parameters": hp, "state_dict": net.state_dict()}, classifier)
    script = tmp_path / "ddp_eval.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(classifier)],
        check=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
        capture_output=True,
    )
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert sorted(r["local_total"] for r in ranks) == [20, 21]  # 41 samples, split
    assert sorted(r["local_real"] for r in ranks) == [18, 19]  # 37 real images, split
    assert ranks[0]["modes"] == ranks[1]["modes"]  # compute() reduced on every process
    assert ranks[0]["fid"] == ranks[1]["fid"] and ranks[0]["fid"]["fid"] >= 0
    merged = torch.tensor(ranks[0]["local_counts"]) + torch.tensor(ranks[1]["local_counts"])
    assert ranks[0]["modes"]["all/modes"] == int((merged > 0).sum())
