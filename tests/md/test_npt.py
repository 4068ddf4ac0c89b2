"""Constant pressure for a periodic box of the model's own molecules (no MM force field): the molecules found
from covalent bonds, a Monte Carlo barostat that moves them as rigid bodies, painn-simulate --pressure end to
end, and what it refuses."""

import csv
import re
import warnings

import h5py
import numpy as np
import openmm
import pytest
from openmm import app, unit

from painn_deploy import units
from painn_deploy.errors import InputError
from painn_deploy.md import SimulationConfig, run_simulation
from painn_deploy.md.runner import MDRun
from painn_deploy.md.solution import add_barostat
from painn_deploy.openmm import create_system
from painn_deploy.structures import find_molecules, molecular_box, write_pdb

from ..conftest import ETHANOL_NPZ, ETHANOL_PDB

ETHANOL_Z = [6, 6, 8, 1, 1, 1, 1, 1, 1]


def ethanol_box(path, n_molecules, seed=0, wrap=False, **spacing_or_density):
    """A PDB of ``n_molecules`` ethanol copies (one residue each) in a cubic periodic box: (path, z, nm, box nm).
    ``wrap``: shifted, and every atom wrapped into the box on its own (molecules split across the faces)."""
    mol = np.load(ETHANOL_NPZ)["coords"][0] * 0.1
    z, pos, box = molecular_box(ETHANOL_Z, mol, n_molecules, seed=seed, **spacing_or_density)
    if wrap:
        pos = np.mod(pos + 0.23, np.diag(box))
    write_pdb(path, z, pos, box, atoms_per_residue=9)
    return path, z, pos, box


@pytest.fixture(scope="module")
def liquid(trained_checkpoint, tmp_path_factory):
    """27 ethanols at the liquid's density (1.4 nm box), atoms wrapped into the box one by one, and the test model
    exported for the box (cell list)."""
    from painn_deploy.deploy import export

    folder = tmp_path_factory.mktemp("liquid")
    pdb = ethanol_box(folder / "liquid.pdb", 27, seed=1, wrap=True, density_g_per_cm3=0.75)[0]
    export(trained_checkpoint, folder / "liquid.pt", pdb=str(pdb))
    return pdb, folder / "liquid.pt"


def topology_of(z, residue_sizes, bonds=()):
    """A topology of atoms ``z`` in residues of ``residue_sizes`` atoms, with the listed bonds."""
    topology = app.Topology()
    chain = topology.addChain()
    starts = np.cumsum([0] + list(residue_sizes))
    atoms = []
    for k, number in enumerate(z):
        if k in starts:
            residue = topology.addResidue("MOL", chain)
        atoms.append(topology.addAtom(f"X{k}", app.Element.getByAtomicNumber(number), residue))
    for a, b in bonds:
        topology.addBond(atoms[a], atoms[b])
    return topology


def test_molecular_box_keeps_its_copies_apart_at_liquid_density():
    """64 ethanols at 0.789 g/cm^3 (the export example's box): no two atoms of different copies closer than
    0.18 nm, across the faces too (random orientations alone put atoms 0.013 nm apart here, which painn-simulate
    refuses); a density no orientation can fit is refused with the way on."""
    from painn_deploy.openmm import check_positions

    mol = np.load(ETHANOL_NPZ)["coords"][0] * 0.1
    _, pos, box = molecular_box(ETHANOL_Z, mol, 64, density_g_per_cm3=0.789)
    d = pos[:, None] - pos[None]
    d -= box[0, 0] * np.round(d / box[0, 0])
    copy = np.repeat(np.arange(64), 9)
    r = np.sqrt((d**2).sum(-1))[copy[:, None] != copy[None]]
    assert r.min() >= 0.18
    check_positions(pos, box)
    with pytest.raises(ValueError, match="too dense for randomly turned copies on a lattice; .* Packmol"):
        molecular_box(ETHANOL_Z, mol, 27, spacing_nm=0.3)


