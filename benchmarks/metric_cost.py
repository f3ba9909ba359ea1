"""What do the image metrics cost, and does the Stacked-MNIST counter work on real data?

Measured on this machine, one thread, each case in its own subprocess (so the peak resident
memory, ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, is the case's own):

- ``stacked_mnist``: ``StackedMNISTModes`` (shipped digit classifier, 3 channels per image,
  both counting rules from one classification pass) on ``--samples`` 32 px Stacked-MNIST
  images, batches of 1,000;
- ``fid_custom``: ``build_fid`` with a small custom extractor (3 strided convs, 256-d
  features): ``--samples`` real images (the once-only reference statistics) then
  ``--samples`` fake images and ``compute()`` in float64;
- ``fid_inception`` (``--inception``): the same with torch-fidelity's InceptionV3 on
  ``--inception-samples`` images, extrapolated to 10,000; the network runs with random
  weights written to a temporary file (the speed does not depend on the values);
- ``prdc``: ``PRDC`` (k = 5, 10 generators' indices) on ``--prdc-points`` real and as many
  fake points of ``--prdc-features`` features (Inception's 2,048 by default; both sets
  standard normal, so density is near 1 and coverage near 1 - 2^-5): ``update`` of both
  sets and ``compute()``. Its cost grows with N^2 d, so it is reported per size, not per
  10,000.

Times are seconds per 10,000 samples (wall clock, after a warm-up batch); memory is the RSS
after imports, data loading and warm-up, and the peak RSS of the timed section (Linux:
``VmHWM`` after resetting it through ``/proc/self/clear_refs``).

The counter on real data: 26,000 real Stacked-MNIST images (``StackedMNIST`` DataModule,
``source_split="test"``, its test draw) must show all 1,000 modes and a KL near 0 (the
sampling floor for 26,000 draws from a uniform 1,000-way histogram is about
``999 / (2 * 26000) = 0.019``). The same with stacks drawn only from t10k items 8000..9999,
which the classifier never saw in training.

    OMP_NUM_THREADS=1 python benchmarks/metric_cost.py                # + --inception
    OMP_NUM_THREADS=1 python benchmarks/metric_cost.py --prdc-only    # PRDC alone

Writes ``benchmarks/results/metric_cost.json`` and ``.md``; ``--prdc-only`` measures PRDC
alone and replaces just its section of the existing JSON (with its own command and load).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MNIST_DIR = ROOT / ".." / "shared" / "data" / "mnist"
PER = 10_000


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def reset_peak() -> float:
    """Reset the peak-RSS mark (Linux: ``/proc/self/clear_refs``); returns the RSS now."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS") or rss_mb()


def rss_mb() -> float:
    """Peak RSS since :func:`reset_peak` (VmHWM), else since the start (ru_maxrss)."""
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stacked_set(n: int, seed: int = 0):
    from mgan_lightning.data import StackedMNIST

    dm = StackedMNIST(
        data_root=str(MNIST_DIR), source_split="test", test_length=n, seed=seed, image_size=32
    )
    dm.setup("test")
    return dm.test_set


def stacked_images(n: int, seed: int = 0) -> torch.Tensor:
    return stacked_set(n, seed)[torch.arange(n)][0]


def small_extractor() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 32, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(32, 64, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 256, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )  # fmt: skip
    net.num_features = 256
    return net.eval()


def random_inception_file(folder: str) -> str:
    from torch_fidelity import feature_extractor_inceptionv3 as tf

    original = (tf.load_state_dict_from_url, tf.FeatureExtractorInceptionV3.load_state_dict)
    tf.load_state_dict_from_url = lambda *a, **k: {}
    tf.FeatureExtractorInceptionV3.load_state_dict = lambda self, *a, **k: None
    try:
        net = tf.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    finally:
        tf.load_state_dict_from_url, tf.FeatureExtractorInceptionV3.load_state_dict = original
    path = os.path.join(folder, "random-inception.pth")
    torch.save(net.state_dict(), path)
    return path


