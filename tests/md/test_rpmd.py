"""Ring-polymer MD with every bead in one evaluation (painn_deploy.md.rpmd) and replica ensembles:
against the exact path-integral values of a harmonic oscillator, against OpenMM's RPMDIntegrator,
energy conservation, and the driver's outputs."""

import math
from typing import Optional, Tuple

import numpy as np
import openmm
import pytest
import torch
from openmm import app, unit

from painn_deploy import units
from painn_deploy.deploy import load
from painn_deploy.errors import InputError
from painn_deploy.md import SimulationConfig, run_simulation
from painn_deploy.md.rpmd import (
    Layout,
    centroid_virial_kinetic_energy,
    mode_frequencies_per_ps,
    normal_modes,
    ring_polymer_integrator,
    ring_polymer_thermostat_off,
)
from painn_deploy.md.runner import MDRun
from painn_deploy.openmm import ModelForce, create_system, torch_force

from ..conftest import ETHANOL_PDB

# the tiny test model leaves its training distances at once (envelope_margin="inf": warnings only)
pytestmark = pytest.mark.filterwarnings("ignore::painn_deploy.errors.SimulationWarning")

torch.set_num_threads(1)


class Harmonic(torch.nn.Module):
    """E = k |x|^2 / 2 per particle (kJ/mol, nm): the batched contract of the exported models."""

    n_atoms: torch.jit.Final[int]
    n_features: torch.jit.Final[int]

    def __init__(self, k: float, n_atoms: int = 1):
        super().__init__()
        self.k = k
        self.n_atoms = n_atoms
        self.n_features = 1
        self.register_buffer("dtype_marker", torch.zeros((), dtype=torch.float64))

    def energy_forces_features(
        self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        energy = 0.5 * self.k * torch.sum((positions * positions).flatten(-2), -1)
        s = torch.zeros(positions.shape[:-1] + (1,), dtype=positions.dtype)
        v = torch.zeros(positions.shape[:-1] + (3, 1), dtype=positions.dtype)
        return energy, -self.k * positions, s, v

    @torch.jit.export
    def evaluate_or_error(
        self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, str]:
        energy, forces, s, v = self.energy_forces_features(positions, boxvectors)
        return energy, forces, s, v, ""


def test_normal_modes():
    """T is orthogonal and turns the ring's springs into independent oscillators of frequency omega_k."""
    for p in (1, 2, 5, 8):
        t = normal_modes(p)
        np.testing.assert_allclose(t @ t.T, np.eye(p), atol=1e-12)
        q = np.random.default_rng(p).normal(size=(p, 3))
        omega_p = p * units.BOLTZMANN_KJ_PER_MOL_K * 300.0 / units.HBAR_KJ_PER_MOL_PS
        springs = 0.5 * omega_p**2 * np.sum((q - np.roll(q, -1, axis=0)) ** 2)
        modes = t @ q
        np.testing.assert_allclose(springs, 0.5 * np.sum(mode_frequencies_per_ps(p, 300.0)[:, None] ** 2 * modes**2),
                                   rtol=1e-10)  # fmt: skip
    layout = Layout(n_atoms=2, replicas=3, beads=4)
    beads = np.random.default_rng(0).normal(size=(3, 4, 2, 3))
    np.testing.assert_allclose(layout.beads_nm(layout.particles_nm(beads)), beads, atol=1e-12)


def harmonic_system(layout: Layout, mass_amu: float, k: float, backend: str):
    system = openmm.System()
    for _ in range(layout.n_frames * layout.n_atoms):
        system.addParticle(mass_amu)
    module = torch.jit.script(Harmonic(k, layout.n_atoms))
    if backend == "torch":
        system.addForce(torch_force(module, False, n_frames=layout.n_frames, modes=layout.modes()))
    else:
        system.addForce(ModelForce(module, False, n_frames=layout.n_frames, modes=layout.modes()).force())
    return system


@pytest.mark.parametrize("backend", ["torch", "python"])
def test_harmonic_oscillator_matches_the_exact_path_integral(backend):
    """A 3D oscillator with hbar omega = 3 k_B T through the batched contract, 8 beads, 64 replicas: the
    bead-averaged <x^2> and the centroid-virial kinetic energy match the exact 8-bead values
    <x^2> = (k_B T / m) sum_l 1 / (omega^2 + omega_l^2) and K = (3 k_B T / 2) [1 + sum_{l>0} omega^2 /
    (omega^2 + omega_l^2)] within 2% (the standard errors here are ~0.4%)."""
    temperature, p, replicas, mass = 300.0, 8, 64, 1.0
    kt = units.BOLTZMANN_KJ_PER_MOL_K * temperature
    omega = 3.0 * kt / units.HBAR_KJ_PER_MOL_PS  # rad/ps
    k = mass * omega**2
    layout = Layout(n_atoms=1, replicas=replicas, beads=p)
    system = harmonic_system(layout, mass, k, backend)
    integrator = ring_polymer_integrator(layout, temperature, friction_per_ps=omega, timestep_fs=1.0)
    integrator.setRandomNumberSeed(7)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(np.zeros((layout.n_frames, 3)))
    context.setVelocitiesToTemperature(temperature * p, 3)
    integrator.step(500)
    x2, kinetic = [], []
    for _ in range(150):
        integrator.step(20)
        state = context.getState(getPositions=True, getForces=True)
        beads = layout.beads_nm(state.getPositions(asNumpy=True)._value)  # [R, P, 1, 3]
        forces = layout.beads_nm(state.getForces(asNumpy=True)._value)
        x2.append(np.mean(np.sum(beads**2, axis=-1)) / 3.0)
        kinetic.append(centroid_virial_kinetic_energy(beads, forces, temperature))
    omega_l = mode_frequencies_per_ps(p, temperature)
    exact_x2 = kt / mass * np.sum(1.0 / (omega**2 + omega_l**2))
    exact_kinetic = 1.5 * kt * (1.0 + np.sum(omega**2 / (omega**2 + omega_l[1:] ** 2)))
    classical_x2 = kt / (mass * omega**2)
    assert exact_x2 > 1.5 * classical_x2  # deep in the quantum regime: the test tells the two apart
    assert np.mean(x2) == pytest.approx(exact_x2, rel=0.02)
    assert np.mean(kinetic) == pytest.approx(exact_kinetic, rel=0.02)
    # and the P -> infinity limit the 8 beads approach: (3/2) hbar omega coth(beta hbar omega / 2) / 2 ...
    quantum = 0.75 * units.HBAR_KJ_PER_MOL_PS * omega / math.tanh(1.5)
    assert exact_kinetic < quantum and exact_kinetic > 0.9 * quantum


def set_beads(context_or_integrator, layout, beads, velocities, openmm_rpmd: bool):
    if openmm_rpmd:
        for k in range(layout.beads):
            context_or_integrator.setPositions(k, beads[0, k] * unit.nanometer)
            context_or_integrator.setVelocities(k, velocities[0, k] * unit.nanometer / unit.picosecond)
    else:
        context_or_integrator.setPositions(layout.particles_nm(beads))
        context_or_integrator.setVelocities(layout.particles_nm(velocities))


def test_batched_integrator_equals_openmm_rpmd_integrator_step_by_step(exported64):
    """Without thermostats both integrators are deterministic and make the same moves (half kick, exact
    free ring polymer in normal modes, half kick): from the same beads and velocities the ring polymer
    of ethanol with the same PaiNN model follows the same trajectory for 40 steps."""
    pdb = app.PDBFile(str(ETHANOL_PDB))
    p = 4
    layout = Layout(9, 1, p)
    rng = np.random.default_rng(0)
    x0 = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    beads = x0 + 0.003 * rng.normal(size=(1, p, 9, 3))
    masses = np.array([a.element.mass.value_in_unit(unit.dalton) for a in pdb.topology.atoms()])
    velocities = rng.normal(size=(1, p, 9, 3)) * np.sqrt(units.BOLTZMANN_KJ_PER_MOL_K * 300 * p / masses)[:, None]

    system, _ = create_system(exported64, pdb.topology, remove_cm_motion=False)
    reference = openmm.RPMDIntegrator(p, 300, 1.0, 0.0005)
    reference.setApplyThermostat(False)
    ref_context = openmm.Context(system, reference, openmm.Platform.getPlatformByName("Reference"))
    set_beads(reference, layout, beads, velocities, True)

    batched_system, _ = create_system(exported64, pdb.topology, n_frames=p, modes=layout.modes())
    batched = ring_polymer_thermostat_off(ring_polymer_integrator(layout, 300.0, 1.0, 0.5))
    context = openmm.Context(batched_system, batched, openmm.Platform.getPlatformByName("Reference"))
    set_beads(context, layout, beads, velocities, False)
    for _ in range(4):
        reference.step(10)
        batched.step(10)
    ref_beads = np.stack([reference.getState(k, getPositions=True).getPositions(asNumpy=True)._value for k in range(p)])
    got = layout.beads_nm(context.getState(getPositions=True).getPositions(asNumpy=True)._value)[0]
    moved = np.abs(ref_beads - beads[0]).max()
    assert moved > 1e-2  # 40 steps move the beads by 0.06 nm
    # measured: 2e-11 nm after one step, 1.4e-8 nm after 40 (OpenMM's hbar and k_B carry other digits than
    # units.py's exact SI values, ~1e-8 relative); a wrong move would differ by ~moved
    np.testing.assert_allclose(got, ref_beads, rtol=0, atol=1e-6 * moved)
    del ref_context


def ring_polymer_energy(layout, temperature, masses, state):
    """H_P: kinetic + springs (normal modes) + the potential of every bead (kJ/mol)."""
    x = state.getPositions(asNumpy=True)._value.reshape(layout.beads, -1, 3)
    omega_l = mode_frequencies_per_ps(layout.beads, temperature)
    springs = 0.5 * np.sum(masses[None, :, None] * (omega_l[:, None, None] * x) ** 2)
    kinetic = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
    return kinetic + springs + state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


def test_ring_polymer_hamiltonian_is_conserved_without_thermostat(exported64):
    """Ethanol with the PaiNN model, 8 beads at 300 K, 0.25 fs, 2000 steps, no thermostat: H_P drifts by
    less than 1e-5 of its kinetic energy's fluctuation and deviates by less than 1e-4 of it (measured:
    2e-7 and 4e-7); forces x 1.5, no longer minus the gradient of the logged energy, deviate by more than
    1e-3 (the control)."""
    pdb = app.PDBFile(str(ETHANOL_PDB))
    p, temperature = 8, 300.0
    layout = Layout(9, 1, p)
    masses = np.array([a.element.mass.value_in_unit(unit.dalton) for a in pdb.topology.atoms()])

    def run(scale: float):
        system, adapter = create_system(exported64, pdb.topology, "python", n_frames=p, modes=layout.modes())
        if scale != 1.0:
            original = adapter.module

            class Scaled:
                def evaluate(self, positions, box):
                    e, f, frames, s, v = original.evaluate(positions, box)
                    return e, scale * f, frames, s, v

            adapter.module = Scaled()
        integrator = ring_polymer_thermostat_off(ring_polymer_integrator(layout, temperature, 1.0, 0.25))
        context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
        x0 = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        context.setPositions(layout.particles_nm(np.broadcast_to(x0, (1, p, 9, 3))))
        context.setVelocitiesToTemperature(temperature * p, 1)
        energies, kinetic = [], []
        for _ in range(40):
            integrator.step(50)
            state = context.getState(getPositions=True, getEnergy=True)
            energies.append(ring_polymer_energy(layout, temperature, masses, state))
            kinetic.append(state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole))
        e = np.array(energies) - energies[0]
        scale_ke = np.std(kinetic)
        slope = np.polyfit(np.arange(len(e)), e, 1)[0] * len(e)
        return abs(slope) / scale_ke, np.abs(e).max() / scale_ke

    drift, deviation = run(1.0)
    assert drift < 1e-5 and deviation < 1e-4, (drift, deviation)
    drift, deviation = run(1.5)
    assert deviation > 1e-3, (drift, deviation)


