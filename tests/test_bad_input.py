"""Bad input is refused up front with one short message that names the field, the value and
what is allowed: no usage dump, no traceback, exit status 2 (mgan_lightning.validation and
the parser/runner hooks of mgan_lightning.cli). ``benchmarks/results/bad_input.md`` lists what
the real ``mgan`` command printed for the same cases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from mgan_lightning.classifiers import DigitClassifier, load_digit_classifier
from mgan_lightning.cli import build_cli
from mgan_lightning.validation import (
    WeightsMismatchError,
    checkpoint_mismatch,
    distil_parse_error,
    load_error_summary,
)
from tests.mnist_data import MNIST_DIR, needs_mnist

pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SHORT = ["--model.init_args.max_generator_steps=2", "--trainer.enable_progress_bar=false"]


def refused(capsys, args: list[str], cwd: Path) -> str:
    """Run ``mgan <args>`` in-process from ``cwd``; it must exit with status 2 and print a
    short error (returned): one ``error:`` message of at most 4 lines, nothing else but
    Lightning's start-up lines, no usage text and no traceback."""
    old = Path.cwd()
    os.chdir(cwd)
    try:
        with pytest.raises(SystemExit) as info:
            build_cli(args)
    finally:
        os.chdir(old)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert "usage:" not in err and "Traceback" not in err, err
    lines = err.strip().splitlines()
    starts = [n for n, line in enumerate(lines) if ": error: " in line]
    assert len(starts) == 1, err
    message = lines[starts[0] :]
    assert len(message) <= 4, err
    return "\n".join(message)


def fit_args(config: str, tmp_path: Path, *overrides: str) -> list[str]:
    root = f"--trainer.default_root_dir={tmp_path / 'run'}"
    return ["fit", "--config", str(CONFIGS / config), root, *SHORT, *overrides]


# ----------------------------------------------------------------- wrong values, typos
@pytest.mark.parametrize(
    "config, override, words",
    [
        ("ring/mgan.yaml", "--model.init_args.num_generators=0", ["num_generators", ">= 1", "0"]),
        ("ring/mgan.yaml", "--model.init_args.beta=-1", ["model.beta", ">= 0", "-1"]),
        ("ring/bourgan.yaml", "--model.init_args.alpha=-0.5", ["model.alpha", "-0.5"]),
        ("ring/mimgan.yaml", "--model.init_args.lam=-2", ["model.lam", "-2"]),
        ("ring/mgan.yaml", "--model.init_args.latent_dim=0", ["latent_dim", ">= 1", "0"]),
        (
            "ring/mgan.yaml",
            "--model.init_args.diversity=foo",
            ["model.init_args.diversity", "'foo'", "'general'", "'one_vs_all'", "'pairwise'"],
        ),
        (
            "ring/mgan.yaml",
            "--model.init_args.beta=abc",
            ["model.init_args.beta", "'abc'", "float"],
        ),
        (
            "ring/gan.yaml",
            "--data.init_args.preset=hexagon",
            ["data.init_args.preset", "'hexagon'", "'ring'"],
        ),
        # an image size DCGAN cannot build: the sizes allowed are named
        (
            "stacked_mnist/gan.yaml",
            "--data.init_args.image_size=7",
            ["DCGAN", "7", "even", "at least 8", "32", "image_size"],
        ),
        ("stacked_mnist/gan.yaml", "--data.init_args.image_size=6", ["6", "even", "at least 8"]),
    ],
)
def test_wrong_values_are_refused_naming_field_value_and_allowed(
    capsys, tmp_path: Path, config: str, override: str, words: list[str]
) -> None:
    message = refused(capsys, fit_args(config, tmp_path, override), tmp_path)
    for word in words:
        assert word in message, message
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    "override, words",
    [
        # a sweep argument with a typo
        ("--model.init_args.bta=0.1", ["unknown option model.init_args.bta", "did you mean beta?"]),
        ("--model.bta=0.1", ["unknown option model.init_args.bta", "did you mean beta?"]),
        (
            "--model.init_args.architecture.init_args.g_hiden=3",
            ["model.init_args.architecture.init_args.g_hiden", "MLP", "did you mean g_hidden?"],
        ),
        (
            "--model.init_args.optimizer_g.init_args.lrr=1",
            ["model.init_args.optimizer_g.init_args.lrr", "Adam", "did you mean lr?"],
        ),
        ("--trainer.max_stepz=3", ["unknown option --trainer.max_stepz", "--trainer.max_steps?"]),
        (
            "--model.init_args.prior.init_args.low=0",
            ["model.init_args.prior", "no class_path", "model.init_args.prior.class_path"],
        ),
    ],
)
def test_unknown_options_are_refused_with_the_closest_name(
    capsys, tmp_path: Path, override: str, words: list[str]
) -> None:
    message = refused(capsys, fit_args("ring/mgan.yaml", tmp_path, override), tmp_path)
    for word in words:
        assert word in message, message


