"""``run_simulation(config)``: molecular dynamics with an exported PaiNN model in OpenMM.

Records the dipole and polarizability along the trajectory, writes checkpoints that ``resume``
continues bit for bit (CPU/Reference platforms; RPMD from the saved ring polymer, up to rounding),
and stops with :class:`SimulationInstabilityError` when the trajectory goes bad, keeping the last good
checkpoint.
"""

import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openmm
import torch
from openmm import unit

from .. import units, versions
from ..deploy import Artefact, export
from ..elements import formula
from ..errors import CheckpointError, InputError, RecordingError, SimulationInstabilityError
from ..files import atomic_write
from ..openmm import check_positions, create_system
from ..structures import load_pdb
from .config import SimulationConfig
from .outputs import CsvLog, PropertiesFile, TrajectoryFile
from .progress import Progress
from .rpmd import Layout, centroid_virial_kinetic_energy, check_memory, ring_polymer_integrator

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
BUNDLED_MODEL = RESOURCES / "ethanol_painn.pt"
RESUME_MUST_MATCH = (
    "structure", "temperature_K", "timestep_fs", "integrator", "friction_per_ps", "beads", "record_dipole",
    "record_polarizability", "record_interval", "trajectory_interval", "trajectory_format", "backend", "seed",
    "replicas", "rpmd_integrator", "bead_trajectory",
)  # fmt: skip
NEAREST_NEIGHBOUR_LIMIT_NM = 0.5  # an atom with no other atom within 5 A has flown off
FEATURE_CAPACITY = 100  # steps per integrator call and per call of the output heads when recording
WARM_UP_EVALUATIONS = 3  # TorchScript runs a module's first call unoptimised (see MDRun._warm_up)


@dataclass
class SimulationResult:
    output: Path
    steps: int
    ns_per_day: float
    frames_recorded: int
    backend: str

    def summary(self) -> str:
        return (
            f"{self.steps} steps done, {self.ns_per_day:.2f} ns/day; {self.frames_recorded} property frames; "
            f"outputs in {self.output}"
        )


def resolve_model(cfg: SimulationConfig, output: Path, atomic_numbers) -> Path:
    """The exported model to use: ``cfg.model`` (.pt), a checkpoint exported on the fly for the
    structure, or the bundled ethanol model when the structure matches it."""
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
        export(path, exported, pdb=cfg.structure)
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


def build_integrator(cfg: SimulationConfig, layout: Layout):
    import openmmtools

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
        integrator = openmmtools.integrators.BAOABIntegrator(temperature, friction, dt)
    elif cfg.integrator == "nose-hoover":
        integrator = openmm.NoseHooverIntegrator(temperature, friction, dt)
    else:
        integrator = openmmtools.integrators.VelocityVerletIntegrator(dt)
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


