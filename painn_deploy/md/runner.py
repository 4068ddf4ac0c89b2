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
from ..data import file_sha256
from ..deploy import export, load
from ..deploy.metadata import (
    FUSED_FORMAT_VERSION,
    KEY_ATOMIC_NUMBERS,
    KEY_FORMAT_VERSION,
    KEY_HEADS,
    KEY_PERIODIC,
    TAP_FORMAT_VERSION,
)
from ..elements import formula
from ..errors import CheckpointError, InputError, RecordingError, SimulationInstabilityError
from ..openmm import check_box, check_positions, check_topology, create_system, model_metadata
from ..structures import load_pdb
from ..training.checkpoint import atomic_write
from .config import SimulationConfig
from .outputs import CsvLog, PropertiesFile, TrajectoryFile
from .progress import Progress

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
BUNDLED_MODEL = RESOURCES / "ethanol_painn.pt"
RESUME_MUST_MATCH = (
    "structure", "temperature_K", "timestep_fs", "integrator", "friction_per_ps", "beads", "record_dipole",
    "record_polarizability", "record_interval", "trajectory_interval", "trajectory_format", "recording", "seed",
)  # fmt: skip
NEAREST_NEIGHBOUR_LIMIT_NM = 0.5  # an atom with no other atom within 5 A has flown off
RECORD_BATCH = 10  # recorded frames evaluated together ("second" recording; see benchmarks/md_throughput.py)
FEATURE_CAPACITY = 100  # steps per integrator call and per call of the output heads ("fused" and "tap" recording)
CHUNKED = ("fused", "tap")  # recordings that read each step's features after integrator.step(n)
WARM_UP_EVALUATIONS = 3  # TorchScript runs a module's first call unoptimised (see MDRun._warm_up)


@dataclass
class SimulationResult:
    output: Path
    steps: int
    ns_per_day: float
    frames_recorded: int
    recording: str

    def summary(self) -> str:
        return (
            f"{self.steps} steps done, {self.ns_per_day:.2f} ns/day; {self.frames_recorded} property frames "
            f"({self.recording} recording); outputs in {self.output}"
        )


def resolve_model(cfg: SimulationConfig, output: Path, atomic_numbers) -> Path:
    """The exported model to use: ``cfg.model`` (.pt), a checkpoint exported on the fly for the
    structure, or the bundled ethanol model when the structure matches it."""
    if cfg.model is None:
        if BUNDLED_MODEL.is_file() and model_metadata(BUNDLED_MODEL)[KEY_ATOMIC_NUMBERS] == list(atomic_numbers):
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


