"""Every shipped config still runs the experiment it ran: its effective configuration (what
``mgan fit --config <path>`` would run: the parsed config with every default filled, the
command's changes, and what the command adds to the Trainer; ``tests/effective_config.py``)
equals the snapshot in ``tests/data/effective_configs.json``, except for the changes listed
in :data:`CHANGES`, each with its reason.

A config may be rewritten in any form (fewer lines, defaults left to the classes and the
command, shared files) as long as this holds. A change of what runs must be listed below, or
the snapshot written again (``python -m tests.effective_config --write``) in a commit that
says why.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from tests.effective_config import (
    config_id,
    differences,
    effective_configs,
    load_snapshot,
    run_configs,
)

pytestmark = pytest.mark.filterwarnings("ignore")

# Intended changes of what a shipped config runs, against the snapshot:
# {config: {dotted key: (new value, reason)}}. A key names a dict entry or a list item
# (``trainer.callbacks[0].init_args.every_n_steps``).
_OWN_FOLDER = "it wrote into mimgan.yaml's folder, whose checkpoints and logs it replaced"
CHANGES: dict[str, dict[str, tuple[Any, str]]] = {
    f"{family}/mimgan_mi_only.yaml": {
        "trainer.default_root_dir": (f"runs/{family}/mimgan_mi_only", _OWN_FOLDER),
        "trainer.logger.init_args.save_dir": (f"runs/{family}/mimgan_mi_only", _OWN_FOLDER),
        "trainer.callbacks[1].init_args.dirpath": (
            f"runs/{family}/mimgan_mi_only/checkpoints",
            _OWN_FOLDER,
        ),
    }
    for family in ("ring", "grid")
}
# Image configs train on MNIST's training split; its test split is an option for offline checks.
_TRAIN_SPLIT = "MNIST's training split is the data; the test split only for offline checks"
CHANGES |= {
    f"{family}/{name}.yaml": {"data.init_args.source_split": ("train", _TRAIN_SPLIT)}
    for family, names in (
        (
            "stacked_mnist",
            "bourgan gan gan_mixture_norm mgan mgan_gmm_prior mgan_one_vs_all "
            "mgan_pairwise mimgan mimgan_mi_only mwu_cpu pmgan",
        ),
        (
            "stacked_mnist_weak_d",
            "bourgan gan mgan mgan_gmm_prior mgan_one_vs_all mgan_pairwise "
            "mimgan mimgan_mi_only mwu_cpu",
        ),
    )
    for name in names.split()
}
# The Stacked-MNIST evaluation adds FID, KID, precision, recall, density and coverage on the
# digit classifier's features of the three digits, at every evaluation.
_DIGIT_FIDELITY = "FID, KID and PRDC on the digit classifier's features, beside the modes"
_FEATURE = {"object": "mgan_lightning.metrics.prdc_features.DigitFeatures"}
for path in run_configs():
    if path.parent.name.startswith("stacked_mnist"):  # FidelityEvaluation comes second
        every = 2000 if path.name == "mwu.yaml" else 1000
        CHANGES.setdefault(config_id(path), {}).update(
            {
                f"trainer.callbacks[1].init_args.{key}": (value, _DIGIT_FIDELITY)
                for key, value in (
                    ("every_n_steps", every),
                    ("feature", _FEATURE),
                    ("inception_score", False),
                    ("prdc", True),
                    ("required", True),
                )
            }  # fmt: skip
        )
# The natural-image configs add PRDC on Inception's features, per generator and drawn.
_IMAGE_PRDC = "precision, recall, density and coverage beside FID, per generator"
for path in run_configs():
    if path.parent.name in ("cifar10", "stl10", "celeba"):  # FidelityEvaluation comes first
        CHANGES.setdefault(config_id(path), {}).update(
            {
                f"trainer.callbacks[0].init_args.{key}": (True, _IMAGE_PRDC)
                for key in ("prdc", "prdc_plot")
            }
        )
CHANGES["mnist/digit_classifier.yaml"] = {
    "data.init_args.train_split": ("train", _TRAIN_SPLIT),
    "data.init_args.holdout": (0, "tested on the whole test split, which training never reads"),
}

SNAPSHOT = load_snapshot()
NAMES = sorted(set(SNAPSHOT) | {config_id(p) for p in run_configs()})


def _set(config: dict, key: str, value: Any) -> None:
    parts = [p for p in re.split(r"\.|\[(\d+)\]", key) if p]
    node: Any = config
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def expected(name: str) -> dict:
    """The snapshot's entry for ``name`` with its listed changes applied."""
    config = copy.deepcopy(SNAPSHOT[name])
    for key, (value, _) in CHANGES.get(name, {}).items():
        _set(config, key, value)
    return config


@pytest.fixture(scope="module")
def effective() -> dict[str, dict]:
    """The effective configuration of every shipped config, as JSON would store it."""
    return json.loads(json.dumps(effective_configs(run_configs())))


def test_every_config_has_a_snapshot_and_every_snapshot_a_config() -> None:
    shipped = {config_id(p) for p in run_configs()}
    assert sorted(shipped - set(SNAPSHOT)) == [], "new configs: write the snapshot again"
    assert sorted(set(SNAPSHOT) - shipped) == [], "configs removed: write the snapshot again"


@pytest.mark.parametrize("name", NAMES)
def test_config_runs_what_it_ran(name: str, effective: dict[str, dict]) -> None:
    found = differences(expected(name), effective[name])
    assert found == [], f"{name} runs something else:\n  " + "\n  ".join(found)


def test_listed_changes_are_changes_with_reasons() -> None:
    """A listed change differs from the snapshot (else it is stale) and says why."""
    for name, changes in CHANGES.items():
        assert name in SNAPSHOT, name
        for key, (value, reason) in changes.items():
            before = copy.deepcopy(SNAPSHOT[name])
            _set(before, key, value)
            assert before != SNAPSHOT[name], f"{name}: {key} is {value!r} in the snapshot already"
            assert len(reason.split()) >= 3, f"{name}: {key} needs a reason"


def test_a_changed_value_is_seen_in_the_config_and_in_what_the_command_adds() -> None:
    """The comparison can fail: a model argument given on the command line, and the
    Trainer's progress bar switched off (a callback the command would have added), both
    show as differences from the snapshot."""
    name = "ring/mgan.yaml"
    (path,) = [p for p in run_configs() if config_id(p) == name]
    extra = ("--model.init_args.beta=0.3", "--trainer.enable_progress_bar=false")
    changed = json.loads(json.dumps(effective_configs([path], extra)[name]))
    found = differences(expected(name), changed)
    assert "model.init_args.beta: 0.1 -> 0.3" in found
    assert any(line.startswith("trainer.enable_progress_bar") for line in found)
    assert any("GeneratorStepProgressBar" in line for line in found), found


def test_one_command_object_parses_as_one_command_per_config() -> None:
    """The snapshot's configs are parsed by one command object in turn (building its
    parsers once is most of the cost): it gives what a fresh command gives each of them."""
    paths = [
        p for p in run_configs() if config_id(p) in ("stacked_mnist/mgan.yaml", "ring/gan.yaml")
    ]
    assert len(paths) == 2
    assert effective_configs(paths) == effective_configs(paths, fresh=True)
