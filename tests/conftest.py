"""Fixtures shared by tests in several folders."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def random_inception_weights(tmp_path_factory):
    """A state_dict of torch-fidelity's FeatureExtractorInceptionV3 with random values."""
    from torch_fidelity import feature_extractor_inceptionv3 as tf_inception

    from mgan_lightning.metrics.fidelity import INCEPTION_WEIGHTS_FILE

    cls = tf_inception.FeatureExtractorInceptionV3
    mp = pytest.MonkeyPatch()
    mp.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: {})
    mp.setattr(cls, "load_state_dict", lambda self, *a, **k: None)
    try:
        torch.manual_seed(0)
        net = cls("inception-v3-compat", ["2048"])
    finally:
        mp.undo()
    path = tmp_path_factory.mktemp("inception") / INCEPTION_WEIGHTS_FILE
    torch.save(net.state_dict(), path)
    return path
