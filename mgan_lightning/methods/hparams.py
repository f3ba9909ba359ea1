"""A method's hyperparameters: the shared arguments' checks, and the one serialiser every
method saves them with.

``save_hyperparameters`` records the constructor's arguments as they were given, objects
included. A checkpoint that pickles an architecture, a prior or a function loads only with
``torch.load(weights_only=False)``, and Lightning's ``load_from_checkpoint`` and
``Trainer.fit(ckpt_path=...)`` use torch's default ``weights_only=True``. So each argument
that has a plain (YAML) form is stored in it, the form LightningCLI itself writes:

- an architecture or a prior: ``{"class_path": ..., "init_args": {...}}``, rebuilt by
  Lightning's ``instantiate_module`` (named in ``_instantiator``);
- an importable function (MIM-GAN's ``mi_estimator``): its import path, which the method's
  constructor accepts back (:func:`from_import_path`).

Anything else is kept as it is. Arguments a subclass sets for its parent and does not take
itself (``GANMethod.derived_hparams``) are left out, so the saved hyperparameters are exactly
what the class's constructor accepts.
"""

from __future__ import annotations

import inspect
import pydoc
from collections.abc import MutableMapping, Sequence
from typing import Any

from mgan_lightning.latent import LatentPrior
from mgan_lightning.nets.architecture import Architecture
from mgan_lightning.schedules import StepOrFraction, resolve_step

_PLAIN = (type(None), bool, int, float, str)
_MISSING = object()


def _is_plain(value: Any) -> bool:
    return isinstance(value, _PLAIN) or (
        isinstance(value, (list, tuple)) and all(_is_plain(v) for v in value)
    )


def object_config(obj: object) -> dict | None:
    """``{"class_path", "init_args"}`` of ``obj`` when every ``__init__`` argument is an
    attribute of the same name with a plain (YAML) value; ``None`` otherwise."""
    init_args = {}
    for name, p in list(inspect.signature(type(obj).__init__).parameters.items())[1:]:
        value = getattr(obj, name, _MISSING)
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or value is _MISSING or not _is_plain(value):
            return None
        init_args[name] = value
    return {
        "class_path": f"{type(obj).__module__}.{type(obj).__qualname__}",
        "init_args": init_args,
    }


def import_path_of(function: object) -> str | None:
    """``"package.module.name"`` of a function that importing that path gives back, else
    ``None`` (a lambda, a local function, a callable object)."""
    if not inspect.isfunction(function) or "<" in function.__qualname__:
        return None
    path = f"{function.__module__}.{function.__qualname__}"
    return path if pydoc.locate(path) is function else None


def from_import_path(path: str, field: str) -> object:
    """The object ``path`` names (a function saved by :func:`hparams_as_config`); a
    ``ValueError`` naming ``field`` when nothing is found there."""
    found = pydoc.locate(path) if "." in path else None
    if found is None:
        raise ValueError(f"{field}: cannot import {path!r} (give a dotted import path)")
    return found


def hparams_as_config(hparams: MutableMapping[str, Any]) -> None:
    """Replace, in place, the values of ``hparams`` that have a plain form by that form (see
    the module's text). A LightningCLI run's (``_instantiator`` set) holds plain configs of
    its objects already; an architecture or a prior that cannot be described keeps every
    object as it is (a checkpoint then needs ``weights_only=False``)."""
    for key, value in hparams.items():
        path = import_path_of(value)
        if path is not None:
            hparams[key] = path
    if "_instantiator" in hparams:
        return
    configs = {}
    for key, value in hparams.items():
        if isinstance(value, (Architecture, LatentPrior)):
            config = object_config(value)
            if config is None:
                return
            configs[key] = config
    if configs:
        hparams.update(configs)
        hparams["_instantiator"] = "lightning.pytorch.cli.instantiate_module"


def check_arguments(
    sample_shape: Sequence[int],
    num_generators: int,
    latent_dim: int,
    fake_per_generator: int | None,
    n_critic: int,
    max_generator_steps: int | None,
    ema_decay: float | None,
    ema_start: StepOrFraction,
) -> None:
    """A ``ValueError`` naming the field (``model.<name>``) for a value ``GANMethod`` cannot
    train with."""
    for name, value in (
        ("num_generators", num_generators),
        ("latent_dim", latent_dim),
        ("n_critic", n_critic),
        ("max_generator_steps", 1 if max_generator_steps is None else max_generator_steps),
    ):
        if value < 1:
            raise ValueError(f"model.{name} must be >= 1, got {value}")
    if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"model.ema_decay must be in [0, 1) or null, got {ema_decay}")
    resolve_step(ema_start, 1, "model.ema_start")  # an int >= 0 or a fraction
    if fake_per_generator is not None and fake_per_generator < 1:
        raise ValueError(f"model.fake_per_generator must be >= 1, got {fake_per_generator}")
    if not sample_shape or min(sample_shape) < 1:
        raise ValueError(f"model.sample_shape must be positive sizes, got {sample_shape}")
