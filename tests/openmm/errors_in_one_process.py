"""Every error the deployed modules raise, met again and again in one process (run by test_forces.py).

In torch 2.9 an exception raised from code that TorchScript inlined into the method that runs can crash the
process once an earlier frozen copy of the module is gone (every TorchForce Context freezes a copy of its own).
Prints one line per error met; the test counts them and checks that the process ends normally."""

import io
import sys
from pathlib import Path

import numpy as np
import torch  # (before openmm and openmmtorch)

import openmm  # isort: skip
from openmm import app, unit  # isort: skip
from openmmml import MLPotential  # isort: skip

from painn_deploy.deploy import export, load
from painn_deploy.deploy.export import build_forcefield
from painn_deploy.errors import PainnDeployError, from_torchscript
from painn_deploy.model.checkpoint import load_checkpoint
from painn_deploy.openmm import create_system
from painn_deploy.resources import BUNDLED_CHECKPOINT, BUNDLED_MODEL, STRUCTURES


def met(route, exc):
    typed = exc if isinstance(exc, PainnDeployError) else from_torchscript(exc)
    print("MET", route, type(typed).__name__ if typed is not None else "untyped: " + str(exc)[-300:], flush=True)


def context(system, positions, box=None):
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference"))
    if box is not None:
        ctx.setPeriodicBoxVectors(*box)
    ctx.setPositions(positions)
    return ctx


def frozen_copy(module):
    """The module as openmm-torch runs it: saved, loaded and frozen (a new copy each time)."""
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    buffer.seek(0)
    return torch.jit.freeze(torch.jit.load(buffer).eval())


work = Path(sys.argv[1])
pdb_text = STRUCTURES["ethanol"].read_text()
positions = app.PDBFile(str(STRUCTURES["ethanol"])).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
boxed = work / "boxed.pdb"
boxed.write_text("CRYST1   30.000   30.000   30.000  90.00  90.00  90.00 P 1           1\n" + pdb_text)
periodic = work / "periodic.pt"
export(str(BUNDLED_CHECKPOINT), str(periodic), pdb=str(boxed))
topology = app.PDBFile(str(boxed)).topology
small_box = np.eye(3) * 0.8  # nm, narrower than twice the cutoff

# a static list with room for the pairs of the molecule stretched to three times its size, met by the molecule
z = [atom.element.atomic_number for atom in topology.atoms()]
box_nm = np.eye(3) * 3.0
centre = positions.mean(0)
static = torch.jit.script(
    build_forcefield(load_checkpoint(BUNDLED_CHECKPOINT), z, True, "static", "float64", pair_capacity=24,
                     positions_nm=centre + 3.0 * (positions - centre), box_nm=box_nm)
)  # fmt: skip

cell = work / "cell.pt"
export(str(BUNDLED_CHECKPOINT), str(cell), neighbor_mode="cell_list")
blown_up, at_infinity = positions.copy(), positions + 1.5  # (in the middle of the 3 nm box)
blown_up[0, 0], at_infinity[0, 0] = np.nan, np.inf

model = load(periodic)
mm_positions = np.mod(positions + [2.95, 1.5, 1.5], 3.0)  # ML atoms wrapped across the x = 0 face
straddling, straddling_python = (
    MLPotential("painn", model=BUNDLED_MODEL, backend=backend).createSystem(app.PDBFile(str(boxed)).topology)
    for backend in ("torch", "python")
)
for round in range(3):
    print("ROUND", round, float(model.properties(positions, box_nm)["energy"]), flush=True)
    try:
        context(create_system(periodic, topology)[0], positions, small_box).getState(getEnergy=True)
    except Exception as exc:
        met("TorchForce", exc)
    try:
        model.properties(positions, small_box)
    except Exception as exc:
        met("Model.properties", exc)
    try:
        model.module.energy_and_forces(torch.tensor(positions[:5]), torch.tensor(box_nm))
    except Exception as exc:
        met("module.energy_and_forces", exc)
    try:
        model.properties(positions, [3.0, 3.0, 3.0])  # (box lengths, not vectors)
    except Exception as exc:
        met("box lengths", exc)
    try:
        frozen_copy(static)(torch.tensor(positions), torch.tensor(box_nm))
    except Exception as exc:
        met("static list", exc)
    try:
        context(straddling, mm_positions).getState(getEnergy=True)
    except Exception as exc:
        met("OpenMM-ML", exc)
    energy = context(straddling, at_infinity).getState(getEnergy=True).getPotentialEnergy()
    print("NAN OpenMM-ML inf torch", np.isnan(energy.value_in_unit(unit.kilojoule_per_mole)), flush=True)
    try:  # (the python backend stops at a NaN energy, which OpenMM's GPU platforms would not pass on as NaN)
        context(straddling_python, at_infinity).getState(getEnergy=True)
    except Exception as exc:
        met("OpenMM-ML python at infinity " + ("(NaN positions named)" if "NaN or infinite positions" in str(exc)
                                                else str(exc)[-200:]), exc)  # fmt: skip
    energy = context(create_system(cell, app.PDBFile(str(STRUCTURES["ethanol"])).topology)[0], blown_up).getState(
        getEnergy=True
    )
    print("NAN cell list", np.isnan(energy.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)), flush=True)
print("DONE", flush=True)
