"""``run_simulation(config)``: molecular dynamics with an exported PaiNN model in OpenMM.

Records the dipole and polarizability along the trajectory, writes checkpoints that ``resume``
continues bit for bit (CPU/Reference platforms; RPMD from the saved ring polymer, up to rounding),
and stops with :class:`SimulationInstabilityError` when the trajectory goes bad, keeping the last good
checkpoint.  Checkpoints carry a SHA-256 checksum and are verified before a resume (a damaged one is refused
without touching the run's files); the one before the latest is kept as ``checkpoint.prev.chk``.  A new run
refuses an output directory that holds files (``overwrite`` deletes a previous run's first).  At every log
interval the configuration is compared with the interatomic distances of the model's training data (the
artefact's training envelope): a :class:`SimulationWarning` as soon as it leaves them, a stop beyond
``envelope_margin``.
"""

import hashlib
import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import openmm
import torch
from openmm import unit

from .. import units, versions
from ..deploy import Artefact, export
from ..deploy import metadata as md
from ..deploy.envelope import EnvelopeCheck
from ..elements import formula, symbol
from ..errors import CheckpointError, InputError, PainnDeployError, RecordingError, SimulationInstabilityError
from ..files import atomic_write, file_sha256
from ..openmm import check_positions, create_system
from ..openmm.forces import make_whole
from ..structures import load_pdb, write_pdb
from .config import SimulationConfig, flag
from .outputs import CsvLog, PropertiesFile, TrajectoryFile, dcd_frames
from .progress import Progress
from .rpmd import Layout, centroid_virial_kinetic_energy, check_memory, ring_polymer_integrator
from .solution import mixed_system, ml_atoms_by_residue, residue_groups

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
BUNDLED_MODEL = RESOURCES / "ethanol_painn.pt"
RESUME_MUST_MATCH = (
    "structure", "temperature_K", "timestep_fs", "integrator", "friction_per_ps", "beads", "record_dipole",
    "record_polarizability", "record_interval", "trajectory_interval", "trajectory_format", "backend", "seed",
    "replicas", "rpmd_integrator", "bead_trajectory",
)  # fmt: skip
NEAREST_NEIGHBOUR_LIMIT_NM = 0.5  # an atom with no other atom within 5 A has flown off
MINIMIZE_TOLERANCE_KJ_PER_MOL_NM, MINIMIZE_STEPS = 10.0, 200  # solvated structures, before the dynamics
FEATURE_CAPACITY = 100  # steps per integrator call and per call of the output heads when recording
WARM_UP_EVALUATIONS = 3  # TorchScript runs a module's first call unoptimised (see MDRun._warm_up)
CHECKPOINT, PREVIOUS_CHECKPOINT = "checkpoint.chk", "checkpoint.prev.chk"
CHECKPOINT_FORMAT = 2  # [8-byte header length][JSON header][OpenMM state][SHA-256 of everything before it]
CHECKPOINT_KEYS = {"step": int, "trajectory_frames": int, "trajectory_bytes": int, "property_frames": int,
                   "model_sha256": str, "state_bytes": int}  # fmt: skip
# what a run writes in its output directory (what --overwrite deletes; nothing else there is touched)
RUN_FILES = ("run.json", "log.csv", "properties.h5", "trajectory.dcd", "trajectory.xtc", "beads.dcd", "beads.xtc",
             CHECKPOINT, PREVIOUS_CHECKPOINT, "model.pt", "ml_region.pdb")  # fmt: skip
ENVELOPE_WARN_STEP_ANGSTROM = 0.05  # warn again about a distance once it is this much further out


class SimulationWarning(UserWarning):
    """Something the user should know about a run that goes on (painn-simulate prints it as a warning)."""


@dataclass
class SimulationResult:
    output: Path
    steps: int
    ns_per_day: float
    frames_recorded: int
    backend: str
    envelope: str = ""  # how often and how far the run left the training data's distances ("": never)

    def summary(self) -> str:
        text = (
            f"{self.steps} steps done, {self.ns_per_day:.2f} ns/day; {self.frames_recorded} property frames; "
            f"outputs in {self.output}"
        )
        return f"{text}\n{self.envelope}" if self.envelope else text


def resolve_model(cfg: SimulationConfig, output: Path, atomic_numbers, ml_pdb: Optional[Path] = None) -> Path:
    """The exported model to use: ``cfg.model`` (.pt), a checkpoint exported on the fly for the
    structure (or for ``ml_pdb``, the ML molecule of a solvated one), or the bundled ethanol model when
    the structure (or the ML molecule) matches it."""
    if cfg.model is None:
        if BUNDLED_MODEL.is_file() and Artefact(BUNDLED_MODEL).atomic_numbers == list(atomic_numbers):
            return BUNDLED_MODEL
        raise InputError(
            f"no --model given and the structure ({formula(atomic_numbers)}, {len(atomic_numbers)} atoms) is not the "
            f"bundled ethanol model's molecule (C2H6O in the atom order of painn_deploy/resources/ethanol.pdb); "
            f"pass --model MODEL.pt (from painn-export) or a painn-train checkpoint"
        )
    path = Path(cfg.model)
    if not path.is_file():
        raise InputError(f"model {path} does not exist")
    if path.suffix == ".ckpt":
        exported = output / "model.pt"
        if cfg.resume and exported.is_file():  # the run's own export of this checkpoint: resume with it as it is
            try:
                same = Artefact(exported).metadata.get(md.KEY_CHECKPOINT_SHA256) == file_sha256(path)
            except CheckpointError:
                same = False
            if same:
                return exported
        export(path, exported, pdb=str(ml_pdb or cfg.structure))
        return exported
    return path


def choose_platform(name: str) -> openmm.Platform:
    """The named OpenMM platform, or the fastest one available (``auto``: CUDA, then CPU)."""
    available = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if name == "auto":
        for candidate in ("CUDA", "CPU", "Reference"):
            if candidate in available:
                return openmm.Platform.getPlatformByName(candidate)
    if name not in available:
        raise InputError(f"OpenMM platform {name!r} is not available here (available: {', '.join(available)})")
    return openmm.Platform.getPlatformByName(name)


