"""The exported TorchScript artefact against the eager model, its metadata and neighbour lists."""

import warnings

import numpy as np
import pytest
import torch

from painn_deploy.deploy import build_forcefield, export, load, load_metadata
from painn_deploy.errors import CheckpointError, SimulationWarning, UnknownElementError
from painn_deploy.model.checkpoint import load_checkpoint

from ..conftest import ETHANOL_PDB


def test_metadata_describes_the_model(exported32, trained_checkpoint):
    meta = load_metadata(exported32)
    assert meta["elements"] == ["C", "C", "O", "H", "H", "H", "H", "H", "H"]
    assert meta["cutoff_nm"] == pytest.approx(0.5)
    assert meta["units"]["energy"] == "kJ/mol" and meta["units"]["dipole"] == "e*nm"
    assert meta["units"]["polarizability"] == "nm^3" and meta["units"]["positions"] == "nm"
    assert meta["dtype"] == "float32" and meta["periodic"] is False
    assert set(meta["heads"]) == {"energy", "forces", "dipole", "polarizability"}
    assert meta["versions"]["torch"].startswith("2.9")
    assert len(meta["training"]["data"]["sha256"]) == 64
    assert "energy" in meta["training"]["test_errors_model_units"]
    v = meta["validation"]
    assert v["training_frames"]["n_frames"] == 3
    assert v["rotation"]["max_abs_force_error_kj_per_mol_nm"] < 0.05
    # forces as openmm-torch computes them (frozen module), both TorchForce contracts, float32
    assert v["openmm_torch"]["energy_contract_max_abs_force_diff_kj_per_mol_nm"] < 0.05
    assert v["openmm_torch"]["outputs_forces_contract_max_abs_force_diff_kj_per_mol_nm"] < 0.05
    assert v["batched_vs_single"]["max_abs_force_diff_kj_per_mol_nm"] < 0.05
    assert (meta["neighbor_list"], meta["forces"], meta["fixed_shapes"]) == ("all_pairs", "dense", True)
    assert meta["format_version"] == 8 and meta["n_features"] == 16


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-9), ("float32", 1e-5)])
def test_exported_matches_eager_float64(trained_checkpoint, exported64, exported32, ethanol, dtype, rtol):
    record = load_checkpoint(trained_checkpoint)
    eager = build_forcefield(record, dtype="float64")
    module = load(exported64 if dtype == "float64" else exported32)
    for frame in ethanol[1][:5]:
        pos = torch.tensor(frame * 0.1)
        ref = {k: v.detach() for k, v in eager.properties(pos).items()}
        got = {k: v.detach().double() for k, v in module.properties(pos).items()}
        assert float(got["energy"]) == pytest.approx(float(ref["energy"]), rel=rtol)
        scale = float(torch.max(torch.abs(ref["forces"])))
        assert float(torch.max(torch.abs(got["forces"] - ref["forces"]))) <= max(rtol * 100, 1e-9) * scale
        for key in ("dipole", "polarizability"):
            size = float(torch.max(torch.abs(ref[key])))
            assert float(torch.max(torch.abs(got[key] - ref[key]))) <= max(rtol * 100, 1e-9) * size


def test_forward_accepts_float32_and_float64_positions(exported32, ethanol):
    module = load(exported32)
    p64 = torch.tensor(ethanol[1][0] * 0.1)
    assert float(module(p64)) == pytest.approx(float(module(p64.float())), rel=1e-6)


def test_export_twice_gives_identical_results(trained_checkpoint, tmp_path, ethanol):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    export(trained_checkpoint, a)
    export(trained_checkpoint, b)
    pos = torch.tensor(ethanol[1][3] * 0.1)
    ra, rb = load(a).properties(pos), load(b).properties(pos)
    for k in ra:
        assert torch.equal(ra[k], rb[k])


def test_export_for_a_pdb(trained_checkpoint, tmp_path):
    from painn_deploy.cli.export import main

    path = tmp_path / "m.pt"
    meta = export(trained_checkpoint, path, pdb=str(ETHANOL_PDB))
    assert meta["atomic_numbers"] == [6, 6, 8, 1, 1, 1, 1, 1, 1]
    # the command line: a cell list for the same molecule (pair lists: the sparse strategy, shapes not fixed)
    assert main([str(trained_checkpoint), "-o", str(tmp_path / "c.pt"), "--neighbor-list", "cell_list"]) == 0
    meta = load_metadata(tmp_path / "c.pt")
    assert (meta["neighbor_list"], meta["forces"], meta["fixed_shapes"]) == ("cell_list", "sparse", False)
    pos = torch.tensor(np.load(ETHANOL_PDB.parent / "ethanol_gfn2xtb_subset.npz")["coords"][0] * 0.1)
    torch.testing.assert_close(load(tmp_path / "c.pt").properties(pos)["forces"], load(path).properties(pos)["forces"],
                               rtol=0, atol=1e-3)  # fmt: skip


