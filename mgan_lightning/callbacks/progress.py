"""A progress bar on the generator-step clock."""

from __future__ import annotations

import sys
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar
from tqdm.auto import tqdm

from mgan_lightning.private_api import loggers_update_now


class GeneratorStepProgressBar(ProgressBar):
    """One bar for the whole fit: generator step / total, rate, time left, and the latest
    logged losses (updated whenever the loggers are written). Evaluation callbacks print
    their results above it. ``mgan fit`` adds it unless ``trainer.enable_progress_bar`` is
    false; it draws at most ``refresh_per_second`` times a second, so it costs next to nothing
    per step.
    """

    #: :func:`mgan_lightning.reporting.report` prints above this bar while it draws.
    prints_above_itself = True

    def __init__(self, refresh_per_second: float = 4.0) -> None:
        super().__init__()
        if refresh_per_second <= 0:
            raise ValueError(f"refresh_per_second must be > 0, got {refresh_per_second}")
        self.refresh_per_second = refresh_per_second
        self._enabled = True
        self.bar: tqdm | None = None
        self._shown_metrics: int = -1

    # ----------------------------------------------------- ProgressBar API
    @property
    def is_enabled(self) -> bool:
        """Whether the bar is drawing now."""
        return self._enabled and self.bar is not None

    @property
    def is_disabled(self) -> bool:
        """Whether the bar was turned off."""
        return not self._enabled

    def disable(self) -> None:
        """Turn the bar off (Lightning does so on processes other than rank 0)."""
        self._enabled = False

    def enable(self) -> None:
        """Turn the bar back on."""
        self._enabled = True

    def print(self, *args: Any, sep: str = " ", **kwargs: Any) -> None:
        """Print above the bar (to stderr), so the bar is redrawn below the text."""
        text = sep.join(str(a) for a in args)
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, **kwargs)

    # --------------------------------------------------------------- hooks
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Open the bar on rank 0 at the generator step the run starts from."""
        if not self._enabled or trainer.global_rank != 0:
            return
        planned = getattr(pl_module, "planned_generator_steps", lambda: None)()
        done = int(getattr(pl_module, "generator_steps_done", 0))
        self.bar = tqdm(
            total=planned,
            initial=done,
            desc="generator step",
            unit="step",
            dynamic_ncols=True,
            mininterval=1.0 / self.refresh_per_second,
            file=sys.stderr,
            smoothing=0.05,
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Advance to the generator steps done; show the latest losses when the loggers
        wrote them."""
        bar = self.bar
        if bar is None:
            return
        done = int(getattr(pl_module, "generator_steps_done", bar.n + 1))
        if done - bar.n > 0:
            bar.update(done - bar.n)  # redraws only after mininterval
        # New losses reach callback_metrics only on steps the loggers write.
        if loggers_update_now(trainer) and done != self._shown_metrics:
            self._shown_metrics = done
            bar.set_postfix(self.loss_summary(trainer), refresh=False)

    @staticmethod
    def loss_summary(trainer: Trainer) -> dict[str, str]:
        """The latest losses, ``{"d": "1.38", "g": "0.69", ...}``."""
        return {
            name.removeprefix("loss/"): f"{float(value):.3g}"
            for name, value in trainer.callback_metrics.items()
            if name.startswith("loss/")
        }

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception) -> None:
        """Close the bar, so the error is printed on a line of its own."""
        self.on_train_end(trainer, pl_module)