def quiet_import(name: str):
    """Import a third-party module without the import-time noise of it and its dependencies, all logged
    through ``logging`` or warnings and none of it about the run: pymbar (under openmmtools) logs a 9-line "JAX
    NOT FOUND" banner and a timeseries notice, and ``simtk.openmm`` (imported by openmmtools and openmmtorch)
    logs a deprecation warning."""
    import importlib

    if name in sys.modules:
        return sys.modules[name]
    disabled = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    finally:
        logging.disable(disabled)


def import_openmmtools():
    """openmmtools.integrators, quietly (see :func:`quiet_import`)."""
    return quiet_import("openmmtools.integrators")


def build_integrator(cfg: SimulationConfig, layout: Layout):
    temperature = cfg.temperature_K * unit.kelvin
    friction = cfg.friction_per_ps / unit.picosecond
    dt = cfg.timestep_fs * unit.femtosecond
    if cfg.beads > 1 and cfg.rpmd_integrator == "openmm":
        integrator = openmm.RPMDIntegrator(cfg.beads, temperature, friction, dt)
    elif cfg.beads > 1:
        integrator = ring_polymer_integrator(
            layout, cfg.temperature_K, cfg.friction_per_ps, cfg.timestep_fs, thermostat=cfg.integrator == "langevin"
        )
    elif cfg.integrator == "langevin":
        integrator = import_openmmtools().BAOABIntegrator(temperature, friction, dt)
    elif cfg.integrator == "nose-hoover":
        integrator = openmm.NoseHooverIntegrator(temperature, friction, dt)
    else:
        integrator = import_openmmtools().VelocityVerletIntegrator(dt)
    if hasattr(integrator, "setRandomNumberSeed"):
        integrator.setRandomNumberSeed(cfg.seed + 1)
    return integrator


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


def _check_writable(output: Path) -> None:
    try:
        output.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output):
            pass
    except OSError as exc:
        raise InputError(
            f"cannot write to the output directory {output}: {exc.strerror}; choose another --output"
        ) from exc


def _check_output_free(cfg: SimulationConfig, output: Path) -> None:
    """A new run (neither --resume nor --overwrite) needs an empty or new output directory: a previous run's
    files would otherwise be overwritten, or left behind stale (properties.h5 of a run that recorded)."""
    if cfg.resume or cfg.overwrite or not output.is_dir():
        return
    entries = sorted(p.name for p in output.iterdir())
    if entries:
        listing = ", ".join(entries[:6]) + (f" and {len(entries) - 6} more" if len(entries) > 6 else "")
        what = "a previous run" if any(name in RUN_FILES for name in entries) else "files"
        raise InputError(
            f"the output directory {output} already holds {what} ({listing}); give a new --output, --resume to "
            f"continue that run, or --overwrite to delete its files and start again"
        )


def _write_if_changed(path: Path, write) -> None:
    """``write(tmp)`` into a temporary file, moved onto ``path`` only if the bytes differ (a resumed run leaves its
    files as they are)."""
    with tempfile.TemporaryDirectory() as tmp:
        new = Path(tmp) / path.name
        write(new)
        if path.is_file() and path.read_bytes() == new.read_bytes():
            return
        atomic_write(path, lambda target: shutil.copyfile(new, target))


def _angstrom(box_nm):
    return None if box_nm is None else np.asarray(box_nm) * units.ANGSTROM_PER_NM


def encode_checkpoint(meta: dict, state: bytes) -> bytes:
    """[8-byte little-endian header length][JSON header][OpenMM state][SHA-256 of all that]."""
    header = json.dumps(dict(meta, checkpoint_format=CHECKPOINT_FORMAT, state_bytes=len(state))).encode()
    body = len(header).to_bytes(8, "little") + header + state
    return body + hashlib.sha256(body).digest()


def decode_checkpoint(blob: bytes):
    """(header, OpenMM state) of a checkpoint, verified: its length, checksum and every header entry.  Raises
    CheckpointError saying what is wrong."""
    if len(blob) < 8 + 2 + 32:
        raise CheckpointError(f"it is {len(blob)} bytes long, too short for a checkpoint")
    n = int.from_bytes(blob[:8], "little")
    if n > len(blob) - 8 - 32:
        raise CheckpointError(f"its header alone should be {n} bytes, but the file has {len(blob)}: truncated")
    try:
        meta = json.loads(blob[8 : 8 + n])
    except ValueError:
        raise CheckpointError("its header is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("checkpoint_format") != CHECKPOINT_FORMAT:
        version = meta.get("checkpoint_format") if isinstance(meta, dict) else None
        raise CheckpointError(
            f"it is not a checkpoint of format {CHECKPOINT_FORMAT} (format {version}: written by another version of "
            f"painn-deploy, without a checksum to verify it)"
        )
    for key, kind in CHECKPOINT_KEYS.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool) or (kind is int and meta[key] < 0):
            raise CheckpointError(f"its header entry {key!r} is missing or invalid ({meta.get(key)!r})")
    expected = 8 + n + meta["state_bytes"] + 32
    if len(blob) != expected:
        raise CheckpointError(f"it has {len(blob)} bytes where its header says {expected}: truncated or extended")
    if hashlib.sha256(blob[:-32]).digest() != blob[-32:]:
        raise CheckpointError("its SHA-256 checksum does not match its contents: the file was changed or corrupted")
    return meta, blob[8 + n : -32]