def test_molecules_are_found_whole_across_the_box_faces(tmp_path):
    """Every atom wrapped into the box on its own splits the molecules that cross a face: each is still found,
    as its residue, and made whole (its shape as built) with its centre in the box."""
    _, z, pos, box = ethanol_box(tmp_path / "box.pdb", 8, spacing_nm=0.5)
    wrapped = np.mod(pos + 0.23, np.diag(box))  # shift, then wrap atom by atom
    residues = [list(range(9 * k, 9 * k + 9)) for k in range(8)]
    shape = [pos[r] - pos[r].mean(axis=0) for r in residues]
    assert sum(np.ptp(wrapped[r], axis=0).max() > 0.5 for r in residues) >= 3  # the test has split molecules
    found = find_molecules(topology_of(z, [9] * 8), wrapped, box)
    assert found.finite == residues and found.networks == []
    for r, built in zip(residues, shape):
        np.testing.assert_allclose(found.whole_nm[r] - found.whole_nm[r].mean(axis=0), built, atol=1e-9)
        assert np.all((found.whole_nm[r].mean(axis=0) >= 0) & (found.whole_nm[r].mean(axis=0) < np.diag(box)))


def test_residues_join_only_through_the_topologys_bonds():
    """Two ethanols, the second's hydroxyl H 0.9 Angstrom from the first's O (an overlap, or an ion beside water):
    two molecules.  A bond the topology lists (CONECT) joins them, and atoms of one residue without bonds in the
    topology are joined by distance."""
    mol = np.load(ETHANOL_NPZ)["coords"][0] * 0.1
    second = mol - mol[8] + mol[2] + np.array([0.09, 0.0, 0.0])  # atom 8: the hydroxyl H
    pos = np.concatenate([mol, second])
    assert find_molecules(topology_of(ETHANOL_Z * 2, [9, 9]), pos).finite == [list(range(9)), list(range(9, 18))]
    assert find_molecules(topology_of(ETHANOL_Z * 2, [9, 9], bonds=[(2, 17)]), pos).finite == [list(range(18))]
    assert find_molecules(topology_of(ETHANOL_Z * 2, [18]), pos).finite == [list(range(18))]  # one residue: by distance


def test_an_ml_solute_of_several_residues_is_one_molecule():
    """OpenMM-ML removes the ML atoms' bonds; the ML molecules the barostat moves whole are found among the ML
    atoms only: residues joined by the topology's bonds between ML atoms, a bond to an atom outside ignored."""
    mol = np.load(ETHANOL_NPZ)["coords"][0] * 0.1
    pos = np.concatenate([mol, mol + 1.0, mol + 2.0])  # three ethanols 1.7 nm apart
    joined = topology_of(ETHANOL_Z * 3, [9, 9, 9], bonds=[(2, 17), (10, 20)])
    assert find_molecules(joined, pos, atoms=range(18)).finite == [list(range(18))]
    assert find_molecules(joined, pos, atoms=range(9, 27)).finite == [list(range(9, 27))]
    apart = topology_of(ETHANOL_Z * 3, [9, 9, 9])
    assert find_molecules(apart, pos, atoms=range(9, 18)).finite == [list(range(9, 18))]
    assert find_molecules(apart, pos, atoms=range(18)).finite == [list(range(9)), list(range(9, 18))]


def test_the_ml_molecules_of_a_topology_are_its_bonded_residues():
    """Without positions (OpenMM-ML's createSystem), the ML molecules are the ML atoms' residues joined by the
    topology's bonds between ML atoms (a capped peptide's three residues: one molecule), numbered in the ML
    atoms' order."""
    from painn_deploy.openmm.mlpotential import residue_groups

    peptide = topology_of(ETHANOL_Z * 3, [9, 9, 9], bonds=[(2, 9), (11, 18)])
    assert residue_groups(peptide, range(27)) == [list(range(27))]
    assert residue_groups(peptide, range(9, 27)) == [list(range(18))]
    apart = topology_of(ETHANOL_Z * 3, [9, 9, 9], bonds=[(2, 9)])
    assert residue_groups(apart, [20, 21, 0, 1, 10]) == [[0, 1], [2, 3], [4]]  # (positions in the list given)
    assert residue_groups(apart, [20, 21, 0, 1, 2, 9, 10]) == [[0, 1], [2, 3, 4, 5, 6]]  # the bond 2-9: both ML