def test_each_replica_feels_only_its_own_positions(exported64):
    """Moving one replica changes no force on the others; a ring polymer's beads do feel each other's
    mode coordinates (the transform mixes them), which is the control."""
    pdb = app.PDBFile(str(ETHANOL_PDB))
    x0 = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    for replicas, beads in ((3, 1), (2, 4)):
        layout = Layout(9, replicas, beads)
        system, adapter = create_system(exported64, pdb.topology, "python", n_frames=layout.n_frames,
                                        modes=layout.modes())  # fmt: skip
        context = openmm.Context(
            system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference")
        )
        frames = x0 + 0.002 * np.random.default_rng(1).normal(size=(replicas, beads, 9, 3))
        context.setPositions(layout.particles_nm(frames))
        before = layout.beads_nm(context.getState(getForces=True).getForces(asNumpy=True)._value)
        frames[0, 0, 3] += 0.01
        context.setPositions(layout.particles_nm(frames))
        after = layout.beads_nm(context.getState(getForces=True).getForces(asNumpy=True)._value)
        np.testing.assert_array_equal(after[1:], before[1:])
        assert np.abs(after[0] - before[0]).max() > 0.01
        # bead forces equal the model's forces of each bead
        model = load(exported64)
        _, ref = model.energy_and_forces(torch.tensor(frames.reshape(-1, 9, 3)))
        np.testing.assert_allclose(after.reshape(-1, 9, 3), ref.numpy(), rtol=0, atol=1e-9)


