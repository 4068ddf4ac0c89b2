"""Export a checkpoint to a self-contained TorchScript file for ``openmmtorch.TorchForce``."""

import io
import json
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from .. import elements, neighbors, units, versions
from ..errors import CheckpointError, InputError, SimulationWarning
from ..files import atomic_write, check_writable, file_sha256
from ..model.checkpoint import load_checkpoint, potential_from_record
from ..model.strategy import choose_strategy
from ..structures import check_indices, find_molecules, load_pdb, molecule_index, random_rotation
from . import metadata as md
from .artefact import check_box_width
from .module import ForcesOutput, PaiNNForceField

# "auto": all pairs up to this many atoms, else the cell list; set below the time crossover of
# benchmarks/results/scaling.md, as the dense pair tensors grow as N^2 times the batch (beads, replicas)
ALL_PAIRS_MAX_ATOMS = 30
FIXED_SHAPE_MODES = ("all_pairs", "static")  # no shape depends on the positions (CUDA graphs, torch.export)
DTYPES = {"float32": torch.float32, "float64": torch.float64}
BATCH_CHECK_MAX_ATOMS = 1000  # systems batched in practice (molecules: beads, replicas) get the batch check


def choose_neighbor_mode(n_atoms: int, neighbor_mode: str) -> str:
    if neighbor_mode == "auto":
        return "all_pairs" if n_atoms <= ALL_PAIRS_MAX_ATOMS else "cell_list"
    return neighbor_mode


def build_forcefield(
    record: dict,
    atomic_numbers: Optional[Sequence[int]] = None,
    periodic: bool = False,
    neighbor_mode: str = "auto",
    dtype: str = "float32",
    pair_capacity: int = 0,
    positions_nm=None,
    box_nm=None,
    atoms: Optional[Sequence[int]] = None,
    molecules: Optional[Sequence[int]] = None,
) -> PaiNNForceField:
    """The eager deployable module for a checkpoint record (default: the training molecule).
    The static neighbour list takes its fixed grid from ``positions_nm``/``box_nm`` and, when
    ``pair_capacity`` is 0, 1.3 times the pairs of that configuration.  ``molecules``: each model atom's
    molecule (:class:`PaiNNForceField`; default: one molecule)."""
    if dtype not in DTYPES:
        raise InputError(f"dtype must be float32 or float64, not {dtype!r}")
    potential = potential_from_record(record)
    z = list(atomic_numbers) if atomic_numbers is not None else list(record["atomic_numbers"])
    if molecules is None and atoms is None and z == list(record["atomic_numbers"]):
        molecules = record.get("molecules")  # the training molecule's, as painn-train found them
    n_particles = len(z)
    if atoms is not None:  # the model's atoms among the system's particles (ML/MM)
        atoms = check_indices(atoms, n_particles, "the system")
        z = [z[a] for a in atoms]
        if positions_nm is not None:
            positions_nm = np.asarray(positions_nm)[atoms]
    elements.check_known(z, potential.config.elements, "the system to export")
    mode = choose_neighbor_mode(len(z), neighbor_mode)
    cells, per_cell = None, 0
    if mode == "static":
        if box_nm is None:
            raise InputError("--neighbor-list static needs a periodic system: give a PDB with a CRYST1 box")
        pos = torch.tensor(np.asarray(positions_nm) * units.ANGSTROM_PER_NM)
        box = torch.tensor(np.asarray(box_nm) * units.ANGSTROM_PER_NM)
        cells, per_cell = neighbors.static_grid(box, pos, potential.config.cutoff_angstrom)
        n_pairs = int(neighbors.cell_list_pairs(pos, box, potential.config.cutoff_angstrom)[0].shape[0])
        if pair_capacity <= 0:
            pair_capacity = int(1.3 * n_pairs)  # room for density fluctuations; padding costs time
        elif pair_capacity < n_pairs:
            raise InputError(
                f"--pair-capacity {pair_capacity} is smaller than the {n_pairs} pairs of the structure itself; give "
                f"more (0: 1.3 x its pairs, {int(1.3 * n_pairs)}, room for the box to breathe)"
            )
    return PaiNNForceField(potential, z, periodic, mode, DTYPES[dtype], pair_capacity=pair_capacity,
                           static_cells=cells, atoms_per_cell=per_cell, atom_indices=atoms,
                           n_particles=n_particles, molecules=molecules)  # fmt: skip


def _energy_forces(module, positions_nm, box_nm=None, dtype=torch.float64):
    pos = torch.tensor(np.asarray(positions_nm), dtype=dtype)
    box = None if box_nm is None else torch.tensor(np.asarray(box_nm), dtype=dtype)
    energy, forces = module.energy_and_forces(pos, box)
    return energy.detach().double().numpy(), forces.detach().double().numpy()


