"""What the library's metrics cost: time and peak memory of PRDC and of the mode-counting
metrics on random inputs (their cost does not depend on the values).

- ``prdc``: ``mgan_lightning.metrics.PRDC`` (k = 5, a generator index of 10 generators per
  fake) on N real and N fake standard-normal points of ``--features`` features (Inception's
  2,048), both ``update`` calls and ``compute()``, for each N of ``--sizes``. Time grows with
  N^2 d, so it is reported per size. Target: under 60 s and 4 GiB at 10,000 points.
- ``stacked_mnist``: ``StackedMNISTModes`` under both rules on ``--samples`` random 3x32x32
  images, the shipped digit classifier labelling their channels once for both;
- ``mode_coverage``: ``ModeCoverage`` on ``--samples`` random points, the 25 grid modes.

Each case is timed after a warm-up; memory is the peak of the timed part (CPU: the resident
set, its peak reset through ``/proc/self/clear_refs`` on Linux; CUDA: the allocator's peak)
and its increase over what the process held before.

    python -m benchmarks.metric_cost                       # PRDC at 1k, 5k, 10k points
    python -m benchmarks.metric_cost --sizes 200 --samples 500 --out /tmp/check

Writes ``<out>/metric_cost.json`` and ``.md``; sections of an existing ``metric_cost.json``
that this does not measure (FID, the counter on real digits: the retired script, ``git show
c38784a:benchmarks/metric_cost.py``) are kept and named in the table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks import harness, measured
from mgan_lightning.classifiers import load_digit_classifier
from mgan_lightning.data import GaussianMixture2D
from mgan_lightning.metrics import PRDC, ModeCoverage, StackedMNISTModes, classify_channels, prdc
from mgan_lightning.rng import derive_seed, seeded_generator

PER = 10_000


def status_mb(field: str) -> float | None:
    with contextlib.suppress(OSError):
        lines = Path("/proc/self/status").read_text().splitlines()
        return next((int(x.split()[1]) / 1024 for x in lines if x.startswith(field + ":")), None)
    return None


def measure(device: torch.device, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Seconds and peak memory (``rss`` or ``cuda``) of ``work()``, with what it returns."""
    kind = "cuda" if device.type == "cuda" else "rss"
    if kind == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device) / 2**20
    else:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # the peak RSS starts again from now
        before = status_mb("VmRSS") or 0.0
    start = time.perf_counter()
    out = work()
    if kind == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if kind == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    memory = {f"{kind}_before_mb": before, f"peak_{kind}_mb": peak}
    return {"seconds": seconds, **memory, f"{kind}_increase_mb": peak - before, **out}


def prdc_case(n: int, features: int, device: torch.device) -> dict[str, Any]:
    g = seeded_generator(derive_seed("metric_cost", n))
    real, fake = (torch.randn(n, features, generator=g).to(device) for _ in range(2))
    index = torch.randint(0, 10, (n,), generator=g).to(device)
    prdc(real[:64], fake[:64], 5)  # warm-up

    def work() -> dict[str, Any]:
        metric = PRDC(nearest_k=5).to(device)
        metric.update(real, real=True)
        metric.update(fake, real=False, generator_index=index)
        out = metric.compute()
        return {k: float(out[k]) for k in ("precision", "recall", "density", "coverage")}

    return {"points": n, "features": features, **measure(device, work)}


def counting_case(name: str, n: int, device: torch.device) -> dict[str, Any]:
    g = seeded_generator(derive_seed("metric_cost", n))
    classifier = None
    if name == "stacked_mnist":
        inputs = (torch.rand(n, 3, 32, 32, generator=g) * 2 - 1).to(device)
        classifier = load_digit_classifier().to(device)
        metrics: list[Any] = [StackedMNISTModes(rule=r).to(device) for r in ("all", "confident")]
    else:
        grid = GaussianMixture2D(preset="grid")
        assert grid.modes is not None and grid.mode_std is not None
        inputs = (torch.rand(n, 2, generator=g) * 10 - 5).to(device)
        metrics = [ModeCoverage(grid.modes, grid.mode_std).to(device)]

    def work() -> dict[str, Any]:
        for batch in inputs.split(1000):  # one classification pass for both rules
            ready = batch if classifier is None else classify_channels(classifier, batch)
            for m in metrics:
                m.update(ready)
        return {"modes": float(metrics[0].compute()["modes"])}

    work()  # warm-up
    for m in metrics:
        m.reset()
    out = measure(device, work)
    return {"samples": n, "seconds_per_10k": out.pop("seconds") * PER / n, **out}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10_000], help="PRDC N")
    p.add_argument("--features", type=int, default=2048, help="PRDC's features (2048)")
    p.add_argument("--samples", type=int, default=PER, help="samples of the counting metrics")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    p.add_argument("--out", type=Path, default=harness.RESULTS, help="folder of the results")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for n in args.sizes:
        rows.append(prdc_case(n, args.features, device))
        print("prdc", json.dumps(rows[-1]), flush=True)
    cost = {n: counting_case(n, args.samples, device) for n in ("stacked_mnist", "mode_coverage")}
    path = args.out / "metric_cost.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    earlier = [k for k in ("real_data",) if k in result]  # measured by the retired script
    earlier += [f"cost.{k}" for k in result.get("cost", {}) if k not in cost]
    result["kept_from_earlier"] = earlier
    result["cost"] = {**result.get("cost", {}), **cost}
    result["prdc"] = {"device": str(device), "rows": rows}
    result["provenance"] = harness.provenance(args.threads)
    harness.write_json(path, result)
    (args.out / "metric_cost.md").write_text(measured.markdown("metric_cost", result))
    print(f"wrote {path} and metric_cost.md")


if __name__ == "__main__":
    main()
