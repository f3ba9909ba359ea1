"""Auxiliary classifiers used by the evaluation metrics."""

from mgan_lightning.classifiers.digit import (
    DEFAULT_DIGIT_WEIGHTS,
    DigitClassifier,
    export_weights,
    load_digit_classifier,
)

__all__ = ["DEFAULT_DIGIT_WEIGHTS", "DigitClassifier", "export_weights", "load_digit_classifier"]