# ------------------------------------------------------------------ cases
def case_stacked_mnist(n: int) -> dict:
    from mgan_lightning.classifiers import load_digit_classifier
    from mgan_lightning.metrics.stacked_mnist import StackedMNISTModes, classify_channels

    images = stacked_images(n, seed=5)
    classifier = load_digit_classifier()
    metrics = [StackedMNISTModes(rule=r) for r in ("all", "confident")]
    classify_channels(classifier, images[:100])  # warm-up
    base = reset_peak()
    start = time.perf_counter()
    for batch in images.split(1000):
        probs = classify_channels(classifier, batch)
        for m in metrics:
            m.update(probs)
    out = [m.compute() for m in metrics]
    seconds = time.perf_counter() - start
    return {
        "samples": n,
        "seconds_per_10k": seconds * PER / n,
        "rss_before_mb": base,
        "peak_rss_mb": rss_mb(),
        "rss_increase_mb": rss_mb() - base,
        "modes_all": float(out[0]["modes"]),
    }


def _fid_case(n: int, make_fid, batch: int = 500) -> dict:
    real = stacked_images(n, seed=6)
    fake = stacked_images(n, seed=7).flip(-1)
    fid = make_fid()
    fid.inception(real[:2])  # warm-up of the extractor
    base = reset_peak()
    start = time.perf_counter()
    for b in real.split(batch):
        fid.update(b, real=True)
    t_real = time.perf_counter() - start
    start = time.perf_counter()
    for b in fake.split(batch):
        fid.update(b, real=False)
    value = float(fid.compute())
    t_fake = time.perf_counter() - start
    return {
        "samples": n,
        "real_seconds_per_10k": t_real * PER / n,
        "fake_and_compute_seconds_per_10k": t_fake * PER / n,
        "rss_before_mb": base,
        "peak_rss_mb": rss_mb(),
        "rss_increase_mb": rss_mb() - base,
        "fid": value,
    }


def case_fid_custom(n: int) -> dict:
    from mgan_lightning.metrics.fidelity import build_fid

    return {"feature_dim": 256, **_fid_case(n, lambda: build_fid(small_extractor()))}


def case_fid_inception(n: int) -> dict:
    from mgan_lightning.metrics.fidelity import build_fid

    with tempfile.TemporaryDirectory() as folder:
        path = random_inception_file(folder)
        result = _fid_case(n, lambda: build_fid(2048, inception_weights=path), batch=32)
    return {"feature_dim": 2048, "weights": "random (speed only)", **result}


def case_prdc(n: int, features: int = 2048) -> dict:
    from mgan_lightning.metrics import PRDC, prdc

    g = torch.Generator().manual_seed(0)
    real = torch.randn(n, features, generator=g)
    fake = torch.randn(n, features, generator=g)  # the same distribution: density near 1
    index = torch.randint(0, 10, (n,), generator=g)
    prdc(real[:64], fake[:64], 5)  # warm-up
    metric = PRDC(nearest_k=5)
    base = reset_peak()
    start = time.perf_counter()
    metric.update(real, real=True)
    metric.update(fake, real=False, generator_index=index)
    out = metric.compute()
    seconds = time.perf_counter() - start
    return {
        "points": n,
        "features": features,
        "seconds": seconds,
        "rss_before_mb": base,
        "peak_rss_mb": rss_mb(),
        "rss_increase_mb": rss_mb() - base,
        **{k: float(out[k]) for k in ("precision", "recall", "density", "coverage")},
    }