def test_a_covalent_network_through_the_box_is_not_a_molecule():
    """A carbon chain through the box's faces (20 atoms, 0.15 nm apart along x) bonds to its own image: it is a
    network, left as given and joined to nothing, beside a CO molecule that is finite."""
    chain = np.array([[0.15 * k, 0.5, 0.5] for k in range(20)])
    co = np.array([[1.0, 1.5, 1.5], [1.113, 1.5, 1.5]])
    box = np.diag([3.0, 2.0, 2.0])
    topology = topology_of([6] * 20 + [6, 8], [20, 2])
    found = find_molecules(topology, np.concatenate([chain, co]), box)
    assert found.networks == [list(range(20))] and found.finite == [[20, 21]]
    np.testing.assert_array_equal(found.whole_nm[:20], chain)
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*(box * unit.nanometer))
    periodic = openmm.CustomNonbondedForce("0")  # (a barostat needs a periodic force)
    periodic.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
    periodic.setCutoffDistance(0.5)
    for _ in range(22):
        system.addParticle(12.0)
        periodic.addParticle([])
    system.addForce(periodic)
    add_barostat(system, found.finite, 1.0, 300.0)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    assert sorted(sorted(m) for m in context.getMolecules()) == [[k] for k in range(20)] + [[20, 21]]


def test_barostat_moves_the_models_molecules_as_rigid_bodies(trained_checkpoint, tmp_path):
    """Eight ethanols 2.5 nm apart, beyond the model's 0.5 nm cutoff of one another, held in place (zero
    velocities, a 1e-9 ps step) under a volume move every step: OpenMM's barostat sees the bonded molecules, and
    the accepted moves change the volume while leaving every molecule's shape, and so the energy, as it was.
    Were the atoms scaled one by one, every move would stretch all bonds."""
    from painn_deploy.deploy import export

    pdb, z, pos, box = ethanol_box(tmp_path / "gas.pdb", 8, spacing_nm=2.5)
    export(trained_checkpoint, tmp_path / "gas.pt", pdb=str(pdb))
    topology = app.PDBFile(str(pdb)).topology
    system, _ = create_system(tmp_path / "gas.pt", topology, "torch", remove_cm_motion=False)
    molecules = find_molecules(topology, pos, box).finite
    # the pressure at which the ideal gas of these molecules has twice the starting volume: moves both ways
    pressure_bar = (8 + 1) * units.BOLTZMANN_J_PER_K * 300.0 / 1e5 * 1e27 / (2 * float(np.linalg.det(box)))
    add_barostat(system, molecules, pressure_bar, 300.0)
    barostat = next(f for f in system.getForces() if isinstance(f, openmm.MonteCarloBarostat))
    assert barostat.getScaleMoleculesAsRigid()
    barostat.setFrequency(1)
    barostat.setRandomNumberSeed(1)
    context = openmm.Context(system, openmm.VerletIntegrator(1e-9), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(pos * unit.nanometer)
    context.setPeriodicBoxVectors(*(box * unit.nanometer))
    assert sorted(sorted(m) for m in context.getMolecules()) == molecules
    start = context.getState(getEnergy=True)
    volumes = []
    for _ in range(30):
        context.getIntegrator().step(10)
        volumes.append(context.getState().getPeriodicBoxVolume().value_in_unit(unit.nanometer**3))
    # moves were accepted, towards the ideal gas's volume (the largest was 1.4-2.4 times the start in 10 runs)
    assert max(volumes) > 1.2 * float(np.linalg.det(box))
    end = context.getState(getEnergy=True, getPositions=True)
    energy = [s.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) for s in (start, end)]
    assert energy[1] == pytest.approx(energy[0], rel=1e-9, abs=1e-6)
    final = end.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    for molecule in molecules:
        np.testing.assert_allclose(
            final[molecule] - final[molecule].mean(axis=0), pos[molecule] - pos[molecule].mean(axis=0), atol=1e-6
        )


def npt_config(pdb, model, output, **kwargs):
    base = dict(structure=str(pdb), model=str(model), output=str(output), timestep_fs=0.5, platform="CPU",
                pressure_bar=1.0, steps=200, log_interval=25, trajectory_interval=25, checkpoint_interval=1000,
                progress="none", envelope_margin="inf", threads=1)  # fmt: skip
    base.update(kwargs)
    return SimulationConfig(**base)


