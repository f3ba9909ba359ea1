"""The one hyperparameter serialiser: objects and functions stored in their plain form, what a
subclass derives left out, and the shared arguments' checks."""

from __future__ import annotations

import pytest
from lightning.pytorch.cli import instantiate_module

from mgan_lightning import losses
from mgan_lightning.latent import UniformPrior
from mgan_lightning.methods import GAN, MIMGAN
from mgan_lightning.methods.hparams import (
    from_import_path,
    hparams_as_config,
    import_path_of,
    object_config,
)
from mgan_lightning.nets import MLP


class Opaque(MLP):
    """An architecture whose argument is not kept as an attribute: it cannot be described."""

    def __init__(self, width: int = 3) -> None:
        super().__init__(g_hidden=width)


def test_object_config_describes_plain_init_arguments() -> None:
    config = object_config(UniformPrior(-2.0, 3.0))
    assert config == {
        "class_path": "mgan_lightning.latent.UniformPrior",
        "init_args": {"low": -2.0, "high": 3.0},
    }
    assert object_config(Opaque()) is None


def test_functions_are_stored_by_import_path_and_come_back() -> None:
    path = import_path_of(losses.mutual_information)
    assert path == "mgan_lightning.losses.mutual_information"
    assert from_import_path(path, "model.f") is losses.mutual_information
    assert import_path_of(lambda a, b: a) is None  # not importable
    assert import_path_of(MLP()) is None  # an object, not a function
    with pytest.raises(ValueError, match="model.f: cannot import 'no.such.thing'"):
        from_import_path("no.such.thing", "model.f")


def test_hparams_as_config_converts_what_has_a_plain_form() -> None:
    hparams = {
        "architecture": MLP(g_hidden=8),
        "prior": UniformPrior(),
        "f": losses.generator_loss_nonsaturating,
        "n": 3,
    }
    hparams_as_config(hparams)
    assert hparams["architecture"]["class_path"] == "mgan_lightning.nets.mlp.MLP"
    assert hparams["architecture"]["init_args"]["g_hidden"] == 8
    assert hparams["prior"]["class_path"] == "mgan_lightning.latent.UniformPrior"
    assert hparams["f"] == "mgan_lightning.losses.generator_loss_nonsaturating"
    assert hparams["n"] == 3
    assert hparams["_instantiator"] == "lightning.pytorch.cli.instantiate_module"
    # one object that cannot be described keeps every object (functions still convert)
    opaque = {"architecture": Opaque(), "prior": UniformPrior(), "f": losses.mutual_information}
    hparams_as_config(opaque)
    assert isinstance(opaque["architecture"], Opaque) and isinstance(opaque["prior"], UniformPrior)
    assert opaque["f"] == "mgan_lightning.losses.mutual_information"
    assert "_instantiator" not in opaque


def test_a_method_saves_what_its_constructor_takes_back() -> None:
    """MIM-GAN fixes MGAN's diversity arguments (``derived_hparams``): they are not saved,
    and the saved hyperparameters rebuild the same model."""
    model = MIMGAN(sample_shape=(2,), num_generators=2, latent_dim=3, architecture=MLP(8, 1, 8, 1))
    assert "diversity" not in model.hparams and "diversity_reduction" not in model.hparams
    assert model.hparams["mi_estimator"] == "mgan_lightning.losses.mutual_information"
    assert "_classifier_outputs" not in model.hparams
    hparams = {k: v for k, v in model.hparams.items() if k != "_instantiator"}
    rebuilt = instantiate_module(MIMGAN, hparams)  # as load_from_checkpoint does
    assert rebuilt.mi_estimator is losses.mutual_information
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    assert all(rebuilt.state_dict()[k].shape == v.shape for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"ema_decay": 1.0}, "model.ema_decay"),
        ({"ema_start": -1}, "model.ema_start"),
        ({"max_generator_steps": 0}, "model.max_generator_steps"),
    ],
)
def test_shared_arguments_are_checked(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        GAN(**kwargs)
