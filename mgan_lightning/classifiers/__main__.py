"""``python -m mgan_lightning.classifiers CHECKPOINT [OUT]``: export slim classifier weights."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mgan_lightning.classifiers.digit import DEFAULT_DIGIT_WEIGHTS, export_weights


def main(argv: Sequence[str] | None = None) -> None:
    """Export slim classifier weights from a Lightning checkpoint (the module's command line)."""
    parser = argparse.ArgumentParser(
        prog="python -m mgan_lightning.classifiers",
        description="Write DigitClassifier weights (hyperparameters + state_dict) from a "
        "Lightning checkpoint.",
    )
    parser.add_argument("checkpoint", help="Lightning checkpoint of a DigitClassifier")
    parser.add_argument("out", nargs="?", default=str(DEFAULT_DIGIT_WEIGHTS))
    args = parser.parse_args(argv)
    out = export_weights(args.checkpoint, args.out)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
