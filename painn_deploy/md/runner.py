"""``run_simulation(config)``: molecular dynamics with an exported PaiNN model in OpenMM.

Records the dipole and polarizability along the trajectory, writes checkpoints that ``resume`` continues bit for
bit (CPU/Reference platforms; RPMD from the saved ring polymer, up to rounding), and stops when the trajectory
goes bad or leaves the model's training data (:mod:`.safety`), keeping the last good checkpoint.  The output
directory, the checkpoint format and what a resume verifies: :mod:`.rundir`.
"""

import math
import os
import shlex
import signal
import sys
import threading
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
from ..deploy import Artefact
from ..deploy import metadata as md
from ..errors import (
    BoxTooSmallError,
    CheckpointError,
    InputError,
    NeighborListOverflowError,
    PainnDeployError,
    RecordingError,
    RunInterrupted,
    SimulationInstabilityError,
    SimulationWarning,
    typed_errors,
)
from ..files import atomic_write
from ..openmm import check_positions, create_system
from ..openmm.forces import make_whole
from ..openmm.mlpotential import residue_groups
from ..resources import BUNDLED_MODEL
from ..structures import find_molecules, load_pdb, write_atoms_pdb
from .build import build_integrator, choose_platform, replicated_topology, resolve_model, stop_thermostat
from .config import SimulationConfig
from .outputs import CsvLog, PropertiesFile, TrajectoryFile, log_columns
from .progress import Progress
from .rpmd import Layout, centroid_virial_kinetic_energy, check_memory, spring_energy
from .rundir import BEADS_STRUCTURE, CHECKPOINT, FINAL_STRUCTURE, REPLICAS_STRUCTURE, RunDirectory, path_entries
from .safety import SafetyNet
from .solution import BAROSTAT_SHRINK, add_barostat, mixed_system, ml_atoms_by_residue

MINIMIZE_TOLERANCE_KJ_PER_MOL_NM, MINIMIZE_STEPS = 10.0, 200  # solvated structures, before the dynamics
FEATURE_CAPACITY = 100  # steps per integrator call and per call of the output heads when recording
# friction x equilibration time before a run without a thermostat: e^-3 of the temperature's deficit is left
VERLET_EQUILIBRATION_RELAXATIONS = 3
WARM_UP_EVALUATIONS = 3  # TorchScript runs a module's first call unoptimised (see MDRun._warm_up)


@dataclass
class SimulationResult:
    output: Path
    steps: int
    ns_per_day: float
    frames_recorded: int
    backend: str
    envelope: str = ""  # how often and how far the run left the training data's distances ("": never)

    def summary(self) -> str:
        frames = f"{self.frames_recorded} property frames; " if self.frames_recorded else ""
        text = f"{self.steps} steps done, {self.ns_per_day:.2f} ns/day; {frames}outputs in {self.output}"
        return f"{text}\n{self.envelope}" if self.envelope else text


