"""Versions of the software that produced a file (recorded in checkpoints and artefacts)."""

from importlib import metadata


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def collect() -> dict:
    return {name: _version(name) for name in ("painn-deploy", "torch", "openmm", "openmmtorch", "lightning", "numpy")}
