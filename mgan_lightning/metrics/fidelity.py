"""Inception score, FID and KID on torchmetrics (and precision / recall / density / coverage,
:mod:`mgan_lightning.metrics.prdc`), with torch-fidelity's InceptionV3 read from a local
weights file, or any ``nn.Module`` as the feature extractor.

Images are what a ``tanh`` generator makes: float ``(N, C, H, W)`` in [-1, 1]. Inception
gets them as uint8 RGB (0..255, grey images repeated to 3 channels), resized to 299 x 299
with torch-fidelity's TF1-compatible bilinear resize (``antialias=False``, the resize the
published FID numbers use). A custom extractor gets the [-1, 1] float images unchanged.

Where the Inception weights come from (first hit wins):
1. the ``inception_weights`` argument (a config field of the builders and the callback);
2. the environment variable ``MGAN_INCEPTION_WEIGHTS``;
3. torch-fidelity's file in the torch hub cache (``<torch.hub.get_dir()>/checkpoints/``),
   where torch-fidelity itself keeps it (or pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``
   there: the same network with the same state_dict layout);
4. a download of torch-fidelity's release asset, only with ``download=True``.
Otherwise :class:`InceptionWeightsNotFoundError` says which file to get and where to put it.

Precision: features reach the metrics as float64, so FID's mean/covariance sums and matrix
square root, KID's polynomial kernels and IS's softmax all run in float64
(``inception_dtype="float64"`` also runs the network itself in float64: slower, rarely
needed).
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

from mgan_lightning.errors import InputError, WeightsMismatchError, load_error_summary
from mgan_lightning.metrics.prdc import PRDC, flat_scores

INCEPTION_WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
    "weights-inception-2015-12-05-6726825d.pth"
)
INCEPTION_WEIGHTS_FILE = INCEPTION_WEIGHTS_URL.rsplit("/", 1)[1]
# pytorch-fid's file of the same network: same state_dict layout (torchvision's key names)
# and the same sha256 prefix in its name; accepted too when found in the hub cache.
PYTORCH_FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_ENV = "MGAN_INCEPTION_WEIGHTS"
INCEPTION_SIZE = 299


class InceptionWeightsNotFoundError(InputError, FileNotFoundError):
    """No local Inception weights file, and downloading was not asked for (or failed)."""


def hub_weights_path() -> Path:
    """Where torch-fidelity's own download lands: ``<torch hub dir>/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE


def missing_weights_error(
    problem: str = "No Inception weights file was given or found.",
    cause: BaseException | None = None,
) -> InceptionWeightsNotFoundError:
    """The error that tells the user which file to get and the three ways to point at it."""
    why = f"\n(underlying error: {cause})" if cause is not None else ""
    return InceptionWeightsNotFoundError(
        f"{problem} IS/FID/KID need torch-fidelity's InceptionV3 weights:\n"
        f"  file: {INCEPTION_WEIGHTS_FILE} (about 91 MB)\n"
        f"  from: {INCEPTION_WEIGHTS_URL}\n"
        f"Copy it to this machine, then either\n"
        f"  - put it at {hub_weights_path()} (found automatically; pytorch-fid's "
        f"{PYTORCH_FID_WEIGHTS_FILE} is found there too), or\n"
        f"  - set `inception_weights: /path/to/{INCEPTION_WEIGHTS_FILE}` in the callback's "
        f"init_args (mgan_lightning.callbacks.FidelityEvaluation), or\n"
        f"  - export {INCEPTION_WEIGHTS_ENV}=/path/to/{INCEPTION_WEIGHTS_FILE}.\n"
        f"With internet access, `download: true` fetches it into the hub cache. Or use your "
        f"own extractor: any nn.Module as `feature` (FID/KID) and `logits` (IS), or drop the "
        f"metrics you cannot compute (`fid/kid/inception_score: false`).{why}"
    )


def resolve_inception_weights(
    path: str | os.PathLike | None = None, download: bool = False
) -> Path:
    """The Inception weights file to use (see the module docstring for the search order)."""
    explicit, source = path, "inception_weights"
    if explicit is None and os.environ.get(INCEPTION_WEIGHTS_ENV):
        explicit, source = os.environ[INCEPTION_WEIGHTS_ENV], INCEPTION_WEIGHTS_ENV
    if explicit is not None:
        file = Path(explicit).expanduser()
        if file.is_file():
            return file
        raise missing_weights_error(f"{source} points to {file}, which is not a file.")
    cached = hub_weights_path()
    for file in (cached, cached.with_name(PYTORCH_FID_WEIGHTS_FILE)):
        if file.is_file():
            return file
    if download:
        cached.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(INCEPTION_WEIGHTS_URL, str(cached), progress=False)
        except Exception as err:  # offline: URLError, socket errors, HTTP errors
            raise missing_weights_error("Downloading the Inception weights failed.", err) from err
        return cached
    raise missing_weights_error()