def openmm_torch_check(scripted, positions_nm: np.ndarray, box_nm, forces_ref: np.ndarray, dtype) -> dict:
    """Largest force differences (kJ/mol/nm) from ``forces_ref`` of the module as openmm-torch runs it
    (frozen with ``torch.jit.freeze``, which removes ``detach()`` and inlines everything): forces from
    ``forward(positions).backward()`` (``TorchForce("model.pt")``) and from :class:`ForcesOutput`
    (``setOutputsForces``)."""
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    loaded = []  # (kept alive while in use: a loaded module's methods live in its Python object's compilation unit)
    for _ in range(2):
        buffer.seek(0)
        loaded.append(torch.jit.load(buffer))
    box = None if box_nm is None else torch.tensor(box_nm, dtype=dtype)
    energy_contract = torch.jit.freeze(loaded[0].eval())
    energy_only = []
    for _ in range(3):  # the first call and later ones run different branches (PaiNNForceField.forward)
        pos = torch.tensor(positions_nm, dtype=dtype, requires_grad=True)
        energy_contract(pos, box).backward()
        energy_only.append(pos.grad.negative().double().numpy())
    frozen = torch.jit.freeze(torch.jit.script(ForcesOutput(loaded[1])).eval())
    outputs_forces = frozen(torch.tensor(positions_nm, dtype=dtype), box)[1].double().numpy()
    return {
        "energy_contract_max_abs_force_diff_kj_per_mol_nm": float(np.max(np.abs(np.stack(energy_only) - forces_ref))),
        "outputs_forces_contract_max_abs_force_diff_kj_per_mol_nm": float(np.max(np.abs(outputs_forces - forces_ref))),
    }


def validation_report(record: dict, scripted_system, eager_system, system_positions_nm, box_nm, dtype: str) -> dict:
    """Checks made at export time (written into the metadata):
    1. the exported model for the training molecule vs the eager float64 model on training frames;
    2. the exported system module vs the same module run eagerly, also frozen as openmm-torch runs it;
    3. a batch of configurations in one call vs one call per configuration (up to 1000 atoms);
    4. rotation test (energy invariant, forces rotate) for non-periodic systems."""
    report: dict = {}
    torch_dtype = DTYPES[dtype]
    potential64 = potential_from_record(record)
    z = record["atomic_numbers"]
    reference = PaiNNForceField(potential64, z, dtype=torch.float64)
    exported_molecule = torch.jit.script(PaiNNForceField(potential64, z, dtype=torch_dtype))
    frames = record.get("validation_frames_nm")
    if frames is not None:
        e_ref, f_ref = _energy_forces(reference, np.stack(frames))
        e, f = _energy_forces(exported_molecule, np.stack(frames), dtype=torch_dtype)
        report["training_frames"] = {
            "n_frames": len(frames),
            "max_abs_energy_diff_kj_per_mol": float(np.max(np.abs(e - e_ref))),
            "max_abs_force_diff_kj_per_mol_nm": float(np.max(np.abs(f - f_ref))),
            "reference": "eager float64 model",
        }
    e_eager, f_eager = _energy_forces(eager_system, system_positions_nm, box_nm, torch_dtype)
    e_script, f_script = _energy_forces(scripted_system, system_positions_nm, box_nm, torch_dtype)
    report["exported_vs_eager"] = {
        "abs_energy_diff_kj_per_mol": float(abs(e_eager - e_script)),
        "max_abs_force_diff_kj_per_mol_nm": float(np.max(np.abs(f_eager - f_script))),
    }
    report["openmm_torch"] = openmm_torch_check(scripted_system, system_positions_nm, box_nm, f_eager, torch_dtype)
    if len(system_positions_nm) <= BATCH_CHECK_MAX_ATOMS:
        report["batched_vs_single"] = _batch_check(scripted_system, system_positions_nm, box_nm, torch_dtype)
    if box_nm is None:
        rot = random_rotation()
        e_rot, f_rot = _energy_forces(scripted_system, system_positions_nm @ rot.T, None, torch_dtype)
        report["rotation"] = {
            "abs_energy_change_kj_per_mol": float(abs(e_rot - e_script)),
            "max_abs_force_error_kj_per_mol_nm": float(np.max(np.abs(f_rot - f_script @ rot.T))),
        }
    return report


