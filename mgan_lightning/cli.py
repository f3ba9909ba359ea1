"""The ``mgan`` command: LightningCLI over every method and DataModule.

``mgan fit --config configs/ring/gan.yaml`` trains; ``mgan test --config ... --ckpt_path ...``
evaluates. Any field can be overridden (``--model.init_args.num_generators=4``), and
YAML values may use omegaconf interpolation (``${data.init_args.batch_size}``).
"""

from __future__ import annotations

import warnings

from jsonargparse import set_parsing_settings
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import mgan_lightning.data  # noqa: F401  (registers the DataModules for short names)
import mgan_lightning.methods  # noqa: F401  (registers the methods for short names)
from mgan_lightning.data.base import GANDataModule

# Our checkpoints are meant to hold the state after a whole D+G step; Lightning's
# warning about manual optimisation and every_n_train_steps says exactly that.
warnings.filterwarnings("ignore", message=".*no pre-optimization state was saved.*")


class MGANCLI(LightningCLI):
    """LightningCLI in subclass mode; the data tells the model its sample shape.

    Any LightningModule whose ``__init__`` takes ``sample_shape`` can be trained: the GAN
    methods, and helpers such as the Stacked-MNIST digit classifier."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments(
            "data.sample_shape", "model.init_args.sample_shape", apply_on="instantiate"
        )


def build_cli(args: list[str] | None = None, run: bool = True) -> MGANCLI:
    """Parse ``args`` (default: ``sys.argv``) and, if ``run``, execute the subcommand.

    Interpolations such as ``${trainer.default_root_dir}`` are resolved after the command
    line is applied (jsonargparse's ``omegaconf+`` mode), so overrides reach them too."""
    set_parsing_settings(omegaconf_absolute_to_relative_paths=True)
    return MGANCLI(
        LightningModule,
        GANDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "omegaconf+"},
        seed_everything_default=0,
        args=args,
        run=run,
        auto_configure_optimizers=False,
    )


def main() -> None:
    """Entry point of the ``mgan`` console script."""
    build_cli()


if __name__ == "__main__":
    main()
