"""MkDocs hook: serve the pictures of ``benchmarks/results/`` under ``results/`` in the site.

The result pages include the Markdown tables of ``benchmarks/results/`` (pymdownx.snippets)
rather than copies, and those tables link their pictures by bare file name; serving the PNGs
beside the pages keeps those links working, without a second copy of any picture in
``docs/``.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files


def on_files(files: Files, config) -> Files:
    """Add every ``benchmarks/results/*.png`` to the site as ``results/<name>.png``."""
    results = Path(config["config_file_path"]).parent / "benchmarks" / "results"
    for picture in sorted(results.glob("*.png")):
        files.append(File.generated(config, f"results/{picture.name}", abs_src_path=str(picture)))
    return files
