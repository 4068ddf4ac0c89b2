"""OpenMM integration: forces for a Topology from an exported model, and pre-flight checks.

Three backends share one model object:
- ``"torch"``: ``openmmtorch.TorchForce`` running the TorchScript model (energy and forces; runs
  in C++ without Python).  ``TorchForce("model.pt")`` as users write it works; :func:`torch_force`
  wraps the model in :class:`ForcesOutput` (``setOutputsForces``), which is faster;
- ``"python"``: OpenMM's built-in ``openmm.PythonForce`` calling the model's ``properties`` once per
  force evaluation, which also yields the dipole and polarizability of the same evaluation;
- ``"tap"``: TorchForce with the model's feature tap: each evaluation leaves its features in shared
  memory, from which the dipole and polarizability follow for many steps in one call.
"""

import torch  # noqa: F401  (must come before openmmtorch, or libnvrtc.so.12 is not found)

from .backends import (
    FeatureTap,
    ForcesOutput,
    PropertiesForce,
    check_box,
    check_topology,
    create_force,
    create_system,
    import_openmmtorch,
    model_metadata,
    torch_force,
)
from .preflight import check_positions
from .serialization import deserialize_system, serialize_system

__all__ = [
    "FeatureTap",
    "ForcesOutput",
    "PropertiesForce",
    "check_box",
    "check_positions",
    "check_topology",
    "create_force",
    "create_system",
    "deserialize_system",
    "serialize_system",
    "import_openmmtorch",
    "model_metadata",
    "torch_force",
]
