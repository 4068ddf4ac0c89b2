"""painn-simulate of a solute in water (ML ethanol, MM TIP3P water, PME, mechanical embedding through
OpenMM-ML): recording, barostat, resume after SIGKILL, bad input."""

import csv

import h5py
import numpy as np
import pytest
import torch

from painn_deploy.cli.simulate import main
from painn_deploy.deploy import load
from painn_deploy.errors import InputError
from painn_deploy.md import SimulationConfig, run_simulation
from painn_deploy.md.outputs import log_columns
from painn_deploy.openmm.forces import make_whole
from painn_deploy.resources import BUNDLED_MODEL

from ..conftest import ETHANOL_PDB, simulate_and_kill

N_WATERS = 340  # 1029 atoms


@pytest.fixture(scope="module")
def solvated(tmp_path_factory):
    from painn_deploy.solvation import solvate

    path = tmp_path_factory.mktemp("solvated") / "ethanol_in_water.pdb"
    topology, _ = solvate(ETHANOL_PDB, path, n_waters=N_WATERS)
    assert topology.getNumAtoms() >= 1000
    return path


def cli_args(pdb, output, steps, **extra):
    args = [str(pdb), "--ml-residues", "EOH", "--output", str(output), "--steps", str(steps), "--platform", "CPU",
            "--record-dipole", "--record-polarizability", "--log-interval", "50", "--trajectory-interval", "10",
            "--checkpoint-interval", "200", "--progress", "none", "--seed", "2", "--threads", "1"]  # fmt: skip
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def ml_dipoles_of_trajectory(output, pdb):
    """The bundled model's dipole of the ML ethanol (made whole) in every trajectory frame."""
    import mdtraj

    traj = mdtraj.load(str(output / "trajectory.dcd"), top=str(pdb))
    ml = [a.index for a in traj.topology.atoms if a.residue.name == "EOH"]
    model = load(BUNDLED_MODEL)
    out = []
    for frame, box in zip(traj.xyz, traj.unitcell_vectors):
        x = make_whole(frame[ml].astype(np.float64), box.astype(np.float64))
        out.append(model.properties(torch.tensor(x, dtype=torch.float32))["dipole"].double().numpy())
    return np.array(out), traj


def test_npt_run_records_the_ml_dipole_of_each_frame(solvated, tmp_path):
    """Ethanol in 340 TIP3P waters at 1 bar: every recorded dipole is the model's dipole of the ML ethanol in
    the trajectory frame of its step (DCD float32 positions: < 1e-6 e*nm; neighbouring steps differ by
    ~2e-4), the barostat's trial evaluations do not shift the recording, and the box changes."""
    out = tmp_path / "npt"
    assert main(cli_args(solvated, out, 300, pressure=1.0, trajectory_interval=1)) == 0
    with h5py.File(out / "properties.h5") as f:
        dipole, time_ps = f["dipole"][:], f["time"][:]
    assert dipole.shape == (300, 3) and np.allclose(time_ps, np.arange(1, 301) * 0.5e-3)
    reference, traj = ml_dipoles_of_trajectory(out, solvated)
    np.testing.assert_allclose(dipole, reference, rtol=0, atol=1e-6)
    assert np.abs(np.diff(dipole, axis=0)).max() > 1e-5  # the comparison tells neighbouring steps apart
    volumes = np.abs(np.linalg.det(traj.unitcell_vectors))
    assert volumes.max() - volumes.min() > 1e-4  # the barostat moved the box
    # log.csv follows the box: its volume at each logged step is the trajectory's, and the density about water's
    with open(out / "log.csv", newline="") as f:
        log = list(csv.DictReader(f))
    assert tuple(log[0]) == log_columns(ring_polymer=False, periodic=True)
    logged = np.array([float(r["volume_nm3"]) for r in log])
    np.testing.assert_allclose(logged, volumes[[int(r["step"]) - 1 for r in log]], rtol=1e-5)
    mass_amu = sum(a.element.mass for a in traj.topology.atoms)  # mdtraj: amu
    density = np.array([float(r["density_g_per_cm3"]) for r in log])
    np.testing.assert_allclose(density, mass_amu * 1.66053906660e-24 / (logged * 1e-21), rtol=1e-6)
    assert np.all((density > 0.8) & (density < 1.1))  # Modeller packs a little loosely; 300 steps compress it