def to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] -> uint8 0..255, grey images repeated to 3 channels."""
    if images.dtype != torch.uint8:
        images = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return images


class InceptionV3Features(nn.Module):
    """torch-fidelity's InceptionV3 (the TensorFlow FID network): images in [-1, 1] ->
    a tuple of float64 features, one per name in ``features`` (``"64"``, ``"192"``,
    ``"768"``, ``"2048"``: pooled activations; ``"logits_unbiased"``: IS logits), all from
    one forward pass. Never leaves eval mode; no gradients.

    Args:
        weights: weights file (else ``MGAN_INCEPTION_WEIGHTS``, else the hub cache).
        features: the outputs to return.
        antialias: resize to 299 px with PyTorch's antialiased bilinear filter first (as
            torchmetrics' ``antialias=True``; the result is rounded back to uint8).
            ``False`` (default) keeps torch-fidelity's TF1-compatible resize, which matches
            published FIDs.
        download: fetch the weights when none is found locally.
        inception_dtype: ``"float32"`` or ``"float64"`` inside the network.
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        features: Sequence[str] = ("2048", "logits_unbiased"),
        antialias: bool = False,
        download: bool = False,
        inception_dtype: Literal["float32", "float64"] = "float32",
    ) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        path = resolve_inception_weights(weights, download)
        try:
            self.net = FeatureExtractorInceptionV3(
                "inception-v3-compat",
                [str(f) for f in features],
                feature_extractor_weights_path=str(path),
                feature_extractor_internal_dtype=inception_dtype,
            )
        except (RuntimeError, ValueError, OSError, EOFError, pickle.UnpicklingError) as err:
            # load_state_dict: missing / unexpected keys, bad shapes; torch.load: not a torch file
            summary = load_error_summary(err) or f"torch.load failed ({type(err).__name__})"
            raise WeightsMismatchError(
                f"inception_weights {path} do not fit torch-fidelity's "
                f"FeatureExtractorInceptionV3: {summary} (expected the file "
                f"{INCEPTION_WEIGHTS_FILE} from {INCEPTION_WEIGHTS_URL})"
            ) from err
        self.features = tuple(str(f) for f in features)
        self.antialias = antialias
        sizes = {"64": 64, "192": 192, "768": 768, "2048": 2048, "logits_unbiased": 1008}
        sizes["logits"] = 1008
        self.feature_sizes = tuple(sizes[f] for f in self.features)

    def train(self, mode: bool = True) -> InceptionV3Features:
        """Stay in eval mode whatever is asked: the network is a fixed feature extractor."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Inception's requested outputs for ``[-1, 1]`` images, in float64, autocast off."""
        x = to_uint8_rgb(images)
        if self.antialias and tuple(x.shape[-2:]) != (INCEPTION_SIZE, INCEPTION_SIZE):
            x = F.interpolate(
                x.float(), size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear",
                align_corners=False, antialias=True,
            )  # fmt: skip
            x = x.round().clamp(0, 255).to(torch.uint8)
        with torch.autocast(x.device.type, enabled=False):
            outputs = self.net(x)
        return tuple(o.double() for o in outputs)


class ImageFeatures(nn.Module):
    """Any extractor as torchmetrics' ``feature``: [-1, 1] images -> float64 ``(N, d)``.

    The images reach ``extractor`` unchanged (float32 in [-1, 1]); a tuple output is
    narrowed to element ``output``. Runs without gradients and with autocast disabled.
    ``num_features`` (what torchmetrics reads to size FID's state) comes from the argument,
    the extractor's own ``num_features``, or one forward pass on ``probe_shape``.
    """

    def __init__(
        self,
        extractor: nn.Module,
        output: int = 0,
        num_features: int | None = None,
        probe_shape: Sequence[int] = (3, 32, 32),
    ) -> None:
        super().__init__()
        self.extractor = extractor
        self.output = output
        if num_features is None:
            num_features = getattr(extractor, "num_features", None)
        if isinstance(extractor, InceptionV3Features):
            num_features = extractor.feature_sizes[output]
        if num_features is None:
            was_training = extractor.training
            extractor.eval()
            num_features = self(torch.zeros(2, *probe_shape)).shape[-1]
            extractor.train(was_training)
        self.num_features = int(num_features)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, d)`` float64 features of ``images``, without gradients."""
        device = images.device.type
        with torch.autocast(device, enabled=False):
            out = self.extractor(images if images.dtype == torch.uint8 else images.float())
        if isinstance(out, (tuple, list)):
            out = out[self.output]
        return out.reshape(len(out), -1).double()


class PrecomputedFeatures(nn.Identity):
    """torchmetrics' ``feature`` for metrics that are fed features, not images."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The features as they are, in float64."""
        return features.double()


