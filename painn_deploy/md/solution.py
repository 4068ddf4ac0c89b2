"""A solute in solvent for painn-simulate: the ML atoms chosen by residue name, the rest from an OpenMM
force field, joined by OpenMM-ML's mechanical embedding (``MLPotential("painn").createMixedSystem``).

The ML atoms keep their force-field charges and Lennard-Jones parameters for their interactions with the
solvent; their bonded terms and the nonbonded terms among themselves are removed and the model replaces
them.  The MM region uses OpenMM's own forces (PME) and platforms."""

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import openmm
from openmm import app, unit

from ..errors import InputError
from ..openmm.forces import tie_molecules
from ..solvation import check_templates, forcefield

__all__ = ["MixedSystem", "add_barostat", "mixed_system", "ml_atoms_by_residue"]

BAROSTAT_FREQUENCY = 25  # steps between Monte Carlo volume moves
BAROSTAT_SHRINK = 0.1  # the part of the box width --mm-cutoff leaves free under a barostat


@dataclass
class MixedSystem:
    system: "openmm.System"
    adapter: object  # the PythonForce's ModelForce (with the feature ring), or None for TorchForce
    ml_atoms: List[int]


def ml_atoms_by_residue(topology: "app.Topology", residue_names: Sequence[str], where: str) -> List[int]:
    """Indices of the atoms in residues named ``residue_names``; a name that matches no residue is an error
    that lists the structure's residue names."""
    names = [n.strip() for n in residue_names if n.strip()]
    present: dict = {}
    for residue in topology.residues():
        present[residue.name] = present.get(residue.name, 0) + 1
    missing = [n for n in names if n not in present]
    listing = ", ".join(f"{name} ({count})" for name, count in sorted(present.items()))
    if not names:
        raise InputError(f"--ml-residues names no residue; give the ML residues' names ({where} has {listing})")
    if missing:
        raise InputError(
            f"--ml-residues {','.join(missing)}: no residue of {where} has that name; its residues are {listing}"
        )
    return [atom.index for atom in topology.atoms() if atom.residue.name in names]


def add_barostat(
    system: "openmm.System", molecules: Sequence[Sequence[int]], pressure_bar: float, temperature_K: float
) -> int:
    """Add a Monte Carlo barostat that moves each of ``molecules`` (lists of particle indices, tied into OpenMM
    molecules by :func:`~painn_deploy.openmm.forces.tie_molecules`) as a rigid body; returns its frequency
    (steps).  Particles in no listed molecule (atoms of a covalent network that fills the box) are moved one by
    one."""
    tie_molecules(system, molecules)
    system.addForce(openmm.MonteCarloBarostat(pressure_bar * unit.bar, temperature_K * unit.kelvin, BAROSTAT_FREQUENCY))
    return BAROSTAT_FREQUENCY


def mixed_system(
    topology: "app.Topology",
    model_path: str,
    ml_atoms: Sequence[int],
    mm_forcefield: str,
    forcefield_files: Sequence[str],
    backend: str,
    ring_capacity: int,
    device: str,
    cuda_graphs: bool,
    cutoff_nm: float,
    where: str,
    barostat: bool = False,
) -> MixedSystem:
    from openmmml import MLPotential

    water = mm_forcefield.split("/")[-1]  # (one of config's amber14/WATER choices)
    ff = forcefield(forcefield_files, water)
    check_templates(ff, topology, where)
    periodic = topology.getPeriodicBoxVectors() is not None
    if periodic:
        box = np.asarray(topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer))
        width = float(min(np.diag(box)))
        # PME: the cutoff may be at most half the narrowest box width, which a barostat shrinks (a solvated box by a
        # few percent as its loosely packed water settles)
        limit = math.floor(500 * width * (1 - BAROSTAT_SHRINK if barostat else 1)) / 1000  # (nm, rounded down)
        if cutoff_nm > limit:
            under = f" less {BAROSTAT_SHRINK:.0%} for the barostat's shrinking" if barostat else ""
            raise InputError(
                f"--mm-cutoff {cutoff_nm:g} nm is more than half the box's narrowest width ({width:.3g} nm) of "
                f"{where}{under}: lower --mm-cutoff to at most {limit:g} nm, or solvate with more padding"
            )
    mm_system = ff.createSystem(
        topology,
        nonbondedMethod=app.PME if periodic else app.NoCutoff,
        nonbondedCutoff=cutoff_nm * unit.nanometer,
        constraints=app.HBonds,  # rigid water and X-H bonds of the MM region; the ML atoms' constraints are removed
        rigidWater=True,
    )
    options = dict(backend=backend, ringCapacity=ring_capacity, cudaGraphs=cuda_graphs)
    if backend == "python":
        options["device"] = device
    potential = MLPotential("painn", model=str(model_path), **options)
    system = potential.createMixedSystem(topology, mm_system, list(ml_atoms), forceGroup=1)
    impl = potential._impl  # (OpenMM-ML keeps the potential's implementation here)
    adapter: Optional[object] = impl.computations[-1].adapter if backend == "python" else None
    return MixedSystem(system, adapter, list(ml_atoms))
