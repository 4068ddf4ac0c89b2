"""Data ingestion (units), splits, the training loop, checkpoints, resume and the painn-train CLI."""

import csv
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml

from painn_deploy import data as data_io
from painn_deploy import units
from painn_deploy.errors import CheckpointError, DataWarning, InputError, UnitsError
from painn_deploy.training import TrainConfig, load_checkpoint, potential_from_record, predict, train

from ..conftest import ETHANOL_NPZ, ETHANOL_PDB, small_potential

TINY = dict(n_features=16, n_interactions=2, n_rbf=8, batch_size=10, progress_bar=False)


def test_npz_is_converted_to_model_units():
    raw = np.load(ETHANOL_NPZ)
    d = data_io.load_npz(ETHANOL_NPZ)
    assert d.energy[0] == pytest.approx(raw["energies"][0] * 4.184 / 96.48533212331002, rel=1e-14)
    assert d.forces[0, 0, 0] == pytest.approx(raw["forces"][0, 0, 0] * 4.184 / 96.48533212331002, rel=1e-14)
    np.testing.assert_array_equal(d.positions, raw["coords"])
    np.testing.assert_array_equal(d.dipole, raw["dipoles"])
    assert len(d.sha256) == 64


def test_units_are_exact_and_consistent():
    assert units.EV_TO_KJ_PER_MOL == pytest.approx(96.485332123310018, rel=1e-15)
    assert units.KCAL_PER_MOL_TO_EV * units.EV_TO_KJ_PER_MOL == pytest.approx(4.184, rel=1e-15)
    assert units.DEBYE_TO_E_ANGSTROM == pytest.approx(
        1e-21 / 299792458 / 1.602176634e-19 * 1e10, rel=1e-15
    )  # 1 D = 1e-21/c C m
    assert units.DEBYE_TO_E_ANGSTROM == pytest.approx(0.20819434, rel=1e-7)  # the data README value
    assert units.EV_TO_KJ_PER_MOL * units.ANGSTROM_PER_NM == pytest.approx(964.8533212331, rel=1e-12)  # eV/A


