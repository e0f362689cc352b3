"""Print the requirements pyproject.toml declares (the run-time ones, plus any extras
named on the command line), one per line, for `pip install`: the Makefile installs
kanban's dependencies into the venv without building kanban itself."""
import sys
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
wanted = list(project["dependencies"])
for extra in sys.argv[1:]:
    wanted += project["optional-dependencies"][extra]
print("\n".join(wanted))