def test_mimgan_lambda_is_called_lam(capsys, tmp_path: Path) -> None:
    args = fit_args("ring/mimgan.yaml", tmp_path, "--model.init_args.lambda=1")
    message = refused(capsys, args, tmp_path)
    assert "unknown option model.init_args.lambda" in message and "did you mean lam?" in message


def test_a_sweep_typo_given_as_two_words(capsys, tmp_path: Path) -> None:
    args = fit_args("ring/mgan.yaml", tmp_path, "--model.init_args.bta", "0.1")
    assert "did you mean beta?" in refused(capsys, args, tmp_path)


@pytest.mark.parametrize(
    "override, words",
    [
        (
            "--model.class_path=mgan_lightning.methods.NoSuch",
            [
                "model.class_path",
                "'mgan_lightning.methods.NoSuch'",
                "no attribute 'NoSuch'",
                "MGAN",
                "BourGAN",
            ],
        ),
        (
            "--model.class_path=no_such_module.X",
            ["model.class_path", "'no_such_module.X'", "No module named 'no_such_module'"],
        ),
        (
            "--model.class_path=mgan_lightning.methods.MGN",
            ["did you mean mgan_lightning.methods.MGAN?"],
        ),
        (
            "--model=MGANN",
            ["model.class_path", "'MGANN'", "did you mean mgan_lightning.methods.MGAN?"],
        ),
        (
            "--data.class_path=mgan_lightning.data.GausianMixture2D",
            ["data.class_path", "did you mean mgan_lightning.data.GaussianMixture2D?"],
        ),
        (
            "--model.init_args.optimizer_g.class_path=torch.optim.Adamm",
            [
                "model.init_args.optimizer_g.class_path",
                "'torch.optim.Adamm'",
                "did you mean torch.optim.Adam?",
            ],
        ),
        (
            "--model.class_path=torch.nn.Linear",
            ["model.class_path", "torch.nn.Linear", "not a LightningModule"],
        ),
    ],
)
def test_unknown_class_paths_are_refused(
    capsys, tmp_path: Path, override: str, words: list[str]
) -> None:
    message = refused(capsys, fit_args("ring/mgan.yaml", tmp_path, override), tmp_path)
    for word in words:
        assert word in message, message


def test_a_missing_config_file(capsys, tmp_path: Path) -> None:
    args = ["fit", "--config", str(tmp_path / "nope.yaml")]
    message = refused(capsys, args, tmp_path)
    assert "--config" in message and "nope.yaml" in message and "does not exist" in message


# ----------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def ring_checkpoint(tmp_path_factory) -> Path:
    """A real 2-generator-step ring GAN checkpoint."""
    tmp = tmp_path_factory.mktemp("ring_gan")
    old = Path.cwd()
    os.chdir(tmp)
    try:
        build_cli(fit_args("ring/gan.yaml", tmp, "--trainer.enable_model_summary=false"))
    finally:
        os.chdir(old)
    return tmp / "run" / "checkpoints" / "last.ckpt"


def derived(good: Path, out: Path, **hparams) -> Path:
    """``good`` with some hyperparameters changed (and the data name, if ``data`` given)."""
    ckpt = torch.load(good, weights_only=True)
    data = hparams.pop("data", None)
    ckpt["hyper_parameters"].update(hparams)
    if data:  # the DataModule's state is stored under its class name
        ckpt.pop("GaussianMixture2D", None)
        ckpt[data] = {}
    torch.save(ckpt, out)
    return out


def test_checkpoint_of_another_method_names_both(capsys, tmp_path, ring_checkpoint) -> None:
    ckpt = derived(
        ring_checkpoint, tmp_path / "mgan.ckpt", _class_path="mgan_lightning.methods.MGAN"
    )
    args = ["test", "--config", str(CONFIGS / "ring" / "gan.yaml"), f"--ckpt_path={ckpt}"]
    message = refused(capsys, args, tmp_path)
    assert " test: error: --ckpt_path" in message  # prog: mgan, or pytest's
    assert str(ckpt) in message
    assert "MGAN model (mgan_lightning.methods.MGAN)" in message
    assert "GAN (mgan_lightning.methods.GAN)" in message