def test_solvated_run_resumes_after_sigkill(solvated, tmp_path, capsys):
    """1000 steps with recording: a copy of a run at its step-400 checkpoint is continued in a process that is
    killed after a later checkpoint and resumed; it ends with the properties and log of the original continued
    without interruption, and the recorded dipoles are the model's of the trajectory frames.  Measured: equal
    bit for bit up to the resumed checkpoint, then within ~1e-8 e*nm (OpenMM's CPU nonbonded kernel sums in the
    order of its neighbour list, which a new context rebuilds at other steps; neighbouring steps differ by
    ~2e-4).  The two runs share their start because the minimisation of the solvated structure is not
    reproducible on several threads."""
    import shutil

    original, killed = tmp_path / "original", tmp_path / "killed"
    assert main(cli_args(solvated, original, 400)) == 0
    shutil.copytree(original, killed)
    result = simulate_and_kill(cli_args(solvated, killed, 1000) + ["--resume"], killed, min_step=600)
    assert result is not None, "the run ended before it could be killed"
    assert main(cli_args(solvated, killed, 1000) + ["--resume"]) == 0
    assert main(cli_args(solvated, original, 1000) + ["--resume"]) == 0
    with h5py.File(killed / "properties.h5") as a, h5py.File(original / "properties.h5") as b:
        assert a["time"].shape == (1000,) and np.allclose(a["time"][:], np.arange(1, 1001) * 0.5e-3)
        resumed_at = result[0]
        assert np.array_equal(a["dipole"][:resumed_at], b["dipole"][:resumed_at])
        np.testing.assert_allclose(a["dipole"][:], b["dipole"][:], rtol=0, atol=1e-6)
        np.testing.assert_allclose(a["polarizability"][:], b["polarizability"][:], rtol=0, atol=1e-6)
        dipole = a["dipole"][:]
    rows = [[line.split(",") for line in (run / "log.csv").read_text().splitlines()[1:]] for run in (killed, original)]
    assert [r[0] for r in rows[0]] == [r[0] for r in rows[1]] == [str(s) for s in range(50, 1001, 50)]
    np.testing.assert_allclose([float(r[2]) for r in rows[0]], [float(r[2]) for r in rows[1]], rtol=1e-6)
    reference_dipoles, traj = ml_dipoles_of_trajectory(killed, solvated)
    assert traj.n_frames == 100
    np.testing.assert_allclose(dipole[9::10], reference_dipoles, rtol=0, atol=1e-6)
    # the solvent's settings are the run's too: changed on --resume, they are refused and nothing is written
    log = (original / "log.csv").read_text()
    for changed, named in ((dict(mm_cutoff=0.8), "--mm-cutoff (0.9 -> 0.8)"), (dict(pressure=1), "--pressure (0.0 -> 1.0)"),
                           (dict(mm_forcefield="amber14/spce"), "--mm-forcefield (amber14/tip3p -> amber14/spce)")):  # fmt: skip
        assert main(cli_args(solvated, original, 1100, **changed) + ["--resume"]) == 2
        assert f"--resume with changed settings: {named}" in capsys.readouterr().err
    assert (original / "log.csv").read_text() == log


