"""The deployable model: scripted for TorchForce, eager for PythonForce; metadata; export."""

from ..structures import read_pdb
from .export import build_forcefield, export, load, load_metadata
from .module import ForcesOutput, PaiNNForceField

__all__ = ["ForcesOutput", "PaiNNForceField", "build_forcefield", "export", "load", "load_metadata", "read_pdb"]
