"""``torch.compile`` for a method's networks, as a callback any run can switch on."""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer


class CompileNetworks(Callback):
    """Compile the generators and the critic in place (``nn.Module.compile``, so parameter
    names and checkpoints are unchanged) when fit, test or predict sets up. ``mode`` is
    ``torch.compile``'s (``None``: its default). On a CPU compilation costs more than it
    gains for networks this small; it is meant for GPUs.

    ``mgan fit --config ... --trainer.callbacks+=mgan_lightning.callbacks.CompileNetworks``
    """

    def __init__(self, mode: str | None = None) -> None:
        self.mode = mode

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Compile the model's generators and critic in place, once."""
        for name in ("generators", "critic", "generators_ema"):
            network = getattr(pl_module, name, None)
            if network is not None and not getattr(network, "_mgan_compiled", False):
                network.compile(mode=self.mode)
                network._mgan_compiled = True
