"""Print the project's requirements from pyproject.toml, one per line, for `pip install -r`.

`python requirements.py` gives the base dependencies; `python requirements.py embedded`
adds that extra's. The images install dependencies in a layer of their own, before any
code is copied, so a code change rebuilds only the last layers.
"""

import sys
import tomllib
from pathlib import Path

project = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))["project"]
requirements = list(project["dependencies"])
for extra in sys.argv[1:]:
    requirements += project["optional-dependencies"][extra]
print("\n".join(requirements))