def _quiet(factory, *args, **kwargs):
    """Build a torchmetrics metric without its "saves all features in a buffer" warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        return factory(*args, **kwargs)


def _image_feature(
    feature: int | str | nn.Module,
    inception_weights: str | os.PathLike | None,
    antialias: bool,
    download: bool,
    probe_shape: Sequence[int],
) -> ImageFeatures:
    if isinstance(feature, nn.Module):
        if isinstance(feature, ImageFeatures):
            return feature
        return ImageFeatures(feature, probe_shape=probe_shape)
    net = InceptionV3Features(inception_weights, (str(feature),), antialias, download)
    return ImageFeatures(net)


def build_fid(
    feature: int | nn.Module = 2048,
    inception_weights: str | os.PathLike | None = None,
    antialias: bool = False,
    download: bool = False,
    probe_shape: Sequence[int] = (3, 32, 32),
) -> FrechetInceptionDistance:
    """torchmetrics FID over [-1, 1] images: ``fid.update(images, real=...)``.

    ``feature``: an Inception layer (64, 192, 768, 2048) or any ``nn.Module`` mapping the
    [-1, 1] images to ``(N, d)`` features (``d`` is read from its ``num_features``, else
    found by one forward pass on zeros of ``probe_shape``). Real statistics survive ``reset()``
    (``reset_real_features=False``): compute them once, then reset between evaluations.
    """
    feat = _image_feature(feature, inception_weights, antialias, download, probe_shape)
    return FrechetInceptionDistance(feature=feat, reset_real_features=False)


def build_kid(
    feature: int | nn.Module = 2048,
    inception_weights: str | os.PathLike | None = None,
    antialias: bool = False,
    download: bool = False,
    subsets: int = 100,
    subset_size: int = 1000,
    probe_shape: Sequence[int] = (3, 32, 32),
) -> KernelInceptionDistance:
    """torchmetrics KID over [-1, 1] images; same ``feature`` contract as :func:`build_fid`.
    Returns ``(kid_mean, kid_std)`` over ``subsets`` random subsets of ``subset_size``."""
    feat = _image_feature(feature, inception_weights, antialias, download, probe_shape)
    return _quiet(
        KernelInceptionDistance,
        feature=feat,
        subsets=subsets,
        subset_size=subset_size,
        reset_real_features=False,
    )


def build_inception_score(
    feature: str | nn.Module = "logits_unbiased",
    inception_weights: str | os.PathLike | None = None,
    antialias: bool = False,
    download: bool = False,
    splits: int = 10,
    probe_shape: Sequence[int] = (3, 32, 32),
) -> InceptionScore:
    """torchmetrics IS over [-1, 1] images: ``is_.update(images)``, returns (mean, std).

    IS needs class **logits**: a custom ``feature`` module must return ``(N, classes)``
    logits (softmax is applied by the metric), e.g. a data set's own classifier such as
    :class:`~mgan_lightning.classifiers.DigitClassifier` for an "MNIST score". torchmetrics
    has no weights-path option for IS; this builder supplies the local weights itself.
    """
    feat = _image_feature(feature, inception_weights, antialias, download, probe_shape)
    return _quiet(InceptionScore, feature=feat, splits=splits)


class FidelityMetrics(nn.Module):
    """IS, FID, KID and PRDC of generated images against real ones, sharing one Inception
    pass.

    ``update(images, real, generator_index=None)`` takes [-1, 1] images (and, for generated
    ones, the generator of each, used by PRDC's per-generator results); real features
    persist across :meth:`reset` (``reset_real_features=False``), so the real set is
    processed once. :meth:`compute` returns float64 scalars: ``fid``, ``kid_mean``,
    ``kid_std``, ``is_mean``, ``is_std``, ``precision``, ``recall``, ``density``,
    ``coverage`` (those enabled; with generator indices also PRDC's per-generator values as
    ``<name>_g<i>`` and the ``covered_by_one/several/none`` shares, see
    :func:`~mgan_lightning.metrics.prdc.flat_scores`). Under DDP, call ``update`` with each
    process's share and ``compute`` on every process: torchmetrics sums / gathers the states.

    Args:
        fid / kid / inception_score / prdc: which metrics to compute (PRDC off by default: it
            keeps every real and generated feature and compares all pairs).
        feature: ``nn.Module`` for FID/KID/PRDC features instead of Inception's 2048-d pool.
        logits: ``nn.Module`` returning class logits for IS instead of Inception's.
        inception_weights, antialias, download, inception_dtype: see
            :class:`InceptionV3Features` (used only when Inception is needed).
        kid_subsets / kid_subset_size / is_splits: torchmetrics' KID / IS settings.
        prdc_nearest_k: k of PRDC's k-NN radii (5, as Naeem et al.).
        num_generators: G of PRDC's per-generator results (default: largest index + 1).
        probe_shape: image shape used to find a custom extractor's output size.
    """

    def __init__(
        self,
        fid: bool = True,
        kid: bool = True,
        inception_score: bool = True,
        feature: nn.Module | None = None,
        logits: nn.Module | None = None,
        inception_weights: str | os.PathLike | None = None,
        antialias: bool = False,
        download: bool = False,
        inception_dtype: Literal["float32", "float64"] = "float32",
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        is_splits: int = 10,
        prdc: bool = False,
        prdc_nearest_k: int = 5,
        num_generators: int | None = None,
        probe_shape: Sequence[int] = (3, 32, 32),
    ) -> None:
        super().__init__()
        if not (fid or kid or inception_score or prdc):
            raise ValueError(
                "FidelityMetrics needs at least one of fid, kid, inception_score, prdc"
            )
        need_pool = (fid or kid or prdc) and feature is None
        need_logits = inception_score and logits is None
        self.inception: InceptionV3Features | None = None
        if need_pool or need_logits:
            self.inception = InceptionV3Features(
                inception_weights,
                ("2048", "logits_unbiased"),
                antialias,
                download,
                inception_dtype,
            )
        self.feature = None if feature is None else ImageFeatures(feature, probe_shape=probe_shape)
        self.logits = None if logits is None else ImageFeatures(logits, probe_shape=probe_shape)
        dim = 2048 if self.feature is None else self.feature.num_features
        classes = 1008 if self.logits is None else self.logits.num_features
        self.fid = (
            FrechetInceptionDistance(PrecomputedFeatures(dim), reset_real_features=False)
            if fid
            else None
        )
        self.kid = (
            _quiet(
                KernelInceptionDistance,
                PrecomputedFeatures(dim),
                subsets=kid_subsets,
                subset_size=kid_subset_size,
                reset_real_features=False,
            )
            if kid
            else None
        )
        self.inception_score = (
            _quiet(InceptionScore, PrecomputedFeatures(classes), splits=is_splits)
            if inception_score
            else None
        )
        self.prdc = (
            PRDC(prdc_nearest_k, num_generators=num_generators, reset_real_features=False)
            if prdc
            else None
        )
        self.real_count = 0  # real images this process has added

    @property
    def uses_inception(self) -> bool:
        """Whether features come from torch-fidelity's Inception network."""
        return self.inception is not None

    @torch.no_grad()
    def update(
        self, images: torch.Tensor, real: bool, generator_index: torch.Tensor | None = None
    ) -> None:
        """Add a batch of real or generated images (``generator_index``: which generator made
        each generated image, for PRDC per generator)."""
        with torch.autocast(images.device.type, enabled=False):
            images = images.float()
            wants_pool = self.fid is not None or self.kid is not None or self.prdc is not None
            wants_logits = self.inception_score is not None and not real
            pool = logits = None
            if self.inception is not None and (
                (wants_pool and self.feature is None) or (wants_logits and self.logits is None)
            ):
                pool, logits = self.inception(images)
            if wants_pool and self.feature is not None:
                pool = self.feature(images)
            if wants_logits and self.logits is not None:
                logits = self.logits(images)
            for metric in (self.fid, self.kid):
                if metric is not None:
                    assert pool is not None
                    metric.update(pool, real=real)
            if self.prdc is not None:
                assert pool is not None
                index = None if real else generator_index
                self.prdc.update(pool, real=real, generator_index=index)
            if wants_logits:
                assert self.inception_score is not None and logits is not None
                self.inception_score.update(logits)
        if real:
            self.real_count += len(images)

    def compute(self) -> dict[str, torch.Tensor]:
        """``fid``, ``kid_mean``/``kid_std``, ``is_mean``/``is_std`` and PRDC's scores, for the
        metrics this object was built with, in float64."""
        out: dict[str, torch.Tensor] = {}
        if self.fid is not None:
            out["fid"] = self.fid.compute().double()
        if self.kid is not None:
            out["kid_mean"], out["kid_std"] = (t.double() for t in self.kid.compute())
        if self.inception_score is not None:
            out["is_mean"], out["is_std"] = (t.double() for t in self.inception_score.compute())
        if self.prdc is not None:
            scores = flat_scores(self.prdc.compute())
            out.update({k: torch.tensor(v, dtype=torch.float64) for k, v in scores.items()})
        return out

    def reset(self) -> None:
        """Forget the generated samples; real statistics are kept."""
        for metric in (self.fid, self.kid, self.inception_score, self.prdc):
            if metric is not None:
                metric.reset()