# ---- the driver ------------------------------------------------------------------------------------------
def config(model, output, **kwargs) -> SimulationConfig:
    # (the tiny test models leave their training data's distances within tens of steps: warn only)
    base = dict(structure=str(ETHANOL_PDB), model=str(model), output=str(output), timestep_fs=0.5, platform="CPU",
                log_interval=10, trajectory_interval=10, checkpoint_interval=1000, progress="none",
                envelope_margin="inf")  # fmt: skip
    base.update(kwargs)
    return SimulationConfig(**base)


def test_rpmd_records_the_bead_average_of_the_evaluation_that_moved_it(exported64, tmp_path):
    steps = 30
    run = MDRun(config(exported64, tmp_path / "rpmd", steps=steps, beads=4, record_dipole=True,
                       record_polarizability=True, bead_trajectory=True))  # fmt: skip
    result = run.run()
    assert result.frames_recorded == steps
    import h5py

    with h5py.File(tmp_path / "rpmd" / "properties.h5") as f:
        props = {k: f[k][:] for k in f}
        assert f.attrs["beads"] == 4 and f.attrs["correlation"] == "kubo" and f.attrs["molecules"] == 1
    np.testing.assert_allclose(props["time"], np.arange(1, steps + 1) * 0.5e-3, rtol=1e-12)
    beads = run.layout.beads_nm(run.context.getState(getPositions=True).getPositions(asNumpy=True)._value)[0]
    assert np.abs(beads - beads[0]).max() > 1e-4  # the ring polymer is spread out
    evaluated = load(exported64).properties(torch.tensor(beads))
    for name in ("dipole", "polarizability"):
        mean = evaluated[name].numpy().mean(axis=0)
        np.testing.assert_allclose(props[name][-1], mean, rtol=1e-9, atol=1e-14)
        assert np.abs(props[name][-1] - evaluated[name].numpy()[0]).max() > 1e-7  # not just one bead
    import mdtraj

    centroid = mdtraj.load(str(tmp_path / "rpmd" / "trajectory.dcd"), top=str(ETHANOL_PDB))
    np.testing.assert_allclose(centroid.xyz[-1], beads.mean(axis=0), atol=1e-5)
    assert (tmp_path / "rpmd" / "beads.dcd").stat().st_size > 0
    # beads.pdb: every bead's last positions, the topology with which beads.dcd opens
    bead_traj = mdtraj.load(str(tmp_path / "rpmd" / "beads.dcd"), top=str(tmp_path / "rpmd" / "beads.pdb"))
    np.testing.assert_allclose(bead_traj.xyz[-1], beads.reshape(-1, 3), atol=1e-5)
    np.testing.assert_allclose(
        mdtraj.load(str(tmp_path / "rpmd" / "beads.pdb")).xyz[0], beads.reshape(-1, 3), atol=1e-4
    )


