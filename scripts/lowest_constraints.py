"""Print pip constraints that pin every runtime dependency of pyproject.toml to its lowest
declared version (``lightning>=2.6,<2.7`` -> ``lightning==2.6``), for the CI run that tests
the bottom of the declared ranges (``.ci/run``)::

    python scripts/lowest_constraints.py > lowest.txt
    python scripts/lowest_constraints.py --requirements > requirements.txt
    pip install -c lowest.txt -r requirements.txt && pip install --no-deps -e .

Only ``[project].dependencies`` are pinned (the test extra takes what pip picks); a
dependency without a lower bound is an error, as its lowest version would be untested.
``--requirements`` prints the dependencies and the test extra as they are declared, so the
environment can be installed without building the package (which another install of the
same checkout may be building at that moment).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


def lowest_pins(requirements: list[str]) -> list[str]:
    """``name[extras]>=X,<Y`` -> ``name==X`` for each requirement (extras dropped: pip
    constraints cannot carry them)."""
    pins = []
    for requirement in requirements:
        spec = requirement.split(";", 1)[0]
        match = _REQUIREMENT.match(spec)
        if not match:
            raise ValueError(f"cannot read the requirement {requirement!r}")
        name, _, versions = match.groups()
        lower = re.search(r">=\s*([^,\s]+)", versions)
        if lower is None:
            raise ValueError(f"{requirement!r} declares no lower bound (>=X) to test")
        pins.append(f"{name}=={lower.group(1)}")
    return pins


def main(argv: list[str]) -> None:
    requirements = "--requirements" in argv
    paths = [a for a in argv[1:] if a != "--requirements"]
    pyproject = Path(paths[0]) if paths else Path(__file__).parents[1] / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text())["project"]
    if requirements:
        lines = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    else:
        lines = lowest_pins(project["dependencies"])
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv)