def _batch_check(scripted_system, system_positions_nm, box_nm, torch_dtype) -> dict:
    """Three configurations in one call against one call each."""
    rng = np.random.default_rng(0)
    batch = np.stack([system_positions_nm + rng.normal(scale=0.002, size=system_positions_nm.shape) for _ in range(3)])
    batch_box = None if box_nm is None else np.stack([box_nm] * 3)
    e_batch, f_batch = _energy_forces(scripted_system, batch, batch_box, torch_dtype)
    single = [_energy_forces(scripted_system, p, box_nm, torch_dtype) for p in batch]
    return {
        "n_frames": len(batch),
        "max_abs_energy_diff_kj_per_mol": float(np.max(np.abs(e_batch - np.array([e for e, _ in single])))),
        "max_abs_force_diff_kj_per_mol_nm": float(np.max(np.abs(f_batch - np.stack([f for _, f in single])))),
    }


def warn_other_chemistry(model_z: Sequence[int], trained_z: Sequence[int]) -> None:
    """Warn when the atoms a checkpoint is built for are not copies of its training molecule."""
    if elements.empirical_formula(model_z) != elements.empirical_formula(trained_z):
        warnings.warn(
            f"the model's atoms ({elements.formula(model_z)}) are not copies of its training molecule "
            f"({elements.formula(trained_z)}): it was not trained on this chemistry, so treat its energies and "
            "forces as untested (painn-simulate's training-envelope check flags distances it has not seen)",
            SimulationWarning, stacklevel=3,
        )  # fmt: skip


def warn_odd_molecules(groups: Sequence[Sequence[int]], z: Sequence[int], record: dict) -> None:
    """Warn when a structure made of copies of the training molecule falls apart into other molecules by its
    covalent bonds (a stretched bond: a lone H): the dipole and polarizability heads keep each molecule neutral,
    so such a model's responses are those of the fragments.  The training structure's own molecules (an ion pair,
    a dimer: painn-train's ``molecules``) are molecules too."""
    trained_z = list(record["atomic_numbers"])
    model_z = [z[i] for group in groups for i in group]
    if elements.empirical_formula(model_z) != elements.empirical_formula(trained_z):
        return  # (other chemistry: warn_other_chemistry says so)
    index = record.get("molecules") or [0] * len(trained_z)
    known = {elements.formula(a for a, k in zip(trained_z, index) if k == m) for m in set(index)}
    odd = [elements.formula(z[i] for i in group) for group in groups]
    odd = [f for f in odd if f not in known]
    if odd:
        warnings.warn(
            f"the structure's covalent bonds make molecules that are not among its training structure's "
            f"({', '.join(sorted(known))}): {', '.join(sorted(set(odd)))} ({len(odd)} of {len(groups)}); a bond "
            "stretched beyond 1.2 times its covalent length? The model takes each molecule as neutral (its dipole "
            "and polarizability heads), so export it from a structure with whole molecules",
            SimulationWarning, stacklevel=3,
        )  # fmt: skip


