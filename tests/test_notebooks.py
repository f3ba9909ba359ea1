"""Every notebook in ``notebooks/`` runs top to bottom on the CPU (nbclient, a fresh kernel,
in a temporary folder), and the committed copies carry the outputs of a real run: in order,
without errors, warnings or paths of the machine that ran them."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_promised_notebooks_exist() -> None:
    names = {path.name for path in NOTEBOOKS}
    assert {"01_quickstart.ipynb", "02_custom_method.ipynb", "03_mode_collapse.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_has_outputs(path: Path) -> None:
    """Committed after a real run: every code cell ran, in order, and none failed."""
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    errors = [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert not errors, errors[0]


# What a committed output must not show: a path of the machine that ran it, and the noise that
# a reader cannot act on (warnings, Lightning's tips, LightningCLI's dump of the kernel's argv).
ABSOLUTE_PATH = re.compile(r"(?<![\w.])(/(home|root|tmp|work|Users|private|var|opt)/|[A-Z]:\\)")
NOISE = ("Warning", "warning:", "Tip:", "sys.argv", "IProgress")


def outputs_text(notebook) -> str:
    """Every output of every code cell as text (streams, results, errors)."""
    parts = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.outputs:
            parts.append(output.get("text", ""))
            parts.append(str(output.get("data", {}).get("text/plain", "")))
            parts.extend(output.get("traceback", []))
    return "\n".join(parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_outputs_are_clean(path: Path) -> None:
    """No absolute path and no warning in what a reader of the committed notebook sees."""
    text = outputs_text(nbformat.read(path, as_version=4))
    assert not ABSOLUTE_PATH.search(text), ABSOLUTE_PATH.search(text)
    found = [word for word in NOISE if word in text]
    assert not found, found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_each_notebook_says_how_to_open_it_in_colab(path: Path) -> None:
    first = nbformat.read(path, as_version=4).cells[0]
    assert first.cell_type == "markdown" and "Colab" in first.source


# The run's length: each notebook sets ``STEPS = N`` (generator steps) in one line. The
# committed outputs are of the full length; CI runs every cell at this shorter length, which
# exercises the same code (the notebooks' own checks compare numbers within one run).
STEPS_LINE = re.compile(r"^STEPS = \d+", re.MULTILINE)
CI_STEPS = 400


def shortened(notebook, steps: int = CI_STEPS):
    """``notebook`` with its ``STEPS = N`` line set to ``steps``; fails if no cell has one."""
    found = 0
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.source, n = STEPS_LINE.subn(f"STEPS = {steps}", cell.source)
            found += n
    assert found == 1, f"expected one 'STEPS = N' line, found {found}"
    return notebook


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_each_notebook_sets_its_length_in_one_line(path: Path) -> None:
    shortened(nbformat.read(path, as_version=4))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path, monkeypatch) -> None:
    # One thread per kernel: on a small shared CPU, torch's default thread pool beside other
    # processes made a 70-second notebook take over ten minutes.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = shortened(nbformat.read(path, as_version=4))
    client = NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on a failure
    text = outputs_text(notebook)
    assert "Traceback" not in text
    # A fresh run is as clean as the committed copy must be, so it can be committed as it is.
    assert not ABSOLUTE_PATH.search(text), ABSOLUTE_PATH.search(text)
    assert not [word for word in NOISE if word in text]