def test_rpmd_logs_the_physical_and_quantum_kinetic_energy(tmp_path):
    """The bundled model, 8 beads at 300 K: the logged temperature is the physical one (the ring polymer
    runs at P x T), and the centroid-virial kinetic energy exceeds the classical 3N k_B T / 2 by the
    zero-point motion of ethanol's stiff bonds (measured: ~97 against 34 kJ/mol)."""
    import csv

    from painn_deploy.resources import BUNDLED_MODEL

    run_simulation(config(BUNDLED_MODEL, tmp_path / "r", steps=200, beads=8, friction_per_ps=10.0, log_interval=20))
    rows = list(csv.DictReader(open(tmp_path / "r" / "log.csv")))
    temperature = np.array([float(r["temperature_K"]) for r in rows])
    quantum = np.array([float(r["quantum_kinetic_kj_per_mol"]) for r in rows])
    assert np.all((temperature > 100.0) & (temperature < 600.0))
    assert np.mean(quantum[3:]) > 1.5 * 13.5 * units.BOLTZMANN_KJ_PER_MOL_K * 300.0


def test_rpmd_logs_the_ring_polymer_hamiltonian(exported64, tmp_path):
    """log.csv's H_P is the ring polymer's energy (at the last step: the normal-mode formula of
    :func:`ring_polymer_energy`), stays constant without a thermostat and does not with one (4 beads, 0.25 fs,
    400 steps; measured: it spans 1e-4 kJ/mol under verlet and 440 kJ/mol under the PILE thermostat)."""
    import csv

    def logged(name, **options):
        run = MDRun(config(exported64, tmp_path / name, steps=400, beads=4, timestep_fs=0.25, log_interval=20,
                           **options))  # fmt: skip
        run.run()
        rows = list(csv.DictReader(open(tmp_path / name / "log.csv")))
        return run, np.array([float(r["ring_polymer_hamiltonian_kj_per_mol"]) for r in rows])

    run, hamiltonian = logged("nve", integrator="verlet")
    state = run.context.getState(getPositions=True, getEnergy=True)
    assert hamiltonian[-1] == pytest.approx(ring_polymer_energy(run.layout, 300.0, run.masses_amu[:9], state), rel=1e-9)
    _, thermostatted = logged("nvt", friction_per_ps=10.0)
    spread = np.ptp(hamiltonian)
    assert spread < 1e-5 * np.ptp(thermostatted), (spread, np.ptp(thermostatted))