class MDRun:
    """One simulation: set-up, the step loop and its outputs."""

    def __init__(self, cfg: SimulationConfig):
        self.cfg = cfg
        self.dir = RunDirectory(cfg)
        self.output = self.dir.path
        try:
            self._set_up()
        except BaseException:  # bad input, or Ctrl-C: leave no half-made output directory behind
            self.dir.discard_if_created()
            raise
        for text in cfg.empty_outputs:  # (after every refusal of the input)
            warnings.warn(text, SimulationWarning, stacklevel=3)

    def _set_up(self):
        cfg = self.cfg
        if cfg.resume and (self.output / "run.json").is_file():  # changed options: refused before the slow set-up
            self.dir.check_record()
        self.pdb, z, positions_nm, box_nm = load_pdb(cfg.structure)
        check_positions(positions_nm, box_nm, where=cfg.structure)
        self.atomic_numbers = z
        torch.set_num_threads(cfg.threads or (1 if len(z) < 1000 else os.cpu_count() or 1))
        self._open_model(z, positions_nm, box_nm)
        self._check_options(z, box_nm)
        self._build_system(positions_nm, box_nm)
        # the training-envelope check of the start warns, so it comes after every refusal of the options
        model_atoms = self.ml_atoms if self.ml_atoms is not None else self.artefact.atom_indices
        self.safety = SafetyNet(cfg, self.artefact, z, model_atoms, Layout(len(z), cfg.replicas, cfg.beads),
                                self.periodic, self.output / CHECKPOINT)  # fmt: skip
        self.safety.check_start(positions_nm, box_nm if self.periodic else None)
        self._make_context(z)

    def _started(self) -> Optional[Path]:
        """On a resume, the model the run started with (run.json)."""
        return self.dir.started_model() if self.cfg.resume else None

    def _check_ml_elements(self, ml_z) -> None:
        """The ML residues' elements against the model's, naming the atoms and residues (before any export)."""
        if self.cfg.model is None:
            return  # (the bundled model: resolve_model names what it takes)
        from ..elements import check_known
        from ..openmm.mlpotential import open_model

        artefact, record = open_model(Path(self.cfg.model))
        known = artefact.model_elements if artefact is not None else record["config"]["elements"]
        atoms = list(self.pdb.topology.atoms())
        check_known(
            ml_z, known, f"the ML residues ({self.cfg.ml_residues}) of {self.cfg.structure}",
            [f"atom {i + 1} ({atoms[i].name} in residue {atoms[i].residue.name} {atoms[i].residue.id})"
             for i in self.ml_atoms],
            "Choose --ml-residues of these elements only (the MM force field models the rest), or ",
        )  # fmt: skip

    def _open_model(self, z, positions_nm, box_nm) -> None:
        """The artefact (``--model``, a checkpoint exported here, or the bundled model) and, for a solute in
        solvent, the ML atoms; both checked against the structure."""
        cfg, topology = self.cfg, self.pdb.topology
        self.ml_atoms = None  # a solute in solvent: the ML atoms (the rest from the MM force field)
        if cfg.ml_residues:
            self.ml_atoms = ml_atoms_by_residue(topology, cfg.ml_residues.split(","), cfg.structure)
            ml_z = [z[i] for i in self.ml_atoms]
            self._check_ml_elements(ml_z)
            ml_pdb = self.dir.write_if_changed(
                "ml_region.pdb", lambda path: write_atoms_pdb(path, topology, positions_nm, self.ml_atoms)
            )
            self.artefact = Artefact(resolve_model(cfg, self.output, ml_z, ml_pdb, started_model=self._started()))
            if self.artefact.atom_indices is not None:
                raise InputError(
                    f"{self.artefact.path} was exported for a whole system (ML/MM artefact for TorchForce); "
                    f"painn-simulate --ml-residues takes a model of the ML molecule alone (painn-export CHECKPOINT "
                    f"--pdb MOLECULE.pdb) or the painn-train checkpoint"
                )
            self.artefact.check_system(
                ml_z,
                box_nm if self.artefact.periodic else None,
                f"the ML molecule of {cfg.structure} (its atoms in their order in the structure)",
            )
        else:
            residues = [r.name for r in topology.residues()]
            self.artefact = Artefact(
                resolve_model(cfg, self.output, z, residues=residues, started_model=self._started())
            )
            self.artefact.check_system(z, box_nm, where=cfg.structure)
        self.model_path = self.artefact.path
        if self.dir.owns(self.model_path):
            self.dir.written_by_set_up.add(self.model_path.name)

    def _check_options(self, z, box_nm) -> None:
        """The options against the system and the model: periodicity and NPT, recorded heads, copies."""
        cfg = self.cfg
        self.periodic = box_nm is not None and (self.artefact.periodic or self.ml_atoms is not None)
        if cfg.pressure_bar > 0 and not self.periodic:
            raise InputError(self._why_not_periodic(box_nm))
        if cfg.pressure_bar > 0 and self.artefact.metadata.get(md.KEY_NEIGHBOR_LIST) == "static":
            raise InputError(
                f"--pressure (NPT) changes the box, and {self.model_path} uses the static neighbour list, whose cell "
                f"grid is fixed for the box it was exported with: export with --neighbor-list cell_list for NPT "
                f"(then run NVT at the box it reaches with a static list, if you want CUDA graphs)"
            )
        if cfg.integrator == "verlet" and not cfg.resume:
            step_ps = cfg.timestep_fs * units.PS_PER_FS
            relaxations = cfg.equilibration_steps * step_ps * cfg.friction_per_ps
            if relaxations < VERLET_EQUILIBRATION_RELAXATIONS:
                warnings.warn(
                    f"--integrator verlet runs without a thermostat after --equilibration-steps, which relax the "
                    f"temperature at --friction: {cfg.equilibration_steps} steps at {cfg.friction_per_ps:g}/ps are "
                    f"{relaxations:.2g} relaxation times, and a run from a minimised structure that is not relaxed "
                    f"keeps up to half of --temperature for good; give at least {VERLET_EQUILIBRATION_RELAXATIONS}, "
                    f"for example --friction 10 --equilibration-steps "
                    f"{math.ceil(VERLET_EQUILIBRATION_RELAXATIONS / (10.0 * step_ps))}",
                    SimulationWarning, stacklevel=3,
                )  # fmt: skip
        if box_nm is not None and not self.periodic:
            warnings.warn(
                f"{cfg.structure} has a periodic box (CRYST1), which is ignored: the model {self.artefact.path} "
                f"is not periodic, so the system is simulated as an isolated cluster in vacuum. For a periodic "
                f"system export a periodic model (painn-export CHECKPOINT --pdb {cfg.structure})",
                SimulationWarning, stacklevel=3,
            )  # fmt: skip
        batched_beads = cfg.beads if cfg.rpmd_integrator == "batched" else 1
        self.layout = Layout(len(z), cfg.replicas, batched_beads)
        heads = self.artefact.heads
        for wanted, head in ((cfg.record_dipole, "dipole"), (cfg.record_polarizability, "polarizability")):
            if wanted and head not in heads:
                raise InputError(
                    f"--record-{head} needs a model with a {head} head; {cfg.model or self.model_path} has "
                    f"{', '.join(heads)}. Drop --record-{head}, or train a model with {head} among its --targets"
                )
        self.recorded = tuple(
            n for n, f in (("dipole", cfg.record_dipole), ("polarizability", cfg.record_polarizability)) if f
        )
        if self.periodic and (cfg.beads > 1 or cfg.replicas > 1):  # (either RPMD integrator)
            raise InputError(
                "ring polymers and replicas are for molecules: OpenMM wraps periodic positions, which the normal "
                "modes and the replicas' shared box do not allow; run a periodic system with one copy and no beads"
            )

    def _build_system(self, positions_nm, box_nm) -> None:
        """The OpenMM System with the model's force (and the MM force field for a solute in solvent), the start
        positions with the model's molecules whole, and the barostat."""
        cfg, topology = self.cfg, self.pdb.topology
        self.platform = choose_platform(cfg.platform)
        on_gpu = self.platform.getName() == "CUDA"
        module = self.artefact.load().module
        if self.artefact.metadata[md.KEY_NEIGHBOR_LIST] == "all_pairs":  # (pair lists grow as N, not N^2)
            check_memory(
                self.layout, int(module.n_atoms), int(module.n_features),
                int(self.artefact.metadata[md.KEY_MODEL]["n_interactions"]), module.dtype_marker.element_size(),
                "cuda" if on_gpu else "cpu",
            )  # fmt: skip
        self.backend = cfg.backend if cfg.backend != "auto" else ("python" if self.recorded else "torch")
        if cfg.cuda_graphs == "on" and not on_gpu:
            raise InputError(
                f"--cuda-graphs on captures the model in CUDA graphs, which need the CUDA platform; this run is on "
                f"{self.platform.getName()}: give --platform CUDA, or leave --cuda-graphs at auto"
            )
        cuda_graphs = on_gpu and self.artefact.fixed_shapes if cfg.cuda_graphs == "auto" else cfg.cuda_graphs == "on"
        ring = FEATURE_CAPACITY if self.recorded else 0
        device = "cuda" if on_gpu else "cpu"
        self.barostat_frequency = 0
        self.stepping = False  # (from the first step on: errors of the model stop a run that has moved)
        self.equilibrating = None  # the equilibration steps done, while it runs (int)
        self.start_positions_nm = positions_nm
        if self.ml_atoms is not None:
            mixed = mixed_system(
                topology, str(self.model_path), self.ml_atoms, cfg.mm_forcefield,
                path_entries("forcefield_file", cfg.forcefield_file), self.backend, ring, device, cuda_graphs,
                # (a resumed run keeps the cutoff it was started with: --resume refuses another)
                cfg.mm_cutoff_nm, cfg.structure, barostat=cfg.pressure_bar > 0 and not cfg.resume,
            )  # fmt: skip
            self.system, self.adapter = mixed.system, mixed.adapter
            self.ml_molecules = residue_groups(topology, self.ml_atoms)
        else:
            self.system, self.adapter = create_system(
                self.artefact, topology, self.backend, ring_capacity=ring, cuda_graphs=cuda_graphs, device=device,
                n_frames=self.layout.n_frames, modes=self.layout.modes(),
                # (OpenMM's RPMDIntegrator applies a remover to every bead, which would take 3 degrees of freedom each)
                remove_cm_motion=cfg.beads == 1,
            )  # fmt: skip
        if self.periodic:
            # the model's molecules (ML/MM: the ML atoms', rebuilt where they are) start whole, however the PDB
            # wrapped them, and a barostat moves them whole: OpenMM finds molecules by their bonds, which the model's
            # force does not declare
            molecules = find_molecules(topology, positions_nm, box_nm, atoms=self.ml_atoms, wrap=self.ml_atoms is None)
            self.start_positions_nm = molecules.whole_nm
            if cfg.pressure_bar > 0:  # (the painn potential of OpenMM-ML ties ML molecules itself)
                self.barostat_frequency = add_barostat(
                    self.system, molecules.finite if self.ml_atoms is None else [], cfg.pressure_bar, cfg.temperature_K
                )
                # (the start box; a resumed run continues from the checkpoint's box and was warned at its start)
                limit_nm = 2.0 * float(self.artefact.cutoff_nm)
                width_nm = float(np.min(np.diag(np.asarray(box_nm))))
                if self.ml_atoms is None and not cfg.resume and width_nm < limit_nm / (1.0 - BAROSTAT_SHRINK):
                    warnings.warn(
                        f"the box of {cfg.structure} is {width_nm:.3f} nm wide, within {BAROSTAT_SHRINK:.0%} of twice "
                        f"the model cutoff ({limit_nm:.3f} nm): if the barostat shrinks it below that, the model "
                        f"stops the run. Start from a larger box (more molecules) for NPT",
                        SimulationWarning, stacklevel=3,
                    )  # fmt: skip

    def _make_context(self, z) -> None:
        """The integrator and the OpenMM Context, and what the step loop counts with."""
        cfg = self.cfg
        self.masses_amu = np.array(
            [self.system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(self.system.getNumParticles())]
        )
        self.integrator = build_integrator(cfg, self.layout)
        # the CPU platform sums forces in thread order unless told not to (its PME still sums in thread order: a
        # reproducible minimisation of a solvated system needs --threads 1)
        properties = {}
        if self.platform.getName() == "CPU":
            properties["DeterministicForces"] = "true"
            if cfg.threads:
                properties["Threads"] = str(cfg.threads)
        self.context = openmm.Context(self.system, self.integrator, self.platform, properties)
        self.dt_ps = cfg.timestep_fs * units.PS_PER_FS
        # degrees of freedom of one physical copy: a single classical copy has its centre-of-mass motion removed
        removed = 3 if self.layout.n_frames == 1 and cfg.beads == 1 else 0
        self.dof = 3 * len(z) - removed - self.system.getNumConstraints()
        self.step = 0
        self.features_read = 0  # evaluations read from the adapter's feature ring so far

    def _why_not_periodic(self, box_nm) -> str:
        """Why ``--pressure`` cannot run here: the structure has no box, or the model is not periodic."""
        if box_nm is None:
            return (
                f"--pressure (NPT) needs a periodic system, and {self.cfg.structure} has no box: give a PDB with a "
                f"CRYST1 record (a liquid box, or a solvated structure with --ml-residues), or drop --pressure"
            )
        return (
            f"--pressure (NPT) needs a periodic model, and {self.model_path} is not periodic: export one for this "
            f"box (painn-export CHECKPOINT --pdb {self.cfg.structure}), or drop --pressure"
        )

    def _set_initial_state(self):
        cfg = self.cfg
        positions = self.start_positions_nm
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
            sigma = np.sqrt(units.BOLTZMANN_KJ_PER_MOL_K * cfg.temperature_K * cfg.beads / self.masses_amu)[:, None]
            for k in range(cfg.beads):
                self.integrator.setPositions(k, positions * unit.nanometer)
                self.integrator.setVelocities(k, rng.normal(size=(len(self.masses_amu), 3)) * sigma)

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

    def _per_bead(self, arrays) -> np.ndarray:
        """[R, P, N, 3] from the per-state arrays [particles, 3] of :meth:`_bead_states`."""
        return np.stack(arrays)[None] if self.openmm_rpmd else self.layout.beads_nm(arrays[0])

    def _log_row(self, wall_start: float, steps_since_start: int) -> dict:
        cfg = self.cfg
        states = self._bead_states(getEnergy=True, getForces=True, getPositions=True)
        energy = sum(s.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) for s in states)
        kinetic_total = sum(s.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole) for s in states)
        positions = [s.getPositions(asNumpy=True).value_in_unit(unit.nanometer) for s in states]
        forces = [s.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer) for s in states]
        beads, bead_forces = self._per_bead(positions), self._per_bead(forces)
        copies, p = beads.shape[0], beads.shape[1]
        # the ring polymer is sampled at P x T: every degree of freedom carries k_B P T / 2, and the physical
        # temperature and kinetic energy are those divided by P (per copy of the molecule)
        temperature = 2.0 * kinetic_total / (copies * p * self.dof * units.BOLTZMANN_KJ_PER_MOL_K * p)
        kinetic = kinetic_total / (copies * p * p)
        potential = energy / (copies * p)
        centroids = beads.mean(axis=1)
        self.safety.check(self.step, "log", potential, float(np.max(np.abs(bead_forces))), temperature, centroids)
        box = states[0].getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer) if self.periodic else None
        self.safety.check_envelope(self.step, beads.reshape(-1, beads.shape[-2], 3), box)
        elapsed = time.perf_counter() - wall_start
        row = {
            "step": self.step,
            "time_ps": self.step * self.dt_ps,
            "potential_kj_per_mol": potential,
            "kinetic_kj_per_mol": kinetic,
            "total_kj_per_mol": potential + kinetic,
            "temperature_K": temperature,
            "speed_ns_per_day": steps_since_start * self.dt_ps * 1e-3 / max(elapsed, 1e-9) * 86400.0,
        }
        if p > 1:  # the quantum kinetic energy, and with it the quantum total energy estimate <V> + K_cv
            row["quantum_kinetic_kj_per_mol"] = centroid_virial_kinetic_energy(beads, bead_forces, cfg.temperature_K)
            row["total_kj_per_mol"] = potential + row["quantum_kinetic_kj_per_mol"]
            springs = spring_energy(beads, self.masses_amu[: beads.shape[2]], cfg.temperature_K)
            row["ring_polymer_hamiltonian_kj_per_mol"] = (kinetic_total + energy) / copies + springs
        if cfg.integrator == "verlet" and not self.safety.phase:  # NVE after the equilibration: the drift
            kinetic_expected = p * p * self.dof * units.BOLTZMANN_KJ_PER_MOL_K * cfg.temperature_K / 2.0
            self.safety.check_drift(self.step, row.get("ring_polymer_hamiltonian_kj_per_mol", row["total_kj_per_mol"]),
                                    kinetic_expected)  # fmt: skip
        if box is not None:  # (periodic runs are one copy: the system's mass is the box's contents)
            volume_nm3 = float(abs(np.linalg.det(box)))
            row["volume_nm3"] = volume_nm3
            row["density_g_per_cm3"] = float(self.masses_amu.sum()) / volume_nm3 * units.AMU_PER_NM3_TO_G_PER_CM3
        return row

    def _write_trajectory(self):
        states = self._bead_states(getPositions=True)
        positions = [s.getPositions(asNumpy=True).value_in_unit(unit.nanometer) for s in states]
        beads = self._per_bead(positions)
        box = states[0].getPeriodicBoxVectors() if self.periodic else None
        self.trajectory.write(beads.mean(axis=1).reshape(-1, 3), box)  # the centroid of every replica
        if self.bead_trajectory is not None:
            self.bead_trajectory.write(beads.reshape(-1, 3), box)

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def _checkpoint(self):
        if self.properties is not None:
            self.properties.flush()
        meta = {
            "step": self.step,
            **self.trajectory.sync(),
            **(self.bead_trajectory.sync() if self.bead_trajectory is not None else {}),
            "property_frames": self.properties.n_frames if self.properties is not None else 0,
            "log_rows": self.log.rows,
            "model_sha256": self.artefact.sha256,
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
        self.dir.save_checkpoint(meta, self.context.createCheckpoint())

    def _resume(self) -> dict:
        """Restore the state of the verified checkpoint (nothing is written before it is verified)."""
        meta, state, path = self.dir.read_checkpoint(self.artefact.sha256, self.pdb.topology, self.recorded)
        flag_used = self.dir.resume_flag
        if self.openmm_rpmd and len(meta.get("beads", [])) != self.cfg.beads:
            raise CheckpointError(f"{flag_used}: {path} holds {len(meta.get('beads', []))} ring-polymer beads, not "
                                  f"{self.cfg.beads}; resume with the original --beads")  # fmt: skip
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
        return meta

    # ---- the run -------------------------------------------------------------------------------------------
    def run(self) -> SimulationResult:
        """Set up the initial state (or resume), step and write the outputs.

        Ctrl-C or SIGTERM (a batch scheduler's notice) asks the run to stop at the next log or checkpoint step, with
        a checkpoint there; a second one stops at once.  At those steps the state has been checked and its energy
        read, which advances a CustomIntegrator's random numbers, just as in an uninterrupted run: the resumed run
        continues as that one would."""
        requested: list = []

        def stop(signum, frame):
            requested.append(signal.Signals(signum))
            if len(requested) > 1:
                raise KeyboardInterrupt
            print(
                f"{requested[0].name}: stopping at the next log or checkpoint step, with a checkpoint there; again to "
                "stop at once", file=sys.stderr, flush=True,
            )  # fmt: skip

        previous = {}
        if threading.current_thread() is threading.main_thread():  # (signals reach the main thread only)
            for s in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(s) not in (signal.SIG_IGN, None):  # an ignored signal stays ignored
                    previous[s] = signal.signal(s, stop)
        try:
            with typed_errors():  # an exported model's own errors (a neighbour list overflow, a torn ML molecule)
                return self._run(requested)
        except openmm.OpenMMException as exc:
            if len(requested) > 1:  # the second signal's KeyboardInterrupt, raised inside a PythonForce callback
                raise KeyboardInterrupt from None
            if "box size has decreased" in str(exc):  # (OpenMM's PME check after a barostat move)
                kept = (
                    " (the outputs up to the last checkpoint are kept)" if (self.output / CHECKPOINT).is_file() else ""
                )
                raise SimulationInstabilityError(
                    f"the barostat shrank the periodic box below twice --mm-cutoff ({self.cfg.mm_cutoff_nm:g} nm) "
                    f"after step {self.step}{kept}: start the run again (another --output, or --overwrite) with a "
                    "smaller --mm-cutoff or a larger box (more solvent)"
                ) from None
            raise
        except (InputError, NeighborListOverflowError) as exc:  # (the model's own checks, as it steps)
            if not self.stepping:
                raise
            raise SimulationInstabilityError(self._stopped_by_model(exc)) from None
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _stopped_by_model(self, exc: Exception) -> str:
        """The message of a run the model stopped as it stepped (a box or a configuration it cannot take); after a
        static list's overflow, the configuration goes to final.pdb, to export the model again for."""
        if self.equilibrating is not None:
            when = f"after equilibration step {self.equilibrating} (no checkpoint was written: start the run again)"
        else:
            kept = " (the outputs up to the last checkpoint are kept)" if (self.output / CHECKPOINT).is_file() else ""
            when = f"after step {self.step}{kept}"
        message = f"the model stopped the run {when}: {str(exc).rstrip('.')}"
        if isinstance(exc, BoxTooSmallError) and self.barostat_frequency:
            return message + (
                ". The barostat (--pressure) shrank the box: start again (another --output, or --overwrite) from a "
                "larger box (more molecules) or at a lower pressure"
            )
        if isinstance(exc, NeighborListOverflowError):
            try:
                self._write_final_structure()
            except Exception:  # (the message matters more than the file)
                return message
            return message + (
                f". The configuration is in {self.output / FINAL_STRUCTURE}; a run with a model exported for it starts "
                "anew (another --output): --resume takes the model the run started with"
            )
        return message

    def _run(self, requested: list) -> SimulationResult:
        cfg, out = self.cfg, self.output
        attrs = {
            "temperature_K": cfg.temperature_K,
            "timestep_fs": cfg.timestep_fs,
            "record_interval_steps": cfg.record_interval,
            "beads": cfg.beads,
            "replicas": cfg.replicas,
            # RPMD gives Kubo-transformed correlation functions (docs/spectra.md)
            "correlation": "kubo" if cfg.beads > 1 else "classical",
            "model_sha256": self.artefact.sha256,
            # the checkpoint the model was exported from: one for every export of it (painn-spectrum's check that
            # runs averaged together are of one model)
            "checkpoint_sha256": self.artefact.metadata.get(md.KEY_CHECKPOINT_SHA256) or "",
            # the molecules whose dipole and polarizability are recorded (painn-spectrum's line shapes per molecule)
            "molecules": int(self.artefact.metadata[md.KEY_N_MOLECULES]),
        }
        if cfg.progress != "none":
            print(self._header(), flush=True)
        resume = None
        if cfg.resume:
            try:
                resume = self._resume()
            except PainnDeployError:
                self.dir.discard_if_created()  # nothing to resume in a directory made just now: leave none behind
                raise
            self.step = resume["step"]
            resume_step, resume_frames = self.step, resume["property_frames"]
            self._record_resume()
            if self.step >= cfg.steps:
                warnings.warn(
                    f"the run already has {self.step} steps, at least as many as --steps {cfg.steps} asks for: "
                    "nothing to do. Give a larger --steps to continue it.",
                    SimulationWarning, stacklevel=2,
                )  # fmt: skip
        else:
            if cfg.overwrite:
                self.dir.remove_previous_run(keep=(cfg.structure, self.model_path))
            self._set_initial_state()
            if cfg.equilibration_steps:
                self._equilibrate(requested)
            resume_step, resume_frames = -1, -1
            self._write_run_record()
        if cfg.integrator == "verlet":  # NVE from here on; the equilibration ran with the thermostat
            stop_thermostat(self.integrator)
        self.log = CsvLog(
            out / "log.csv", log_columns(cfg.beads > 1, self.periodic), resume_step,
            resume.get("log_rows") if resume is not None else None,
        )  # fmt: skip
        self.properties = (
            PropertiesFile(out / "properties.h5", self.recorded, attrs, resume_frames, cfg.replicas)
            if self.recorded
            else None
        )
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
            self._steps(progress, wall_start, start_step, requested)
            self._write_final_structure()
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
        return SimulationResult(out, self.step, ns_per_day, frames, self.backend, self.safety.summary())

    def _write_final_structure(self) -> None:
        """final.pdb: the last structure of the first copy (a ring polymer's centroid), with the box it ended in
        (where a barostat took it): a structure to start another run from, or to export a static-list model for.
        With --replicas, replicas.pdb: every copy's, the topology of trajectory.dcd (the copies overlap in space:
        they do not interact); with --bead-trajectory, beads.pdb: every bead's, the topology of beads.dcd."""
        from openmm.app import PDBFile

        states = self._bead_states(getPositions=True)
        beads = self._per_bead([s.getPositions(asNumpy=True).value_in_unit(unit.nanometer) for s in states])
        centroids = beads.mean(axis=1)  # [R, N, 3]
        topology = self.pdb.topology
        box = topology.getPeriodicBoxVectors()

        def write(name, top, positions_nm):
            def to(tmp):
                with open(tmp, "w") as fh:
                    PDBFile.writeFile(top, positions_nm * unit.nanometer, fh, keepIds=True)

            atomic_write(self.output / name, to)

        try:
            if self.periodic:  # (the structure's topology keeps its own box)
                topology.setPeriodicBoxVectors(states[0].getPeriodicBoxVectors())
            write(FINAL_STRUCTURE, topology, centroids[0])
        finally:
            topology.setPeriodicBoxVectors(box)
        if self.cfg.replicas > 1:  # (molecules only: no box)
            write(REPLICAS_STRUCTURE, replicated_topology(topology, self.cfg.replicas), centroids.reshape(-1, 3))
        if self.cfg.bead_trajectory:  # (replicas x beads x atoms, as beads.dcd)
            copies = self.cfg.replicas * self.cfg.beads
            write(BEADS_STRUCTURE, replicated_topology(topology, copies), beads.reshape(-1, 3))

    def _equilibrate(self, requested: list) -> None:
        """--equilibration-steps, in blocks of --log-interval steps, each checked as a log step is (nothing is
        written): an equilibration that goes bad, or is asked to stop (see :meth:`run`), stops before the run's
        first checkpoint."""
        cfg, done = self.cfg, 0
        self.stepping = True
        progress = Progress(cfg.equilibration_steps, 0, cfg.progress, label="equilibration ")
        self.safety.phase, wall_start = "equilibration ", time.perf_counter()
        try:
            while done < cfg.equilibration_steps:
                n = min(cfg.log_interval, cfg.equilibration_steps - done)
                self.equilibrating = done
                self.integrator.step(n)
                done += n
                self.step = done  # (for the checks' messages)
                row = self._log_row(wall_start, done)
                progress.update(done, row["speed_ns_per_day"], row["temperature_K"])
                if requested and done < cfg.equilibration_steps:
                    raise RunInterrupted(
                        f"stopped by {requested[0].name} at equilibration step {done} of {cfg.equilibration_steps}, "
                        "before the run's first checkpoint: there is nothing to resume; start the run again",
                        requested[0],
                    )
            self.equilibrating = None
        finally:
            progress.close()
            self.safety.phase, self.step = "", 0

    def _header(self) -> str:
        """What runs, with which model, where: the first line a run prints."""
        cfg, copies = self.cfg, []
        if cfg.beads > 1:
            copies.append(f"{cfg.beads} beads")
        if cfg.replicas > 1:
            copies.append(f"{cfg.replicas} replicas")
        bundled = " (the bundled ethanol model; --model for another)" if self.model_path == BUNDLED_MODEL else ""
        equilibration = (
            ", resuming its last checkpoint"
            if cfg.resume
            else f", {cfg.equilibration_steps} equilibration steps first"
            if cfg.equilibration_steps
            else ""
        )
        return (
            f"{cfg.structure}: {len(self.atomic_numbers)} atoms{''.join(', ' + c for c in copies)}; model "
            f"{self.model_path}{bundled}; OpenMM {self.platform.getName()}, {self.backend} backend; outputs in "
            f"{self.output}{equilibration}"
        )

    def _steps(self, progress, wall_start, start_step, requested: list):
        """The steps, in blocks that end where an output is due; after a stop request (see :meth:`run`) up to the
        next log or checkpoint step, with a checkpoint there."""
        cfg = self.cfg
        intervals = [cfg.log_interval, cfg.trajectory_interval, cfg.checkpoint_interval]
        if self.recorded:  # read the features before the ring wraps (and at every barostat move)
            intervals.append(max(1, self.adapter.ring.capacity - 2))
            if self.barostat_frequency:
                intervals.append(self.barostat_frequency)
        self.stepping = True
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
                    self.safety.check(self.step, "model evaluation", float(last["energy"]), float("nan"), 0.0)
            if self.step % cfg.trajectory_interval == 0:
                self._write_trajectory()
            if self.step % cfg.log_interval == 0 or self.step == cfg.steps:
                row = self._log_row(wall_start, self.step - start_step)
                self.log.write(row)
                progress.update(self.step, row["speed_ns_per_day"], row["temperature_K"])
            stopping = bool(requested) and (
                self.step % cfg.log_interval == 0 or self.step % cfg.checkpoint_interval == 0
            )
            if self.step % cfg.checkpoint_interval == 0 or self.step == cfg.steps or stopping:
                if self.step % cfg.log_interval != 0 and self.step != cfg.steps:
                    self._log_row(wall_start, self.step - start_step)  # never checkpoint an unchecked state
                self._checkpoint()
            if stopping and self.step < cfg.steps:
                raise RunInterrupted(
                    f"stopped by {requested[0].name} at step {self.step} of {cfg.steps}, with a checkpoint there: "
                    "continue the run with --resume",
                    requested[0],
                )

    def _record_resume(self) -> None:
        """Add this continuation to run.json's ``resumed`` list: from which step, to how many, with which command
        line and package versions (the record of a run that was continued, or extended with a larger --steps)."""
        import datetime

        record = dict(self.dir.record())  # (read and checked by the resume)
        record["resumed"] = record.get("resumed", []) + [{
            "from_step": self.step,
            "steps": self.cfg.steps,
            "command_line": " ".join(shlex.quote(a) for a in sys.argv),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": versions.collect(),
        }]  # fmt: skip
        self.dir.write_record(record)

    def _write_run_record(self):
        self.dir.write_record({
            "command_line": " ".join(shlex.quote(a) for a in sys.argv),
            "working_directory": os.getcwd(),  # (relative paths in config are relative to it)
            "config": self.cfg.as_dict(),
            "model": str(self.model_path),
            "model_sha256": self.artefact.sha256,
            "model_metadata_heads": self.artefact.heads,
            "platform": self.platform.getName(),
            "backend": self.backend,
            "versions": versions.collect(),
            "seed": self.cfg.seed,
        })  # fmt: skip


def run_simulation(cfg: SimulationConfig) -> SimulationResult:
    """Run (or resume) a simulation; see :class:`SimulationConfig` for the options.  Torch's thread count, which
    the run sets (``--threads``), is the caller's again on return."""
    threads = torch.get_num_threads()
    try:
        return MDRun(cfg).run()
    finally:
        torch.set_num_threads(threads)