def test_npt_run_of_a_liquid_box_of_the_models_molecules(liquid, trained_checkpoint, tmp_path):
    """painn-simulate --pressure on 27 model ethanols: the run starts from whole molecules, the barostat moves
    the box, and log.csv's volume and density at each logged step are the trajectory's box and the atoms' mass
    in it.  (The tiny test model's
    molecules do not hold together in a liquid: the rigid moves are tested above.)"""
    import mdtraj

    pdb, model = liquid
    out = tmp_path / "npt"
    run = MDRun(npt_config(pdb, model, out, record_dipole=True))
    residues = [list(range(9 * k, 9 * k + 9)) for k in range(27)]
    extent = [np.ptp(run.start_positions_nm[r], axis=0).max() for r in residues]
    assert max(extent) < 0.4  # it starts from whole molecules (the PDB splits some: checked in the first test)
    with pytest.warns(Warning):  # (the tiny test model's training data has no liquid: envelope warnings)
        run.run()
    traj = mdtraj.load(str(out / "trajectory.dcd"), top=str(pdb))
    volumes = np.abs(np.linalg.det(traj.unitcell_vectors))
    assert volumes.max() - volumes.min() > 1e-3  # the barostat moved the box
    with open(out / "log.csv", newline="") as f:
        log = list(csv.DictReader(f))
    logged = np.array([float(r["volume_nm3"]) for r in log])
    np.testing.assert_allclose(logged, volumes, rtol=1e-5)
    mass_g = sum(a.element.mass for a in traj.topology.atoms) / units.AVOGADRO_PER_MOL
    np.testing.assert_allclose([float(r["density_g_per_cm3"]) for r in log], mass_g / (logged * 1e-21), rtol=1e-5)
    with h5py.File(out / "properties.h5") as f:
        assert f.attrs["molecules"] == 27  # (painn-spectrum's line shapes: per molecule)
    # final.pdb: the last structure in the box the barostat reached, from which a static-list model is exported
    final = app.PDBFile(str(out / "final.pdb"))
    final_box = np.array(final.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer))
    assert abs(np.linalg.det(final_box)) == pytest.approx(logged[-1], rel=3e-4)  # (CRYST1 keeps 0.001 Angstrom)
    from painn_deploy.deploy import Artefact, export

    meta = export(trained_checkpoint, tmp_path / "static.pt", pdb=str(out / "final.pdb"), neighbor_mode="static")
    assert meta["neighbor_list"] == "static" and meta["n_particles"] == 243
    assert Artefact(model).metadata["n_molecules"] == 27  # (the tiny model's molecules come apart in the run)