def test_bad_solvated_input_is_named(solvated, tmp_path):
    base = dict(structure=str(solvated), output=str(tmp_path / "x"), steps=10, platform="CPU", progress="none")
    with pytest.raises(
        InputError, match=r"--ml-residues ETH: no residue .* has that name; its residues are EOH \(1\), HOH \(340\)"
    ):
        run_simulation(SimulationConfig(ml_residues="ETH", **base))
    assert not (tmp_path / "x").exists()
    with pytest.raises(InputError, match=r"--ml-residues names no residue; .* has EOH \(1\), HOH \(340\)"):
        run_simulation(SimulationConfig(ml_residues=" , ", **base))
    with pytest.raises(
        InputError, match=r"A solute in solvent\? Give --ml-residues .* \(this structure has EOH, HOH\)"
    ):
        run_simulation(SimulationConfig(**base))
    assert not (tmp_path / "x").exists()
    with pytest.raises(InputError, match="one classical copy"):
        SimulationConfig(ml_residues="EOH", beads=4, **base)
    with pytest.raises(InputError, match=r"--pressure \(NPT\) needs a periodic system, and .*ethanol.pdb has no box"):
        run_simulation(SimulationConfig(pressure_bar=1.0, ml_residues="EOH", **{**base, "structure": str(ETHANOL_PDB)}))
    assert not (tmp_path / "x").exists()
    # a residue the force field has no template for: named, with the fix
    text = solvated.read_text().replace(" HOH 2   2 ", " XYZ 2   2 ")  # the first water
    odd = tmp_path / "odd.pdb"
    odd.write_text(text)
    with pytest.raises(InputError, match="no force-field template matches residue XYZ"):
        run_simulation(SimulationConfig(ml_residues="EOH", **{**base, "structure": str(odd)}))
    # an element the model does not know in the ML residues: the atoms and residues named, with --ml-residues as the
    # fix (the export's message named only "the system to export")
    from painn_deploy.errors import UnknownElementError
    from painn_deploy.resources import BUNDLED_CHECKPOINT

    lines = solvated.read_text().splitlines()
    k = next(i for i, line in enumerate(lines) if " EOH " in line and line[76:78] == " O")
    lines[k] = lines[k][:76] + " S" + lines[k][78:]
    sulfur = tmp_path / "thiol.pdb"
    sulfur.write_text("\n".join(lines) + "\n")
    with pytest.raises(UnknownElementError, match=r"the ML residues \(EOH\) of .*thiol.pdb contains S \(Z=16\), which "
                       r"the model was not trained on \(it knows H, C, O\): atom \d+ \(\w+ in residue EOH 1\)\. Choose "
                       r"--ml-residues of these elements only"):  # fmt: skip
        run_simulation(
            SimulationConfig(ml_residues="EOH", model=str(BUNDLED_CHECKPOINT), **{**base, "structure": str(sulfur)})
        )
    # PME's cutoff can be at most half the box: named, with the limit (was OpenMM's exception, exit 1)
    with pytest.raises(
        InputError, match=r"--mm-cutoff 1.5 nm is more than half the box's narrowest width .* at most 1\.\d+ nm"
    ):
        run_simulation(SimulationConfig(ml_residues="EOH", mm_cutoff_nm=1.5, **base))
    # under a barostat the box shrinks: a cutoff of just under half the width is refused, with a limit that leaves room
    from openmm import app, unit

    width = min(np.diag(app.PDBFile(str(solvated)).topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer)))
    with pytest.raises(InputError, match=r"less 10% for the barostat's shrinking: lower --mm-cutoff to at most "):
        run_simulation(SimulationConfig(ml_residues="EOH", mm_cutoff_nm=0.49 * width, pressure_bar=1.0, **base))
    assert not (tmp_path / "x").exists()


def test_a_box_the_barostat_shrinks_below_the_cutoff_stops_with_one_line(solvated, tmp_path, monkeypatch, capsys):
    """OpenMM's exception when a barostat move leaves the box narrower than twice the PME cutoff becomes one line
    with the fix (exit 1), not a traceback."""
    import openmm

    from painn_deploy.md.runner import MDRun

    def shrunk(self, *args):
        raise openmm.OpenMMException("The periodic box size has decreased to less than twice the nonbonded cutoff.")

    monkeypatch.setattr(MDRun, "_steps", shrunk)
    assert main(cli_args(solvated, tmp_path / "npt", 100, pressure=1)) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 1
    assert (
        "the barostat shrank the periodic box below twice --mm-cutoff (0.9 nm)" in err and "smaller --mm-cutoff" in err
    )