def test_export_warns_for_another_molecule_but_not_for_copies_of_its_own(trained_checkpoint, tmp_path):
    from painn_deploy.structures import read_pdb, write_pdb

    z, pos, _ = read_pdb(ETHANOL_PDB)
    write_pdb(tmp_path / "two.pdb", [*z, *z], np.concatenate([pos, np.asarray(pos) + 0.6]))
    write_pdb(tmp_path / "methanol_like.pdb", list(z[:3]) + list(z[-3:]), np.asarray(pos)[[0, 1, 2, 6, 7, 8]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", SimulationWarning)
        two = export(trained_checkpoint, tmp_path / "two.pt", pdb=str(tmp_path / "two.pdb"))  # two ethanols: C2H6O
    assert two["n_molecules"] == 2  # (their dipole and polarizability: the sums of each molecule's)
    with pytest.warns(SimulationWarning, match=r"atoms \(C2H3O\) are not copies of its training molecule \(C2H6O\)"):
        export(trained_checkpoint, tmp_path / "other.pt", pdb=str(tmp_path / "methanol_like.pdb"))


def test_export_rejects_unknown_elements(trained_checkpoint, tmp_path):
    pdb = tmp_path / "nacl.pdb"
    pdb.write_text(
        "HETATM    1 NA   NA  A   1       0.000   0.000   0.000  1.00  0.00          NA\n"
        "HETATM    2 CL   CL  A   2       2.500   0.000   0.000  1.00  0.00          CL\nEND\n"
    )
    with pytest.raises(UnknownElementError, match=r"Na \(Z=11\), Cl \(Z=17\)"):
        export(trained_checkpoint, tmp_path / "m.pt", pdb=str(pdb))


def test_truncated_checkpoint_and_model_files(trained_checkpoint, exported32, tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(trained_checkpoint.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated"):
        export(bad, tmp_path / "x.pt")
    bad_pt = tmp_path / "bad.pt"
    bad_pt.write_bytes(exported32.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="complete"):
        load(bad_pt)
    assert not (tmp_path / "x.pt").exists()


def test_a_structure_whose_bonds_split_a_molecule_is_warned_about(trained_checkpoint, tmp_path):
    """Two ethanols, one with a hydrogen pulled to 1.6 Angstrom from its carbon: its bonds make a C2H5O and a lone H,
    which the model would keep neutral one by one (a reviewer's 2-3% change of IR intensities): export warns; two
    whole ethanols export quietly."""
    from painn_deploy.structures import load_pdb, write_pdb

    _, z, pos, _ = load_pdb(ETHANOL_PDB)
    two_z, two_pos = list(z) * 2, np.concatenate([pos, pos + [0.5, 0.0, 0.0]])
    write_pdb(tmp_path / "whole.pdb", two_z, two_pos, atoms_per_residue=9)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export(trained_checkpoint, tmp_path / "whole.pt", pdb=str(tmp_path / "whole.pdb"))
    assert not [w for w in caught if "covalent bonds make molecules" in str(w.message)]
    carbon = int(np.argmin(np.linalg.norm(pos[:2] - pos[3], axis=1)))  # (the carbon of hydrogen 4)
    bond = pos[3] - pos[carbon]
    two_pos[3] = pos[carbon] + bond / np.linalg.norm(bond) * 0.16
    write_pdb(tmp_path / "pulled.pdb", two_z, two_pos, atoms_per_residue=9)
    with pytest.warns(SimulationWarning, match=r"covalent bonds make molecules that are not among its training "
                      r"structure's \(C2H6O\): C2H5O, H \(2 of 3\); a bond stretched"):  # fmt: skip
        export(trained_checkpoint, tmp_path / "pulled.pt", pdb=str(tmp_path / "pulled.pdb"))
    # a training structure of two molecules (a water dimer, an ion pair): its own molecules are molecules too
    from painn_deploy.deploy.export import warn_odd_molecules

    dimer = {"atomic_numbers": [8, 1, 1, 8, 1, 1], "molecules": [0, 0, 0, 1, 1, 1]}
    waters = [[3 * k, 3 * k + 1, 3 * k + 2] for k in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_odd_molecules(waters, [8, 1, 1] * 4, dimer)
    with pytest.warns(SimulationWarning, match=r"not among its training structure's \(H2O\): H, HO \(2 of 5\)"):
        warn_odd_molecules(waters[:3] + [[9, 10], [11]], [8, 1, 1] * 4, dimer)