def build_integrator(cfg: SimulationConfig):
    import openmmtools

    temperature = cfg.temperature_K * unit.kelvin
    friction = cfg.friction_per_ps / unit.picosecond
    dt = cfg.timestep_fs * unit.femtosecond
    if cfg.beads > 1:
        integrator = openmm.RPMDIntegrator(cfg.beads, temperature, friction, dt)
    elif cfg.integrator == "langevin":
        integrator = openmmtools.integrators.BAOABIntegrator(temperature, friction, dt)
    elif cfg.integrator == "nose-hoover":
        integrator = openmm.NoseHooverIntegrator(temperature, friction, dt)
    else:
        integrator = openmmtools.integrators.VelocityVerletIntegrator(dt)
    if hasattr(integrator, "setRandomNumberSeed"):
        integrator.setRandomNumberSeed(cfg.seed + 1)
    return integrator


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
        self.model_path = resolve_model(cfg, self.output, z)
        self.meta = model_metadata(self.model_path)
        check_topology(self.pdb.topology, self.meta, where=cfg.structure)
        self.periodic = bool(self.meta[KEY_PERIODIC])
        check_box(box_nm, self.meta, where=f"the box of {cfg.structure}")
        heads = self.meta[KEY_HEADS]
        for flag, head in ((cfg.record_dipole, "dipole"), (cfg.record_polarizability, "polarizability")):
            if flag and head not in heads:
                raise InputError(
                    f"--record-{head} needs a model with a {head} head; {self.model_path} has {', '.join(heads)}"
                )
        self.recorded = tuple(
            n for n, f in (("dipole", cfg.record_dipole), ("polarizability", cfg.record_polarizability)) if f
        )
        self.recording = self._recording_mode()
        backend = {"fused": "python", "tap": "tap"}.get(self.recording, "torch")
        self.system, self.adapter = create_system(
            self.model_path, self.pdb.topology, backend, feature_capacity=FEATURE_CAPACITY
        )
        self.module = load(self.model_path) if (self.recorded and self.recording == "second") else None
        self.integrator = build_integrator(cfg)
        self.platform = choose_platform(cfg.platform)
        self.context = openmm.Context(self.system, self.integrator, self.platform)
        self.dt_ps = cfg.timestep_fs * 1e-3
        n_constraints = self.system.getNumConstraints()
        self.dof = 3 * self.system.getNumParticles() - n_constraints - 3
        self.step = 0
        self.pending: list = []  # "second" recording: frames waiting for one batched evaluation
        self.features_read = 0  # "fused" and "tap" recording: evaluations read so far

    # ---- set-up ------------------------------------------------------------------------------
    def _recording_mode(self) -> str:
        if not self.recorded:
            return "none"
        if self.cfg.recording in CHUNKED and self.cfg.beads > 1:
            raise InputError(
                f"--recording {self.cfg.recording} is not available with --beads > 1 (one evaluation per bead)"
            )
        version = self.meta.get(KEY_FORMAT_VERSION, 1)
        needed = {"fused": FUSED_FORMAT_VERSION, "tap": TAP_FORMAT_VERSION}.get(self.cfg.recording, 1)
        if version < needed:
            raise InputError(
                f"{self.model_path} was exported by an older painn-deploy without what --recording "
                f"{self.cfg.recording} needs; export it again with painn-export, or use --recording second"
            )
        # measured (benchmarks/results/md_throughput.md): for format-4 models one PythonForce evaluation per step
        # and TorchForce with the feature tap cost about the same (ethanol +10% and +15%, aspirin +15% and +10%),
        # and fused needs no shared-memory file; in format 3 the tap costs least; ring polymers evaluate each bead
        # separately, so they record with a second evaluation
        if self.cfg.recording == "auto":
            if self.cfg.beads > 1:
                return "second"
            if version == TAP_FORMAT_VERSION:
                return "tap"
            return "fused" if version >= FUSED_FORMAT_VERSION else "second"
        return self.cfg.recording

    def _set_initial_state(self):
        cfg = self.cfg
        positions = self.pdb.getPositions(asNumpy=True)
        if self.periodic:
            self.context.setPeriodicBoxVectors(*self.pdb.topology.getPeriodicBoxVectors())
        self.context.setPositions(positions)
        self.context.setVelocitiesToTemperature(cfg.temperature_K * unit.kelvin, cfg.seed + 1)
        if cfg.beads > 1:
            rng = np.random.default_rng(cfg.seed)
            masses = np.array(
                [
                    self.system.getParticleMass(i).value_in_unit(unit.dalton)
                    for i in range(self.system.getNumParticles())
                ]
            )
            # the PILE thermostat keeps each bead at P x T (see _log_row): draw bead velocities there
            sigma = np.sqrt(units.BOLTZMANN_KJ_PER_MOL_K * cfg.temperature_K * cfg.beads / masses)[:, None]
            for k in range(cfg.beads):
                self.integrator.setPositions(k, positions)
                self.integrator.setVelocities(k, rng.normal(size=(len(masses), 3)) * sigma)

    # ---- per-step work -----------------------------------------------------------------------------
    def _record(self, time_ps: float) -> None:
        """Record the properties of the current step by a second evaluation (bead average for RPMD)."""
        states = self._bead_states(getPositions=True, enforcePeriodicBox=False)
        positions = np.stack([s.getPositions(asNumpy=True).value_in_unit(unit.nanometer) for s in states])
        box = None
        if self.periodic:
            box = np.stack(
                [np.asarray(s.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)) for s in states]
            )
        if self.cfg.beads > 1:
            values = self._evaluate_frames(positions, box)
            self.properties.append(time_ps, {k: v.mean(axis=0) for k, v in values.items()})
            return
        self.pending.append((time_ps, positions[0], None if box is None else box[0]))
        if len(self.pending) >= RECORD_BATCH:
            self._flush_records()

    def _warm_up(self) -> None:
        """Evaluate the model a few times without moving the system.  TorchScript runs a freshly
        loaded module's first call unoptimised, and its forces differ from the optimised calls' in
        the last bits: without this a resumed run (fresh module) drifts away from the uninterrupted
        one and resume is not bit for bit.  Forces only: ``getState(getEnergy=True)`` computes the
        kinetic energy, which in OpenMM's Reference/CPU CustomIntegrators (openmmtools BAOAB) draws
        random numbers and so changes the trajectory that follows."""
        for _ in range(WARM_UP_EVALUATIONS):
            self._bead_states(getForces=True)
        if self.recording == "tap":
            # the model's tap-writing branch runs only at new positions: let TorchScript optimise it now, not
            # in the first timed steps (configurations 1e-6 nm away, then back to the exact positions)
            here = self.context.getState(getPositions=True).getPositions(asNumpy=True)
            for k in range(WARM_UP_EVALUATIONS):
                self.context.setPositions(here + (k + 1) * 1e-6 * unit.nanometer)
                self.context.getState(getForces=True)
            self.context.setPositions(here)
        if self.recording in CHUNKED:
            self.features_read = self._evaluated_here()
            for _ in range(WARM_UP_EVALUATIONS):
                self.adapter.observables([self.features_read - 1] * self.adapter.capacity)
        if self.module is not None:
            state = self._bead_states(getPositions=True)[0]
            pos = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
            box = None
            if self.periodic:
                box = np.asarray(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer))[None]
            for _ in range(WARM_UP_EVALUATIONS):
                self._evaluate_frames(
                    np.stack([pos] * RECORD_BATCH), None if box is None else np.repeat(box, RECORD_BATCH, 0)
                )

    def _evaluated_here(self) -> int:
        """Make sure the adapter's latest evaluation is at the current positions (OpenMM's own integrators
        evaluate forces at the start of a step, openmmtools' at its end); returns its count."""
        adapter = self.adapter
        here = self.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        if adapter.count == 0 or np.max(np.abs(adapter.positions_nm(adapter.count - 1) - here)) > 1e-6:
            self.context.getState(getForces=True)  # evaluates the model here (repeats are not kept)
        return adapter.count

    def _read_features(self, n_steps: int) -> None:
        """Record the frames of the last ``n_steps`` steps from the features the force kept (feature tap
        or PythonForce): its evaluations since the last read are the positions after each of these
        steps, one each."""
        count = self._evaluated_here()
        if count - self.features_read != n_steps:
            raise RecordingError(
                f"at step {self.step}: the model was evaluated at {count - self.features_read} new configurations "
                f"during the last {n_steps} steps; --recording {self.recording} needs exactly one force evaluation "
                f"per step. Use --recording second with this integrator."
            )
        first = self.step - n_steps  # evaluation features_read is at the positions after step first + 1
        steps = [t for t in range(first + 1, self.step + 1) if t % self.cfg.record_interval == 0]
        if steps:
            values = self.adapter.observables([self.features_read + t - first - 1 for t in steps])
            for k, t in enumerate(steps):
                self.properties.append(t * self.dt_ps, {name: values[name][k] for name in self.recorded})
        self.features_read = count

    def _evaluate_frames(self, positions: np.ndarray, box) -> dict:
        dtype = self.module.dtype_marker.dtype
        box_t = None if box is None else torch.tensor(box, dtype=dtype)
        pos_t = torch.tensor(positions, dtype=dtype)
        if hasattr(self.module, "observables_batch"):
            out = self.module.observables_batch(pos_t, box_t)
            return {k: out[k].double().numpy() for k in self.recorded}
        frames = [self.module.observables(pos_t[b], None if box_t is None else box_t[b]) for b in range(len(pos_t))]
        return {k: np.stack([f[k].double().numpy() for f in frames]) for k in self.recorded}  # artefacts before 0.1

    def _flush_records(self) -> None:
        """Evaluate the recorded frames waiting in ``pending`` (one batched model call)."""
        if not self.pending:
            return
        times = [t for t, _, _ in self.pending]
        positions = np.stack([p for _, p, _ in self.pending])
        box = None if self.pending[0][2] is None else np.stack([b for _, _, b in self.pending])
        values = self._evaluate_frames(positions, box)
        for k, t in enumerate(times):
            self.properties.append(t, {name: v[k] for name, v in values.items()})
        self.pending.clear()

    def _bead_states(self, **kwargs):
        if self.cfg.beads > 1:
            return [self.integrator.getState(k, **kwargs) for k in range(self.cfg.beads)]
        return [self.context.getState(**kwargs)]

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
        elif positions_nm is not None and len(positions_nm) > 1:
            from scipy.spatial import cKDTree

            dist, _ = cKDTree(np.asarray(positions_nm)).query(positions_nm, k=2)
            far = int(np.argmax(dist[:, 1]))
            if dist[far, 1] > NEAREST_NEIGHBOUR_LIMIT_NM and not self.periodic:
                reason = f"atom {far + 1} is {dist[far, 1]:.2f} nm from every other atom (atoms flying apart)"
        if reason:
            raise SimulationInstabilityError(
                f"simulation stopped at step {self.step} ({where}): {reason}. The last good checkpoint "
                f"{self.output / 'checkpoint.chk'} is kept; check the structure, lower --timestep-fs, or use a "
                f"model trained on configurations like these."
            )

    def _log_row(self, wall_start: float, steps_since_start: int) -> dict:
        states = self._bead_states(getEnergy=True, getForces=True, getPositions=True)
        potential = float(np.mean([s.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) for s in states]))
        kinetic = float(np.mean([s.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole) for s in states]))
        forces = states[0].getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        # RPMD samples the ring polymer at P x T: each bead's kinetic temperature is P times the physical one
        temperature = 2.0 * kinetic / (self.dof * units.BOLTZMANN_KJ_PER_MOL_K * self.cfg.beads)
        positions = states[0].getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        self._check("log", potential, float(np.max(np.abs(forces))), temperature, positions)
        elapsed = time.perf_counter() - wall_start
        ns_per_day = steps_since_start * self.dt_ps * 1e-3 / max(elapsed, 1e-9) * 86400.0
        return {
            "step": self.step,
            "time_ps": self.step * self.dt_ps,
            "potential_kj_per_mol": potential,
            "kinetic_kj_per_mol": kinetic,
            "total_kj_per_mol": potential + kinetic,
            "temperature_K": temperature,
            "speed_ns_per_day": ns_per_day,
        }

    def _write_trajectory(self):
        states = self._bead_states(getPositions=True)  # the centroid for RPMD
        pos = np.mean([s.getPositions(asNumpy=True).value_in_unit(unit.nanometer) for s in states], axis=0)
        box = states[0].getPeriodicBoxVectors() if self.periodic else None
        self.trajectory.write(pos, box)

    # ---- checkpoints ---------------------------------------------------------------------------------
    def _checkpoint(self):
        if self.properties is not None:
            self._flush_records()
            self.properties.flush()
        meta = {
            "step": self.step,
            **self.trajectory.sync(),
            "property_frames": self.properties.n_frames if self.properties is not None else 0,
            "model_sha256": self.model_sha256,
        }
        if self.cfg.beads > 1:  # OpenMM's context checkpoint does not hold the ring polymer's beads
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
            if self.cfg.beads > 1:
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
        self.model_sha256 = file_sha256(self.model_path)
        out = self.output
        attrs = {
            "temperature_K": cfg.temperature_K,
            "timestep_fs": cfg.timestep_fs,
            "record_interval_steps": cfg.record_interval,
            "beads": cfg.beads,
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
            PropertiesFile(out / "properties.h5", self.recorded, attrs, resume_frames) if self.recorded else None
        )
        self.trajectory = TrajectoryFile(
            out, cfg.trajectory_format, self.pdb.topology, cfg.timestep_fs, cfg.trajectory_interval,
            resume=meta if cfg.resume else None,
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
                self._flush_records()
                self.properties.close()
            self.trajectory.close()
            if self.recording == "tap":
                self.adapter.close()
        elapsed = time.perf_counter() - wall_start
        ns_per_day = (self.step - start_step) * self.dt_ps * 1e-3 / max(elapsed, 1e-9) * 86400.0
        frames = 0
        if self.recorded:
            import h5py

            with h5py.File(out / "properties.h5") as f:
                frames = f["time"].shape[0]
        return SimulationResult(out, self.step, ns_per_day, frames, self.recording)

    def _loop(self, progress, wall_start, start_step):
        cfg = self.cfg
        intervals = [cfg.log_interval, cfg.trajectory_interval, cfg.checkpoint_interval]
        if self.recording in CHUNKED:  # read the features before the ring wraps
            intervals.append(self.adapter.capacity)
        elif self.recorded:
            intervals.append(cfg.record_interval)
        while self.step < cfg.steps:
            n = min(i - self.step % i for i in intervals)
            n = min(n, cfg.steps - self.step)
            self.integrator.step(n)
            self.step += n
            if self.recording in CHUNKED:
                self._read_features(n)
            if self.recording == "fused":
                last = self.adapter.last
                if not np.isfinite(last["energy"]) or not np.all(np.isfinite(last["forces"])):
                    self._check("model evaluation", float(last["energy"]), float("nan"), 0.0, None)
            if self.recorded and self.recording not in CHUNKED and self.step % cfg.record_interval == 0:
                self._record(self.step * self.dt_ps)
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
            "model_metadata_heads": self.meta[KEY_HEADS],
            "platform": self.platform.getName(),
            "recording": self.recording,
            "versions": versions.collect(),
            "seed": self.cfg.seed,
        }
        (self.output / "run.json").write_text(json.dumps(record, indent=1))


def run_simulation(cfg: SimulationConfig) -> SimulationResult:
    """Run (or resume) a simulation; see :class:`SimulationConfig` for the options."""
    return MDRun(cfg).run()