@pytest.mark.parametrize(
    "options",
    [dict(replicas=16), dict(beads=4, replicas=4), dict(beads=4, rpmd_integrator="openmm")],
    ids=["classical", "rpmd", "openmm-rpmd"],
)
def test_nve_runs_after_a_thermostatted_equilibration(tmp_path, options):
    """--integrator verlet equilibrates with the thermostat and then conserves the energy (classical: the total;
    ring polymers: H_P): the bundled model's ethanol runs at the target temperature (within 20%; from the minimised
    structure without a thermostat the molecules keep about half of it, 150-175 K), and the conserved energy spans
    less than a tenth of the potential's span."""
    import csv

    from painn_deploy.resources import BUNDLED_MODEL

    cfg = config(BUNDLED_MODEL, tmp_path / "nve", steps=400, integrator="verlet", equilibration_steps=1000,
                 friction_per_ps=20.0, log_interval=20, **options)  # fmt: skip
    run = MDRun(cfg)
    run.run()
    if cfg.beads > 1:  # no centre-of-mass remover: OpenMM's RPMDIntegrator would apply it to every bead
        assert not any(isinstance(f, openmm.CMMotionRemover) for f in run.system.getForces())
        assert run.dof == 27
    rows = list(csv.DictReader(open(tmp_path / "nve" / "log.csv")))[1:]
    temperature = np.mean([float(r["temperature_K"]) for r in rows])
    assert 240.0 < temperature < 360.0, temperature
    conserved = "ring_polymer_hamiltonian_kj_per_mol" if cfg.beads > 1 else "total_kj_per_mol"
    spread = np.ptp([float(r[conserved]) for r in rows])
    assert spread < 0.1 * np.ptp([float(r["potential_kj_per_mol"]) for r in rows])


@pytest.mark.parametrize("options", [dict(beads=4, record_dipole=True), dict(replicas=3, record_dipole=True)],
                         ids=["rpmd", "replicas"])  # fmt: skip
