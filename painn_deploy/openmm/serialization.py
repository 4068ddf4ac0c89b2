"""Reading serialized Systems that contain a TorchForce.

openmm-torch 1.5 (PyPI wheels with torch 2.9) writes the model into the XML (``encodedFileContents``,
hex) but its deserializer crashes the process (segmentation fault), even for a trivial model.
:func:`deserialize_system` reads such XML safely: it decodes each TorchForce's model to a file,
lets OpenMM deserialize everything else, and rebuilds the TorchForces in their original order
with their settings (periodicity, force group, global parameters, properties).
"""

import hashlib
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

import openmm

from ..errors import InputError


def serialize_system(system: "openmm.System") -> str:
    """XML of a System; TorchForce models are embedded (openmm-torch writes their contents)."""
    return openmm.XmlSerializer.serialize(system)


def deserialize_system(xml: str, model_dir: Optional[str] = None) -> "openmm.System":
    """A System from XML written by :func:`serialize_system` / ``XmlSerializer.serialize``.

    Embedded TorchScript models are written to ``model_dir`` (default: a temporary folder),
    named by their SHA-256, and loaded from there.
    """
    from .forces import import_openmmtorch

    root = ET.fromstring(xml)
    forces_node = root.find("Forces")
    if forces_node is None:
        raise InputError("the XML is not a serialized openmm.System (no <Forces>)")
    folder = Path(model_dir or tempfile.mkdtemp(prefix="painn_models_"))
    folder.mkdir(parents=True, exist_ok=True)
    torch_nodes = {}
    for index, node in enumerate(list(forces_node)):
        if node.get("type") == "TorchForce":
            torch_nodes[index] = node
            forces_node.remove(node)
    system = openmm.XmlSerializer.deserialize(ET.tostring(root, encoding="unicode"))
    if not torch_nodes:
        return system
    openmmtorch = import_openmmtorch()
    first = min(torch_nodes)
    others = [openmm.XmlSerializer.clone(system.getForce(k)) for k in range(first, system.getNumForces())]
    for k in reversed(range(first, system.getNumForces())):
        system.removeForce(k)
    total = system.getNumForces() + len(others) + len(torch_nodes)
    for index in range(first, total):
        if index in torch_nodes:
            system.addForce(_torch_force(openmmtorch, torch_nodes[index], folder))
        else:
            system.addForce(others.pop(0))
    return system


def _torch_force(openmmtorch, node, folder: Path):
    encoded = node.get("encodedFileContents")
    if not encoded:
        path = node.get("file")
        if not path or not Path(path).is_file():
            raise InputError(f"the TorchForce in the XML has no embedded model and its file {path!r} is missing")
    else:
        content = bytes.fromhex(encoded)
        path = folder / f"{hashlib.sha256(content).hexdigest()[:16]}.pt"
        if not path.exists():
            path.write_bytes(content)
    force = openmmtorch.TorchForce(str(path))
    force.setUsesPeriodicBoundaryConditions(node.get("usesPeriodic") == "1")
    force.setOutputsForces(node.get("outputsForces") == "1")
    force.setForceGroup(int(node.get("forceGroup", "0")))
    for p in node.iterfind("GlobalParameters/Parameter"):
        force.addGlobalParameter(p.get("name"), float(p.get("default")))
    for p in node.iterfind("ParameterDerivatives/Parameter"):
        force.addEnergyParameterDerivative(p.get("name"))
    for p in node.iterfind("Properties/Property"):
        force.setProperty(p.get("name"), p.get("value"))
    return force
