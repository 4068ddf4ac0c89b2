"""The ASE calculator: the model's energy, forces, dipole and polarizability in ASE's units, its checks of the
Atoms, and ASE's own tools on it (an optimisation, finite-difference vibrations) against painn-harmonic."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.optimize import BFGS
from ase.vibrations import Vibrations

from painn_deploy import units
from painn_deploy.deploy import PaiNNCalculator, load
from painn_deploy.errors import InputError, TopologyMismatchError
from painn_deploy.resources import BUNDLED_MODEL, STRUCTURES
from painn_deploy.structures import load_pdb


def ethanol(**kwargs) -> Atoms:
    _, z, positions_nm, _ = load_pdb(STRUCTURES["ethanol"])
    return Atoms(numbers=z, positions=positions_nm * units.ANGSTROM_PER_NM, **kwargs)


def test_results_are_the_models_in_ase_units(exported64):
    atoms = ethanol()
    atoms.calc = PaiNNCalculator(exported64)
    reference = load(exported64).properties(atoms.positions * units.NM_PER_ANGSTROM)
    assert atoms.get_potential_energy() == pytest.approx(float(reference["energy"]) / units.EV_TO_KJ_PER_MOL, 1e-12)
    np.testing.assert_allclose(
        atoms.get_forces(), reference["forces"].numpy() / units.EV_TO_KJ_PER_MOL / units.ANGSTROM_PER_NM, rtol=1e-12
    )
    np.testing.assert_allclose(atoms.get_dipole_moment(), reference["dipole"].numpy() * 10.0, rtol=1e-12)
    alpha = atoms.calc.get_property("polarizability", atoms)
    np.testing.assert_allclose(alpha, reference["polarizability"].numpy() * 1e3, rtol=1e-12)
    # the forces are minus the gradient of the energy, both in ASE's units (central differences, float64)
    for atom, axis in ((0, 0), (2, 1), (8, 2)):
        energies = []
        for step in (1e-4, -1e-4):
            moved = atoms.copy()
            moved.calc = atoms.calc
            moved.positions[atom, axis] += step
            energies.append(moved.get_potential_energy())
        assert -(energies[0] - energies[1]) / 2e-4 == pytest.approx(atoms.get_forces()[atom, axis], abs=1e-5)


def test_ase_optimisation_and_vibrations_agree_with_painn_harmonic(tmp_path):
    """BFGS on the bundled model in float64, then ASE's finite-difference vibrations (step 1e-4 Angstrom, as
    painn-harmonic's 1e-5 nm): every vibration within 0.5 cm^-1 of harmonic_analysis at the same structure."""
    from painn_deploy.spectra.harmonic import harmonic_analysis

    atoms = ethanol()
    atoms.calc = PaiNNCalculator(BUNDLED_MODEL, dtype=torch.float64)
    assert BFGS(atoms, logfile=None).run(fmax=1e-5, steps=500)
    vibrations = Vibrations(atoms, delta=1e-4, name=str(tmp_path / "vib"))
    vibrations.run()
    ase_cm1 = np.sort(vibrations.get_frequencies().real)[6:]
    model = load(BUNDLED_MODEL).to(torch.float64)
    result = harmonic_analysis(model, atoms.positions * units.NM_PER_ANGSTROM, atoms.numbers, minimize=False)
    np.testing.assert_allclose(ase_cm1, result.wavenumber_cm1, atol=0.5)
    assert result.wavenumber_cm1.min() > 150  # (a minimum: vibrations, not rotations, compared)