def export(
    checkpoint,
    output,
    pdb: Optional[str] = None,
    dtype: str = "float32",
    neighbor_mode: str = "auto",
    periodic: Optional[bool] = None,
    pair_capacity: int = 0,
    atoms: Optional[Sequence[int]] = None,
) -> dict:
    """Write the TorchScript artefact ``output`` for ``checkpoint``; returns its metadata.

    The particles are the training molecule's, or those of ``pdb`` (any system made of elements
    the model knows).  A PDB with a CRYST1 box gives a periodic model unless ``periodic=False``.
    ``atoms`` (0-based indices into the PDB): only these particles are the model's, the rest is left to
    other forces (ML/MM: a solute in water); the artefact takes every particle's positions and returns
    forces on all of them, so ``TorchForce("model.pt")`` works on the whole system.
    """
    check_writable(Path(output).parent, "-o")
    record = load_checkpoint(checkpoint)
    if "atomic_numbers" not in record:
        raise CheckpointError(f"{checkpoint} holds no training molecule; it was not written by painn-train")
    envelope = training_data_envelope(record)
    molecules = None  # the training molecule's (build_forcefield), or the PDB's
    if pdb is not None:
        structure, z, positions_nm, box_nm = load_pdb(pdb)
    else:
        z = list(record["atomic_numbers"])
        positions_nm, box_nm = None, None
    is_periodic = bool(box_nm is not None) if periodic is None else bool(periodic)
    if is_periodic and box_nm is None:
        raise InputError("--periodic needs a box: give a PDB with a CRYST1 record via --pdb")
    if not is_periodic:
        box_nm = None
    if atoms is not None and pdb is None:
        raise InputError("ML atoms (--atoms) select particles of a system: give its PDB with --pdb")
    if is_periodic:
        check_box_width(box_nm, record["config"]["cutoff_angstrom"] * units.NM_PER_ANGSTROM, str(pdb))
    if pdb is not None:
        atoms = None if atoms is None else check_indices(atoms, len(z), "the system")
        found = find_molecules(structure.topology, positions_nm, box_nm, atoms=atoms, wrap=False)
        molecules = molecule_index(found.finite + found.networks, range(len(z)) if atoms is None else atoms)
        warn_odd_molecules(found.finite + found.networks, z, record)
    eager = build_forcefield(
        record, z, is_periodic, neighbor_mode, dtype, pair_capacity, positions_nm, box_nm, atoms, molecules
    )
    scripted = torch.jit.script(eager)
    frames_nm = _validation_frames(record)
    record = dict(record, validation_frames_nm=frames_nm)
    if positions_nm is None:
        positions_nm = frames_nm[0]
    report = validation_report(record, scripted, eager, positions_nm, box_nm, dtype)
    config = record["config"]
    model_z = [z[a] for a in atoms] if atoms is not None else z
    warn_other_chemistry(model_z, record["atomic_numbers"])
    mode = choose_neighbor_mode(len(model_z), neighbor_mode)
    meta = {
        md.KEY_FORMAT: md.FORMAT,
        md.KEY_FORMAT_VERSION: md.FORMAT_VERSION,
        md.KEY_ATOMIC_NUMBERS: [int(x) for x in model_z],
        md.KEY_ELEMENTS: [elements.symbol(x) for x in model_z],
        md.KEY_ATOM_INDICES: None if atoms is None else [int(a) for a in atoms],
        md.KEY_N_PARTICLES: len(z),
        md.KEY_N_MOLECULES: eager.n_molecules,
        md.KEY_PARTICLE_ATOMIC_NUMBERS: [int(x) for x in z],
        md.KEY_MODEL_ELEMENTS: [elements.symbol(x) for x in config["elements"]],
        md.KEY_CUTOFF_NM: config["cutoff_angstrom"] * units.NM_PER_ANGSTROM,
        md.KEY_PERIODIC: is_periodic,
        md.KEY_DTYPE: dtype,
        md.KEY_HEADS: list(config["targets"]),
        md.KEY_UNITS: {
            "positions": "nm",
            "boxvectors": "nm",
            "energy": units.OPENMM_UNITS["energy"],
            "forces": units.OPENMM_UNITS["forces"],
            "dipole": units.OPENMM_UNITS["dipole"],
            "polarizability": units.OPENMM_UNITS["polarizability"],
        },
        md.KEY_NEIGHBOR_LIST: mode,
        md.KEY_FORCES: choose_strategy(mode),
        md.KEY_FIXED_SHAPES: mode in FIXED_SHAPE_MODES,
        md.KEY_PAIR_CAPACITY: eager.pair_capacity,
        md.KEY_N_FEATURES: int(config["n_features"]),
        md.KEY_VERSIONS: versions.collect(),
        md.KEY_MODEL: config,
        md.KEY_TRAINING: {
            "data": record.get("data"),
            "n_train": len(record.get("split", {}).get("train", [])),
            "n_val": len(record.get("split", {}).get("val", [])),
            "n_test": len(record.get("split", {}).get("test", [])),
            "test_errors_model_units": record.get("test_errors"),
            "training_molecule": elements.formula(record["atomic_numbers"]),
        },
        md.KEY_VALIDATION: report,
        md.KEY_CHECKPOINT_SHA256: file_sha256(Path(checkpoint)),
        md.KEY_ENVELOPE: envelope,
    }
    atomic_write(
        output, lambda tmp: torch.jit.save(scripted, tmp, _extra_files={md.METADATA_FILE: json.dumps(meta, indent=1)})
    )
    return meta


def training_data_envelope(record: dict) -> dict:
    """The metadata's training envelope, as painn-train stored it in the checkpoint: per element pair, the
    shortest distance and the longest nearest-neighbour distance seen in the training frames (deploy/envelope.py).
    A checkpoint without one gives a model without the check, with a warning."""
    if record.get("training_envelope"):
        return dict(record["training_envelope"])
    warnings.warn(
        "the checkpoint stores no training envelope (the distances of its training data; it was written by an "
        "earlier painn-train), so painn-simulate cannot warn when a run with this model leaves its training data. "
        "A model trained again with this painn-train has the check",
        SimulationWarning, stacklevel=3,
    )  # fmt: skip
    return {"source": None, "frames": "none: the checkpoint stores no training envelope"}


def _validation_frames(record: dict) -> list:
    """The training frames stored in the checkpoint (nm), to validate the export on."""
    frames = record.get("example_frames_angstrom")
    if not frames:
        raise CheckpointError("the checkpoint stores no example training frames; it was not written by painn-train")
    return [np.asarray(f) * units.NM_PER_ANGSTROM for f in frames]