class MDRun:
    """One simulation: set-up, the step loop, outputs and checkpoints."""

    def __init__(self, cfg: SimulationConfig):
        self.cfg = cfg
        self.output = Path(cfg.output)
        created = self.created = not self.output.exists()
        _check_output_free(cfg, self.output)
        _check_writable(self.output)
        self.written_by_set_up = set()  # files of the output directory the set-up wrote (kept by --overwrite)
        try:
            self._set_up()
        except Exception:
            if created:  # bad input: leave no half-made output directory behind
                shutil.rmtree(self.output, ignore_errors=True)
            raise

    def _set_up(self):
        cfg = self.cfg
        quiet_import("simtk.openmm")  # imported by openmmtorch (create_system), with a deprecation warning
        self.pdb, z, positions_nm, box_nm = load_pdb(cfg.structure)
        check_positions(positions_nm, box_nm, where=cfg.structure)
        self.atomic_numbers = z
        torch.set_num_threads(cfg.threads or (1 if len(z) < 1000 else os.cpu_count() or 1))
        topology = self.pdb.topology
        self.ml_atoms = None  # a solute in solvent: the ML atoms (the rest from the MM force field)
        if cfg.ml_residues:
            self.ml_atoms = ml_atoms_by_residue(topology, cfg.ml_residues.split(","), cfg.structure)
            ml_z = [z[i] for i in self.ml_atoms]
            ml_pdb = self.output / "ml_region.pdb"
            _write_if_changed(ml_pdb, lambda path: write_pdb(path, ml_z, positions_nm[self.ml_atoms], box_nm))
            self.written_by_set_up.add(ml_pdb.name)
            self.artefact = Artefact(resolve_model(cfg, self.output, ml_z, ml_pdb))
            if self.artefact.atom_indices is not None:
                raise InputError(
                    f"{self.artefact.path} was exported for a whole system (ML/MM artefact for TorchForce); "
                    f"painn-simulate --ml-residues takes a model of the ML molecule alone (painn-export CHECKPOINT "
                    f"--pdb MOLECULE.pdb) or the painn-train checkpoint"
                )
            self.artefact.check_system(
                ml_z, box_nm if self.artefact.periodic else None, f"the ML atoms of {cfg.structure}"
            )
        else:
            self.artefact = Artefact(resolve_model(cfg, self.output, z))
            self.artefact.check_system(z, box_nm, where=cfg.structure)
            if box_nm is not None and not self.artefact.periodic:
                warnings.warn(
                    f"{cfg.structure} has a periodic box (CRYST1), which is ignored: the model {self.artefact.path} "
                    f"is not periodic, so the system is simulated as an isolated cluster in vacuum. For a periodic "
                    f"system export a periodic model (painn-export CHECKPOINT --pdb {cfg.structure})",
                    SimulationWarning, stacklevel=2,
                )  # fmt: skip
        self.model_path = self.artefact.path
        if self.model_path.parent.resolve() == self.output.resolve():
            self.written_by_set_up.add(self.model_path.name)
        self.periodic = box_nm is not None and (self.artefact.periodic or self.ml_atoms is not None)
        self._set_up_envelope(positions_nm, box_nm if self.periodic else None)
        heads = self.artefact.heads
        for wanted, head in ((cfg.record_dipole, "dipole"), (cfg.record_polarizability, "polarizability")):
            if wanted and head not in heads:
                raise InputError(
                    f"--record-{head} needs a model with a {head} head; {self.model_path} has {', '.join(heads)}"
                )
        self.recorded = tuple(
            n for n, f in (("dipole", cfg.record_dipole), ("polarizability", cfg.record_polarizability)) if f
        )
        self.platform = choose_platform(cfg.platform)
        on_gpu = self.platform.getName() == "CUDA"
        batched_beads = cfg.beads if cfg.rpmd_integrator == "batched" else 1
        self.layout = Layout(len(z), cfg.replicas, batched_beads)
        if self.periodic and self.layout.n_frames > 1:
            raise InputError(
                "ring polymers and replicas are for molecules: OpenMM wraps periodic positions, which the normal "
                "modes and the replicas' shared box do not allow; run a periodic system with one copy and no beads"
            )
        module = self.artefact.load().module
        check_memory(
            self.layout, int(module.n_features), int(self.artefact.metadata["model"]["n_interactions"]),
            module.dtype_marker.element_size(), "cuda" if on_gpu else "cpu",
        )  # fmt: skip
        self.backend = cfg.backend if cfg.backend != "auto" else ("python" if self.recorded else "torch")
        cuda_graphs = on_gpu and self.artefact.fixed_shapes if cfg.cuda_graphs == "auto" else cfg.cuda_graphs == "on"
        ring = FEATURE_CAPACITY if self.recorded else 0
        device = "cuda" if on_gpu else "cpu"
        self.barostat_frequency = 0
        if self.ml_atoms is not None:
            mixed = mixed_system(
                topology, str(self.model_path), self.ml_atoms, cfg.mm_forcefield,
                [f for f in cfg.forcefield_file.split(",") if f], self.backend, ring, device, cuda_graphs,
                cfg.temperature_K, cfg.pressure_bar, cfg.mm_cutoff_nm, cfg.structure,
            )  # fmt: skip
            self.system, self.adapter, self.barostat_frequency = mixed.system, mixed.adapter, mixed.barostat_frequency
            self.ml_molecules = residue_groups(topology, self.ml_atoms)
        else:
            self.system, self.adapter = create_system(
                self.artefact, topology, self.backend, ring_capacity=ring, cuda_graphs=cuda_graphs, device=device,
                n_frames=self.layout.n_frames, modes=self.layout.modes(),
            )  # fmt: skip
        self.integrator = build_integrator(cfg, self.layout)
        # the CPU platform sums forces in thread order unless told not to; with several threads its PME still differs
        # in the last bits from process to process, so a bit-for-bit resume of a solvated system needs --threads 1
        properties = {}
        if self.platform.getName() == "CPU":
            properties["DeterministicForces"] = "true"
            if cfg.threads:
                properties["Threads"] = str(cfg.threads)
        self.context = openmm.Context(self.system, self.integrator, self.platform, properties)
        self.dt_ps = cfg.timestep_fs * 1e-3
        # degrees of freedom of one physical copy: a single classical copy has its centre-of-mass motion removed
        removed = 3 if self.layout.n_frames == 1 else 0
        self.dof = 3 * len(z) - removed - self.system.getNumConstraints()
        self.step = 0
        self.features_read = 0  # evaluations read from the adapter's feature ring so far

    def _set_initial_state(self):
        cfg = self.cfg
        positions = np.asarray(self.pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        if self.periodic:
            self.context.setPeriodicBoxVectors(*self.pdb.topology.getPeriodicBoxVectors())
        layout = self.layout
        every_bead = np.broadcast_to(positions, (layout.replicas, layout.beads) + positions.shape)
        self.context.setPositions(layout.particles_nm(every_bead) * unit.nanometer)
        if self.ml_atoms is not None:  # a solvated structure: relax the solvent's placement before any dynamics
            openmm.LocalEnergyMinimizer.minimize(self.context, MINIMIZE_TOLERANCE_KJ_PER_MOL_NM, MINIMIZE_STEPS)
        # ring polymers are sampled at P x T: each bead's (and normal mode's) kinetic temperature is P times T
        self.context.setVelocitiesToTemperature(cfg.temperature_K * cfg.beads * unit.kelvin, cfg.seed + 1)
        if self.openmm_rpmd:
            rng = np.random.default_rng(cfg.seed)
            masses = np.array(
                [
                    self.system.getParticleMass(i).value_in_unit(unit.dalton)
                    for i in range(self.system.getNumParticles())
                ]
            )
            sigma = np.sqrt(units.BOLTZMANN_KJ_PER_MOL_K * cfg.temperature_K * cfg.beads / masses)[:, None]
            for k in range(cfg.beads):
                self.integrator.setPositions(k, positions * unit.nanometer)
                self.integrator.setVelocities(k, rng.normal(size=(len(masses), 3)) * sigma)

    @property
    def openmm_rpmd(self) -> bool:
        """Ring polymers on OpenMM's RPMDIntegrator (one evaluation per bead; for comparison)."""
        return self.cfg.beads > 1 and self.cfg.rpmd_integrator == "openmm"

    # ---- per-step work -----------------------------------------------------------------------------
    def _warm_up(self) -> None:
        """Evaluate the model a few times without moving the system.  TorchScript runs a freshly
        loaded module's first call unoptimised, and its forces differ from the optimised calls' in
        the last bits: without this a resumed run (fresh module) drifts away from the uninterrupted
        one and resume is not bit for bit.  Forces only: ``getState(getEnergy=True)`` computes the
        kinetic energy, which in OpenMM's Reference/CPU CustomIntegrators (openmmtools BAOAB) draws
        random numbers and so changes the trajectory that follows."""
        for _ in range(WARM_UP_EVALUATIONS):
            self._bead_states(getForces=True)
        if self.recorded:
            self.features_read = self._evaluated_here()
            ring = self.adapter.ring
            for _ in range(WARM_UP_EVALUATIONS):
                ring.responses([self.features_read - 1] * ring.capacity)

    def _evaluated_here(self) -> int:
        """Make sure the ring's latest evaluation is at the current positions (OpenMM's own integrators
        evaluate forces at the start of a step, openmmtools' at its end); returns its count."""
        ring = self.adapter.ring
        here = self._model_frames(self._state(getPositions=True, enforcePeriodicBox=False))
        if ring.count == 0 or np.max(np.abs(ring.positions_nm(ring.count - 1).reshape(here.shape) - here)) > 1e-6:
            self.context.getState(getForces=True)  # evaluates the model here (repeats are not kept)
        return ring.count

    def _model_frames(self, state) -> np.ndarray:
        """The model's frames [R, P, N, 3] (nm) of a state, as the force passed them to the model (ML/MM: the
        ML atoms, each molecule whole)."""
        positions = state.getPositions(asNumpy=True)._value
        if self.ml_atoms is None:
            return self.layout.beads_nm(positions)
        ml = np.asarray(positions)[self.ml_atoms]
        if self.periodic:
            box = np.asarray(state.getPeriodicBoxVectors(asNumpy=True)._value)
            for molecule in self.ml_molecules:
                ml[molecule] = make_whole(ml[molecule], box)
        return ml[None, None]

    def _read_features(self, n_steps: int) -> None:
        """Record the frames of the last ``n_steps`` steps from the features the force kept: its
        evaluations since the last read are the positions after each of these steps, one each.  A Monte Carlo
        barostat adds evaluations of trial boxes at the start of a chunk (chunks end at its moves), at most two
        per move: the last ``n_steps`` evaluations are then the steps'."""
        count = self._evaluated_here()
        extra = count - self.features_read - n_steps
        moves = n_steps // self.barostat_frequency + 1 if self.barostat_frequency else 0
        if extra < 0 or extra > 2 * moves:
            raise RecordingError(
                f"at step {self.step}: the model was evaluated at {count - self.features_read} new configurations "
                f"during the last {n_steps} steps; recording needs exactly one force evaluation per step, which "
                f"this integrator does not make. Record with langevin, nose-hoover or verlet."
            )
        first = self.step - n_steps  # evaluation count - n_steps is at the positions after step first + 1
        steps = [t for t in range(first + 1, self.step + 1) if t % self.cfg.record_interval == 0]
        if steps:
            values = self.adapter.ring.responses([count - n_steps + t - first - 1 for t in steps])
            shape = (len(steps), self.layout.replicas, self.layout.beads)
            # bead averages per replica, [K, R, ...] (the replica axis only when there are replicas)
            averaged = {
                name: values[name].reshape(shape + values[name].shape[2:]).mean(axis=2) for name in self.recorded
            }
            for k, t in enumerate(steps):
                frame = {name: v[k] if self.layout.replicas > 1 else v[k, 0] for name, v in averaged.items()}
                self.properties.append(t * self.dt_ps, frame)
        self.features_read = count

    def _bead_states(self, **kwargs):
        """OpenMM's RPMDIntegrator: one state per bead; otherwise the context's one state in a list."""
        if self.openmm_rpmd:
            return [self.integrator.getState(k, **kwargs) for k in range(self.cfg.beads)]
        return [self.context.getState(**kwargs)]

    def _state(self, **kwargs):
        return self._bead_states(**kwargs)[0] if not self.openmm_rpmd else self.context.getState(**kwargs)

    def _check(self, where: str, energy: float, max_force: float, temperature: float, positions_nm) -> None:
        cfg = self.cfg
        reason = None
        if not np.isfinite(energy):
            reason = f"the potential energy is {energy}"
        elif not np.isfinite(max_force) or max_force > cfg.max_force_kj_per_mol_nm:
            reason = (
                f"a force of {max_force:.3g} kJ/mol/nm exceeds {cfg.max_force_kj_per_mol_nm:.3g} (exploding forces)"
            )
        elif not np.isfinite(temperature) or temperature > cfg.temperature_limit_K:
            reason = f"the temperature {temperature:.1f} K exceeds {cfg.temperature_limit_K:.0f} K"
        elif positions_nm is not None and not self.periodic and positions_nm.shape[-2] > 1:
            from scipy.spatial import cKDTree

            for copy, molecule in enumerate(np.asarray(positions_nm).reshape(-1, positions_nm.shape[-2], 3)):
                dist, _ = cKDTree(molecule).query(molecule, k=2)
                far = int(np.argmax(dist[:, 1]))
                if dist[far, 1] > NEAREST_NEIGHBOUR_LIMIT_NM:
                    which = f" of replica {copy}" if self.layout.replicas > 1 else ""
                    reason = (
                        f"atom {far + 1}{which} is {dist[far, 1]:.2f} nm from every other atom (atoms flying apart)"
                    )
                    break
        if reason:
            self._stop(where, reason, "check the structure, lower --timestep, or use a model trained on configurations "
                       "like these")  # fmt: skip

    def _stop(self, where: str, reason: str, advice: str):
        raise SimulationInstabilityError(
            f"simulation stopped at step {self.step} ({where}): {reason}. The last good checkpoint "
            f"{self.output / CHECKPOINT} is kept; {advice}."
        )

    # ---- the training data's envelope ------------------------------------------------------------------
    def _set_up_envelope(self, positions_nm: np.ndarray, box_nm) -> None:
        """The check of the model's atoms against the distances of its training data (the artefact's envelope);
        the starting structure is checked at once: beyond the margin it is refused."""
        cfg = self.cfg
        self.model_atoms = self.ml_atoms if self.ml_atoms is not None else self.artefact.atom_indices
        z = np.asarray(self.atomic_numbers)
        model_z = z if self.model_atoms is None else z[np.asarray(self.model_atoms)]
        self.envelope, self.envelope_warned, self.envelope_checks, self.envelope_outside = None, {}, 0, 0
        self.envelope_furthest = None
        envelope = self.artefact.metadata.get(md.KEY_ENVELOPE)
        if not envelope or not envelope.get("source"):
            warnings.warn(
                f"the model {self.artefact.path} does not record the interatomic distances of its training data "
                f"(exported by an earlier painn-export, or without training frames), so this run cannot warn when it "
                f"leaves them; export the model again to add the check",
                SimulationWarning, stacklevel=3,
            )  # fmt: skip
            return
        self.envelope = EnvelopeCheck(envelope, model_z)
        if envelope["source"] != "training data":
            warnings.warn(
                f"the model's record of its training data's distances comes from {envelope.get('frames')}: "
                f"expect warnings about distances the full training data did cover",
                SimulationWarning, stacklevel=3,
            )  # fmt: skip
        if self.envelope.unseen_pairs:
            warnings.warn(
                f"{cfg.structure} has atom pairs ({', '.join(self.envelope.unseen_pairs)}) that never came within "
                f"the model's cutoff in its training data: the model's forces between them are extrapolated",
                SimulationWarning, stacklevel=3,
            )  # fmt: skip
        frames = positions_nm if self.model_atoms is None else positions_nm[np.asarray(self.model_atoms)]
        for excursion in self.envelope.excursions(frames * units.ANGSTROM_PER_NM, _angstrom(box_nm)):
            text = self._describe(excursion)
            if excursion.beyond > self._allowed(excursion):
                raise InputError(
                    f"{cfg.structure}: {text}, beyond the margin of {self._margin_text()} (--envelope-margin): the "
                    f"model was not trained on such structures. Check the structure, or give --envelope-margin inf "
                    f"to run it anyway"
                )
            warnings.warn(f"the starting structure is outside the model's training data: {text}", SimulationWarning,
                          stacklevel=3)  # fmt: skip

    def _allowed(self, excursion) -> float:
        value, fraction = self.cfg.margin
        return value * excursion.bound if fraction else value

    def _margin_text(self) -> str:
        value, fraction = self.cfg.margin
        return f"{value * 100:g}% of the distance" if fraction else f"{value:g} Angstrom"

    def _describe(self, e) -> str:
        """An excursion in words, with the structure's atom numbers (1-based)."""
        atoms = [(self.model_atoms[i] if self.model_atoms is not None else i) + 1 for i in e.atoms]
        elements = [symbol(self.atomic_numbers[a - 1]) for a in atoms]
        where = ""
        if getattr(self, "layout", None) is not None and self.layout.n_frames > 1:  # not for the starting structure
            replica, bead = divmod(e.frame, self.layout.beads)
            parts = ([f"replica {replica}"] if self.layout.replicas > 1 else []) + (
                [f"bead {bead}"] if self.layout.beads > 1 else []
            )
            where = f" ({', '.join(parts)})"
        if e.kind == "shortest":
            return (
                f"atoms {atoms[0]} ({elements[0]}) and {atoms[1]} ({elements[1]}){where} are {e.distance:.3f} Angstrom "
                f"apart, {e.beyond:.3f} Angstrom closer than any {e.key} pair in the training data "
                f"({e.bound:.3f} Angstrom)"
            )
        target = e.key.split("->")[1]
        of, partner = (
            ("atom", f"atom {atoms[1]}, {elements[1]}") if target == "any" else (f"{target} atom", f"atom {atoms[1]}")
        )
        return (
            f"atom {atoms[0]} ({elements[0]}){where} is {e.distance:.3f} Angstrom from its nearest {of} ({partner}), "
            f"{e.beyond:.3f} Angstrom further than any {elements[0]} atom's nearest {of} in the training data "
            f"({e.bound:.3f} Angstrom)"
        )

    def _check_envelope(self, frames_nm: np.ndarray, box_nm) -> None:
        """Warn when the frames (the model's atoms, [F, N, 3] nm) leave the training data's distances, with
        the atoms and by how much; stop beyond the margin."""
        if self.envelope is None:
            return
        self.envelope_checks += 1
        excursions = self.envelope.excursions(frames_nm * units.ANGSTROM_PER_NM, _angstrom(box_nm))
        if not excursions:
            return
        self.envelope_outside += 1
        if self.envelope_furthest is None or excursions[0].beyond > self.envelope_furthest[0].beyond:
            self.envelope_furthest = (excursions[0], self.step)
        for e in excursions:
            if e.beyond > self._allowed(e):
                self._stop("log", f"the configuration left the model's training data: {self._describe(e)}, beyond "
                           f"the margin of {self._margin_text()} (--envelope-margin)",
                           "the model has not seen such configurations and its forces there cannot be trusted: lower "
                           "--temperature or --timestep, use a model trained on data that covers them, or raise "
                           "--envelope-margin to go on at your own risk")  # fmt: skip
        for e in excursions:
            warned = self.envelope_warned.get(e.key)
            if warned is None or e.beyond >= warned + ENVELOPE_WARN_STEP_ANGSTROM:
                self.envelope_warned[e.key] = e.beyond
                warnings.warn(
                    f"step {self.step}: outside the model's training data: {self._describe(e)}; "
                    + (f"the run stops {self._allowed(e):.2f} Angstrom beyond" if np.isfinite(self._allowed(e))
                       else "the run goes on however far it goes")
                    + " (--envelope-margin)",
                    SimulationWarning, stacklevel=2,
                )  # fmt: skip

    def _envelope_summary(self) -> str:
        if not self.envelope_outside:
            return ""
        e, step = self.envelope_furthest
        return (
            f"{self.envelope_outside} of {self.envelope_checks} checked configurations (every --log-interval steps) "
            f"were outside the model's training data; the furthest, at step {step}: {self._describe(e)}"
        )

    def _log_row(self, wall_start: float, steps_since_start: int) -> dict:
        cfg, layout = self.cfg, self.layout
        states = self._bead_states(getEnergy=True, getForces=True, getPositions=True)
        energy = sum(s.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) for s in states)
        kinetic_total = sum(s.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole) for s in states)
        positions = [s.getPositions(asNumpy=True).value_in_unit(unit.nanometer) for s in states]
        forces = [s.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer) for s in states]
        if self.openmm_rpmd:
            beads, bead_forces = np.stack(positions)[None], np.stack(forces)[None]
        else:
            beads, bead_forces = layout.beads_nm(positions[0]), layout.beads_nm(forces[0])
        copies, p = beads.shape[0], beads.shape[1]
        # the ring polymer is sampled at P x T: every degree of freedom carries k_B P T / 2, and the physical
        # temperature and kinetic energy are those divided by P (per copy of the molecule)
        temperature = 2.0 * kinetic_total / (copies * p * self.dof * units.BOLTZMANN_KJ_PER_MOL_K * p)
        kinetic = kinetic_total / (copies * p * p)
        quantum = centroid_virial_kinetic_energy(beads, bead_forces, cfg.temperature_K) if p > 1 else kinetic
        potential = energy / (copies * p)
        centroids = beads.mean(axis=1)
        self._check("log", potential, float(np.max(np.abs(bead_forces))), temperature, centroids)
        if self.envelope is not None:
            frames = beads.reshape(-1, beads.shape[-2], 3)
            if self.model_atoms is not None:
                frames = frames[:, np.asarray(self.model_atoms)]
            box = states[0].getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer) if self.periodic else None
            self._check_envelope(frames, None if box is None else np.asarray(box))
        elapsed = time.perf_counter() - wall_start
        ns_per_day = steps_since_start * self.dt_ps * 1e-3 / max(elapsed, 1e-9) * 86400.0
        return {
            "step": self.step,
            "time_ps": self.step * self.dt_ps,
            "potential_kj_per_mol": potential,
            "kinetic_kj_per_mol": kinetic,
            "total_kj_per_mol": potential + kinetic,
            "temperature_K": temperature,
            "quantum_kinetic_kj_per_mol": quantum,
            "speed_ns_per_day": ns_per_day,
        }

    def _write_trajectory(self):
        states = self._bead_states(getPositions=True)
        positions = [s.getPositions(asNumpy=True).value_in_unit(unit.nanometer) for s in states]
        beads = np.stack(positions)[None] if self.openmm_rpmd else self.layout.beads_nm(positions[0])
        box = states[0].getPeriodicBoxVectors() if self.periodic else None
        self.trajectory.write(beads.mean(axis=1).reshape(-1, 3), box)  # the centroid of every replica
        if self.bead_trajectory is not None:
            self.bead_trajectory.write(beads.reshape(-1, 3), box)

    # ---- checkpoints ---------------------------------------------------------------------------------
    def _checkpoint(self):
        """Write checkpoint.chk atomically, the one before it kept as checkpoint.prev.chk (also atomically: at
        any moment both files are whole).  The previous one is the checkpoint this process wrote or resumed from,
        never a file re-read from disk (which may be damaged)."""
        if self.properties is not None:
            self.properties.flush()
        meta = {
            "step": self.step,
            **self.trajectory.sync(),
            **(self.bead_trajectory.sync() if self.bead_trajectory is not None else {}),
            "property_frames": self.properties.n_frames if self.properties is not None else 0,
            "model_sha256": self.model_sha256,
        }
        if self.openmm_rpmd:  # OpenMM's context checkpoint does not hold the RPMDIntegrator's beads
            meta["beads"] = [
                {
                    "positions_nm": s.getPositions(asNumpy=True).value_in_unit(unit.nanometer).tolist(),
                    "velocities_nm_per_ps": s.getVelocities(asNumpy=True)
                    .value_in_unit(unit.nanometer / unit.picosecond)
                    .tolist(),
                }
                for s in self._bead_states(getPositions=True, getVelocities=True)
            ]
        state = self.context.createCheckpoint()
        blob = encode_checkpoint(meta, state)
        if self.last_checkpoint is not None:
            previous = self.last_checkpoint
            atomic_write(self.output / PREVIOUS_CHECKPOINT, lambda tmp: Path(tmp).write_bytes(previous))
        atomic_write(self.output / CHECKPOINT, lambda tmp: Path(tmp).write_bytes(blob))
        self.last_checkpoint = blob

    def _resume_source(self) -> Path:
        cfg = self.cfg
        if not cfg.resume_from:
            return self.output / CHECKPOINT
        given = Path(cfg.resume_from)
        if given.is_file() or given.is_absolute():
            return given
        return self.output / given

    def _load_checkpoint(self) -> dict:
        """Verify the checkpoint to resume from (checksum, every part parsed), the run's record and its output
        files, then restore the state.  Everything is read, nothing written: a refused resume leaves the run as
        it was."""
        path = self._resume_source()
        flag_used = f"--resume-from {self.cfg.resume_from}" if self.cfg.resume_from else "--resume"
        if not path.is_file():
            if self.cfg.resume_from:
                raise InputError(f"{flag_used}: there is no checkpoint {path}")
            fresh = (
                "start without --resume"
                if self.created or not any(self.output.iterdir())
                else ("start the run again with --overwrite (or in a new --output)")
            )
            raise InputError(f"--resume: no checkpoint {path}.{self._previous_hint(path, fresh)}")
        try:
            blob = path.read_bytes()
            meta, state = decode_checkpoint(blob)
        except (CheckpointError, OSError) as exc:
            raise CheckpointError(
                f"{flag_used}: {path} is damaged and cannot be resumed ({exc}); nothing in {self.output} was "
                f"changed.{self._previous_hint(path, 'start the run again with --overwrite (or in a new --output)')}"
            ) from None
        if meta["model_sha256"] != self.model_sha256:
            raise InputError(f"{flag_used}: {path} was written with another model; use the same --model")
        if self.openmm_rpmd and len(meta.get("beads", [])) != self.cfg.beads:
            raise CheckpointError(f"{flag_used}: {path} holds {len(meta.get('beads', []))} ring-polymer beads, not "
                                  f"{self.cfg.beads}; resume with the original --beads")  # fmt: skip
        self._check_run_record(flag_used)
        self._check_outputs(meta, path, flag_used)
        try:
            self.context.loadCheckpoint(state)
            if self.openmm_rpmd:
                for k, bead in enumerate(meta["beads"]):
                    self.integrator.setPositions(k, np.array(bead["positions_nm"]) * unit.nanometer)
                    self.integrator.setVelocities(
                        k, np.array(bead["velocities_nm_per_ps"]) * (unit.nanometer / unit.picosecond)
                    )
        except Exception as exc:
            raise CheckpointError(
                f"{flag_used}: OpenMM cannot restore {path} ({str(exc).splitlines()[0] if str(exc) else exc!r}): it "
                f"is from another system or another OpenMM; resume with the original structure and options"
            ) from exc
        self.last_checkpoint = blob
        return meta

    def _previous_hint(self, damaged: Path, otherwise: str) -> str:
        """What to do instead: resume from the previous checkpoint if it is intact, else ``otherwise``."""
        previous = self.output / PREVIOUS_CHECKPOINT
        if previous.is_file() and previous.resolve() != damaged.resolve():
            try:
                step = decode_checkpoint(previous.read_bytes())[0]["step"]
            except (CheckpointError, OSError):
                pass
            else:
                return (
                    f" The previous checkpoint {previous} (step {step}) is intact: resume from it with "
                    f"--resume-from {PREVIOUS_CHECKPOINT} (the steps after {step} are run again)."
                )
        return f" There is no intact earlier checkpoint: {otherwise}."

    def _check_run_record(self, flag_used: str) -> None:
        record = self.output / "run.json"
        try:
            previous = json.loads(record.read_text())["config"]
            if not isinstance(previous, dict):
                raise TypeError("'config' is not a mapping")
        except FileNotFoundError:
            raise InputError(
                f"{flag_used}: {record} is missing; it records the options the run was started with, which a "
                f"resumed run must repeat. Restore it, or start again with --overwrite"
            ) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(
                f"{flag_used}: {record} cannot be read ({type(exc).__name__}: {exc}); restore it, or start again "
                f"with --overwrite"
            ) from None
        now = self.cfg.to_dict()
        changed = [k for k in RESUME_MUST_MATCH if k in previous and previous[k] != now[k]]
        if changed:
            listing = ", ".join(f"{flag(k)} ({previous[k]} -> {now[k]})" for k in changed)
            raise InputError(f"{flag_used} with changed settings: {listing}; resume with the original options")

    def _check_outputs(self, meta: dict, path: Path, flag_used: str) -> None:
        """The output files hold at least what the checkpoint says was written (resuming cuts them back to it)."""
        cfg, problems = self.cfg, []
        for name, copies in (("trajectory", cfg.replicas), ("beads", cfg.replicas * cfg.beads)):
            if name == "beads" and not cfg.bead_trajectory:
                continue
            frames, size = meta.get(f"{name}_frames", 0), meta.get(f"{name}_bytes", 0)
            file = self.output / f"{name}.{cfg.trajectory_format}"
            if frames == 0:
                continue
            if not file.is_file():
                problems.append(f"{file.name} is missing (the checkpoint counts {frames} frames)")
            elif cfg.trajectory_format == "xtc" and file.stat().st_size < size:
                problems.append(f"{file.name} has {file.stat().st_size} bytes, fewer than the checkpoint's {size}")
            elif cfg.trajectory_format == "dcd":
                topology = replicated_topology(self.pdb.topology, copies)  # as TrajectoryFile writes it
                have = dcd_frames(file, topology.getNumAtoms(), topology.getPeriodicBoxVectors() is not None)
                if have < frames:
                    problems.append(f"{file.name} holds {have} frames, fewer than the checkpoint's {frames}")
        if self.recorded and meta["property_frames"] > 0:
            import h5py

            file = self.output / "properties.h5"
            try:
                with h5py.File(file, "r") as f:
                    have = min(f[name].shape[0] for name in ("time",) + self.recorded)
            except (OSError, KeyError) as exc:
                problems.append(f"{file.name} cannot be read ({exc})")
            else:
                if have < meta["property_frames"]:
                    problems.append(
                        f"{file.name} holds {have} frames, fewer than the checkpoint's {meta['property_frames']}"
                    )
        if problems:
            raise InputError(
                f"{flag_used}: the run's files do not match {path} (step {meta['step']}): {'; '.join(problems)}. "
                f"Restore them, or start again with --overwrite"
            )

    # ---- the run ---------------------------------------------------------------------------------------
    def run(self) -> SimulationResult:
        cfg = self.cfg
        self.model_sha256 = self.artefact.sha256
        out = self.output
        attrs = {
            "temperature_K": cfg.temperature_K,
            "timestep_fs": cfg.timestep_fs,
            "record_interval_steps": cfg.record_interval,
            "beads": cfg.beads,
            "replicas": cfg.replicas,
            # RPMD gives Kubo-transformed correlation functions (docs/spectra.md)
            "correlation": "kubo" if cfg.beads > 1 else "classical",
            "model_sha256": self.model_sha256,
        }
        self.last_checkpoint = None  # the bytes of the last checkpoint written or resumed from
        if cfg.resume:
            try:
                meta = self._load_checkpoint()
            except PainnDeployError:
                if self.created:  # nothing to resume in a directory made just now: leave none behind
                    shutil.rmtree(self.output, ignore_errors=True)
                raise
            self.step = meta["step"]
            resume_step, resume_frames = self.step, meta["property_frames"]
        else:
            if cfg.overwrite:
                self._remove_previous_run()
            self._set_initial_state()
            if cfg.equilibration_steps:
                self.integrator.step(cfg.equilibration_steps)
            resume_step, resume_frames = -1, -1
            self._write_run_record()
        self.log = CsvLog(out / "log.csv", resume_step)
        self.properties = (
            PropertiesFile(out / "properties.h5", self.recorded, attrs, resume_frames, cfg.replicas)
            if self.recorded
            else None
        )
        resume = meta if cfg.resume else None
        self.trajectory = TrajectoryFile(
            out, cfg.trajectory_format, replicated_topology(self.pdb.topology, cfg.replicas), cfg.timestep_fs,
            cfg.trajectory_interval, resume=resume,
        )  # fmt: skip
        self.bead_trajectory = None
        if cfg.bead_trajectory:
            self.bead_trajectory = TrajectoryFile(
                out, cfg.trajectory_format, replicated_topology(self.pdb.topology, cfg.replicas * cfg.beads),
                cfg.timestep_fs, cfg.trajectory_interval, resume=resume, name="beads",
            )  # fmt: skip
        if not cfg.resume:
            self._checkpoint()
        self._warm_up()
        progress = Progress(cfg.steps, self.step, cfg.progress)
        wall_start, start_step = time.perf_counter(), self.step
        try:
            self._loop(progress, wall_start, start_step)
        finally:
            progress.close()
            self.log.close()
            if self.properties is not None:
                self.properties.close()
            self.trajectory.close()
            if self.bead_trajectory is not None:
                self.bead_trajectory.close()
        elapsed = time.perf_counter() - wall_start
        ns_per_day = (self.step - start_step) * self.dt_ps * 1e-3 / max(elapsed, 1e-9) * 86400.0
        frames = 0
        if self.recorded:
            import h5py

            with h5py.File(out / "properties.h5") as f:
                frames = f["time"].shape[0]
        return SimulationResult(out, self.step, ns_per_day, frames, self.backend, self._envelope_summary())

    def _remove_previous_run(self) -> None:
        """--overwrite: delete the files a previous run left in the output directory (and the temporary files of
        its atomic writes), except what this run's set-up just wrote and the run's own inputs."""
        keep = {(self.output / name).resolve() for name in self.written_by_set_up}
        keep |= {Path(self.cfg.structure).resolve(), self.model_path.resolve()}
        for path in self.output.iterdir():
            temporary = path.name.startswith(".") and path.name.endswith(".tmp")
            if (path.name in RUN_FILES or temporary) and path.is_file() and path.resolve() not in keep:
                path.unlink()

    def _loop(self, progress, wall_start, start_step):
        cfg = self.cfg
        intervals = [cfg.log_interval, cfg.trajectory_interval, cfg.checkpoint_interval]
        if self.recorded:  # read the features before the ring wraps (and at every barostat move)
            intervals.append(max(1, self.adapter.ring.capacity - 2))
            if self.barostat_frequency:
                intervals.append(self.barostat_frequency)
        while self.step < cfg.steps:
            n = min(i - self.step % i for i in intervals)
            n = min(n, cfg.steps - self.step)
            self.integrator.step(n)
            self.step += n
            if self.recorded:
                self._read_features(n)
            if self.adapter is not None:
                last = self.adapter.last
                if not np.isfinite(last["energy"]) or not np.all(np.isfinite(last["forces"])):
                    self._check("model evaluation", float(last["energy"]), float("nan"), 0.0, None)
            if self.step % cfg.trajectory_interval == 0:
                self._write_trajectory()
            if self.step % cfg.log_interval == 0 or self.step == cfg.steps:
                row = self._log_row(wall_start, self.step - start_step)
                self.log.write(row)
                progress.update(self.step, row["speed_ns_per_day"], row["temperature_K"])
            if self.step % cfg.checkpoint_interval == 0 or self.step == cfg.steps:
                if self.step % cfg.log_interval != 0 and self.step != cfg.steps:
                    self._log_row(wall_start, self.step - start_step)  # never checkpoint an unchecked state
                self._checkpoint()

    def _write_run_record(self):
        record = {
            "command_line": " ".join(shlex.quote(a) for a in sys.argv),
            "config": self.cfg.to_dict(),
            "model": str(self.model_path),
            "model_sha256": self.model_sha256,
            "model_metadata_heads": self.artefact.heads,
            "platform": self.platform.getName(),
            "backend": self.backend,
            "versions": versions.collect(),
            "seed": self.cfg.seed,
        }
        (self.output / "run.json").write_text(json.dumps(record, indent=1))


def run_simulation(cfg: SimulationConfig) -> SimulationResult:
    """Run (or resume) a simulation; see :class:`SimulationConfig` for the options."""
    return MDRun(cfg).run()
