#!/usr/bin/env bash
# Install the package with its test extra into the active Python, then lint, type-check,
# check the import layers and run every test. This is the README's test command and what .ci/run executes.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".[test]"
ruff check .
ruff format --check .
mypy
lint-imports  # the layers contract in pyproject.toml: core <- methods <- callbacks <- cli
python -m pytest -q
