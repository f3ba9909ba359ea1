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
# Two workers, each test file on one (--dist loadfile keeps a file's order): the suite is
# mostly single-threaded process start-up and small models, so a 2-core machine runs it in
# about 60% of the serial time. The 15 slowest tests are printed to keep CI within budget.
python -m pytest -q -n 2 --dist loadfile --durations=15