def real_data_check() -> dict:
    from mgan_lightning.classifiers import load_digit_classifier
    from mgan_lightning.data.mnist import (
        StackedMNISTDataset,
        load_mnist_split,
        stacked_mode_digits,
        stacked_mode_ids,
    )
    from mgan_lightning.metrics.stacked_mnist import StackedMNISTModes, classify_channels

    classifier = load_digit_classifier()
    digits, labels = load_mnist_split(MNIST_DIR, "test")
    held = StackedMNISTDataset(
        digits[8000:],
        labels[8000:],
        torch.randint(2000, (26_000, 3), generator=torch.Generator().manual_seed(11)),
        image_size=32,
    )
    sets = {"datamodule_test_draw": stacked_set(26_000), "held_out_digits_only": held}
    report = {}
    for name, data in sets.items():
        metrics = {r: StackedMNISTModes(rule=r) for r in ("all", "confident")}
        truth_metric = StackedMNISTModes()  # the same count on the true labels
        correct = 0
        for start in range(0, 26_000, 1000):
            images, truth = data[torch.arange(start, min(start + 1000, 26_000))]
            probs = classify_channels(classifier, images)
            for m in metrics.values():
                m.update(probs)
            truth_metric.update(nn.functional.one_hot(stacked_mode_digits(truth), 10).float())
            correct += int((stacked_mode_ids(probs.argmax(-1)) == truth).sum())
        entry = {r: {k: float(v) for k, v in m.compute().items()} for r, m in metrics.items()}
        entry["true_labels"] = {k: float(v) for k, v in truth_metric.compute().items()}
        entry["triple_accuracy"] = correct / 26_000
        report[name] = entry
    return report


CASES = {
    "stacked_mnist": case_stacked_mnist,
    "fid_custom": case_fid_custom,
    "fid_inception": case_fid_inception,
    "prdc": case_prdc,
}


def run_case(name: str, n: int, threads: int, *extra: int) -> dict:
    """Run one case in a fresh interpreter, for a clean peak-memory figure."""
    args = ", ".join(str(a) for a in (n, *extra))
    code = (
        "import json, sys, torch; sys.path.insert(0, {bench!r}); "
        "torch.set_num_threads({threads}); import metric_cost as m; "
        "print('RESULT' + json.dumps(m.CASES[{name!r}]({args})))"
    ).format(bench=str(ROOT / "benchmarks"), threads=threads, name=name, args=args)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT") :])


