"""The MD driver (painn_deploy.md, painn-simulate): outputs, recording, physics, resume, safety net, bad inputs.

Short runs use the session's tiny models (``exported32``/``exported64``: two epochs on 40 frames).
That model is good enough for a few hundred steps but not stable for long runs at 300 K (a hydrogen
flies off after ~250-650 steps of 0.5 fs), so the NVE, NVT and resume tests train a slightly better
tiny model (``stable_model``: 200 frames, 8 epochs, ~10 s) that stays bound for > 8000 steps.
Everything runs on one core with one torch thread.
"""

import csv
import json
import struct
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from painn_deploy import units
from painn_deploy.cli.simulate import build_parser, main
from painn_deploy.deploy import load
from painn_deploy.errors import (
    InputError,
    SimulationInstabilityError,
    SimulationWarning,
    TopologyMismatchError,
    UnitsError,
)
from painn_deploy.md import SimulationConfig, nyquist_limit_fs, run_simulation
from painn_deploy.md.outputs import LOG_COLUMNS, log_columns
from painn_deploy.md.rundir import CHECKPOINT_FORMAT
from painn_deploy.md.runner import MDRun
from painn_deploy.resources import BUNDLED_MODEL, RESOURCES

from ..conftest import ALL_TARGETS, ETHANOL_NPZ, ETHANOL_PDB, checkpoint_meta, simulate_and_kill

# the tiny models leave their training data's distances at once (see config): not news here
pytestmark = pytest.mark.filterwarnings("ignore::painn_deploy.errors.SimulationWarning")
ASPIRIN_PDB = RESOURCES / "aspirin.pdb"
N_ATOMS = 9
DOF = 3 * N_ATOMS - 3  # the driver removes centre-of-mass motion


@pytest.fixture(scope="module")
def stable_model(tmp_path_factory):
    """A tiny model (float64 export) that keeps ethanol bound at 300 K for thousands of steps."""
    from painn_deploy.deploy import export
    from painn_deploy.training import TrainConfig, train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("stable")
    cfg = TrainConfig(
        data=str(ETHANOL_NPZ), output=str(out), targets=ALL_TARGETS, n_train=200, n_val=50, split="random",
        n_features=16, n_interactions=2, n_rbf=8, max_epochs=8, batch_size=10, lr=3e-3, progress_bar=False,
    )  # fmt: skip
    train(cfg)
    path = out / "stable64.pt"
    export(out / "best.ckpt", path, dtype="float64")
    return path


# ---- helpers ---------------------------------------------------------------------------------------------
def config(model, output, **kwargs) -> SimulationConfig:
    """The tiny test models leave the distances of their 40 training frames within tens of steps: the runs here
    only warn about that (test_envelope.py tests the stop)."""
    base = dict(
        structure=str(ETHANOL_PDB), model=str(model), output=str(output), timestep_fs=0.5, platform="CPU",
        log_interval=10, trajectory_interval=10, checkpoint_interval=1000, progress="none", envelope_margin="inf",
    )  # fmt: skip
    base.update(kwargs)
    return SimulationConfig(**base)


def read_log(path: Path, columns: tuple = LOG_COLUMNS) -> dict:
    """log.csv's columns as arrays; it must have exactly ``columns`` (a classical molecule's by default)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        assert tuple(reader.fieldnames) == columns
    return {k: np.array([float(r[k]) for r in rows]) for k in columns}


def read_log_text(path: Path) -> list:
    """The log's rows without the wall-clock speed column (the only column allowed to differ)."""
    with open(path, newline="") as f:
        return [tuple(v for k, v in r.items() if k != "speed_ns_per_day") for r in csv.DictReader(f)]