def test_the_barostat_moves_the_ml_molecule_as_one_body(solvated, tmp_path):
    """OpenMM-ML removes the ML atoms' bonds, which is how OpenMM finds molecules: the barostat's joints keep
    the ML ethanol one rigid body, as every water is."""
    from painn_deploy.md.runner import MDRun

    run = MDRun(SimulationConfig(str(solvated), ml_residues="EOH", output=str(tmp_path / "npt"), pressure_bar=1.0,
                                 platform="CPU", backend="torch", progress="none", threads=1))  # fmt: skip
    ml = [a.index for a in run.pdb.topology.atoms() if a.residue.name == "EOH"]
    molecules = sorted(sorted(m) for m in run.context.getMolecules())
    assert ml in molecules and len(molecules) == N_WATERS + 1


def test_an_ml_solute_wrapped_atom_by_atom_starts_whole(solvated, tmp_path):
    """A PDB that wraps the solute's atoms one by one across a face of the box (the waters whole): the run starts
    with the ML ethanol whole, so TorchForce's check that it is whole passes, and the MM atoms are unmoved."""
    from openmm import app, unit

    from painn_deploy.md.runner import MDRun

    pdb = app.PDBFile(str(solvated))
    positions = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    box = np.diag(np.asarray(pdb.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer)).diagonal())
    ml = [a.index for a in pdb.topology.atoms() if a.residue.name == "EOH"]
    positions[:, 0] += box[0, 0] - positions[ml, 0].mean()  # the ethanol's centre on the face x = L
    for residue in pdb.topology.residues():
        atoms = [a.index for a in residue.atoms()]
        if residue.name == "EOH":  # atom by atom
            positions[atoms] -= np.floor(positions[atoms] / box.diagonal()) * box.diagonal()
        else:  # whole
            positions[atoms] -= np.floor(positions[atoms[0]] / box.diagonal()) * box.diagonal()
    assert np.ptp(positions[ml, 0]) > 0.5 * box[0, 0]  # torn
    torn = tmp_path / "torn.pdb"
    with open(torn, "w") as f:
        app.PDBFile.writeFile(pdb.topology, positions * 10.0 * unit.angstrom, f)
    run = MDRun(SimulationConfig(str(torn), ml_residues="EOH", output=str(tmp_path / "run"), steps=10,
                                 platform="CPU", backend="torch", progress="none", threads=1, log_interval=5,
                                 trajectory_interval=5))  # fmt: skip
    start = run.start_positions_nm
    assert np.ptp(start[ml], axis=0).max() < 0.5  # whole: ethanol spans less than 0.5 nm
    mm = [i for i in range(len(positions)) if i not in set(ml)]
    np.testing.assert_allclose(start[mm], positions[mm], atol=1e-3)  # (PDB precision)
    assert run.run().steps == 10
    # a whole ML molecule is not moved, even with its centre outside the box (beside the waters it touches)
    whole = pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    whole = np.asarray(whole) + np.array([box[0, 0] - np.asarray(whole)[ml, 0].min() + 0.05, 0.0, 0.0])
    outside = tmp_path / "outside.pdb"
    with open(outside, "w") as f:
        app.PDBFile.writeFile(pdb.topology, whole * 10.0 * unit.angstrom, f)
    kept = MDRun(SimulationConfig(str(outside), ml_residues="EOH", output=str(tmp_path / "kept"), platform="CPU",
                                  backend="torch", progress="none", threads=1))  # fmt: skip
    assert np.all(whole[ml, 0] > box[0, 0])
    np.testing.assert_allclose(kept.start_positions_nm[ml], whole[ml], atol=1e-3)
    # started torn, TorchForce's check fails inside the model: the run raises its typed error, naming the fix
    torn_run = MDRun(SimulationConfig(str(torn), ml_residues="EOH", output=str(tmp_path / "torn"), steps=10,
                                      platform="CPU", backend="torch", progress="none", threads=1, log_interval=5,
                                      trajectory_interval=5))  # fmt: skip
    torn_run.start_positions_nm = positions
    with pytest.raises(InputError, match="the ML molecule straddles a boundary of the periodic box .* Keep the ML"):
        torn_run.run()