def markdown(report: dict) -> str:
    lines = [
        "# Metric cost and the Stacked-MNIST counter on real data",
        "",
        f"Machine: {report['machine']}; torch {report['torch']}, {report['threads']} thread(s); "
        f"load average at start {report['load_average']}.",
        "",
        "Reproduce: `" + report["command"] + "`",
        "",
        "## Cost (seconds per 10,000 samples)",
        "",
        "| case | samples timed | s / 10k | RSS before (MB) | peak RSS (MB) | increase (MB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in report["cost"].items():
        per = r.get("seconds_per_10k")
        if per is None:
            per = r["real_seconds_per_10k"] + r["fake_and_compute_seconds_per_10k"]
            label = f"{name} (real {r['real_seconds_per_10k']:.1f} + fake/compute " \
                    f"{r['fake_and_compute_seconds_per_10k']:.1f})"  # fmt: skip
        else:
            label = name
        lines.append(
            f"| {label} | {r['samples']} | {per:.1f} | {r['rss_before_mb']:.0f} | "
            f"{r['peak_rss_mb']:.0f} | {r['rss_increase_mb']:.0f} |"
        )
    lines += [
        "",
        "`stacked_mnist`: classify 3 channels with the shipped DigitClassifier and count with "
        "both rules. `fid_custom`: 256-d features of a 3-conv extractor; the real statistics "
        "are computed once per run, so an evaluation costs the fake/compute part. "
        "`fid_inception` (if run): torch-fidelity's InceptionV3, extrapolated.",
        "",
        "## Counter on 26,000 real Stacked-MNIST images",
        "",
        "| digits | rule | modes | KL(q, uniform) | counted |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for name, entry in report["real_data"].items():
        for rule in ("all", "confident", "true_labels"):
            r = entry[rule]
            lines.append(
                f"| {name} | {rule} | {r['modes']:.0f} | {r['kl']:.4f} | "
                f"{100 * r['counted']:.1f}% |"
            )
    acc = report["real_data"]["held_out_digits_only"]["triple_accuracy"]
    acc_dm = report["real_data"]["datamodule_test_draw"]["triple_accuracy"]
    lines += [
        "",
        "Rules: `all` counts every predicted triple (PacGAN); `confident` counts a sample only "
        "if all three digit confidences exceed 0.95 (MWU/AdaGAN). The KL floor for 26,000 "
        "uniform draws over 1,000 modes is about 0.019; `true_labels` is the same count on the "
        "draw's true digit labels (no classifier). `datamodule_test_draw` is the "
        "StackedMNIST DataModule's test draw (source_split test: t10k digits, 80% of which the "
        f"classifier was trained on; triple accuracy {100 * acc_dm:.2f}%); "
        "`held_out_digits_only` stacks t10k items 8000..9999 only, never seen in training "
        f"(triple accuracy {100 * acc:.2f}%).",
        "",
    ]
    if "prdc" in report:
        lines += prdc_markdown(report["prdc"])
    return "\n".join(lines)


def prdc_markdown(section: dict) -> list[str]:
    rows = section["rows"]
    lines = [
        "## PRDC cost (precision, recall, density, coverage)",
        "",
        f"Measured by `{section['command']}`: {section['threads']} thread(s), load average at "
        f"start {section['load_average']}.",
        "",
        "| real = fake points | features | seconds | RSS before (MB) | peak RSS (MB) | "
        "increase (MB) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['points']:,} | {r['features']:,} | {r['seconds']:.1f} | "
            f"{r['rss_before_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['rss_increase_mb']:.0f} |"
        )
    lines += [
        "",
        "`PRDC(nearest_k=5)` with a generator index per fake (10 generators): both sets "
        "stored (float64), k-NN radii of each set and one pass over the real-fake distances, "
        "in float64 blocks of at most 2^23 entries (64 MiB), so memory grows with N d, not "
        "N^2; time grows with N^2 d (the matrix products of the real-fake distances and of half "
        "of each set's own, symmetric, distances). Both sets are "
        "standard normal (the cost does not depend on the values); their scores, a sanity "
        "check, are in the JSON (density near 1, coverage near 1 - 2^-5 = 0.97).",
        "",
    ]
    return lines


def measure_prdc(points: list[int], features: int, threads: int) -> dict:
    rows = []
    for n in points:
        rows.append(run_case("prdc", n, threads, features))
        print("prdc", json.dumps(rows[-1]), flush=True)
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=PER)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--inception", action="store_true", help="also time Inception FID")
    parser.add_argument("--inception-samples", type=int, default=64)
    parser.add_argument("--prdc-points", type=int, nargs="+", default=[1000, 5000, 10_000])
    parser.add_argument("--prdc-features", type=int, default=2048)
    parser.add_argument(
        "--prdc-only", action="store_true", help="measure PRDC alone; keep the other sections"
    )
    args = parser.parse_args()
    load = [round(x, 2) for x in os.getloadavg()]
    torch.set_num_threads(args.threads)
    command = "OMP_NUM_THREADS=1 python " + shlex.join(["benchmarks/metric_cost.py", *sys.argv[1:]])
    prdc_section = {
        "command": command,
        "threads": args.threads,
        "load_average": load,
        **measure_prdc(args.prdc_points, args.prdc_features, args.threads),
    }
    if args.prdc_only:
        report = json.loads((RESULTS / "metric_cost.json").read_text())
        report["prdc"] = prdc_section
        write(report)
        return
    cases = {"stacked_mnist": args.samples, "fid_custom": args.samples}
    if args.inception:
        cases["fid_inception"] = args.inception_samples
    cost = {}
    for name, n in cases.items():
        cost[name] = run_case(name, n, args.threads)
        print(name, json.dumps(cost[name]), flush=True)
    real = real_data_check()
    print("real data", json.dumps(real), flush=True)
    report = {
        "command": command,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "threads": args.threads,
        "load_average": load,
        "cost": cost,
        "real_data": real,
        "prdc": prdc_section,
    }
    write(report)


def write(report: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "metric_cost.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "metric_cost.md").write_text(markdown(report))
    print(f"wrote {RESULTS / 'metric_cost.json'} and .md")


if __name__ == "__main__":
    main()