@pytest.mark.parametrize(
    "config, saved, data, words",
    [
        (
            "ring/gan.yaml",
            (1, 28, 28),
            "MNIST",
            ["(1, 28, 28)", "MNIST", "GaussianMixture2D", "(2,)"],
        ),
        ("ring/gan.yaml", (3,), "GaussianMixture", ["(3,)", "(2,)"]),
        # an MNIST model given RGB Stacked-MNIST data (the data are not read for this check)
        (
            "stacked_mnist/gan.yaml",
            (1, 32, 32),
            "MNIST",
            ["(1, 32, 32)", "StackedMNIST", "(3, 32, 32)"],
        ),
    ],
)
@pytest.mark.parametrize("subcommand", ["test", "predict"])
def test_checkpoint_for_data_of_another_shape_names_both_shapes(
    capsys, tmp_path, ring_checkpoint, config, saved, data, words, subcommand
) -> None:
    ckpt = derived(ring_checkpoint, tmp_path / "other.ckpt", sample_shape=saved, data=data)
    args = [subcommand, "--config", str(CONFIGS / config), f"--ckpt_path={ckpt}"]
    if subcommand == "predict":
        args += ["--num_samples=4", f"--output_dir={tmp_path / 'samples'}"]
    message = refused(capsys, args, tmp_path)
    assert f" {subcommand}: error: --ckpt_path: {ckpt}" in message
    for word in words:
        assert word in message, message


def test_checkpoint_tensors_that_do_not_fit_name_the_first(
    capsys, tmp_path, ring_checkpoint
) -> None:
    ckpt = torch.load(ring_checkpoint, weights_only=True)
    ckpt["state_dict"]["generators.weight"] = torch.zeros(3, 3)
    torch.save(ckpt, tmp_path / "tampered.ckpt")
    args = [
        "test",
        "--config",
        str(CONFIGS / "ring" / "gan.yaml"),
        f"--trainer.default_root_dir={tmp_path}",
        f"--ckpt_path={tmp_path / 'tampered.ckpt'}",
    ]
    message = refused(capsys, args, tmp_path)
    assert "tampered.ckpt does not fit the model" in message
    assert "generators.weight is (3, 3) in the file but (1, 2, 128) in the model" in message


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
def test_damaged_checkpoint_is_one_line(capsys, tmp_path, ring_checkpoint, kind) -> None:
    data = ring_checkpoint.read_bytes()
    bad = tmp_path / f"{kind}.ckpt"
    bad.write_bytes(b"not a checkpoint\n" * 10 if kind == "garbage" else data[:4000])
    args = ["test", "--config", str(CONFIGS / "ring" / "gan.yaml"), f"--ckpt_path={bad}"]
    message = refused(capsys, args, tmp_path)
    assert "--ckpt_path" in message and str(bad) in message and "not a checkpoint" in message
    assert len(message.splitlines()) == 1


def test_checkpoint_mismatch_accepts_its_own_config(ring_checkpoint) -> None:
    ckpt = torch.load(ring_checkpoint, weights_only=True)
    assert checkpoint_mismatch(ckpt, "x", "mgan_lightning.methods.GAN", (2,)) is None
    assert checkpoint_mismatch(ckpt, "x", None, None) is None
    assert "(2,)" in checkpoint_mismatch(ckpt, "x", "mgan_lightning.methods.GAN", (3,))


# ----------------------------------------------------------------- data files
def mnist_run(tmp_path: Path, data_root: Path, split: str = "test") -> list[str]:
    """The Stacked-MNIST config on ``data_root``; the test split by default, as the t10k
    files are the ones these tests copy (the config's offline option)."""
    return fit_args(
        "stacked_mnist/gan.yaml",
        tmp_path,
        f"--data.init_args.data_root={data_root}",
        f"--data.init_args.source_split={split}",
        "--trainer.callbacks=[]",
    )


@pytest.mark.parametrize("split, prefix", [("train", "train"), ("test", "t10k")])
def test_missing_data_files_name_the_files_and_folder(
    capsys, tmp_path: Path, split: str, prefix: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    message = refused(capsys, mnist_run(tmp_path, empty, split), tmp_path)
    assert " fit: error: MNIST" in message and "data not found" in message
    assert str(empty / f"{prefix}-images-idx3-ubyte.gz") in message
    assert str(empty / f"{prefix}-labels-idx1-ubyte.gz") in message
    assert "data_root" in message


def _copy_mnist(tmp_path: Path) -> Path:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (folder / name).write_bytes((MNIST_DIR / name).read_bytes())
    return folder


@needs_mnist
def test_truncated_data_file_is_named(capsys, tmp_path: Path) -> None:
    folder = _copy_mnist(tmp_path)
    images = folder / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:3000])
    message = refused(capsys, mnist_run(tmp_path, folder), tmp_path)
    assert f"MNIST data file {images} cannot be read" in message
    assert "truncated" in message
    assert len(message.splitlines()) == 1


@needs_mnist
def test_unreadable_data_file_is_named(capsys, tmp_path: Path, monkeypatch) -> None:
    folder = _copy_mnist(tmp_path)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    labels.chmod(0)
    if os.access(labels, os.R_OK):  # root reads anything: make reading it fail as it would
        real = Path.read_bytes

        def read_bytes(self: Path) -> bytes:
            if self == labels:
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(Path, "read_bytes", read_bytes)
    message = refused(capsys, mnist_run(tmp_path, folder), tmp_path)
    assert f"MNIST data file {labels} cannot be read (Permission denied)" in message
    assert message.count(str(labels)) == 1


