"""OpenMM integration: forces for a Topology from an exported model, and structure checks.

- ``backend="torch"``: ``openmmtorch.TorchForce`` (C++, no Python in the step; the model returns its
  forces; CUDA graphs on request).  Plain ``TorchForce("model.pt")`` works too.
- ``backend="python"``: ``openmm.PythonForce`` calling the model from Python on its device, keeping
  each evaluation's features for the recording heads.
- OpenMM-ML: ``openmmml.MLPotential("painn", model="model.pt")`` (:mod:`.mlpotential`, imported by
  OpenMM-ML through its entry point, not here: the forces do not need OpenMM-ML).
"""

# isort: off
import torch  # noqa: F401  (must come before openmmtorch, or libnvrtc.so.12 is not found)

# OpenMM-ML imports its potentials' entry points (.mlpotential's among them) when it is imported; importing it
# here, before .mlpotential, lets ``import painn_deploy.openmm.mlpotential`` come first without an import cycle
import openmmml  # noqa: F401
# isort: on

from ..structures import check_positions
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
from .recorder import FeatureRing
from .serialization import deserialize_system, serialize_system

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