def test_pressure_is_refused_with_a_static_neighbour_list(liquid, trained_checkpoint, tmp_path):
    """The static list's cell grid is fixed for the exported box: a barostat would overflow it at the first
    smaller trial box (on a GPU: a NaN energy, which the Monte Carlo test accepts)."""
    from painn_deploy.deploy import export

    pdb, _ = liquid
    export(trained_checkpoint, tmp_path / "static.pt", pdb=str(pdb), neighbor_mode="static")
    with pytest.raises(InputError, match=r"uses the static neighbour list.* export with --neighbor-list cell_list"):
        run_simulation(npt_config(pdb, tmp_path / "static.pt", tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_pressure_needs_a_periodic_box_and_a_periodic_model(exported32, tmp_path):
    with pytest.raises(InputError, match=r"--pressure \(NPT\) needs a periodic system, and .*ethanol.pdb has no box"):
        run_simulation(npt_config(ETHANOL_PDB, exported32, tmp_path / "a"))
    boxed = tmp_path / "boxed.pdb"
    boxed.write_text(
        "CRYST1   30.000   30.000   30.000  90.00  90.00  90.00 P 1           1\n" + ETHANOL_PDB.read_text()
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InputError, match=r"needs a periodic model, and .*model32.pt is not periodic: export one"):
            run_simulation(npt_config(boxed, exported32, tmp_path / "b"))
    assert not [str(w.message) for w in caught]  # no "the box is ignored" before the refusal
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_write_pdb_refuses_atom_names_a_pdb_cannot_hold(tmp_path):
    """1,125 atoms in one residue would give 5-character names (C1000), which collide when a reader cuts them to
    4 and are dropped: refused, with the fix; in residues of one molecule they are written and read back."""
    _, z, pos, box = ethanol_box(tmp_path / "ok.pdb", 125, spacing_nm=0.5)
    with pytest.raises(ValueError, match="longer than a PDB's 4 characters; give atoms_per_residue"):
        write_pdb(tmp_path / "bad.pdb", z, pos, box)
    assert app.PDBFile(str(tmp_path / "ok.pdb")).topology.getNumAtoms() == 1125


def test_a_box_the_barostat_shrinks_below_the_model_cutoff_stops_with_one_line(tmp_path, capsys):
    """Eight ethanols in a box just over twice the model cutoff, compressed at 20 kbar: the model's own check stops
    the run as it steps (exit 1, a run that failed on its way), in one line that names the step and the barostat;
    here in the equilibration of a recording run (a PythonForce, whose errors reach OpenMM without their type; the
    next test stops a TorchForce run after its start).  A warning said at the start that the box was that close."""
    from painn_deploy.cli.simulate import main
    from painn_deploy.resources import BUNDLED_CHECKPOINT

    pdb, _, _, box = ethanol_box(tmp_path / "eight.pdb", 8, density_g_per_cm3=0.6)
    assert 1.0 < box[0, 0] < 1.02  # nm: over twice the 0.5 nm cutoff, by 1-2%
    args = [str(pdb), "--model", str(BUNDLED_CHECKPOINT), "--steps", "2000", "--pressure", "20000", "--log-interval",
            "50", "--platform", "CPU", "--progress", "none", "-o", str(tmp_path / "npt"), "--record-dipole",
            "--equilibration-steps", "2000"]  # fmt: skip
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 1, err
    assert re.search(r"error: the model stopped the run after equilibration step \d+ \(no checkpoint was written: "
                     r"start the run again\): the periodic box's narrowest width \(9\.\d\d Angstrom\) must be at "
                     r"least twice the model cutoff \(10\.00 Angstrom\), .* smaller cutoff\. The barostat "
                     r"\(--pressure\) shrank the box: start again", err), err  # fmt: skip
    assert "wide, within 10% of twice the model cutoff (1.000 nm): if the barostat shrinks it" in err  # (at the start)


def test_a_static_list_that_overflows_as_the_run_goes_stops_with_one_line(tmp_path, capsys):
    """A static list with room for ten pairs more than its structure, heated to 600 K: the model's overflow stops
    the run (exit 1) in one line naming the step, with the configuration in final.pdb to export again for."""
    from painn_deploy.cli.simulate import main
    from painn_deploy.deploy import export
    from painn_deploy.resources import BUNDLED_CHECKPOINT

    pdb, _, pos, box = ethanol_box(tmp_path / "eight.pdb", 8, density_g_per_cm3=0.6)
    width = np.diag(box)
    d = pos[:, None] - pos[None]
    d -= width * np.round(d / width)  # (minimum image)
    pairs = int(np.sum((np.linalg.norm(d, axis=-1) < 0.5) & ~np.eye(len(pos), dtype=bool)))
    model = tmp_path / "static.pt"
    export(BUNDLED_CHECKPOINT, model, pdb=str(pdb), neighbor_mode="static", pair_capacity=pairs + 10)
    out = tmp_path / "hot"
    args = [str(pdb), "--model", str(model), "--steps", "1000", "--log-interval", "20", "--temperature", "600",
            "--platform", "CPU", "--progress", "none", "-o", str(out)]  # fmt: skip
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 1, err
    assert re.search(r"error: the model stopped the run after step \d+ \(the outputs up to the last checkpoint are "
                     rf"kept\): the static neighbour list holds {pairs + 10} pairs .* The configuration is in "
                     rf"{re.escape(str(out / 'final.pdb'))}; a run with a model exported for it starts anew", err), err  # fmt: skip
    assert (out / "final.pdb").is_file()


def test_the_npt_start_box_warning_is_said_at_the_start_and_not_on_resume(tmp_path):
    """The warning that the box is within 10% of twice the cutoff judges the PDB's box: said when the run starts,
    not again when it continues from its checkpoint's box."""
    from painn_deploy.resources import BUNDLED_CHECKPOINT

    pdb, _, _, _ = ethanol_box(tmp_path / "eight.pdb", 8, density_g_per_cm3=0.6)
    near = "within 10% of twice the model cutoff"
    cfg = npt_config(pdb, BUNDLED_CHECKPOINT, tmp_path / "npt", steps=20, log_interval=10, trajectory_interval=10,
                     checkpoint_interval=10)  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_simulation(cfg)
    assert any(near in str(w.message) for w in caught)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_simulation(npt_config(pdb, BUNDLED_CHECKPOINT, tmp_path / "npt", steps=40, log_interval=10,
                                  trajectory_interval=10, checkpoint_interval=10, resume=True))  # fmt: skip
    assert not [str(w.message) for w in caught if near in str(w.message)]
    with open(tmp_path / "npt" / "log.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [10, 20, 30, 40]
