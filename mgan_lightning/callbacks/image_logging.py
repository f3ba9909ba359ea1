"""Write a picture to a PNG file and to every logger that takes images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from PIL import Image


def image_folder(trainer: Trainer) -> Path:
    """``<log_dir>/images``; the trainer's root folder when there is no logger."""
    # Not trainer.log_dir: under DDP that is a broadcast, and only rank 0 gets here.
    logger = trainer.loggers[0] if trainer.loggers else None
    folder = getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None)
    return Path(folder or trainer.default_root_dir) / "images"


def log_image(trainer: Trainer, key: str, image: Image.Image, step: int) -> Path | None:
    """Save ``image`` as ``<log_dir>/images/<key>_step<step>.png`` and send it to the
    TensorBoard / W&B loggers. Only global rank 0 writes; other ranks return ``None``."""
    if trainer.global_rank != 0:
        return None
    path = image_folder(trainer) / f"{key.replace('/', '_')}_step{step:07d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, np.asarray(image), step, dataformats="HWC")
        elif isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[str(path)], step=step)
    return path