# ----------------------------------------------------------------- weights files
def with_callback(tmp_path: Path, callback: str, init_args: str) -> str:
    extra = tmp_path / "callback.yaml"
    extra.write_text(
        f"trainer:\n  callbacks:\n    - class_path: mgan_lightning.callbacks.{callback}\n"
        f"      init_args: {init_args}\n"
    )
    return str(extra)


def test_digit_classifier_weights_of_other_shapes(capsys, tmp_path: Path) -> None:
    weights = tmp_path / "rgb_digits.pt"
    torch.save(DigitClassifier(sample_shape=(3, 32, 32), width=16).state_dict(), weights)
    extra = with_callback(tmp_path, "StackedMNISTEvaluation", f"{{classifier: {weights}}}")
    args = fit_args("ring/gan.yaml", tmp_path, "--config", extra)
    message = refused(capsys, args, tmp_path)
    assert f"digit classifier weights {weights} do not fit DigitClassifier" in message
    assert (
        "tensor net.0.weight is (16, 3, 3, 3) in the file but (32, 1, 3, 3) in the model" in message
    )


def test_digit_classifier_weights_that_are_no_torch_file(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    with pytest.raises(WeightsMismatchError, match="cannot be read by torch.load"):
        load_digit_classifier(bad)


@pytest.fixture()
def inception_weights_of_other_shapes(tmp_path: Path) -> Path:
    """torch-fidelity's Inception state_dict (constant values, stored as broadcast scalars so
    the file is small) with one tensor of another shape."""
    from torch_fidelity import feature_extractor_inceptionv3 as tf_inception

    cls = tf_inception.FeatureExtractorInceptionV3
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: {})
        mp.setattr(cls, "load_state_dict", lambda self, *a, **k: None)
        net = cls("inception-v3-compat", ["2048"])
    state = {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in net.state_dict().items()}
    state["Mixed_6a.branch3x3.conv.weight"] = torch.zeros(()).expand(7, 7)
    path = tmp_path / "inception_other.pth"
    torch.save(state, path)
    return path


def test_inception_weights_of_other_shapes(
    capsys, tmp_path, inception_weights_of_other_shapes
) -> None:
    path = inception_weights_of_other_shapes
    init = f"{{inception_weights: {path}, num_samples: 100, num_real: 100}}"
    args = fit_args(
        "ring/gan.yaml", tmp_path, "--config", with_callback(tmp_path, "FidelityEvaluation", init)
    )
    message = refused(capsys, args, tmp_path)
    assert f"inception_weights {path} do not fit" in message
    assert (
        "tensor Mixed_6a.branch3x3.conv.weight is (7, 7) in the file but (384, 288, 3, 3)"
        in message
    )


# ----------------------------------------------------------------- the pieces alone
def test_load_error_summary_names_the_first_mismatch() -> None:
    with pytest.raises(RuntimeError) as info:
        nn.Linear(2, 3).load_state_dict(nn.Linear(2, 4).state_dict())
    summary = load_error_summary(info.value)
    assert (
        summary
        == "tensor weight is (4, 2) in the file but (3, 2) in the model (1 more tensors differ)"
    )
    with pytest.raises(RuntimeError) as info:
        nn.Linear(2, 3).load_state_dict({"weight": torch.zeros(3, 2)})
    assert load_error_summary(info.value) == "tensor bias is missing from the file"
    assert load_error_summary(RuntimeError("CUDA out of memory")) is None


UNION = """Parser key "model":
  Does not validate against any of the Union subtypes
  Subtypes: [<class 'lightning.pytorch.core.module.LightningModule'>, <class 'NoneType'>]
  Errors:
    - Problem with given class_path 'mgan_lightning.methods.MGAN':
        Parser key "diversity":
          Expected a typing.Literal['general', 'one_vs_all', 'pairwise']. Got value: foo
    - Expected a <class 'NoneType'>
  Given value type: <class 'jsonargparse._util.NestedArg'>
  Given value: NestedArg(key='diversity', val='foo')"""


def test_distil_parse_error_keeps_key_value_and_choices() -> None:
    assert distil_parse_error(UNION) == (
        "model.init_args.diversity: 'foo' is not one of 'general', 'one_vs_all', 'pairwise'"
    )
    plain = "Parser key \"trainer.max_steps\":\n  Expected a <class 'int'>. Got value: abc"
    assert distil_parse_error(plain) == "trainer.max_steps: 'abc' is not an int"
    # a message of a shape it does not know comes back whole
    assert distil_parse_error("something else went wrong") == "something else went wrong"