def test_ase_extxyz_with_stated_units(tmp_path):
    import ase
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    raw = np.load(ETHANOL_NPZ)
    frames = []
    for k in range(3):
        atoms = ase.Atoms(numbers=raw["nuclear_charges"], positions=raw["coords"][k] * 0.1)  # written in nm
        atoms.calc = SinglePointCalculator(atoms, energy=raw["energies"][k], forces=raw["forces"][k] * 10.0)
        atoms.info["dipole"] = raw["dipoles"][k]
        frames.append(atoms)
    path = tmp_path / "frames.extxyz"
    ase.io.write(path, frames)
    d = data_io.load_ase(path, data_io.FileUnits(length="nm", energy="kcal/mol"))
    # extxyz keeps ~8 decimals; a wrong unit factor would be off by 10x or more
    np.testing.assert_allclose(d.positions, raw["coords"][:3], rtol=0, atol=1e-6)
    np.testing.assert_allclose(d.forces, raw["forces"][:3] * units.KCAL_PER_MOL_TO_EV, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(d.dipole, raw["dipoles"][:3], rtol=0, atol=1e-7)
    assert d.polarizability is None


def test_the_data_format_decides_the_default_energy_unit_and_unit_mistakes_are_caught(tmp_path):
    """An rMD17-style npz is read in kcal/mol and an extended XYZ in eV (ASE's convention) unless told otherwise.
    Forces in other units than the energies are refused (the trapezoid rule between nearby frames); energies and
    forces scaled alike by a wrong unit are warned about (an implausible force RMS)."""
    import warnings

    import ase
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    raw = np.load(ETHANOL_NPZ)
    npz = data_io.load(ETHANOL_NPZ)
    assert npz.units.energy == "kcal/mol"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data_io.check_units(npz)  # consistent, plausible
        rng = np.random.default_rng(0)  # a few frames far apart are not judged (the trapezoid rule needs near ones)
        for _ in range(200):
            pick = rng.choice(len(npz), size=int(rng.integers(20, 60)), replace=False)
            data_io.check_units(
                data_io.MoleculeDataset(npz.atomic_numbers, npz.positions[pick], npz.energy[pick], npz.forces[pick])
            )

    def extxyz(name, force_factor=1.0):
        frames = []
        for k in range(400):
            atoms = ase.Atoms(numbers=raw["nuclear_charges"], positions=raw["coords"][k])
            atoms.calc = SinglePointCalculator(atoms, energy=npz.energy[k], forces=npz.forces[k] * force_factor)
            frames.append(atoms)
        ase.io.write(tmp_path / name, frames)
        return tmp_path / name

    ev = data_io.load(extxyz("ev.extxyz"))
    assert ev.units.energy == "eV"
    np.testing.assert_allclose(ev.forces, npz.forces[:400], rtol=1e-6, atol=1e-6)
    data_io.check_units(ev)
    # forces in Hartree/Bohr beside energies in eV
    mixed = data_io.load(extxyz("mixed.extxyz", force_factor=units.BOHR_TO_ANGSTROM / units.HARTREE_TO_EV))
    with pytest.raises(InputError, match=r"not minus the gradient of its energies: between nearby frames the energy "
                       r"changes are ([\d.]+) times larger than the forces predict .*--energy-unit, --length-unit and --force-unit") as info:  # fmt: skip
        data_io.check_units(mixed)
    factor = float(re.search(r"changes are ([\d.]+) times", str(info.value))[1])
    assert factor == pytest.approx(units.HARTREE_TO_EV / units.BOHR_TO_ANGSTROM, rel=0.1)  # 51.42
    # an eV file read as kcal/mol: consistent, but a force RMS of a molecule near 0 K
    misread = data_io.load(tmp_path / "ev.extxyz", data_io.FileUnits(energy="kcal/mol"))
    with pytest.warns(DataWarning, match=r"have an RMS of 0\.0\d+ eV/Angstrom as read; molecules near thermal "):
        data_io.check_units(misread)
    # Angstrom read as nm (or Bohr), nm read as Angstrom: the atoms are not a bond length apart (not "overlapping")
    nm_file = tmp_path / "nm.npz"
    np.savez(nm_file, **dict(np.load(ETHANOL_NPZ), coords=np.load(ETHANOL_NPZ)["coords"] * 0.1))
    for length, typical in (("nm", r"1\d\.\d"), ("Bohr", r"0\.5\d+"), ("Angstrom", r"0\.1\d+")):
        wrong = data_io.load(nm_file if length == "Angstrom" else ETHANOL_NPZ, data_io.FileUnits(length=length))
        with pytest.raises(UnitsError, match=rf"are {typical} Angstrom from their nearest neighbour .*--length-unit"):
            data_io.check_units(wrong)


def test_what_quantum_chemistry_programs_write_is_read_or_refused(tmp_path):
    """Hartree/Bohr forces beside Angstrom coordinates are read with --force-unit and refused without it (a ratio
    of 1.89); gradients stored as forces, and coordinates in Bohr read as Angstrom, are refused."""
    import ase
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    npz = data_io.load(ETHANOL_NPZ)
    hartree, bohr = units.HARTREE_TO_EV, units.BOHR_TO_ANGSTROM

    def extxyz(name, length=1.0, energy=1.0, forces=1.0):
        frames = []
        for k in range(400):
            atoms = ase.Atoms(numbers=npz.atomic_numbers, positions=npz.positions[k] * length)
            atoms.calc = SinglePointCalculator(atoms, energy=npz.energy[k] * energy, forces=npz.forces[k] * forces)
            frames.append(atoms)
        ase.io.write(tmp_path / name, frames)
        return tmp_path / name

    orca = extxyz("orca.extxyz", energy=1 / hartree, forces=bohr / hartree)  # Hartree, Hartree/Bohr, Angstrom
    with pytest.raises(InputError, match=r"energy changes are 1\.8\d+ times larger than the forces predict .*"
                       r"--force-unit"):  # fmt: skip
        data_io.check_units(data_io.load(orca, data_io.FileUnits(energy="Hartree")))
    read = data_io.load(orca, data_io.FileUnits(energy="Hartree", forces="Hartree/Bohr"))
    assert read.units.describe().startswith("lengths in Angstrom, energies in Hartree, forces in Hartree/Bohr")
    np.testing.assert_allclose(read.forces, npz.forces[:400], rtol=1e-6, atol=1e-6)
    data_io.check_units(read)

    gradients = extxyz("gradients.extxyz", forces=-1.0)
    with pytest.raises(InputError, match=r"the gradient of its energies, not minus it: .* \(correlation -0\.9\d\)\. "
                       r"Store forces = -dE/dx"):  # fmt: skip
        data_io.check_units(data_io.load(gradients))

    atomic = extxyz("atomic.extxyz", length=1 / bohr, energy=1 / hartree, forces=bohr / hartree)  # all in a.u.
    with pytest.raises(UnitsError, match=r"hydrogen atoms of .* are 2\.\d+ Angstrom from their nearest neighbour"):
        data_io.check_units(data_io.load(atomic, data_io.FileUnits(energy="Hartree")))
    data_io.check_units(data_io.load(atomic, data_io.FileUnits(length="Bohr", energy="Hartree")))


def test_only_the_targets_are_read_and_an_ase_database_gives_its_data(tmp_path):
    import ase
    import ase.db
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    raw = np.load(ETHANOL_NPZ)
    frames = []
    for k in range(4):
        atoms = ase.Atoms(numbers=raw["nuclear_charges"], positions=raw["coords"][k])
        atoms.calc = SinglePointCalculator(atoms, energy=float(raw["energies"][k]), forces=raw["forces"][k])
        if k != 1:  # one frame without a dipole, and polarizabilities in 6 components
            atoms.info["dipole"] = raw["dipoles"][k]
        atoms.info["polarizability"] = raw["polarizabilities"][k][[0, 1, 2, 1, 2, 0], [0, 1, 2, 2, 0, 1]]
        frames.append(atoms)
    ase.io.write(tmp_path / "partial.extxyz", frames)
    data = data_io.load(tmp_path / "partial.extxyz", targets=("energy", "forces"))
    assert data.dipole is None and data.polarizability is None and data.forces.shape == (4, 9, 3)
    with pytest.raises(InputError, match=r"1 of 4 frames have no 'dipole'"):
        data_io.load(tmp_path / "partial.extxyz", targets=("energy", "forces", "dipole"))
    with pytest.raises(InputError, match=r"frame 0: 'polarizability' has 6 values \(a symmetric tensor in 6 "
                       r"components\?\), expected 3 x 3; store the full 3 x 3 tensor"):  # fmt: skip
        data_io.load(tmp_path / "partial.extxyz", targets=("energy", "forces", "polarizability"))
    with ase.db.connect(tmp_path / "data.db") as db:
        for k, atoms in enumerate(frames):
            atoms.info.clear()
            db.write(atoms, data={"polarizability": raw["polarizabilities"][k]}, dipole_x=1.0)
    data = data_io.load(
        tmp_path / "data.db", data_io.FileUnits(energy="kcal/mol"), targets=("energy", "polarizability")
    )
    np.testing.assert_allclose(data.polarizability, raw["polarizabilities"][:4], rtol=1e-12)
    np.testing.assert_allclose(data.energy, raw["energies"][:4] * units.KCAL_PER_MOL_TO_EV, rtol=1e-12)


def test_frames_of_several_molecules_train_the_heads_the_exported_model_runs():
    """Frames of two ethanols 1.2 nm apart: training finds the two molecules (covalent fragments of the first
    frame) and its heads neutralise charges and take centres of mass per molecule, as the exported model does:
    the training path and the deployable module give the same energies, forces, dipoles and polarizabilities."""
    from painn_deploy.deploy import PaiNNForceField
    from painn_deploy.training.batching import FrameTensors, predict_batch

    raw = np.load(ETHANOL_NPZ)
    z = np.concatenate([raw["nuclear_charges"]] * 2)
    positions = np.concatenate([raw["coords"][:4], raw["coords"][4:8] + [12.0, 0.0, 0.0]], axis=1)  # Angstrom
    data = data_io.MoleculeDataset(z, positions, np.zeros(4), np.zeros((4, 18, 3)), np.zeros((4, 3)))
    potential = small_potential()
    frames = FrameTensors(data, potential.config.elements, dtype=torch.float64)
    assert frames.molecules == [0] * 9 + [1] * 9
    trained = predict_batch(potential, frames.collate(np.arange(4)), with_forces=True, training=False)
    module = PaiNNForceField(potential, z.tolist(), dtype=torch.float64, molecules=frames.molecules)
    deployed = module.properties(torch.tensor(positions * 0.1))
    ev = units.EV_TO_KJ_PER_MOL
    torch.testing.assert_close(deployed["energy"], trained["energy"].detach() * ev, rtol=1e-10, atol=1e-8)
    torch.testing.assert_close(
        deployed["forces"], trained["forces"].detach().reshape(4, 18, 3) * ev * 10, rtol=1e-8, atol=1e-8
    )
    torch.testing.assert_close(deployed["dipole"], trained["dipole"].detach() * 0.1, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        deployed["polarizability"], trained["polarizability"].detach() * 1e-3, rtol=1e-10, atol=1e-12
    )


def test_lone_ions_among_the_molecules_of_a_frame_are_warned_about():
    from painn_deploy.training.trainer import _warn_charged_fragments

    raw = np.load(ETHANOL_NPZ)
    z = np.concatenate([raw["nuclear_charges"], [11, 17]])
    positions = np.concatenate([raw["coords"][:2], [[[6.0, 0, 0], [9.0, 0, 0]]] * 2], axis=1)
    data = data_io.MoleculeDataset(z, positions, source="salted.npz")
    with pytest.warns(DataWarning, match=r"salted.npz hold 3 molecules .* lone Cl, Na atoms: .* an ion cannot carry"):
        _warn_charged_fragments(data, [0] * 9 + [1, 2])


def test_overlapping_atoms_and_fractional_charges_are_refused(tmp_path):
    arrays = dict(np.load(ETHANOL_NPZ))
    overlap = dict(arrays, coords=arrays["coords"].copy())
    overlap["coords"][:, 8] = overlap["coords"][:, 2]
    np.savez(tmp_path / "overlap.npz", **overlap)
    with pytest.raises(InputError, match=r"in frame 0, atoms 3 and 9 are 0\.000 Angstrom apart \(overlapping"):
        data_io.check_units(data_io.load(tmp_path / "overlap.npz"))
    np.savez(tmp_path / "half.npz", **dict(arrays, nuclear_charges=arrays["nuclear_charges"] + 0.5))
    with pytest.raises(InputError, match="nuclear_charges are not whole numbers"):
        data_io.load(tmp_path / "half.npz")


def test_other_programs_keys_and_frames_without_a_target_are_named(tmp_path):
    import ase
    import ase.io

    raw = np.load(ETHANOL_NPZ)
    frames = []
    for k in range(4):
        atoms = ase.Atoms(numbers=raw["nuclear_charges"], positions=raw["coords"][k])
        atoms.info["REF_energy"] = float(raw["energies"][k])
        atoms.arrays["REF_forces"] = raw["forces"][k]
        frames.append(atoms)
    ase.io.write(tmp_path / "mace.extxyz", frames)
    with pytest.raises(InputError, match=r"mace.extxyz has no 'energy' but has 'REF_energy': painn-train reads the "
                       r"keys energy, forces, dipole and polarizability; rename them"):  # fmt: skip
        data_io.load(tmp_path / "mace.extxyz")
    for k, atoms in enumerate(frames):
        atoms.info["energy"] = atoms.info.pop("REF_energy")
        atoms.arrays["forces"] = atoms.arrays.pop("REF_forces")
        if k == 2:
            del atoms.info["energy"]
    ase.io.write(tmp_path / "gap.extxyz", frames)
    with pytest.raises(InputError, match=r"gap.extxyz: 1 of 4 frames have no 'energy' \(the first: frame 2\)"):
        data_io.load(tmp_path / "gap.extxyz")


def test_bad_units_and_files_are_reported(tmp_path):
    with pytest.raises(InputError, match="unknown energy unit 'kcal'"):
        data_io.FileUnits(energy="kcal").factors()
    with pytest.raises(InputError, match="does not exist"):
        data_io.load_npz(tmp_path / "missing.npz")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(ETHANOL_NPZ.read_bytes()[:1000])
    with pytest.raises(InputError, match="is the file complete"):
        data_io.load_npz(broken)
    unknown = dict(np.load(ETHANOL_NPZ))
    unknown["nuclear_charges"] = unknown["nuclear_charges"].copy()
    unknown["nuclear_charges"][3] = 150
    np.savez(tmp_path / "unknown.npz", **unknown)
    with pytest.raises(InputError, match="unknown.npz: atomic number 150 is not a chemical element; nuclear_charges"):
        data_io.load_npz(tmp_path / "unknown.npz")
    unknown["nuclear_charges"] = np.tile(unknown["nuclear_charges"], (2, 1))  # per frame
    np.savez(tmp_path / "per_frame.npz", **unknown)
    with pytest.raises(InputError, match=r"nuclear_charges have shape \(2, 9\), expected \(atoms,\)"):
        data_io.load_npz(tmp_path / "per_frame.npz")


def test_splits():
    s = data_io.make_split(100, 60, 10, "contiguous")
    np.testing.assert_array_equal(s["train"], np.arange(60))
    np.testing.assert_array_equal(s["val"], np.arange(60, 70))
    np.testing.assert_array_equal(s["test"], np.arange(70, 100))
    r = data_io.make_split(100, 60, 10, "random", seed=3)
    assert sorted(np.concatenate(list(r.values())).tolist()) == list(range(100))
    assert not np.array_equal(r["train"], np.arange(60))
    with pytest.raises(InputError, match="leaves no test frames"):
        data_io.make_split(10, 8, 2)


def test_an_epoch_cut_short_has_no_training_loss_of_its_own(tmp_path, monkeypatch, capsys):
    """history.csv: Lightning's metrics at an epoch's validation still hold the previous epoch's training loss;
    the row gets its own at the epoch's end, so an epoch interrupted after its validation shows none.  Where no
    progress bar shows (a log file), each validation prints a line (here: report_s=0, every one)."""
    from types import SimpleNamespace

    from painn_deploy.training.trainer import CheckpointAndCurves

    callback = CheckpointAndCurves(tmp_path, {}, report_s=0.0)
    monkeypatch.setattr(callback, "_save", lambda *args: None)
    optimizer = SimpleNamespace(param_groups=[{"lr": 1e-3}])
    metrics = {"val_loss": torch.tensor(1.0), "val_forces_mae": torch.tensor(0.25)}
    for epoch in (0, 1):  # epoch 1 is interrupted after its validation
        trainer = SimpleNamespace(sanity_checking=False, is_global_zero=True, callback_metrics=metrics,
                                  current_epoch=epoch, optimizers=[optimizer])  # fmt: skip
        callback.on_validation_end(trainer, None)
        if epoch == 0:
            metrics["train_loss"] = torch.tensor(4.5)  # (kept in Lightning's metrics into epoch 1)
            callback.on_train_epoch_end(trainer, None)
    with open(tmp_path / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["train_loss"] for r in rows] == ["4.5", ""]
    assert capsys.readouterr().out.splitlines() == [
        "epoch 0: validation loss 1; MAE forces 0.25 eV/Angstrom",
        "epoch 1: validation loss 1; MAE forces 0.25 eV/Angstrom",
    ]


def test_the_split_is_printed_with_a_note_where_training_and_test_frames_differ():
    """painn-train's split line: the frames of each split, and where a contiguous training block holds other
    frames than the test (the bundled subset: 300 K first, hotter frames after), a note that says so and how to
    mix them; a random split of the same file has no note."""
    from painn_deploy.training.trainer import split_summary

    data = data_io.load(ETHANOL_NPZ)
    line = {}
    for mode in ("contiguous", "random"):
        cfg = TrainConfig(data=str(ETHANOL_NPZ), split=mode, n_train=1000, n_val=100)
        line[mode] = split_summary(data, data_io.make_split(len(data), 1000, 100, mode, 0), cfg)
    assert line["contiguous"].startswith("split (contiguous): training frames 0-999 (force RMS 0.767 eV/Angstrom), "
                                         "validation 1000-1099, test 1100-1499 (force RMS 1.18 eV/Angstrom); the "
                                         "test frames' forces are 1.54 times larger")  # fmt: skip
    assert line["contiguous"].endswith("--split random mixes the file's frames")
    assert line["random"].startswith("split (random, seed 0): training frames 1000 (force RMS 0.91")
    assert "times" not in line["random"]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "run"
    cfg = TrainConfig(data=str(ETHANOL_NPZ), output=str(out), targets=("energy", "forces", "dipole", "polarizability"),
                      n_train=60, n_val=20, max_epochs=8, lr=5e-3, **dict(TINY, batch_size=4))  # fmt: skip
    return cfg, train(cfg)


def test_training_lowers_the_loss_and_writes_outputs(short_run):
    cfg, summary = short_run
    with open(f"{cfg.output}/history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    assert float(rows[-1]["val_loss"]) < 0.5 * float(rows[0]["val_loss"])
    # each row holds its own epoch's training loss (Lightning aggregates it after that epoch's validation)
    assert all(r["train_loss"] for r in rows) and float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    # the smoothed loss starts at the first epoch's, not at Lightning's sanity check of the untrained model
    assert float(rows[0]["val_loss_smoothed"]) == pytest.approx(float(rows[0]["val_loss"]), rel=1e-6)
    assert float(rows[-1]["val_forces_mae"]) < 0.7 * float(rows[0]["val_forces_mae"])
    for name in ("best.ckpt", "last.ckpt", "learning_curve.png", "config.yaml", "split.npz", "summary.json"):
        assert (tmp := __import__("pathlib").Path(cfg.output) / name).is_file() and tmp.stat().st_size > 0
    assert set(summary["test_errors"]) == {"energy", "forces", "dipole", "polarizability"}
    assert summary["train_frames_per_second"] > 0


def test_checkpoint_carries_what_export_needs_and_round_trips(short_run):
    cfg, _ = short_run
    record = load_checkpoint(f"{cfg.output}/best.ckpt")
    for key in (
        "config",
        "state_dict",
        "atomic_numbers",
        "statistics",
        "split",
        "data",
        "versions",
        "model_units",
        "test_errors",
    ):
        assert key in record
    assert record["model_units"]["energy"] == "eV"
    assert record["split"]["test"] == list(range(80, 1500))
    model = potential_from_record(record)
    data = data_io.load_npz(ETHANOL_NPZ)
    a = predict(model, data, [0, 1, 2])
    b = predict(potential_from_record(load_checkpoint(f"{cfg.output}/best.ckpt")), data, [0, 1, 2])
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert np.abs(a["energy"] - data.energy[:3]).max() < 1.0  # the fitted reference energies put E on scale


def test_resume_continues_training(short_run, tmp_path):
    import shutil

    cfg, _ = short_run
    out = tmp_path / "resumed"
    shutil.copytree(cfg.output, out)
    epochs_before = torch.load(out / "last.ckpt", weights_only=False)["epoch"]
    more = TrainConfig.from_sources(None, **dict(cfg.as_dict(), output=str(out), max_epochs=10, resume=True))
    # other units, or another file, than the run started with: refused before anything changes
    with pytest.raises(InputError, match=r"--resume would read .* in other units than the run started with \(energy "
                       r"kcal/mol -> eV\); give the original ones"):  # fmt: skip
        train(replace(more, energy_unit="eV"))
    other = tmp_path / "other.npz"
    arrays = dict(np.load(ETHANOL_NPZ))
    arrays["energies"] = arrays["energies"] + 1.0
    np.savez(other, **arrays)
    with pytest.raises(InputError, match=r"other.npz is not the file the run in .* started with"):
        train(replace(more, data=str(other)))
    # other options that shape the model, its split or its optimisation; too few epochs: refused, nothing written
    written = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(InputError, match=r"these options differ: n_train 60 -> 50; cutoff_angstrom 5\.0 -> 4\.0\. "
                       r"Give them as they were \(drop the flags that change them: --resume reads "):  # fmt: skip
        train(replace(more, n_train=50, cutoff_angstrom=4.0))
    with pytest.raises(InputError, match=rf"has trained {epochs_before + 1} epochs; give --max-epochs above"):
        train(replace(more, max_epochs=epochs_before + 1))
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == written
    assert torch.load(out / "last.ckpt", weights_only=False)["epoch"] == epochs_before
    from painn_deploy.data import load
    from painn_deploy.training.trainer import _check_same_data

    data = load(ETHANOL_NPZ)  # a record without units (nothing to compare) is not an error
    _check_same_data({"data": {"sha256": data.sha256}}, data, out / "last.ckpt")
    train(more)
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(10)) and epochs_before == 7
    assert all(r["train_loss"] for r in rows)  # (also the checkpoint's epoch, whose loss came after it was saved)


def test_a_diverging_training_and_bad_options_are_named(tmp_path):
    from painn_deploy.errors import TrainingDivergedError

    with pytest.raises(TrainingDivergedError, match=r"the validation loss became NaN or infinite in epoch 0 .* "
                       r"Lower --lr \(now 1e\+06\)"):  # fmt: skip
        train(TrainConfig(data=str(ETHANOL_NPZ), output=str(tmp_path / "nan"), n_train=20, n_val=10, max_epochs=2,
                          lr=1e6, **TINY))  # fmt: skip
    assert TrainingDivergedError.exit_status == 1
    for option, value, message in (
        ("lr", float("nan"), "--lr must be positive, got nan"),
        ("lr_factor", 2.0, "--lr-factor must be between 0 and 1"),
        ("weight_decay", -1.0, "--weight-decay must be at least 0"),
        ("dipole_weight", -1.0, "--dipole-weight must be at least 0"),
        ("smoothing", 1.5, r"--smoothing must be in \[0, 1\)"),
        ("early_stopping_patience", -1, "--early-stopping-patience must be at least 0"),
        ("num_workers", -1, "--num-workers must be at least 0"),
        ("precision", "16", "--precision must be one of 32, 64"),
    ):
        with pytest.raises(InputError, match=message):
            TrainConfig(data=str(ETHANOL_NPZ), output=str(tmp_path / "x"), **{option: value})


def test_painn_train_stops_on_sigterm_with_the_status_and_the_way_on(tmp_path):
    """A batch scheduler's SIGTERM (and Ctrl-C) stop painn-train with 128 + the signal and one line saying how to
    continue (Lightning's own handling exits 0 on SIGTERM); the checkpoints of the last validation are kept."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    args = [sys.executable, "-m", "painn_deploy.cli.train", "--data", str(ETHANOL_NPZ), "-o", str(out), "--n-train",
            "200", "--n-val", "10", "--n-features", "8", "--n-interactions", "1", "--n-rbf", "4", "--max-epochs", "100000"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))  # fmt: skip
    deadline = time.monotonic() + 240
    while not (out / "last.ckpt").is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert re.search(r"painn-train: error: training stopped by SIGTERM in epoch \d+; last.ckpt holds the last finished "
                     r"validation and best.ckpt the best\. Continue with the same command and --resume", err)  # fmt: skip
    assert "Traceback" not in err and (out / "last.ckpt").is_file()
    # --resume alone takes the run's options from its config.yaml (here: a flag raises the epochs)
    from painn_deploy.cli.train import main

    epochs = torch.load(out / "last.ckpt", weights_only=False)["epoch"] + 2
    assert main(["--resume", "-o", str(out), "--max-epochs", str(epochs)]) == 0
    assert main(["--resume", "-o", str(tmp_path / "elsewhere")]) == 2  # (no config.yaml there)
    assert torch.load(out / "last.ckpt", weights_only=False)["epoch"] == epochs - 1


def test_new_run_refuses_to_overwrite_and_resume_needs_a_checkpoint(short_run, tmp_path):
    cfg, _ = short_run
    with pytest.raises(InputError, match="already holds a trained model"):
        train(cfg)
    with pytest.raises(InputError, match="no .*last.ckpt"):
        train(TrainConfig(data=str(ETHANOL_NPZ), output=str(tmp_path / "x"), resume=True, **TINY))


def test_truncated_checkpoint_is_reported(short_run, tmp_path):
    cfg, _ = short_run
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(open(f"{cfg.output}/best.ckpt", "rb").read()[:2000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(bad)


def test_yaml_config_and_overrides(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("data: x.npz\nn-features: 32\ntargets: energy,forces,dipole\n")
    cfg = TrainConfig.from_sources(y, n_features=64)
    assert cfg.n_features == 64 and cfg.targets == ("energy", "forces", "dipole") and cfg.data == "x.npz"
    y.write_text("data: x.npz\nn_featurs: 32\n")
    with pytest.raises(InputError, match="unknown key.*'n_featurs'.*the known keys are .*n_features"):
        TrainConfig.from_sources(y)
    y.write_text("data: x.npz\nmax_epochs: many\n")
    with pytest.raises(InputError, match="'max_epochs' must be a whole number, got 'many'"):
        TrainConfig.from_sources(y)
    # a run's config.yaml is a configuration file
    cfg = TrainConfig(data="x.npz", targets=("energy", "forces", "dipole"), devices=2, precision=64)
    assert cfg.devices == "2" and cfg.precision == "64"
    y.write_text(yaml.safe_dump(cfg.as_dict()))
    assert TrainConfig.from_sources(y) == cfg


def test_cli_config_file_and_flags(tmp_path):
    from painn_deploy.cli.train import build_parser
    from painn_deploy.configuration import config_from_arguments

    y = tmp_path / "c.yaml"
    y.write_text("data: x.npz\nn_features: 32\nmax_epochs: 7\nprogress_bar: false\n")
    args = build_parser().parse_args(["--config", str(y), "--max-epochs", "3", "-o", "runs/x", "--progress-bar"])
    del args.test_only
    cfg = config_from_arguments(TrainConfig, args)
    assert (cfg.data, cfg.n_features, cfg.max_epochs, cfg.output, cfg.progress_bar) == ("x.npz", 32, 3, "runs/x", True)
    assert cfg.lr == 5e-4  # the dataclass default


def test_unknown_target_is_named_with_the_valid_ones(tmp_path, capsys):
    from painn_deploy.cli.train import main

    with pytest.raises(InputError, match="unknown target.*'charges'.*energy, forces, dipole, polarizability"):
        TrainConfig(data="x.npz", targets="energy,charges")
    with pytest.raises(InputError, match="unknown target 'charges'"):
        data_io.load_npz(ETHANOL_NPZ).require(["energy", "charges"])
    assert main(["--data", str(ETHANOL_NPZ), "--targets", "energy,charges", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "'charges'" in err and "energy, forces, dipole, polarizability" in err
    assert "Traceback" not in err and "AttributeError" not in err
    assert not (tmp_path / "o").exists()


def test_option_type_errors_name_the_option_and_what_it_expects(tmp_path, capsys):
    from painn_deploy.cli.train import main

    for flag, value, expected in (
        ("--max-epochs", "abc", "argument --max-epochs: expected a whole number, got 'abc'"),
        ("--n-train", "2.5", "argument --n-train: expected a whole number, got '2.5'"),
        ("--lr", "fast", "argument --lr: expected a number, got 'fast'"),
        ("--split", "blocks", "argument --split: invalid choice: 'blocks'"),
    ):
        assert main(["--data", "x.npz", flag, value]) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err
    # the hardware options go to Lightning: what it refuses is bad input too
    argv = ["--data", str(ETHANOL_NPZ), "-o", str(tmp_path / "o"), "--n-train", "10", "--n-val", "5"]
    assert main([*argv, "--accelerator", "abacus"]) == 2
    err = capsys.readouterr().err
    assert "Lightning refused the hardware options" in err and "abacus" in err and "Traceback" not in err


def test_help_shows_each_default_once():
    from painn_deploy.cli.train import build_parser

    text = build_parser().format_help()
    options = text.split("\noptions:\n")[1]
    blocks = [b for b in re.split(r"\n  (?=-)", options) if b.strip()]
    assert len(blocks) > 30
    for block in blocks:
        assert block.count("default") <= 1, block
    flat = " ".join(text.split())
    assert "default: None" not in flat and "(default: 0.0005)" in flat and "(default: energy,forces)" in flat


def test_unreadable_data_files_give_a_clear_message_without_pickle_hints(tmp_path, capsys):
    from painn_deploy.cli.train import main

    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not numpy at all\n" * 20)
    objects = tmp_path / "objects.npz"
    np.savez(objects, nuclear_charges=np.array([6, 1]), coords=np.array([{"x": 1}], dtype=object))
    single = tmp_path / "single.npz"
    with open(single, "wb") as fh:
        np.save(fh, np.zeros(3))
    cases = (
        (junk, "junk.npz is not an npz archive"),
        (objects, "'coords' is not a numeric array"),
        (single, r"single.npz is a NumPy array \(.npy\), not an npz archive"),
    )
    for path, message in cases:
        with pytest.raises(InputError, match=message) as info:
            data_io.load_npz(path)
        assert "pickle" not in str(info.value)
        assert main(["--data", str(path), "-o", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert re.search(message, err) and "pickle" not in err and "Traceback" not in err
    bad_xyz = tmp_path / "frames.extxyz"
    bad_xyz.write_text("three\nnot an xyz file\n")
    assert main(["--data", str(bad_xyz), "-o", str(tmp_path / "o")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_learning_curve_labels_are_tex_free(short_run):
    import warnings

    from painn_deploy.training.trainer import learning_curve_figure

    cfg, _ = short_run
    with open(f"{cfg.output}/history.csv") as f:
        history = [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = learning_curve_figure(history)
        fig.canvas.draw()
    assert not [w for w in caught if "missing from" in str(w.message)]  # the font has Å, ³, ·
    labels = [t for ax in fig.axes for t in (ax.get_xlabel(), ax.get_ylabel())]
    labels += [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    for label in labels:
        assert not set("$^\\_") & set(label), label
    assert "validation MAE, forces (eV/Å)" in labels and "validation MAE, polarizability (Å³)" in labels
    assert "validation MAE, dipole (e·Å)" in labels and "validation, smoothed (picks best.ckpt)" in labels


def test_missing_target_in_data(tmp_path):
    d = dict(np.load(ETHANOL_NPZ))
    d.pop("dipoles")
    path = tmp_path / "nodipole.npz"
    np.savez(path, **d)
    with pytest.raises(InputError, match="has no dipole data"):
        train(TrainConfig(data=str(path), output=str(tmp_path / "o"), targets="energy,forces,dipole", **TINY))
    assert not (tmp_path / "o").exists()  # a refused run leaves no output folder behind
    # a structure file given as data: it has no energies, and no target can be dropped to fix that
    with pytest.raises(InputError, match=r"ethanol.pdb has no energies: it holds structures only \(a PDB structure\)"
                       r". Training needs reference energies and forces; give reference data"):  # fmt: skip
        train(TrainConfig(data=str(ETHANOL_PDB), output=str(tmp_path / "p"), **TINY))


def test_cli_documents_every_option_and_accepts_the_issue_invocation(capsys):
    from painn_deploy.cli.train import build_parser

    parser = build_parser()
    args = parser.parse_args(
        "--data ethanol.npz --targets energy,forces,dipole,polarizability --n-train 1000 --n-val 100 "
        "--max-epochs 500 --output runs/ethanol".split()
    )
    assert args.n_train == 1000 and args.max_epochs == 500 and args.output == "runs/ethanol"
    helptext = parser.format_help()
    for option in ("--rho", "--lr-patience", "--ema-decay", "--devices", "--resume", "--energy-unit", "--dipole-model"):
        assert option in helptext


def test_cli_train_and_test_only(tmp_path, capsys):
    from painn_deploy.cli.train import main

    out = tmp_path / "cli"
    argv = ["--data", str(ETHANOL_NPZ), "--targets", "energy,forces", "--n-train", "30", "--n-val", "10", "--max-epochs", "1",
            "--n-features", "8", "--n-interactions", "1", "--output", str(out), "--no-progress-bar"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "forces" in printed and "errors on the test split" in printed
    assert main(["--test-only", str(out / "best.ckpt")]) == 0
    assert "energy" in capsys.readouterr().out
    # the data moved: found with --data, and only the file the model was trained on (SHA-256)
    import shutil

    moved = tmp_path / "moved.npz"
    shutil.copy(ETHANOL_NPZ, moved)
    record = torch.load(out / "best.ckpt", weights_only=False)
    record["painn"]["data"]["path"] = str(tmp_path / "gone.npz")
    torch.save(record, out / "moved.ckpt")
    assert main(["--test-only", str(out / "moved.ckpt")]) == 2
    err = capsys.readouterr().err
    assert "is no longer at" in err and "gone.npz; give its current path with --data" in err
    assert main(["--test-only", str(out / "moved.ckpt"), "--data", str(moved)]) == 0
    assert "energy" in capsys.readouterr().out
    arrays = dict(np.load(ETHANOL_NPZ))
    arrays["coords"] = arrays["coords"][::-1].copy()
    np.savez(tmp_path / "shuffled.npz", **arrays)
    assert main(["--test-only", str(out / "moved.ckpt"), "--data", str(tmp_path / "shuffled.npz")]) == 2
    assert "is not the data" in capsys.readouterr().err
    assert main(["--data", str(tmp_path / "none.npz"), "--output", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--test-only", str(tmp_path / "none.ckpt")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_ddp_trains_one_model_on_two_cpu_processes(tmp_path):
    """painn-train --accelerator cpu --devices 2 --strategy ddp: Lightning starts a second process, the two
    (gloo backend) each train on half of the frames and average their gradients; EMA weights take no part in
    DDP's gradient reduction.  Rank 0 alone evaluates, writes and reports."""
    import json
    import os
    import subprocess
    import sys

    import lightning.pytorch as pl

    from painn_deploy.model import PaiNNConfig, PaiNNPotential

    out = tmp_path / "ddp"
    tiny = ["--n-features", "8", "--n-interactions", "1", "--n-rbf", "4", "--batch-size", "5", "--max-epochs", "2"]
    argv = [sys.executable, "-m", "painn_deploy.cli.train", "--data", str(ETHANOL_NPZ), "-o", str(out), *tiny,
            "--targets", "energy,forces,dipole,polarizability", "--n-train", "20", "--n-val", "10", "--ema-decay", "0.5",
            "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--num-nodes", "1", "--no-progress-bar"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Starting with 2 processes" in proc.stdout + proc.stderr
    assert proc.stdout.count("best checkpoint:") == 1  # rank 0 reports, rank 1 does not
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["strategy"] == "DDPStrategy" and summary["epochs"] == 2
    assert summary["train_batches_per_epoch_per_process"] == 2  # 20 frames / 5 per batch / 2 processes
    record = load_checkpoint(out / "best.ckpt")
    assert record["processes"]["world_size"] == 2 and set(record["test_errors"]) == set(record["config"]["targets"])
    # the initial weights, made as train() makes them (seed 0), differ from the trained ones
    pl.seed_everything(0, verbose=False)
    config = PaiNNConfig(
        elements=(1, 6, 8), n_features=8, n_interactions=1, n_rbf=4, targets=tuple(record["config"]["targets"])
    )
    initial = dict(PaiNNPotential(config).named_parameters())
    assert all(p.shape == record["state_dict"][k].shape for k, p in initial.items())
    changed = [k for k, p in initial.items() if not torch.allclose(p.detach(), record["state_dict"][k].float())]
    assert len(changed) > 0.8 * len(initial), sorted(set(initial) - set(changed))


def test_lightning_advertisements_are_dropped_and_its_information_kept():
    import logging

    from lightning.pytorch.utilities.rank_zero import rank_zero_info

    import painn_deploy.training.trainer  # noqa: F401  (installs the filter)

    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    logger.addHandler(handler)
    try:
        rank_zero_info("💡 Tip: For seamless cloud logging, try installing something")
        rank_zero_info("GPU available: False, used: False")
    finally:
        logger.removeHandler(handler)
    assert seen == ["GPU available: False, used: False"]


def test_the_weights_average_follows_a_short_training_and_keeps_its_decay_in_a_long_one():
    """--ema-decay 0.999 from the first step would leave 74% of the random initial weights in the average of a
    300-step training; its decay grows as (1 + n) / (10 + n) instead, up to 0.999.  Weights that move by 0.01 per
    step lag in the average by about the averaging window: ~35 steps after 300 updates, 1000 steps (the decay's)
    after 20,000."""
    from torch.optim.swa_utils import AveragedModel

    from painn_deploy.training.task import ema_with_warmup

    model = torch.nn.Linear(3, 3)
    ema = AveragedModel(model, multi_avg_fn=ema_with_warmup(0.999))
    ema.update_parameters(model)

    def train(steps):
        for _ in range(steps):
            with torch.no_grad():
                model.weight.add_(0.01)
            ema.update_parameters(model)
        return float((model.weight - ema.module.weight).mean())

    assert 0.2 < train(300) < 0.5
    assert 9.0 < train(20_000) < 11.0
    for decay in (1.0, 1.5, -0.1):  # a decay of 1 or more would make it a running average of every step
        with pytest.raises(InputError, match=r"--ema-decay must be in \[0, 1\) \(0: off; 0.999 is usual\)"):
            TrainConfig(data="x.npz", ema_decay=decay)
