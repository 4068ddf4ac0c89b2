"""Data ingestion: npz array names, shapes, bad frames, and unit checks that name the likely fix."""

import re
import warnings

import numpy as np
import pytest

from painn_deploy import data as data_io
from painn_deploy import units
from painn_deploy.errors import DataWarning, InputError

from ..conftest import ETHANOL_NPZ

KCAL_PER_EV = 1.0 / units.KCAL_PER_MOL_TO_EV  # 23.06
KCAL_PER_HARTREE = units.HARTREE_TO_EV / units.KCAL_PER_MOL_TO_EV  # 627.5
ALL = ("energy", "forces", "dipole", "polarizability")


def checked(path, **file_units):
    """The messages of the DataWarnings check_units gives for ``path`` read in ``file_units``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data_io.check_units(data_io.load(path, data_io.FileUnits(**file_units), ALL))
    return [str(w.message) for w in caught if issubclass(w.category, DataWarning)]


def rewritten(tmp_path, name, **changes):
    path = tmp_path / name
    np.savez(path, **dict(np.load(ETHANOL_NPZ), **changes))
    return path


def test_the_bundled_data_in_its_units_gives_no_warning():
    assert checked(ETHANOL_NPZ) == []


def test_energies_scaled_by_a_unit_mistake_name_the_energy_unit_to_give(tmp_path):
    raw = np.load(ETHANOL_NPZ)
    in_ev = rewritten(tmp_path, "ev.npz", energies=raw["energies"] / KCAL_PER_EV, forces=raw["forces"] / KCAL_PER_EV)
    (message,) = checked(in_ev)  # read as kcal/mol, the npz default: RMS 0.04, consistent with the energies
    assert "have an RMS of 0.0395 eV/Angstrom as read; molecules near thermal equilibrium have 0.2-10" in message
    assert message.endswith("A file in eV read as kcal/mol? In eV this is 0.912 eV/Angstrom: give --energy-unit eV. "
                            "Structures near a minimum, or colder than 30 K, have smaller forces: then the units may "
                            "be right")  # fmt: skip
    assert checked(in_ev, energy="eV") == []
    hartree = rewritten(
        tmp_path, "ha.npz", energies=raw["energies"] / KCAL_PER_HARTREE, forces=raw["forces"] / KCAL_PER_HARTREE
    )
    (message,) = checked(hartree)
    assert message.endswith("A file in Hartree read as kcal/mol? In Hartree this is 0.912 eV/Angstrom: give "
                            "--energy-unit Hartree. Structures near a minimum, or colder than 30 K, have smaller "
                            "forces: then the units may be right")  # fmt: skip
    # a kcal/mol file read as eV: 23 times too large; the unit given is not suggested again
    (message,) = checked(ETHANOL_NPZ, energy="eV")
    assert "RMS of 21 eV/Angstrom" in message and "give --energy-unit kcal/mol (or kJ/mol)" in message
    assert "--energy-unit eV" not in message


def test_energies_out_of_order_with_the_frames_are_named(tmp_path):
    """Energies shuffled against their frames follow no force: named as such (it was a math domain error)."""
    raw = np.load(ETHANOL_NPZ)
    for seed in range(10):  # (half of them give a positive ratio of energy changes to the forces' prediction)
        energies = raw["energies"][np.random.default_rng(seed).permutation(len(raw["energies"]))]
        with pytest.raises(InputError, match=r"energies of .* do not follow its forces: .* Are the energies in the "
                           r"order of the frames"):  # fmt: skip
            checked(rewritten(tmp_path, f"shuffled{seed}.npz", energies=energies))


def test_a_unit_ratio_names_the_nearest_mixup_and_the_options_that_fix_it(tmp_path):
    raw = np.load(ETHANOL_NPZ)
    hartree_energies = rewritten(tmp_path, "mixed.npz", energies=raw["energies"] / KCAL_PER_HARTREE)
    with pytest.raises(InputError, match=r"energy changes are (\d+\.\d) times smaller") as info:
        checked(hartree_energies)
    message = str(info.value)
    factor = float(re.search(r"changes are (\d+\.\d) times", message)[1])
    assert factor == pytest.approx(KCAL_PER_HARTREE, rel=0.1)
    assert f"{factor:.4g} is close to 627.5, Hartree against kcal/mol: give --energy-unit Hartree --force-unit " \
           "kcal/mol/Angstrom. Give the units" in message  # fmt: skip
    assert message.index("627.5: Hartree against kcal/mol") < message.index("23.06: kcal/mol against eV")
    # the fix works, and once the energy unit is given only the force unit is named
    assert checked(hartree_energies, energy="Hartree", forces="kcal/mol/Angstrom") == []
    with pytest.raises(InputError, match=r"smaller than the forces predict .*627\.5, Hartree against kcal/mol: give "
                       r"--force-unit kcal/mol/Angstrom\. Give"):  # fmt: skip
        checked(hartree_energies, energy="Hartree")


def test_dipoles_in_debye_and_polarizabilities_in_bohr3_read_in_model_units_are_warned_about(tmp_path):
    raw = np.load(ETHANOL_NPZ)
    path = rewritten(
        tmp_path,
        "au.npz",
        dipoles=raw["dipoles"] / units.DEBYE_TO_E_ANGSTROM,
        polarizabilities=raw["polarizabilities"] / units.BOHR_TO_ANGSTROM**3,
    )
    dipole, polarizability = checked(path)
    assert "median magnitude of 1.98 e*Angstrom (9.49 Debye) as read; neutral molecules rarely exceed 1.5" in dipole
    assert dipole.endswith("A file in Debye read as e*Angstrom? In Debye this is 0.411 e*Angstrom: give "
                           "--dipole-unit Debye (or e*Bohr)")  # fmt: skip
    assert "isotropic mean (trace/3) of 1.69 Angstrom^3 per atom (median over frames) as read; molecules have " \
           "0.1-1.5 (of H, C, N, O, F)" in polarizability  # fmt: skip
    assert polarizability.endswith("give --polarizability-unit Bohr^3")
    assert checked(path, dipole="Debye", polarizability="Bohr^3") == []
    # Angstrom^3 said to be Bohr^3: 0.15 times too small
    (message,) = checked(ETHANOL_NPZ, polarizability="Bohr^3")
    assert re.search(r"of 0\.037\d Angstrom\^3 per atom", message) and message.endswith(
        "--polarizability-unit Angstrom^3"
    )


def test_npz_array_names_of_other_conventions_are_read_or_named(tmp_path):
    raw = np.load(ETHANOL_NPZ)
    rmd17 = data_io.load(ETHANOL_NPZ)
    # sGDML / original MD17: z, R, E [M, 1], F
    np.savez(tmp_path / "sgdml.npz", z=raw["nuclear_charges"], R=raw["coords"], E=raw["energies"][:, None],
             F=raw["forces"])  # fmt: skip
    sgdml = data_io.load(tmp_path / "sgdml.npz")
    assert sgdml.energy.shape == (len(raw["coords"]),)
    np.testing.assert_array_equal(sgdml.energy, rmd17.energy)
    np.testing.assert_array_equal(sgdml.forces, rmd17.forces)
    np.savez(tmp_path / "column.npz", **dict(raw, energies=raw["energies"][:, None]))
    np.testing.assert_array_equal(data_io.load(tmp_path / "column.npz").energy, rmd17.energy)

    np.savez(tmp_path / "upper.npz", Z=raw["nuclear_charges"], R=raw["coords"], E=raw["energies"], F=raw["forces"])
    with pytest.raises(InputError, match=r"upper.npz has no 'nuclear_charges' array but has 'Z': rename 'Z' to "
                       r"'nuclear_charges'\. The file's arrays: 'Z', 'R', 'E', 'F'; the names read: 'nuclear_charges' "
                       r"or 'z'; 'coords' or 'R'; 'energies' or 'E'; 'forces' or 'F'; 'dipoles'; 'polarizabilities'"):  # fmt: skip
        data_io.load(tmp_path / "upper.npz")
    singular = dict(raw, dipole=raw["dipoles"])
    del singular["dipoles"]
    np.savez(tmp_path / "singular.npz", **singular)
    with pytest.raises(InputError, match=r"has no 'dipoles' array but has 'dipole': rename 'dipole' to 'dipoles'"):
        data_io.load(tmp_path / "singular.npz", targets=("energy", "forces", "dipole"))
    assert data_io.load(tmp_path / "singular.npz", targets=("energy", "forces")).dipole is None
    energy = dict(raw, energy=raw["energies"])  # (difflib alone finds 'energy' too far from 'energies')
    del energy["energies"]
    np.savez(tmp_path / "energy.npz", **energy)
    with pytest.raises(InputError, match=r"has no 'energies' array but has 'energy': rename 'energy' to 'energies'"):
        data_io.load(tmp_path / "energy.npz", targets=("energy", "forces"))
    with pytest.raises(InputError, match=r"has no dipole data; drop it from --targets or use a file that contains it"):
        data_io.load(tmp_path / "singular.npz", targets=("energy",)).require(("energy", "dipole"))


def test_bad_frames_and_frames_of_other_atoms_are_named(tmp_path):
    import ase
    import ase.io

    raw = np.load(ETHANOL_NPZ)
    energies = raw["energies"].copy()
    energies[[7, 9]] = np.nan
    with pytest.raises(InputError, match=r"energy contains NaN or infinite values in 2 of 1500 frames \(the first: "
                       r"frame 7, counted from 0\); remove those frames"):  # fmt: skip
        data_io.load(rewritten(tmp_path, "nan.npz", energies=energies))
    forces = raw["forces"].copy()
    forces[12, 3, 1] = np.inf
    with pytest.raises(InputError, match=r"forces contains NaN .* in 1 of 1500 frames \(the first: frame 12,"):
        data_io.load(rewritten(tmp_path, "inf.npz", forces=forces))

    frames = [ase.Atoms(numbers=raw["nuclear_charges"], positions=raw["coords"][k]) for k in range(4)]
    frames[2] = frames[2][[2, 0, 1, *range(3, 9)]]  # O first
    ase.io.write(tmp_path / "permuted.extxyz", frames)
    with pytest.raises(InputError, match=r"permuted.extxyz: all frames must contain the same atoms in the same order, "
                       r"and frame 2 \(counted from 0\) does not: the same atoms in another order: atom 1 is O, in "
                       r"frame 0 C; reorder the atoms"):  # fmt: skip
        data_io.load(tmp_path / "permuted.extxyz")
    frames[2] = ase.Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    ase.io.write(tmp_path / "mixed.extxyz", frames)
    with pytest.raises(InputError, match=r"frame 2 \(counted from 0\) does not: it holds H2O, frame 0 C2H6O; "
                       r"painn-train reads one set of atoms per file"):  # fmt: skip
        data_io.load(tmp_path / "mixed.extxyz")