class MDRun:
    """One simulation: set-up, the step loop, outputs and checkpoints."""

    def __init__(self, cfg: SimulationConfig):
        self.cfg = cfg
        self.output = Path(cfg.output)
        created = not self.output.exists()
        _check_writable(self.output)
        try:
            self._set_up()
        except Exception:
            if created:  # bad input: leave no half-made output directory behind
                shutil.rmtree(self.output, ignore_errors=True)
            raise

    def _set_up(self):
        cfg = self.cfg
        self.pdb, z, positions_nm, box_nm = load_pdb(cfg.structure)
        check_positions(positions_nm, box_nm, where=cfg.structure)
        self.atomic_numbers = z
        torch.set_num_threads(cfg.threads or (1 if len(z) < 1000 else os.cpu_count() or 1))
        self.artefact = Artefact(resolve_model(cfg, self.output, z))
        self.model_path = self.artefact.path
        self.artefact.check_system(z, box_nm, where=cfg.structure)
        self.periodic = self.artefact.periodic
        heads = self.artefact.heads
        for flag, head in ((cfg.record_dipole, "dipole"), (cfg.record_polarizability, "polarizability")):
            if flag and head not in heads:
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
        self.system, self.adapter = create_system(
            self.artefact, self.pdb.topology, self.backend, ring_capacity=FEATURE_CAPACITY if self.recorded else 0,
            cuda_graphs=cuda_graphs, device="cuda" if on_gpu else "cpu", n_frames=self.layout.n_frames,
            modes=self.layout.modes(),
        )  # fmt: skip
        self.integrator = build_integrator(cfg, self.layout)
        self.context = openmm.Context(self.system, self.integrator, self.platform)
        self.dt_ps = cfg.timestep_fs * 1e-3
        # degrees of freedom of one physical copy: a single classical copy has its centre-of-mass motion removed
        self.dof = 3 * len(z) - (3 if self.layout.n_frames == 1 else 0)
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
        here = self.layout.beads_nm(self._state(getPositions=True).getPositions(asNumpy=True)._value)
        if ring.count == 0 or np.max(np.abs(ring.positions_nm(ring.count - 1).reshape(here.shape) - here)) > 1e-6:
            self.context.getState(getForces=True)  # evaluates the model here (repeats are not kept)
        return ring.count

    def _read_features(self, n_steps: int) -> None:
        """Record the frames of the last ``n_steps`` steps from the features the force kept: its
        evaluations since the last read are the positions after each of these steps, one each."""
        count = self._evaluated_here()
        if count - self.features_read != n_steps:
            raise RecordingError(
                f"at step {self.step}: the model was evaluated at {count - self.features_read} new configurations "
                f"during the last {n_steps} steps; recording needs exactly one force evaluation per step, which "
                f"this integrator does not make. Record with langevin, nose-hoover or verlet."
            )
        first = self.step - n_steps  # evaluation features_read is at the positions after step first + 1
        steps = [t for t in range(first + 1, self.step + 1) if t % self.cfg.record_interval == 0]
        if steps:
            values = self.adapter.ring.responses([self.features_read + t - first - 1 for t in steps])
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
            raise SimulationInstabilityError(
                f"simulation stopped at step {self.step} ({where}): {reason}. The last good checkpoint "
                f"{self.output / 'checkpoint.chk'} is kept; check the structure, lower --timestep, or use a "
                f"model trained on configurations like these."
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
        header = json.dumps(meta).encode()
        atomic_write(
            self.output / "checkpoint.chk",
            lambda tmp: Path(tmp).write_bytes(len(header).to_bytes(8, "little") + header + state),
        )

    def _load_checkpoint(self) -> dict:
        path = self.output / "checkpoint.chk"
        if not path.is_file():
            raise InputError(f"--resume: no checkpoint {path}; start without --resume")
        blob = path.read_bytes()
        try:
            n = int.from_bytes(blob[:8], "little")
            meta = json.loads(blob[8 : 8 + n])
            self.context.loadCheckpoint(blob[8 + n :])
            if self.openmm_rpmd:
                if len(meta.get("beads", [])) != self.cfg.beads:
                    raise ValueError(f"it holds {len(meta.get('beads', []))} ring-polymer beads, not {self.cfg.beads}")
                for k, bead in enumerate(meta["beads"]):
                    self.integrator.setPositions(k, np.array(bead["positions_nm"]) * unit.nanometer)
                    self.integrator.setVelocities(
                        k, np.array(bead["velocities_nm_per_ps"]) * (unit.nanometer / unit.picosecond)
                    )
        except Exception as exc:
            raise CheckpointError(f"cannot restore {path} ({exc}); the file is damaged or from another system") from exc
        if meta["model_sha256"] != self.model_sha256:
            raise InputError(f"--resume: {path} was written with another model; use the same --model")
        previous = json.loads((self.output / "run.json").read_text())["config"]
        changed = [k for k in RESUME_MUST_MATCH if previous.get(k) != self.cfg.to_dict()[k]]
        if changed:
            listing = ", ".join(f"{k} ({previous.get(k)} -> {self.cfg.to_dict()[k]})" for k in changed)
            raise InputError(f"--resume with changed settings: {listing}; resume with the original options")
        return meta

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
        if cfg.resume:
            meta = self._load_checkpoint()
            self.step = meta["step"]
            resume_step, resume_frames = self.step, meta["property_frames"]
        else:
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
        return SimulationResult(out, self.step, ns_per_day, frames, self.backend)

    def _loop(self, progress, wall_start, start_step):
        cfg = self.cfg
        intervals = [cfg.log_interval, cfg.trajectory_interval, cfg.checkpoint_interval]
        if self.recorded:  # read the features before the ring wraps
            intervals.append(self.adapter.ring.capacity)
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
