"""Generator steps per second and peak memory of a fit, measured after a warm-up."""

from __future__ import annotations

import math
import resource
import sys
import time

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: the CUDA allocator's peak on a GPU, the process's peak resident
    set size on a CPU (which includes Python and the libraries)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


class GeneratorStepRate(Callback):
    """Generator steps per second from ``warmup`` steps after the fit's start to its last
    step (compilation and the first allocations fall in the warm-up; the end-of-fit
    evaluations fall after it) and the peak memory, kept in :attr:`result` at the end of
    fit."""

    def __init__(self, warmup: int = 5) -> None:
        if warmup < 0:
            raise ValueError(f"GeneratorStepRate needs warmup >= 0, got {warmup}")
        self.warmup = warmup
        self.result: dict[str, float] = {}
        self._from = 0  # the step the fit started at (a resumed fit does not start at 0)
        self._start: tuple[float, int] | None = None
        self._stop: tuple[float, int] | None = None

    @staticmethod
    def _steps(pl_module: LightningModule) -> int:
        return int(getattr(pl_module, "generator_steps_done", 0))

    @staticmethod
    def _now(pl_module: LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Reset the peak-memory counter and start the clock after the warm-up steps."""
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)
        self._from, self._start, self._stop = self._steps(pl_module), None, None
        self.on_train_batch_end(trainer, pl_module, None, None, 0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Start the clock after ``warmup`` generator steps; stop it at the planned last step."""
        steps = self._steps(pl_module)
        if self._start is None and steps >= self._from + self.warmup:
            self._start = (self._now(pl_module), steps)
        planned = getattr(pl_module, "planned_generator_steps", lambda: None)()
        if planned is not None and steps >= planned:  # the clock stops before evaluations
            self._stop = (self._now(pl_module), steps)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Record generator steps per second, the steps measured and the peak memory."""
        stop = self._stop or (self._now(pl_module), self._steps(pl_module))
        start = self._start
        measured = stop[1] - start[1] if start else 0
        rate = measured / (stop[0] - start[0]) if start and measured else math.nan
        self.result = {
            "generator_steps_per_second": rate,
            "measured_steps": float(measured),
            "peak_memory_mb": peak_memory_mb(pl_module.device),
        }