def test_rpmd_and_replicas_resume_bit_for_bit(exported64, tmp_path, options):
    kw = dict(log_interval=10, checkpoint_interval=20, friction_per_ps=10.0, trajectory_interval=10, **options)
    run_simulation(config(exported64, tmp_path / "a", steps=60, **kw))
    run_simulation(config(exported64, tmp_path / "b", steps=20, **kw))
    run_simulation(config(exported64, tmp_path / "b", steps=60, resume=True, **kw))
    import h5py

    with h5py.File(tmp_path / "a" / "properties.h5") as a, h5py.File(tmp_path / "b" / "properties.h5") as b:
        assert a["time"].shape == (60,)
        assert np.array_equal(a["dipole"][:], b["dipole"][:])
        if "replicas" in options:  # (the axes named in the file)
            assert a["dipole"].shape == (60, 3, 3) and a["dipole"].attrs["axes"] == "time, replica, xyz"
            assert a["time"].attrs["axes"] == "time"
    assert (tmp_path / "a" / "checkpoint.chk").read_bytes() == (tmp_path / "b" / "checkpoint.chk").read_bytes()
    # final.pdb: the first copy's last centroid, a start for another run; replicas.pdb: every copy's, the
    # trajectory's topology
    import mdtraj

    replicas = options.get("replicas", 1)
    topology = tmp_path / "a" / ("replicas.pdb" if replicas > 1 else "final.pdb")
    assert (tmp_path / "a" / "replicas.pdb").is_file() == (replicas > 1)
    trajectory = mdtraj.load(str(tmp_path / "a" / "trajectory.dcd"), top=str(topology))
    assert trajectory.n_atoms == 9 * replicas and trajectory.n_frames == 6
    np.testing.assert_allclose(mdtraj.load(str(topology)).xyz[0], trajectory.xyz[-1], atol=1e-4)  # (0.001 Angstrom)
    final = mdtraj.load(str(tmp_path / "a" / "final.pdb"))
    np.testing.assert_allclose(final.xyz[0], trajectory.xyz[-1, :9], atol=1e-4)
    run_simulation(config(exported64, tmp_path / "next", structure=str(tmp_path / "a" / "final.pdb"), steps=10))


def test_unsupported_combinations_fail_before_anything_is_written(exported64, trained_checkpoint, tmp_path):
    with pytest.raises(InputError, match="cannot record"):
        config(exported64, tmp_path / "x", beads=4, rpmd_integrator="openmm", record_dipole=True)
    with pytest.raises(InputError, match="Nose-Hoover is not available"):
        config(exported64, tmp_path / "x", beads=4, integrator="nose-hoover")
    for option in (dict(bead_trajectory=True), dict(rpmd_integrator="openmm")):  # once ignored without beads
        with pytest.raises(InputError, match="is for ring polymers: give --beads P"):
            config(exported64, tmp_path / "x", **option)
    from painn_deploy.deploy import export

    boxed = tmp_path / "boxed.pdb"
    boxed.write_text(
        "CRYST1   30.000   30.000   30.000  90.00  90.00  90.00 P 1           1\n" + ETHANOL_PDB.read_text()
    )
    export(trained_checkpoint, tmp_path / "periodic.pt", pdb=str(boxed))
    out = tmp_path / "periodic_rpmd"
    for integrator in ("batched", "openmm"):  # (OpenMM's RPMDIntegrator too: the README's rule is one for both)
        with pytest.raises(InputError, match="ring polymers and replicas are for molecules"):
            run_simulation(config(tmp_path / "periodic.pt", out, structure=str(boxed), beads=4,
                                  rpmd_integrator=integrator))  # fmt: skip
        assert not out.exists()


def test_a_ring_polymer_too_large_for_the_gpu_is_refused_with_the_estimate(monkeypatch):
    from painn_deploy.md.rpmd import check_memory

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (2 * 2**30, 80 * 2**30))  # 2 GiB free
    check_memory(Layout(n_atoms=21, replicas=1, beads=64), 21, 128, 3, 4, "cuda")  # ~0.35 GiB: fits
    with pytest.raises(InputError, match=r"16 replica\(s\) x 64 bead\(s\) of 21 atoms need about 5\.6 GiB on the GPU, "
                       r"which has 2\.0 GiB free; use fewer beads or replicas"):  # fmt: skip
        check_memory(Layout(n_atoms=21, replicas=16, beads=64), 21, 128, 3, 4, "cuda")
    check_memory(Layout(n_atoms=21, replicas=16, beads=64), 21, 128, 3, 4, "cpu")  # the CPU takes chunks of frames
    # the model's atoms count, not the solvent's: 9 ML atoms among 3,009 particles fit
    check_memory(Layout(n_atoms=3009, replicas=1, beads=1), 9, 128, 3, 4, "cuda")
