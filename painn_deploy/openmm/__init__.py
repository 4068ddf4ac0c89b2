"""OpenMM integration: forces for a Topology from an exported model, and structure checks.

- ``backend="torch"``: ``openmmtorch.TorchForce`` (C++, no Python in the step; the model returns its
  forces; CUDA graphs on request).  Plain ``TorchForce("model.pt")`` works too.
- ``backend="python"``: ``openmm.PythonForce`` calling the model from Python on its device, keeping
  each evaluation's features for the recording heads.
- OpenMM-ML: ``openmmml.MLPotential("painn", model="model.pt")`` (see :mod:`.mlpotential`).
"""

import torch  # noqa: F401  (must come before openmmtorch, or libnvrtc.so.12 is not found)

try:  # before .mlpotential: importing openmmml loads its potentials, .mlpotential's among them (no import cycle)
    import openmmml
except ImportError:  # a dependency, but the forces here do not need it
    openmmml = None

from .forces import (
    ModelForce,
    as_artefact,
    create_force,
    create_system,
    import_openmmtorch,
    topology_atomic_numbers,
    topology_box_nm,
    torch_force,
)
from .preflight import check_positions
from .recorder import FeatureRing
from .serialization import deserialize_system, serialize_system

if openmmml is not None:  # MLPotential("painn", model=...)
    from .mlpotential import PaiNNPotentialImpl, PaiNNPotentialImplFactory

__all__ = [
    "FeatureRing",
    "ModelForce",
    "as_artefact",
    "check_positions",
    "create_force",
    "create_system",
    "deserialize_system",
    "import_openmmtorch",
    "serialize_system",
    "topology_atomic_numbers",
    "topology_box_nm",
    "torch_force",
]
if openmmml is not None:
    __all__ += ["PaiNNPotentialImpl", "PaiNNPotentialImplFactory"]
