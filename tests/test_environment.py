"""environment.yml (the conda route of README's install) holds every dependency that pyproject.toml's pip route
installs, at the same pinned versions: `pip install --no-deps -e .` adds nothing to it."""

import re
from pathlib import Path

import pytest
import yaml

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch", "openmmtorch": "openmm-torch"}


def _name_and_version(spec: str):
    name, version = re.match(r"\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(?:[=<>!~]=?\s*([^;\s]*))?", spec).groups()
    return name.lower(), version


def test_environment_yml_has_every_dependency_at_its_pinned_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    conda, pip = {}, {}
    for entry in yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]:
        if isinstance(entry, dict):
            pip.update(_name_and_version(s.replace("==", "=")) for s in entry["pip"])
        else:
            conda.update([_name_and_version(entry)])
    for spec in wanted:
        name, version = _name_and_version(spec)
        where = pip if name in pip else conda
        name = name if name in pip else CONDA_NAMES.get(name, name)
        assert name in where, f"{spec} of pyproject.toml is missing from environment.yml"
        if "==" in spec and where[name]:
            pinned = version.rstrip(".*")
            assert where[name].rstrip(".*").startswith(pinned) or pinned.startswith(where[name].rstrip(".*")), (
                spec,
                where[name],
            )
