"""Benchmarks of mgan-lightning: the harness and its protocols, run as modules
(``python -m benchmarks.<name>``)."""
