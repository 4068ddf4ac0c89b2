"""The pieces a run is built from: the model to use, the OpenMM platform and the integrator, and the
topology that trajectories of replicas and beads are written with."""

from pathlib import Path
from typing import Optional, Sequence

import openmm
from openmm import unit

from ..deploy import Artefact, export
from ..deploy import metadata as md
from ..elements import formula
from ..errors import CheckpointError, InputError
from ..files import MODEL_FILE_FIX, file_sha256, is_checkpoint, require_file
from ..openmm.forces import quiet_import
from ..resources import BUNDLED_CHECKPOINT, BUNDLED_MODEL
from .config import SimulationConfig
from .rpmd import Layout, is_ring_polymer_integrator, ring_polymer_integrator, ring_polymer_thermostat_off


def resolve_model(
    cfg: SimulationConfig,
    output: Path,
    atomic_numbers,
    ml_pdb: Optional[Path] = None,
    residues: Sequence[str] = (),
    started_model: Optional[Path] = None,
) -> Path:
    """The exported model to use: ``cfg.model`` (.pt), a checkpoint exported on the fly for the
    structure (or for ``ml_pdb``, the ML molecule of a solvated one), or the bundled ethanol model when
    the structure (or the ML molecule) matches it.  ``residues``: the structure's residue names (for the hint
    that a solvated structure needs --ml-residues); ``started_model``: on a resume, the model the run started with
    (:meth:`RunDirectory.started_model`)."""
    if cfg.model is None:
        if BUNDLED_MODEL.is_file() and Artefact(BUNDLED_MODEL).atomic_numbers == list(atomic_numbers):
            return BUNDLED_MODEL
        names = list(dict.fromkeys(residues))
        solvated = (
            f" A solute in solvent? Give --ml-residues with the solute's residue name (this structure has "
            f"{', '.join(names[:6])}{', ...' if len(names) > 6 else ''})."
            if len(names) > 1 and not cfg.ml_residues
            else ""
        )
        copies = len(atomic_numbers) // 9
        several = (
            f" If these are {copies} ethanol molecules, the bundled model's checkpoint takes them (--model "
            f"{BUNDLED_CHECKPOINT}), but it was trained on one isolated molecule: the forces between molecules are "
            "extrapolated."
            if copies > 1 and formula(atomic_numbers) == f"C{2 * copies}H{6 * copies}O{copies}"
            else ""
        )
        raise InputError(
            f"no --model given and the structure ({formula(atomic_numbers)}, {len(atomic_numbers)} atoms) is not the "
            f"bundled ethanol model's molecule (C2H6O in the atom order of painn_deploy/resources/ethanol.pdb); "
            f"pass --model MODEL.pt (from painn-export) or a painn-train checkpoint.{several}{solvated}"
        )
    path = require_file(cfg.model, "model", MODEL_FILE_FIX)
    if is_checkpoint(path):
        exported = output / "model.pt"
        if cfg.resume and not exported.is_file() and started_model is not None:
            if started_model.resolve() != exported.resolve():  # (the run used another model)
                raise InputError(
                    f"--resume with the checkpoint {path}: the run started with the model {started_model}; resume "
                    "with it (leave --model out: its run.json names it)"
                )
            raise InputError(
                f"--resume with the checkpoint {path}: the run's own export of it, {exported}, is not there (a run "
                "continues with the very model it started with, and no two exports are alike): restore it, or start "
                "again with --overwrite"
            )
        if cfg.resume and exported.is_file():  # the run's own export: resume with it as it is, never export again
            try:
                exported_from = Artefact(exported).metadata.get(md.KEY_CHECKPOINT_SHA256)
            except CheckpointError as exc:
                raise CheckpointError(
                    f"--resume: the run's model {exported} cannot be used ({exc}); the run cannot be continued with "
                    "another export (exports differ bit for bit): start it again with --overwrite"
                ) from None
            if exported_from != file_sha256(path):
                raise InputError(
                    f"--resume: the run's model {exported} was exported from another checkpoint than {path} (sha256 "
                    f"{str(exported_from)[:12]}...): resume with the checkpoint the run started with, or leave --model "
                    "out to take the one its run.json names"
                )
            return exported
        export(path, exported, pdb=str(ml_pdb or cfg.structure))
        return exported
    return path


def choose_platform(name: str) -> openmm.Platform:
    """The named OpenMM platform, or the fastest one available (``auto``: CUDA, then CPU)."""
    available = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if name.lower() == "auto":
        for candidate in ("CUDA", "CPU", "Reference"):
            if candidate in available:
                return openmm.Platform.getPlatformByName(candidate)
    matching = [p for p in available if p.lower() == name.lower()]  # (OpenMM's names are case-sensitive)
    if not matching:
        raise InputError(f"OpenMM platform {name!r} is not available here (available: {', '.join(available)})")
    return openmm.Platform.getPlatformByName(matching[0])


def import_openmmtools():
    """openmmtools.integrators, quietly (see :func:`quiet_import`)."""
    return quiet_import("openmmtools.integrators")


def build_integrator(cfg: SimulationConfig, layout: Layout):
    """The run's integrator.  ``--integrator verlet`` gets the thermostatted one too (BAOAB, the PILE ring-polymer
    step or OpenMM's RPMDIntegrator): its equilibration runs with the thermostat, and :func:`stop_thermostat` then
    makes the same integrator conserve the energy (the ring-polymer Hamiltonian), so that a fresh run and a resumed
    one step with one integrator."""
    temperature = cfg.temperature_K * unit.kelvin
    friction = cfg.friction_per_ps / unit.picosecond
    dt = cfg.timestep_fs * unit.femtosecond
    if cfg.beads > 1 and cfg.rpmd_integrator == "openmm":
        integrator = openmm.RPMDIntegrator(cfg.beads, temperature, friction, dt)
    elif cfg.beads > 1:
        integrator = ring_polymer_integrator(layout, cfg.temperature_K, cfg.friction_per_ps, cfg.timestep_fs)
    elif cfg.integrator == "nose-hoover":
        integrator = openmm.NoseHooverIntegrator(temperature, friction, dt)
    else:
        integrator = import_openmmtools().BAOABIntegrator(temperature, friction, dt)
    if not isinstance(integrator, openmm.NoseHooverIntegrator):  # deterministic, and the only one without a seed
        integrator.setRandomNumberSeed(cfg.seed + 1)
    return integrator


def stop_thermostat(integrator) -> None:
    """Turn the thermostat of a :func:`build_integrator` integrator off: BAOAB's O step (v = a v + b sigma
    gaussian) with a = 1, b = 0 leaves B A A B, velocity Verlet; the ring-polymer integrators then conserve H_P."""
    if isinstance(integrator, openmm.RPMDIntegrator):
        integrator.setApplyThermostat(False)
    elif is_ring_polymer_integrator(integrator):
        ring_polymer_thermostat_off(integrator)
    else:
        integrator.setGlobalVariableByName("a", 1.0)
        integrator.setGlobalVariableByName("b", 0.0)


def replicated_topology(topology, copies: int):
    """A topology of ``copies`` copies of ``topology`` (one chain per copy), for trajectories of
    replicas and beads."""
    if copies == 1:
        return topology
    from openmm import app

    out = app.Topology()
    for _ in range(copies):
        chain = out.addChain()
        for residue in topology.residues():
            r = out.addResidue(residue.name, chain)
            for atom in residue.atoms():
                out.addAtom(atom.name, atom.element, r)
    return out
