#!/usr/bin/env bash
# Install the package with its test and docs extras into the active Python, then lint,
# type-check, check the import layers, build the documentation site and run every test.
# This is the README's test command and what .ci/run executes.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".[test,docs]"
ruff check .
ruff format --check .
mypy
lint-imports  # the layers contract in pyproject.toml: core <- methods <- callbacks <- cli
# The documentation site: a broken link, anchor or API reference fails the build (strict).
site=$(mktemp -d)
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet --site-dir "$site"
rm -rf "$site"
python -m pytest -q --durations=15  # the slowest tests, to keep CI within its budget