def test_the_atoms_are_checked_against_the_model(exported64, trained_checkpoint, tmp_path):
    calc = PaiNNCalculator(exported64)
    water = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], calculator=calc)
    with pytest.raises(TopologyMismatchError, match=r"the Atoms has 3 atoms \(H2O\) but the model was exported for 9"):
        water.get_potential_energy()
    boxed = ethanol(cell=[20.0, 20.0, 20.0], pbc=True)
    boxed.calc = calc
    with pytest.raises(InputError, match=r"the model is not periodic, but the Atoms have pbc=\[True, True, True\]"):
        boxed.get_potential_energy()
    with pytest.raises(InputError, match=r"best.ckpt is a painn-train checkpoint: export it for the calculator"):
        PaiNNCalculator(trained_checkpoint)
    # a model without the heads: asking for the dipole names what is missing and how to get it
    from painn_deploy.deploy import Model, PaiNNForceField

    from ..conftest import small_potential

    energy_only = PaiNNForceField(small_potential(targets=("energy", "forces")), atoms_z(), dtype=torch.float64)
    molecule = ethanol(calculator=PaiNNCalculator(Model(torch.jit.script(energy_only), {})))
    assert np.isfinite(molecule.get_potential_energy())
    with pytest.raises(InputError, match=r"the model has no dipole head: train one with painn-train --targets "):
        molecule.get_dipole_moment()


def atoms_z():
    return ethanol().numbers.tolist()


def test_a_periodic_cell_in_any_orientation_and_basis(trained_checkpoint, tmp_path):
    """27 ethanols in a periodic box: ASE cells that are rotated, have their vectors in another order, or another
    basis of the same lattice (a + b + c, b, c; a + 5 b, b, c + 7 a) give the cubic cell's energy, and forces and dipole rotated with the
    Atoms (they were "not in OpenMM's reduced triclinic form" and a false "0 nm wide" box)."""
    from scipy.spatial.transform import Rotation

    from painn_deploy.deploy import export
    from painn_deploy.structures import molecular_box, write_pdb

    z, pos_nm, box_nm = molecular_box(ethanol().numbers.tolist(), ethanol().positions * 0.1, 27, seed=1,
                                      density_g_per_cm3=0.75)  # fmt: skip
    write_pdb(tmp_path / "box.pdb", z, pos_nm, box_nm, atoms_per_residue=9)
    export(trained_checkpoint, tmp_path / "box.pt", pdb=str(tmp_path / "box.pdb"), dtype="float64")
    calc = PaiNNCalculator(tmp_path / "box.pt")
    cubic = Atoms(numbers=z, positions=pos_nm * 10.0, cell=box_nm * 10.0, pbc=True, calculator=calc)
    energy, forces, dipole = cubic.get_potential_energy(), cubic.get_forces(), cubic.get_dipole_moment()
    rotation = Rotation.from_euler("xyz", [10.0, 20.0, 30.0], degrees=True).as_matrix()
    a, b, c = box_nm * 10.0
    for cell, turn in (((a, b, c), rotation), ((b, a, c), np.eye(3)), ((a, a + b, c), np.eye(3)),
                       ((a + b + c, b, c), rotation), ((a + 5 * b, b, c + 7 * a), np.eye(3))):  # fmt: skip
        atoms = Atoms(numbers=z, positions=pos_nm * 10.0 @ turn.T, cell=np.array(cell) @ turn.T, pbc=True,
                      calculator=calc)  # fmt: skip
        assert atoms.get_potential_energy() == pytest.approx(energy, abs=1e-8)
        np.testing.assert_allclose(atoms.get_forces(), forces @ turn.T, atol=1e-9)
        np.testing.assert_allclose(atoms.get_dipole_moment(), dipole @ turn.T, atol=1e-9)
    for flat in (np.zeros((3, 3)), np.array([a, b, a + b])):  # (pbc=True without a cell: a usual mistake)
        atoms = Atoms(numbers=z, positions=pos_nm * 10.0, cell=flat, pbc=True, calculator=calc)
        with pytest.raises(
            InputError, match=r"the Atoms are periodic but their cell is (zero|flat) .*: set atoms.cell"
        ):
            atoms.get_potential_energy()
    # the Python API's units check in a box: atoms unwrapped by whole box vectors are quiet, Angstrom positions
    # with the box in nm (folded into the box they look like a dense gas) are warned about
    import warnings

    model = load(tmp_path / "box.pt")
    shifts = np.random.default_rng(0).integers(-3, 4, size=(len(z), 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.energy_and_forces(pos_nm + shifts @ box_nm, box_nm)
    with pytest.warns(UserWarning, match=r"are the positions in Angstrom\?"):
        model.energy_and_forces(pos_nm * 10.0, box_nm)
