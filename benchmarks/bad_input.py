"""Catalogue of bad input and what the ``mgan`` command says about it.

Runs every case of the issue "bad input refused clearly" through the real ``mgan`` command,
one subprocess each, from the repository root, and records the exact command, the exit code
and the exact error message on stderr (the lines from the ``error:`` line on), with the
number of stderr lines and whether a usage dump or a traceback was printed. The small files
the cases need (checkpoints of 2-generator-step trainings, damaged copies, weights files of
other shapes, MNIST folders with missing / truncated / unreadable files) are made first in a
temporary folder.

Writes ``benchmarks/results/bad_input.json`` and ``benchmarks/results/bad_input.md`` (a table:
case, command, message, exit code).

    python benchmarks/bad_input.py
    python benchmarks/bad_input.py --before /tmp/head   # also what the code in /tmp/head printed

``--before DIR`` runs each case a second time with the package found in ``DIR`` (e.g.
``git archive HEAD mgan_lightning | tar -x -C DIR``; that folder goes first on ``sys.path``), and
records that output's length and last line beside the new message.

The MNIST cases need the t10k files in the folder ``$MGAN_MNIST_ROOT`` (else they are skipped). The
unreadable-file case runs under ``setpriv --bounding-set=-dac_override,-dac_read_search`` when
run as root, since root reads a ``chmod 000`` file otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import git_commit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MNIST_DIR = Path(os.environ.get("MGAN_MNIST_ROOT") or "/nonexistent-mnist")
MNIST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
SHORT = ["--model.init_args.max_generator_steps=2", "--trainer.enable_progress_bar=false"]
RING_GAN = "configs/ring/gan.yaml"


def mgan_command() -> list[str]:
    """The installed console script, next to this Python."""
    script = Path(sys.executable).parent / "mgan"
    return [str(script)] if script.is_file() else [shutil.which("mgan") or "mgan"]


def run(argv: list[str], env: dict | None = None, timeout: int = 600) -> dict:
    start = time.perf_counter()
    proc = subprocess.run(
        argv,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", **(env or {})},
    )
    return {
        "exit_code": proc.returncode,
        "stderr": proc.stderr,
        "seconds": round(time.perf_counter() - start, 1),
    }


def error_message(stderr: str) -> str:
    """The lines from the (last) ``error:`` line on; else the last line."""
    lines = stderr.rstrip().splitlines()
    starts = [n for n, line in enumerate(lines) if "error:" in line and not line.startswith(" ")]
    if starts:
        return "\n".join(lines[starts[-1] :])
    return lines[-1] if lines else ""


# ------------------------------------------------------------------ files the cases need
def train(name: str, config: str, tmp: Path, *extra: str) -> Path:
    root = tmp / "ckpt" / name
    argv = [
        *mgan_command(),
        "fit",
        "--config",
        config,
        f"--trainer.default_root_dir={root}",
        *SHORT,
        "--trainer.enable_model_summary=false",
        *extra,
    ]
    out = run(argv)
    ckpt = root / "checkpoints" / "last.ckpt"
    if out["exit_code"] != 0 or not ckpt.is_file():
        raise RuntimeError(f"training {name} failed:\n{out['stderr'][-3000:]}")
    print(f"  {name}: {ckpt} ({out['seconds']} s)", flush=True)
    return ckpt


def inception_weights_of_other_shapes(path: Path) -> Path:
    """torch-fidelity's Inception state_dict with one tensor of another shape (constant
    values stored as broadcast scalars: a small file)."""
    from torch_fidelity import feature_extractor_inceptionv3 as tf_inception

    cls = tf_inception.FeatureExtractorInceptionV3
    load, fetch = cls.load_state_dict, tf_inception.load_state_dict_from_url
    cls.load_state_dict = lambda self, *a, **k: None
    tf_inception.load_state_dict_from_url = lambda *a, **k: {}
    try:
        net = cls("inception-v3-compat", ["2048"])
    finally:
        cls.load_state_dict, tf_inception.load_state_dict_from_url = load, fetch
    state = {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in net.state_dict().items()}
    state["Mixed_6a.branch3x3.conv.weight"] = torch.zeros(()).expand(7, 7)
    torch.save(state, path)
    return path


def callback_config(path: Path, callback: str, init_args: str) -> Path:
    path.write_text(
        f"trainer:\n  callbacks:\n    - class_path: mgan_lightning.callbacks.{callback}\n"
        f"      init_args: {init_args}\n"
    )
    return path


def prepare(tmp: Path) -> dict:
    from mgan_lightning.classifiers import DigitClassifier

    print("making the files the cases need", flush=True)
    files: dict = {}
    files["ring_mgan"] = train("ring_mgan", "configs/ring/mgan.yaml", tmp)
    files["ring_gan"] = train("ring_gan", "configs/ring/gan.yaml", tmp)
    files["cube_gan"] = train(
        "cube_gan",
        "configs/ring/gan.yaml",
        tmp,
        "--data.class_path=mgan_lightning.data.GaussianMixture",
        "--data.init_args.preset=cube",
        "--data.init_args.dim=3",
    )
    good = files["ring_gan"].read_bytes()
    (tmp / "garbage.ckpt").write_bytes(b"this is not a checkpoint\n" * 10)
    (tmp / "truncated.ckpt").write_bytes(good[:4000])
    files["garbage"], files["truncated"] = tmp / "garbage.ckpt", tmp / "truncated.ckpt"
    tampered = torch.load(files["ring_gan"], weights_only=True)
    tampered["state_dict"]["generators.weight"] = torch.zeros(3, 3)
    torch.save(tampered, tmp / "tampered.ckpt")
    files["tampered"] = tmp / "tampered.ckpt"

    digits = tmp / "digit_classifier_rgb_width16.pt"
    torch.save(DigitClassifier(sample_shape=(3, 32, 32), width=16).state_dict(), digits)
    notes = tmp / "notes.txt"
    notes.write_text("these are not weights\n")
    inception = inception_weights_of_other_shapes(tmp / "inception_other_shapes.pth")
    files["cb_digits"] = callback_config(
        tmp / "digits.yaml", "StackedMNISTEvaluation", f"{{classifier: {digits}}}"
    )
    files["cb_notes"] = callback_config(
        tmp / "notes.yaml", "StackedMNISTEvaluation", f"{{classifier: {notes}}}"
    )
    files["cb_inception"] = callback_config(
        tmp / "inception.yaml",
        "FidelityEvaluation",
        f"{{inception_weights: {inception}, num_samples: 100, num_real: 100}}",
    )

    (tmp / "mnist_empty").mkdir()
    files["mnist_empty"] = tmp / "mnist_empty"
    if MNIST_DIR.is_dir():
        files["mnist_gan"] = train(
            "mnist_gan",
            "configs/stacked_mnist/gan.yaml",
            tmp,
            "--data.class_path=mgan_lightning.data.MNIST",
            f"--data.init_args.data_root={MNIST_DIR}",
            "--data.init_args.train_split=test",
            "--data.init_args.image_size=32",
            "--trainer.callbacks=mgan_lightning.callbacks.GeneratorStepCheckpoint",
            f"--trainer.callbacks.dirpath={tmp / 'ckpt' / 'mnist_gan' / 'checkpoints'}",
            "--trainer.callbacks.save_last=true",
        )
        for kind in ("truncated", "locked"):
            folder = tmp / f"mnist_{kind}"
            folder.mkdir()
            for name in MNIST_FILES:
                shutil.copy(MNIST_DIR / name, folder / name)
            files[f"mnist_{kind}"] = folder
        images = files["mnist_truncated"] / MNIST_FILES[0]
        images.write_bytes(images.read_bytes()[:3000])
        (files["mnist_locked"] / MNIST_FILES[1]).chmod(0)
    return files


# ------------------------------------------------------------------ the cases
def cases(tmp: Path, files: dict) -> list[dict]:
    def fit(config: str, *extra: str) -> list[str]:
        return [
            "fit",
            "--config",
            config,
            f"--trainer.default_root_dir={tmp / 'runs'}",
            *SHORT,
            *extra,
        ]

    def evaluate(sub: str, config: str, ckpt: Path, *extra: str) -> list[str]:
        return [
            sub,
            "--config",
            config,
            f"--trainer.default_root_dir={tmp / 'runs'}",
            f"--ckpt_path={ckpt}",
            *extra,
        ]

    mnist = ["--trainer.callbacks=[]"]
    out = [
        ("1", "K < 1", fit("configs/ring/mgan.yaml", "--model.init_args.num_generators=0")),
        ("1", "negative beta (MGAN)", fit("configs/ring/mgan.yaml", "--model.init_args.beta=-1")),
        (
            "1",
            "negative alpha (BourGAN)",
            fit("configs/ring/bourgan.yaml", "--model.init_args.alpha=-1"),
        ),
        (
            "1",
            "negative lam (MIMGAN's lambda)",
            fit("configs/ring/mimgan.yaml", "--model.init_args.lam=-1"),
        ),
        (
            "1",
            "unknown diversity variant",
            fit("configs/ring/mgan.yaml", "--model.init_args.diversity=foo"),
        ),
        ("1", "latent size < 1", fit("configs/ring/mgan.yaml", "--model.init_args.latent_dim=0")),
        (
            "1",
            "a value of the wrong type",
            fit("configs/ring/mgan.yaml", "--model.init_args.beta=abc"),
        ),
        (
            "2",
            "image size DCGAN cannot build",
            fit("configs/stacked_mnist/gan.yaml", "--data.init_args.image_size=7"),
        ),
        (
            "3",
            "ring config, MNIST checkpoint",
            evaluate("test", "configs/ring/gan.yaml", files.get("mnist_gan", "MISSING")),
        ),
        (
            "3",
            "ring config, 3-D mixture checkpoint",
            evaluate("test", "configs/ring/gan.yaml", files["cube_gan"]),
        ),
        (
            "3",
            "Stacked-MNIST (RGB) config, MNIST checkpoint",
            evaluate("test", "configs/stacked_mnist/gan.yaml", files.get("mnist_gan", "MISSING")),
        ),
        (
            "3",
            "predict: ring config, MNIST checkpoint",
            evaluate(
                "predict",
                "configs/ring/gan.yaml",
                files.get("mnist_gan", "MISSING"),
                "--num_samples=4",
                f"--output_dir={tmp / 'samples'}",
            ),
        ),
        (
            "3",
            "checkpoint tensor of another shape",
            evaluate("test", "configs/ring/gan.yaml", files["tampered"]),
        ),
        (
            "4",
            "missing data files",
            fit(
                "configs/stacked_mnist/gan.yaml",
                f"--data.init_args.data_root={files['mnist_empty']}",
                *mnist,
            ),
        ),
        (
            "4",
            "truncated data file",
            fit(
                "configs/stacked_mnist/gan.yaml",
                f"--data.init_args.data_root={files.get('mnist_truncated', 'MISSING')}",
                *mnist,
            ),
        ),
        (
            "4",
            "unreadable (chmod 000) data file",
            fit(
                "configs/stacked_mnist/gan.yaml",
                f"--data.init_args.data_root={files.get('mnist_locked', 'MISSING')}",
                *mnist,
            ),
        ),
        (
            "5",
            "class_path: no such class",
            fit("configs/ring/mgan.yaml", "--model.class_path=mgan_lightning.methods.NoSuch"),
        ),
        (
            "5",
            "class_path: no such module",
            fit("configs/ring/mgan.yaml", "--model.class_path=no_such_module.X"),
        ),
        ("5", "class name with a typo", fit("configs/ring/mgan.yaml", "--model=MGN")),
        (
            "5",
            "optimizer class with a typo",
            fit(
                "configs/ring/mgan.yaml",
                "--model.init_args.optimizer_g.class_path=torch.optim.Adamm",
            ),
        ),
        (
            "6",
            "checkpoint of another method",
            evaluate("test", "configs/ring/gan.yaml", files["ring_mgan"]),
        ),
        (
            "7",
            "checkpoint that is no checkpoint",
            evaluate("test", "configs/ring/gan.yaml", files["garbage"]),
        ),
        (
            "7",
            "truncated checkpoint",
            evaluate("test", "configs/ring/gan.yaml", files["truncated"]),
        ),
        (
            "7",
            "missing checkpoint file",
            evaluate("test", "configs/ring/gan.yaml", tmp / "nope.ckpt"),
        ),
        (
            "8",
            "digit classifier weights of other shapes",
            fit("configs/ring/gan.yaml", "--config", str(files["cb_digits"])),
        ),
        (
            "8",
            "digit classifier weights that are no torch file",
            fit("configs/ring/gan.yaml", "--config", str(files["cb_notes"])),
        ),
        (
            "8",
            "Inception weights of other shapes",
            fit("configs/ring/gan.yaml", "--config", str(files["cb_inception"])),
        ),
        (
            "9",
            "sweep argument with a typo",
            fit(
                "configs/ring/mgan.yaml",
                "--config",
                "configs/loggers/wandb.yaml",
                "--model.init_args.bta=0.1",
            ),
        ),
        (
            "9",
            "sweep argument: unknown Trainer option",
            fit("configs/ring/mgan.yaml", "--trainer.max_stepz=3"),
        ),
        (
            "9",
            "sweep argument: nested typo",
            fit("configs/ring/mgan.yaml", "--model.init_args.optimizer_g.init_args.lrr=0.001"),
        ),
        (
            "9",
            "sweep argument: MIMGAN's lambda",
            fit("configs/ring/mimgan.yaml", "--model.init_args.lambda=1"),
        ),
    ]
    ring = files["ring_mgan"]
    out += [
        ("21", "length: negative trainer.max_steps", fit(RING_GAN, "--trainer.max_steps=-5")),
        ("21", "length: zero generator steps",
         fit(RING_GAN, "--model.init_args.max_generator_steps=0")),
        ("21", "an accelerator that is not there", fit(RING_GAN, "--trainer.accelerator=gpu")),
        ("21", "an output folder that cannot be written",
         fit(RING_GAN, "--trainer.default_root_dir=/proc/mgan_run")),
        ("21", "more CPU processes than cores",
         fit(RING_GAN, f"--trainer.devices={(os.cpu_count() or 1) + 1}")),
        ("21", "resume changing K", fit("configs/ring/mgan.yaml",
         "--model.init_args.num_generators=4", f"--ckpt_path={ring}")),
        ("21", "test: ring checkpoint, grid config",
         evaluate("test", "configs/grid/mgan.yaml", ring)),
        ("21", "predict: ring checkpoint, grid config",
         evaluate("predict", "configs/grid/mgan.yaml", ring, "--num_samples", "10",
                  f"--output_dir={tmp / 'samples'}")),
        ("21", "test: no --config and no --ckpt_path", ["test"]),
        ("21", "test: the checkpoint alone (works)", ["test", "--ckpt_path", str(ring)]),
    ]  # fmt: skip
    result = []
    for case, what, argv in out:
        argv = [str(a) for a in argv]
        skip = "MISSING" in " ".join(argv)
        wrap = []
        root = hasattr(os, "geteuid") and os.geteuid() == 0
        if "chmod 000" in what and root and shutil.which("setpriv"):
            # root reads mode-000 files unless it drops these capabilities
            wrap = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
        result.append({"case": case, "what": what, "argv": argv, "wrap": wrap, "skip": skip})
    return result


def markdown(records: list[dict], tmp: Path, before: bool) -> str:
    def cell(text: str) -> str:
        return text.replace(str(tmp), "$TMP").replace("|", "\\|").replace("\n", "<br>")

    head = ["#", "case", "command", "message (stderr from `error:` on)", "exit code"]
    if before:
        head.append("before this change (exit code, stderr lines, last line)")
    lines = [
        "# Bad input: what the `mgan` command says",
        "",
        "Generated by `python benchmarks/bad_input.py`: each command run from the repository "
        "root; `$TMP` is a scratch folder of small files made first. Stderr lines: the whole "
        "stderr, Lightning's start-up lines included (fit/test print a few before the data or "
        "the callbacks are set up).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in records:
        if r.get("skipped"):
            row = [r["case"], r["what"], cell(r["command"]), "(skipped: MNIST files not found)", ""]
        else:
            row = [
                r["case"],
                r["what"],
                f"`{cell(r['command'])}`",
                cell(r["message"]),
                str(r["exit_code"]),
            ]
        if before:
            b = r.get("before") or {}
            dump = ", usage dump" if b.get("usage_dump") else ""
            dump += ", traceback" if b.get("traceback") else ""
            was = f"exit {b.get('exit_code')}, {b.get('stderr_lines')} lines{dump}: "
            was += str(b.get("last_line"))
            row.append(cell(was) if b else "")
        lines.append("| " + " | ".join(row) + " |")
    if before:
        lines += [
            "",
            "Before this change: the same command with the package of `--before` (the last "
            "commit). Its checkpoint cases (3, 6) got checkpoints made by the current code, "
            "whose hyperparameters the older code cannot parse; with checkpoints of its own, "
            "the older code ran the MGAN checkpoint as MGAN under `configs/ring/gan.yaml` "
            "(exit 0), and refused an MNIST checkpoint with a usage dump and a misleading "
            "`DCGAN needs square images (C, S, S), got (2,)` (ring config) or a 47-line "
            "size-mismatch traceback (Stacked-MNIST config).",
        ]
    ok = [r for r in records if not r.get("skipped")]
    short = sum(
        1
        for r in ok
        if r["exit_code"] == 2
        and not r["usage_dump"]
        and not r["traceback"]
        and len(r["message"].splitlines()) <= 4
    )
    lines += [
        "",
        f"{short} of {len(ok)} cases end with exit code 2 and an error message of at most "
        "4 lines, without a usage dump or a traceback.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", help="scratch folder (default: a new temporary one)")
    parser.add_argument("--before", help="a folder holding an older mgan_lightning package")
    parser.add_argument("--out", default=str(RESULTS / "bad_input"), help="output path stem")
    args = parser.parse_args()
    tmp = Path(args.workdir or tempfile.mkdtemp(prefix="bad_input_")).resolve()
    tmp.mkdir(parents=True, exist_ok=True)
    files = prepare(tmp)
    records = []
    for item in cases(tmp, files):
        argv = [*item["wrap"], *mgan_command(), *item["argv"]]
        command = shlex.join([*item["wrap"], "mgan", *item["argv"]])
        record = {"case": item["case"], "what": item["what"], "command": command}
        if item["skip"]:
            record["skipped"] = True
            records.append(record)
            continue
        out = run(argv)
        stderr = out["stderr"]
        record.update(
            exit_code=out["exit_code"],
            message=error_message(stderr),
            stderr_lines=len(stderr.rstrip().splitlines()),
            usage_dump="usage:" in stderr,
            traceback="Traceback" in stderr,
            seconds=out["seconds"],
        )
        if args.before:  # the older package first on sys.path (not the checkout's)
            before = str(Path(args.before).resolve())
            code = (
                f"import sys; sys.path.insert(0, {before!r}); sys.argv[0] = 'mgan'; "
                "from mgan_lightning.cli import main; main()"
            )
            old = run([*item["wrap"], sys.executable, "-c", code, *item["argv"]])
            old_lines = old["stderr"].rstrip().splitlines()
            record["before"] = {
                "exit_code": old["exit_code"],
                "stderr_lines": len(old_lines),
                "last_line": old_lines[-1] if old_lines else "",
                "usage_dump": "usage:" in old["stderr"],
                "traceback": "Traceback" in old["stderr"],
            }
        print(
            f"[{item['case']}] {item['what']}: exit {record['exit_code']}\n    {record['message']}",
            flush=True,
        )
        records.append(record)
    stem = Path(args.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "generated_by": "python benchmarks/bad_input.py" + (" --before DIR" if args.before else ""),
        "commit": git_commit(),
        "python": platform.python_version(),
        "tmp": str(tmp),
        "cases": records,
    }
    stem.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(records, tmp, bool(args.before)))
    print(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')}")


if __name__ == "__main__":
    main()
