"""The deployable model: the module scripted into the artefact, the artefact (opened once), export."""

from .artefact import Artefact, Model, load, load_metadata
from .calculator import PaiNNCalculator
from .export import build_forcefield, export
from .module import ForcesOutput, PaiNNForceField

__all__ = [
    "Artefact",
    "ForcesOutput",
    "Model",
    "PaiNNCalculator",
    "PaiNNForceField",
    "build_forcefield",
    "export",
    "load",
    "load_metadata",
]
