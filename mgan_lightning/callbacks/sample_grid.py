"""A picture of samples, one row per generator, from a latent batch fixed for the whole run."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule, Trainer
from PIL import Image
from torchvision.utils import make_grid

from mgan_lightning.callbacks.evaluation import as_gan_method, eval_mode, generator_step
from mgan_lightning.callbacks.image_logging import log_image


def grid_layout(images: torch.Tensor, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """Images ``(K, n, C, H, W)`` in [-1, 1] -> one uint8 picture ``(H', W', 3)``.

    Row ``k`` holds generator ``k``'s ``n`` samples, left to right; ``padding`` pixels of
    ``pad_value`` (in [-1, 1]; 1 is white) separate and surround the tiles. Grey images
    (C = 1) are repeated to RGB. Tile ``(k, j)`` starts at pixel row
    ``padding + k * (H + padding)`` and column ``padding + j * (W + padding)``: torchvision's
    ``make_grid`` with ``nrow=n`` (which returns a single tile unpadded, so one is padded
    here).
    """
    if images.ndim != 5 or images.shape[2] not in (1, 3):
        raise ValueError(f"expected images (K, n, 1 or 3, H, W), got {tuple(images.shape)}")
    k, n, c, h, w = images.shape
    tiles = images.detach().float().cpu().clamp(-1, 1).reshape(k * n, c, h, w)
    if c == 1:
        tiles = tiles.expand(-1, 3, -1, -1)
    if k * n == 1:
        canvas = F.pad(tiles[0], (padding,) * 4, value=float(pad_value))
    else:
        canvas = make_grid(tiles, nrow=n, padding=padding, pad_value=float(pad_value))
    pixels = ((canvas + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(1, 2, 0).contiguous()


def grid_image(images: torch.Tensor, padding: int = 2, scale: int = 1) -> Image.Image:
    """:func:`grid_layout` as a PIL image, enlarged ``scale`` times (nearest neighbour)."""
    image = Image.fromarray(grid_layout(images, padding).numpy(), "RGB")
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    return image


class SampleGrid(Callback):
    """Every ``every_n_steps`` generator steps (and at the end of fit and of ``mgan test``)
    draw ``samples_per_generator`` samples of each generator from the same latent batch and
    log the grid (row k = generator k) as a PNG under ``<log_dir>/images`` and to
    TensorBoard / W&B.

    The latent batch is drawn once (from a private RNG seeded with ``seed``, through the
    model's ``sample_latent``) and kept in this callback's ``state_dict``, so it is saved in
    checkpoints and a resumed run keeps drawing the same pictures. Images are generated in
    eval mode, on global rank 0 only.

    Args:
        every_n_steps: generator steps between grids (0: only at the end of fit / test).
        samples_per_generator: columns of the grid.
        padding: pixels between tiles.
        scale: enlarge the picture (nearest neighbour) for small images.
        seed: seed of the latent batch.
        key: logger key and PNG file prefix.
    """

    def __init__(
        self,
        every_n_steps: int = 1000,
        samples_per_generator: int = 8,
        padding: int = 2,
        scale: int = 2,
        seed: int = 0,
        key: str = "samples/grid",
    ) -> None:
        if every_n_steps < 0 or samples_per_generator < 1 or padding < 0 or scale < 1:
            raise ValueError(
                "SampleGrid needs every_n_steps >= 0, samples_per_generator >= 1, "
                "padding >= 0 and scale >= 1"
            )
        self.every_n_steps = every_n_steps
        self.samples_per_generator = samples_per_generator
        self.padding = padding
        self.scale = scale
        self.seed = seed
        self.key = key
        self.latent: torch.Tensor | None = None
        self.last_path: Path | None = None

    # ------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """The fixed latent batch, so the grids after a resume show the same z."""
        return {"latent": self.latent}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the fixed latent batch."""
        self.latent = state_dict.get("latent")

    # ------------------------------------------------------------ drawing
    def fixed_latent(self, pl_module: LightningModule) -> torch.Tensor:
        """The stored latent batch; drawn on first use (or if the model's latent shape
        changed, e.g. a generator was added)."""
        device = pl_module.device
        generator = torch.Generator(device=device).manual_seed(self.seed)
        probe = as_gan_method(pl_module).sample_latent(self.samples_per_generator, generator)
        if self.latent is None or self.latent.shape != probe.shape:
            self.latent = probe.detach().cpu()
        return self.latent.to(device)

    @torch.no_grad()
    def images(self, pl_module: LightningModule) -> torch.Tensor:
        """Samples ``(K, n, C, H, W)`` of every generator for the fixed latent batch."""
        z = self.fixed_latent(pl_module)
        with eval_mode(pl_module):
            return as_gan_method(pl_module).generate(z, averaged=True)

    def render(self, trainer: Trainer, pl_module: LightningModule) -> Path | None:
        """Draw the grid on rank 0 and log it; returns the PNG's path (``None`` elsewhere)."""
        if trainer.global_rank != 0:
            return None
        image = grid_image(self.images(pl_module), self.padding, self.scale)
        self.last_path = log_image(trainer, self.key, image, generator_step(trainer, pl_module))
        return self.last_path

    # ------------------------------------------------------------- hooks
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Draw a grid every ``every_n_steps`` generator steps."""
        step = generator_step(trainer, pl_module)
        if self.every_n_steps and step > 0 and step % self.every_n_steps == 0:
            self.render(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Draw the final grid."""
        self.render(trainer, pl_module)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Draw a grid at ``mgan test``."""
        self.render(trainer, pl_module)
