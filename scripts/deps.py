"""Prints distcore's Python dependencies (and the extras named) from pyproject.toml, one per line.

`make install` feeds them to pip so the venv gets the deps without building the extension twice.
"""

import sys
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
deps = list(project["dependencies"])
for extra in sys.argv[1:]:
    deps += project["optional-dependencies"][extra]
print("\n".join(deps))