def read_properties(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        data = {k: f[k][:] for k in f.keys()}
        data["units"] = {k: f[k].attrs["units"] for k in f.keys()}
        data["attrs"] = dict(f.attrs)
    return data


def load_traj(output: Path):
    import mdtraj

    path = output / "trajectory.xtc"
    return mdtraj.load(str(path if path.exists() else output / "trajectory.dcd"), top=str(ETHANOL_PDB))


def pdb_positions_nm() -> np.ndarray:
    from painn_deploy.structures import read_pdb

    return read_pdb(ETHANOL_PDB)[1]


def write_pdb(path: Path, positions_nm=None, elements=None, names=None, element_columns=True) -> Path:
    """ethanol.pdb with replaced coordinates (nm), element symbols or atom names."""
    lines, i = [], 0
    for line in ETHANOL_PDB.read_text().splitlines():
        if line.startswith(("ATOM", "HETATM")):
            if positions_nm is not None:
                x, y, z = np.asarray(positions_nm[i]) * 10.0
                line = f"{line[:30]}{x:8.3f}{y:8.3f}{z:8.3f}{line[54:]}"
            if names is not None and names[i] is not None:
                line = f"{line[:12]}{names[i]:>4}{line[16:]}"
            if elements is not None:
                line = f"{line[:76]}{elements[i]:>2}{line[78:]}"
            if not element_columns:
                line = line[:76]
            i += 1
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    return path


# ---- 1. outputs on the Reference and CPU platforms ---------------------------------------------------------
@pytest.mark.parametrize("platform", ["Reference", "CPU"])
def test_short_run_writes_all_outputs(exported32, tmp_path, platform):
    out = tmp_path / "run"
    cfg = config(
        exported32, out, steps=60, platform=platform, record_dipole=True, record_polarizability=True,
        log_interval=10, trajectory_interval=5, checkpoint_interval=20,
    )  # fmt: skip
    result = run_simulation(cfg)
    assert (result.steps, result.frames_recorded) == (60, 60)
    assert result.backend == "python" and "60 steps done" in result.summary()
    for name in ("log.csv", "properties.h5", "trajectory.dcd", "checkpoint.chk", "run.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name

    log = read_log(out / "log.csv")
    np.testing.assert_array_equal(log["step"], np.arange(10, 61, 10))
    np.testing.assert_allclose(log["time_ps"], log["step"] * 0.5e-3, atol=1e-6)
    np.testing.assert_allclose(
        log["total_kj_per_mol"], log["potential_kj_per_mol"] + log["kinetic_kj_per_mol"], atol=1e-5
    )
    temperature = 2.0 * log["kinetic_kj_per_mol"] / (DOF * units.BOLTZMANN_KJ_PER_MOL_K)
    np.testing.assert_allclose(log["temperature_K"], temperature, rtol=1e-5)
    assert np.all(log["speed_ns_per_day"] > 0)
    assert np.all((log["temperature_K"] > 10) & (log["temperature_K"] < 1000))

    traj = load_traj(out)
    assert (traj.n_frames, traj.n_atoms) == (12, N_ATOMS)
    # the first frame is step 5, written after the steps: the DCD header's ISTART and NSAVC say so
    header = (out / "trajectory.dcd").read_bytes()[:24]
    assert header[4:8] == b"CORD" and struct.unpack("<3i", header[8:20]) == (12, 5, 5)
    assert np.all(np.isfinite(traj.xyz))
    # nm, not Angstrom: 5 steps of 0.5 fs move no atom by more than 0.02 nm
    assert np.abs(traj.xyz[0] - pdb_positions_nm()).max() < 0.02
    # the logged potential energy is the model's energy of the logged configuration
    energy = float(load(exported32).properties(torch.tensor(traj.xyz[-1]))["energy"])
    assert log["potential_kj_per_mol"][-1] == pytest.approx(energy, abs=0.05)

    record = json.loads((out / "run.json").read_text())
    assert record["platform"] == platform and record["backend"] == result.backend
    assert record["config"]["steps"] == 60
    meta = checkpoint_meta(out / "checkpoint.chk")
    assert meta == {
        "step": 60, "trajectory_frames": 12, "trajectory_bytes": (out / "trajectory.dcd").stat().st_size,
        "property_frames": 60, "log_rows": 6, "model_sha256": record["model_sha256"],
        "checkpoint_format": CHECKPOINT_FORMAT, "state_bytes": meta["state_bytes"],
    }  # fmt: skip
    # the checkpoint before it (step 40) is kept, and log.csv has plain newlines
    assert checkpoint_meta(out / "checkpoint.prev.chk")["step"] == 40
    assert b"\r" not in (out / "log.csv").read_bytes()


# ---- 2. recording: frames, times, units, values -----------------------------------------------------------
@pytest.mark.parametrize("record_interval", [1, 2])
@pytest.mark.parametrize("integrator", ["langevin", "nose-hoover", "verlet"])
def test_recorded_properties_belong_to_the_trajectory_frame_at_their_time(
    exported64, tmp_path, integrator, record_interval
):
    steps, dt_ps = 40, 0.5e-3
    out = tmp_path / "run"
    cfg = config(
        exported64, out, steps=steps, integrator=integrator, record_interval=record_interval,
        record_dipole=True, record_polarizability=True, trajectory_interval=1,
    )  # fmt: skip
    result = run_simulation(cfg)
    assert result.backend == "python"
    # openmmtools integrators evaluate forces at the new positions; OpenMM's NoseHooverIntegrator at
    # the step's starting positions: the feature ring matches each evaluation to its positions

    props = read_properties(out / "properties.h5")
    n = steps // record_interval
    assert result.frames_recorded == n
    assert (
        props["time"].shape == (n,) and props["dipole"].shape == (n, 3) and props["polarizability"].shape == (n, 3, 3)
    )
    with h5py.File(out / "properties.h5") as f:  # the axes named in the file
        assert [f[k].attrs["axes"] for k in ("time", "dipole", "polarizability")] == [
            "time",
            "time, xyz",
            "time, xyz, xyz",
        ]
    recorded_steps = record_interval * np.arange(1, n + 1)
    np.testing.assert_allclose(props["time"], recorded_steps * dt_ps, rtol=1e-12, atol=1e-15)
    assert props["units"] == {"time": "ps", "dipole": "e*nm", "polarizability": "nm^3"}
    assert props["attrs"]["timestep_fs"] == 0.5 and props["attrs"]["record_interval_steps"] == record_interval
    assert np.all(np.isfinite(props["dipole"])) and np.all(np.isfinite(props["polarizability"]))

    # Evaluate the model on the DCD frame of each recorded time (frame j is step j + 1).  The DCD holds
    # float32 Angstrom, which moves the properties by < 1e-9; one step apart they differ by > 4e-6.
    traj = load_traj(out)
    assert traj.n_frames == steps
    module = load(exported64)
    checked = 0
    for j, step in enumerate(recorded_steps):
        ref = module.properties(torch.tensor(traj.xyz[step - 1], dtype=torch.float64))
        np.testing.assert_allclose(props["dipole"][j], ref["dipole"].detach().numpy(), rtol=0, atol=2e-8)
        np.testing.assert_allclose(
            props["polarizability"][j], ref["polarizability"].detach().numpy(), rtol=0, atol=2e-8
        )
        checked += 1
    assert checked == n
    # the comparison can tell neighbouring steps apart
    ref_next = module.properties(torch.tensor(traj.xyz[recorded_steps[-2]], dtype=torch.float64))
    assert np.abs(props["dipole"][-2] - ref_next["dipole"].detach().numpy()).max() > 1e-7


def test_recording_leaves_the_trajectory_unchanged(exported64, tmp_path):
    """Recording only reads what the dynamics evaluated: the trajectory is the one a run without
    recording (TorchForce) makes with the same seed."""
    kw = dict(steps=6, trajectory_interval=1, seed=4)
    run_simulation(config(exported64, tmp_path / "recorded", record_dipole=True, **kw))
    run_simulation(config(exported64, tmp_path / "plain", **kw))
    a, b = load_traj(tmp_path / "recorded").xyz, load_traj(tmp_path / "plain").xyz
    assert a.shape == b.shape == (6, 9, 3)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)  # nm; one step moves atoms by ~1e-4 nm
    assert np.abs(a[1:] - b[:-1]).max() > 1e-5


def test_recording_refuses_integrators_with_extra_evaluations(exported64, tmp_path):
    """Recording pairs each step with one evaluation at new positions; if the dynamics evaluates the model
    more often, the run stops with a RecordingError naming the fix instead of recording wrong times."""
    from painn_deploy.errors import RecordingError

    run = MDRun(config(exported64, tmp_path / "run", steps=20, record_dipole=True))
    real = run.integrator

    class TwoEvaluationsPerStep:  # e.g. a predictor-corrector scheme
        def step(self, n):
            for _ in range(n):
                real.step(1)
                state = run.context.getState(getPositions=True)
                run.context.setPositions(state.getPositions(asNumpy=True) * 1.0001)
                run.context.getState(getForces=True)
                run.context.setPositions(state.getPositions())

        def __getattr__(self, name):
            return getattr(real, name)

    run.integrator = TwoEvaluationsPerStep()
    with pytest.raises(RecordingError, match="exactly one force evaluation per step"):
        run.run()


# ---- 3. NVE energy conservation ------------------------------------------------------------------------------
NVE_DRIFT_TOL = 0.005  # |fitted slope| * duration, in units of std(kinetic energy)
NVE_MAX_DEV_TOL = 0.05  # max |E_total(t) - E_total(0)|, in units of std(kinetic energy)


def nve_metrics(log: dict) -> tuple:
    """(drift over the run, max deviation), both relative to the kinetic energy's fluctuation."""
    de = log["total_kj_per_mol"] - log["total_kj_per_mol"][0]  # totals are absolute (~ -3e4 kJ/mol)
    slope = np.polyfit(log["time_ps"], de, 1)[0]
    ke_std = log["kinetic_kj_per_mol"].std()
    duration = log["time_ps"][-1] - log["time_ps"][0]
    return abs(slope) * duration / ke_std, np.abs(de).max() / ke_std


def nve_config(model, output, **kwargs):
    return config(
        model, output, steps=2000, integrator="verlet", timestep_fs=0.25, log_interval=50,
        trajectory_interval=1000, checkpoint_interval=10000, seed=1, **kwargs,
    )  # fmt: skip


def test_nve_conserves_energy(stable_model, tmp_path):
    """Velocity Verlet, float64 model, 0.25 fs, 2000 steps (0.5 ps).  Measured (seeds 0-3): drift
    0.0003-0.0009 and max deviation 0.003-0.011 of std(KE) (std(KE) 2.4-5.0 kJ/mol; seed 1, used
    here: 0.00075 and 0.011).  Forces x 1.02 already give a drift of 0.012 (> tolerance)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_simulation(nve_config(stable_model, tmp_path / "nve"))
    assert not [w for w in caught if "drifted" in str(w.message)]  # (the drift check's false alarm)
    log = read_log(tmp_path / "nve" / "log.csv")
    assert len(log["step"]) == 40
    assert log["kinetic_kj_per_mol"].std() > 1.0  # the molecule moves: the tolerance is meaningful
    drift, max_dev = nve_metrics(log)
    assert drift < NVE_DRIFT_TOL, f"energy drift {drift:.2g} std(KE) over 0.5 ps"
    assert max_dev < NVE_MAX_DEV_TOL, f"total energy deviates by {max_dev:.2g} std(KE)"


def test_an_nve_run_warns_once_when_its_conserved_energy_drifts(stable_model, tmp_path):
    """The drift check of --integrator verlet: from the first logged value, more than a quarter of the kinetic
    energy is warned about, once, with the remedy."""
    from painn_deploy.md.runner import MDRun

    safety = MDRun(nve_config(stable_model, tmp_path / "nve")).safety
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step, conserved in ((20, 100.0), (40, 102.4), (60, 97.6)):  # within 2.5 of 100: quiet
            safety.check_drift(step, conserved, kinetic_kj_mol=10.0)
    assert not caught
    with pytest.warns(
        SimulationWarning,
        match=r"step 80: the conserved energy of this NVE run has drifted by \+3 "
        r"kJ/mol since step 20, more than 25% of the kinetic energy \(10 kJ/mol\): .* lower --timestep",
    ):
        safety.check_drift(80, 103.0, kinetic_kj_mol=10.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        safety.check_drift(100, 110.0, kinetic_kj_mol=10.0)
    assert not caught  # (once per run)


def test_nve_check_catches_forces_off_by_ten_percent(stable_model, tmp_path, monkeypatch):
    """The same check fails when the integrated forces are not minus the gradient of the logged
    energy: forces x 1.1 give drift 0.035 and max deviation 0.36 std(KE) (x 2: 0.6 and 1.7)."""
    from painn_deploy.openmm import ModelForce

    original = ModelForce.__call__

    def scaled(self, state):
        energy, forces = original(self, state)
        return energy, 1.1 * forces

    monkeypatch.setattr(ModelForce, "__call__", scaled)
    out = tmp_path / "scaled"
    run_simulation(nve_config(stable_model, out, backend="python"))
    assert json.loads((out / "run.json").read_text())["backend"] == "python"
    drift, max_dev = nve_metrics(read_log(out / "log.csv"))
    assert drift > 3 * NVE_DRIFT_TOL or max_dev > 3 * NVE_MAX_DEV_TOL


# ---- 4. NVT temperature ------------------------------------------------------------------------------------------
def test_langevin_thermostat_reaches_target_temperature(stable_model, tmp_path):
    """BAOAB at 300 K, friction 50/ps, 4 seeds x 2 ps, T logged every 2.5 fs.  Ethanol's kinetic
    temperature fluctuates by ~86 K (sqrt(2/24) x 300 K) and stays correlated for > 0.1 ps, so the
    standard error comes from 0.25 ps block averages (measured: mean 304.7 K, SE 4.4 K from 28
    blocks; friction 10/ps gives SE 7.5 K for the same cost).  A 3-SE band then still rejects a 10% error (e.g. a
    wrong number of degrees of freedom: 300 x 24/27 = 267 K)."""
    target, samples_per_block, skip = 300.0, 100, 40  # rows; skip the first 0.1 ps
    blocks = []
    for seed in range(4):
        out = tmp_path / f"nvt{seed}"
        cfg = config(
            stable_model, out, steps=4000, temperature_K=target, friction_per_ps=50.0, log_interval=5,
            trajectory_interval=4000, checkpoint_interval=4000, seed=seed,
        )  # fmt: skip
        run_simulation(cfg)
        t = read_log(out / "log.csv")["temperature_K"][skip:]
        n_blocks = len(t) // samples_per_block
        blocks.extend(t[: n_blocks * samples_per_block].reshape(n_blocks, samples_per_block).mean(axis=1))
    blocks = np.array(blocks)
    mean, se = blocks.mean(), blocks.std(ddof=1) / np.sqrt(len(blocks))
    assert se < 8.0, f"standard error {se:.1f} K too large for a meaningful test"
    assert abs(mean - target) < 3.0 * se, f"mean temperature {mean:.1f} K, target {target} K, SE {se:.1f} K"


# ---- 5. resume bit for bit after SIGKILL ----------------------------------------------------------------------
def resume_args(model, output, steps):
    return [
        str(ETHANOL_PDB), "--model", str(model), "--output", str(output), "--steps", str(steps),
        "--platform", "CPU", "--timestep", "0.5", "--seed", "3", "--record-dipole", "--record-polarizability",
        "--record-interval", "2", "--trajectory-interval", "10", "--log-interval", "25",
        "--checkpoint-interval", "100", "--progress", "none", "--envelope-margin", "inf",
    ]  # fmt: skip


def start_and_kill(model, output: Path, steps: int):
    return simulate_and_kill(resume_args(model, output, steps), output)


def test_resume_after_sigkill_is_bit_for_bit(stable_model, tmp_path):
    steps = 1000
    for attempt in range(3):  # a run that ends before the kill (a very fast machine) is retried longer
        killed = tmp_path / f"killed{attempt}"
        result = start_and_kill(stable_model, killed, steps)
        if result is not None:
            break
        steps *= 4
    assert result is not None, "could not kill the run between checkpoints"
    killed_at, last_logged = result
    assert 200 <= killed_at < last_logged < steps and killed_at % 100 == 0  # log rows to be discarded on resume

    assert main(resume_args(stable_model, killed, steps) + ["--resume"]) == 0
    reference = tmp_path / "uninterrupted"
    assert main(resume_args(stable_model, reference, steps)) == 0

    # log: same rows (step, time, energies, temperature), none duplicated or missing
    rows = read_log_text(killed / "log.csv")
    assert rows == read_log_text(reference / "log.csv")
    assert [int(r[0]) for r in rows] == list(range(25, steps + 1, 25))
    # properties: identical values and times, every record step exactly once
    a, b = read_properties(killed / "properties.h5"), read_properties(reference / "properties.h5")
    for name in ("time", "dipole", "polarizability"):
        assert a[name].shape == b[name].shape and np.array_equal(a[name], b[name]), name
    np.testing.assert_array_equal(np.round(a["time"] / 0.5e-3).astype(int), np.arange(2, steps + 1, 2))
    # trajectory: same number of frames, identical positions
    ta, tb = load_traj(killed), load_traj(reference)
    assert ta.n_frames == tb.n_frames == steps // 10
    assert np.array_equal(ta.xyz[-1], tb.xyz[-1]) and np.array_equal(ta.xyz, tb.xyz)
    assert (killed / "checkpoint.chk").read_bytes() == (reference / "checkpoint.chk").read_bytes()


@pytest.mark.parametrize(
    "options",
    [
        dict(record_dipole=True, record_polarizability=True),  # PythonForce with the feature ring
        dict(record_dipole=True, integrator="nose-hoover"),  # the same, forces at the step's start
        dict(integrator="verlet"),  # TorchForce only
        dict(record_dipole=True, trajectory_format="xtc"),  # compressed trajectory
    ],
    ids=["recorded", "recorded-nose-hoover", "verlet", "xtc"],
)
def test_resume_in_process_is_bit_for_bit(stable_model, tmp_path, options):
    """Regression: a resumed run loads the TorchScript model afresh, and TorchScript's first call is
    unoptimised with forces differing in the last bits (~1e-12 kJ/mol/nm); without the driver's
    warm-up the resumed trajectory drifted from the uninterrupted one (1e-17 -> 1e-15 in 800 steps).
    The warm-up must not read energies either: getState(getEnergy=True) draws random numbers in
    OpenMM's CustomIntegrators (BAOAB), which made the resumed Langevin run diverge at once."""
    kw = dict(trajectory_interval=10, log_interval=25, checkpoint_interval=100, record_interval=2, seed=5, **options)
    run_simulation(config(stable_model, tmp_path / "a", steps=300, **kw))
    run_simulation(config(stable_model, tmp_path / "b", steps=100, **kw))
    # frames written after the checkpoint by a run that was then killed: resume must cut them off
    trajectory = tmp_path / "b" / f"trajectory.{options.get('trajectory_format', 'dcd')}"
    size = trajectory.stat().st_size
    with open(trajectory, "ab") as f:
        f.write(trajectory.read_bytes()[-(size // 10) :])
    run_simulation(config(stable_model, tmp_path / "b", steps=300, resume=True, **kw))
    reference = (tmp_path / "a" / trajectory.name).read_bytes()
    if trajectory.suffix == ".xtc":
        assert trajectory.read_bytes() == reference
        # each frame's time is that of the step after which it was written, across the resume too
        np.testing.assert_allclose(load_traj(tmp_path / "b").time, np.arange(1, 31) * 10 * 0.5e-3, atol=1e-6)
    else:  # a DCD header holds its creation time: compare sizes and the frame numbering here, positions below
        assert trajectory.stat().st_size == len(reference)
        assert trajectory.read_bytes()[8:24] == reference[8:24]  # frames, first step, interval, last step
    assert read_log_text(tmp_path / "a" / "log.csv") == read_log_text(tmp_path / "b" / "log.csv")
    assert np.array_equal(load_traj(tmp_path / "a").xyz, load_traj(tmp_path / "b").xyz)
    # the final checkpoints (full-precision OpenMM state) are identical byte for byte
    assert (tmp_path / "a" / "checkpoint.chk").read_bytes() == (tmp_path / "b" / "checkpoint.chk").read_bytes()
    if options.get("record_dipole"):
        a, b = read_properties(tmp_path / "a" / "properties.h5"), read_properties(tmp_path / "b" / "properties.h5")
        assert a["time"].shape == (150,)
        for name in ("time", "dipole"):
            assert np.array_equal(a[name], b[name]), name


# ---- 6. safety net ----------------------------------------------------------------------------------------------
def test_overlapping_atoms_are_rejected_before_starting(exported32, tmp_path):
    pos = pdb_positions_nm()
    pos[8] = pos[2] + np.array([0.03, 0.0, 0.0])  # hydroxyl H 0.03 nm from O
    pdb = write_pdb(tmp_path / "overlap.pdb", pos)
    out = tmp_path / "run"
    with pytest.raises(InputError, match=r"atoms (3 and 9|9 and 3) are 0\.300 Angstrom apart \(overlapping\)"):
        run_simulation(config(exported32, out, structure=str(pdb), steps=10))
    assert not (out / "checkpoint.chk").exists() and not (out / "log.csv").exists()


def test_exploding_run_stops_with_step_and_reason_and_keeps_a_good_checkpoint(exported64, tmp_path):
    out = tmp_path / "run"
    cfg = config(
        exported64, out, steps=2000, timestep_fs=4.0, log_interval=5, checkpoint_interval=5, trajectory_interval=5
    )
    with pytest.raises(SimulationInstabilityError) as info:
        run_simulation(cfg)
    message = str(info.value)
    failed_at = int(message.split("simulation stopped at step ")[1].split()[0])
    assert 0 < failed_at < 2000
    assert any(
        r in message
        for r in ("temperature", "force", "flying apart", "potential energy is", "left the model's training")
    )
    assert "checkpoint" in message
    # the checkpoint on disk is the last checked state before the failure, and it loads
    meta = checkpoint_meta(out / "checkpoint.chk")
    assert meta["step"] == failed_at - 5
    result = run_simulation(config(exported64, out, steps=meta["step"], timestep_fs=4.0, log_interval=5,
                                   checkpoint_interval=5, trajectory_interval=5, resume=True))  # fmt: skip
    assert result.steps == meta["step"]
    if meta["trajectory_frames"]:
        assert load_traj(out).n_frames == meta["trajectory_frames"]
    # and resuming from it reproduces the failure at the same step
    with pytest.raises(SimulationInstabilityError, match=f"stopped at step {failed_at} "):
        run_simulation(SimulationConfig(**dict(cfg.as_dict(), resume=True)))


def test_force_limit_stops_the_run_and_cli_exits_non_zero(exported32, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SimulationInstabilityError, match=r"stopped at step 10 \(log\): a force of .* exceeds 1 "):
        run_simulation(config(exported32, out, steps=100, max_force_kj_per_mol_nm=1.0))
    assert checkpoint_meta(out / "checkpoint.chk")["step"] == 0
    assert read_log(out / "log.csv")["step"].size == 0  # the bad state was never logged

    code = main([str(ETHANOL_PDB), "--model", str(exported32), "--output", str(tmp_path / "cli"), "--steps", "100",
                 "--platform", "CPU", "--log-interval", "10", "--max-force", "1", "--progress", "none"])  # fmt: skip
    assert code != 0
    err = capsys.readouterr().err
    assert "painn-simulate: error: simulation stopped at step 10" in err and "exceeds" in err
    assert "if it is too strict, raise --max-force" in err  # (the limit the user set may be the problem)


def test_temperature_limit_stops_the_run(exported32, tmp_path):
    with pytest.raises(
        SimulationInstabilityError,
        match=r"stopped at step \d+ \(log\): the temperature .* exceeds 310 K.* raise --max-temp",
    ):
        run_simulation(config(exported32, tmp_path / "run", steps=200, timestep_fs=4.0, max_temperature_K=310.0))


# ---- 7. bad inputs, rejected before anything runs ------------------------------------------------------------------
def bad_structure(kind: str, tmp_path: Path) -> Path:
    pos = pdb_positions_nm()
    if kind == "elements":  # C and O swapped: same formula, wrong particle order
        return write_pdb(tmp_path / "swapped.pdb", elements=["O", "C", "C", "H", "H", "H", "H", "H", "H"])
    if kind == "other_molecule":
        return ASPIRIN_PDB
    if kind == "no_element":  # no element columns, and a name OpenMM cannot guess an element from
        return write_pdb(tmp_path / "noelement.pdb", names=[None, None, "XX1"] + [None] * 6, element_columns=False)
    if kind == "angstrom":  # Angstrom coordinates read as nm
        return write_pdb(tmp_path / "angstrom.pdb", pos * 10.0)
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind, error, pattern",
    [
        ("elements", TopologyMismatchError, r"particle order at 2 atom\(s\): atom 1: O \(model: C\), atom 3: C \(model: O\)"),
        ("other_molecule", TopologyMismatchError, r"has 21 atoms .* exported for 9"),
        ("no_element", InputError, r"atom 3 \(XX1 in EOH\) has no element"),
        ("angstrom", UnitsError, r"coordinates look 10 times too large\. A PDB file stores Angstrom"),
    ],
)  # fmt: skip
def test_bad_structures_are_rejected_before_running(exported32, tmp_path, kind, error, pattern):
    out = tmp_path / "run"
    with pytest.raises(error, match=pattern):
        run_simulation(config(exported32, out, structure=str(bad_structure(kind, tmp_path)), steps=10))
    assert not out.exists()  # no half-made output directory left behind


def test_bad_options_are_rejected_before_running(exported32, tmp_path, capsys):
    # an output directory that cannot be created (its parent is a file)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(InputError, match=r"cannot write to .*a_file/run .*choose another --output"):
        run_simulation(config(exported32, blocker / "run", steps=10))

    # recording too sparse for 4000 cm^-1 (Nyquist: 4.17 fs)
    assert nyquist_limit_fs() == pytest.approx(4.17, abs=0.01)
    with pytest.raises(InputError, match="sampling theorem"):
        config(exported32, tmp_path / "run", record_dipole=True, record_interval=9)  # 4.5 fs
    config(exported32, tmp_path / "run", record_dipole=True, record_interval=8)  # 4.0 fs is fine
    code = main([str(ETHANOL_PDB), "--model", str(exported32), "--output", str(tmp_path / "cli"),
                 "--record-dipole", "--record-interval", "9"])  # fmt: skip
    assert code != 0 and "sampling theorem" in capsys.readouterr().err
    assert not (tmp_path / "cli").exists()

    # --steps in scientific notation (parsed only, not run)
    args = build_parser().parse_args([str(ETHANOL_PDB), "--steps", "1e6"])
    assert args.steps == 1_000_000 and isinstance(args.steps, int)
    assert build_parser().parse_args([str(ETHANOL_PDB), "--steps", "2_500"]).steps == 2500
    with pytest.raises(SystemExit):
        build_parser().parse_args([str(ETHANOL_PDB), "--steps", "1.5"])
    capsys.readouterr()

    # no --model: the bundled model for ethanol, an error asking for --model for anything else
    from painn_deploy.md.build import resolve_model
    from painn_deploy.resources import BUNDLED_MODEL

    ethanol = SimulationConfig(str(ETHANOL_PDB), output=str(tmp_path / "bundled"))
    assert resolve_model(ethanol, tmp_path / "bundled", [6, 6, 8, 1, 1, 1, 1, 1, 1]) == BUNDLED_MODEL
    out = tmp_path / "aspirin"
    with pytest.raises(InputError, match=r"no --model given .* pass --model"):
        run_simulation(SimulationConfig(str(ASPIRIN_PDB), output=str(out), steps=10, progress="none"))
    assert not (out / "log.csv").exists()
    with pytest.raises(
        InputError,
        match=r"If these are 2 ethanol molecules, the bundled model.s checkpoint takes them \(--model .*isolated molecule",
    ):
        resolve_model(ethanol, tmp_path / "two", [6, 6, 8, 1, 1, 1, 1, 1, 1] * 2)


# ---- 8. RPMD on OpenMM's RPMDIntegrator (for comparison; the batched integrator: test_rpmd.py) ----------------------
def test_openmm_rpmd_integrator_runs_and_resumes_its_beads(exported64, tmp_path):
    """OpenMM's context checkpoint holds no RPMDIntegrator beads: the driver stores them in checkpoint.chk."""
    kw = dict(platform="auto", beads=4, rpmd_integrator="openmm", log_interval=10, checkpoint_interval=20,
              friction_per_ps=10.0)  # fmt: skip
    first = MDRun(config(exported64, tmp_path / "b", steps=20, **kw))
    first.run()
    saved = [first.integrator.getState(k, getPositions=True, getVelocities=True) for k in range(4)]
    resumed = MDRun(config(exported64, tmp_path / "b", steps=20, resume=True, **kw))
    with pytest.warns(
        SimulationWarning, match="already has 20 steps, at least as many as --steps 20 asks for: nothing to do"
    ):
        resumed.run()
    for k in range(4):
        state = resumed.integrator.getState(k, getPositions=True, getVelocities=True)
        assert np.array_equal(state.getPositions(asNumpy=True)._value, saved[k].getPositions(asNumpy=True)._value)
        assert np.array_equal(state.getVelocities(asNumpy=True)._value, saved[k].getVelocities(asNumpy=True)._value)
    log = read_log(tmp_path / "b" / "log.csv", log_columns(ring_polymer=True, periodic=False))
    temperature = log["temperature_K"]
    assert np.all((temperature > 30.0) & (temperature < 1000.0))


# ---- 9. the command line -------------------------------------------------------------------------------------------
def test_cli_runs_and_prints_a_summary(exported32, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main([str(ETHANOL_PDB), "--model", str(exported32), "--output", str(out), "--steps", "20",
                 "--log-interval", "10", "--record-dipole", "--progress", "none", "--platform", "CPU"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "20 steps done" in printed and "20 property frames" in printed and str(out) in printed
    assert read_log(out / "log.csv")["step"].tolist() == [10, 20]
    # without --model: the bundled model, said on the first line; no recording: no "0 property frames"
    code = main([str(ETHANOL_PDB), "--output", str(tmp_path / "bundled"), "--steps", "10", "--log-interval", "10",
                 "--trajectory-interval", "10", "--progress", "lines", "--platform", "CPU"])  # fmt: skip
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"{ETHANOL_PDB}: 9 atoms; model {BUNDLED_MODEL} (the bundled ethanol model; --model for another); OpenMM "
        f"CPU, torch backend; outputs in {tmp_path / 'bundled'}"
    )
    assert lines[-1].startswith("10 steps done") and "property frames" not in lines[-1]


def test_cli_help_states_units(capsys):
    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for unit_text in ("(fs)", "(K)", "(1/ps)", "(kJ/mol/nm)", "e*nm", "nm^3"):
        assert unit_text in text, unit_text


def test_recording_a_property_the_model_lacks_names_the_model_given(tmp_path):
    """--record-polarizability with a checkpoint trained without that head: the message names the checkpoint the
    user gave (not the artefact exported from it into the output folder) and both ways on."""
    from painn_deploy.training import TrainConfig, train

    run = tmp_path / "train"
    train(TrainConfig(data=str(ETHANOL_NPZ), output=str(run), targets=("energy", "forces"), n_train=20, n_val=5,
                      n_features=8, n_interactions=1, n_rbf=4, max_epochs=1, batch_size=10, progress_bar=False))  # fmt: skip
    checkpoint = run / "best.ckpt"
    with pytest.raises(InputError) as info:
        run_simulation(config(checkpoint, tmp_path / "md", steps=10, record_polarizability=True))
    assert str(info.value) == (
        f"--record-polarizability needs a model with a polarizability head; {checkpoint} has energy, forces. Drop "
        "--record-polarizability, or train a model with polarizability among its --targets"
    )
