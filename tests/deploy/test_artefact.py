"""An artefact opened once and checked once: metadata from the zip, one format, pre-flight checks,
typed errors from inside TorchScript."""

import json

import numpy as np
import pytest
import torch

from painn_deploy.deploy import Artefact, load
from painn_deploy.deploy.metadata import FORMAT_VERSION, METADATA_FILE
from painn_deploy.errors import (
    BoxTooSmallError,
    CheckpointError,
    InputError,
    NeighborListOverflowError,
    TopologyMismatchError,
    UnknownElementError,
    typed_errors,
)
from painn_deploy.files import file_sha256
from painn_deploy.resources import RESOURCES

from ..conftest import small_potential, water_like_box


def rewrite_metadata(source, target, **changes):
    files = {METADATA_FILE: ""}
    module = torch.jit.load(str(source), _extra_files=files)
    meta = json.loads(files[METADATA_FILE])
    meta.update(changes)
    torch.jit.save(module, str(target), _extra_files={METADATA_FILE: json.dumps(meta)})


def test_metadata_is_read_without_deserialising_the_model(exported32, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was deserialised")

    monkeypatch.setattr(torch.jit, "load", refuse)
    artefact = Artefact(exported32)
    assert artefact.atomic_numbers == [6, 6, 8, 1, 1, 1, 1, 1, 1] and not artefact.periodic
    assert artefact.sha256 == file_sha256(exported32) and artefact.fixed_shapes
    with pytest.raises(CheckpointError, match="the model was deserialised"):  # (the control: loading it does)
        artefact.load()


@pytest.mark.parametrize("version", [1, 4, 6, 7])
def test_older_formats_are_refused_with_export_again(exported64, tmp_path, version):
    old = tmp_path / "old.pt"
    rewrite_metadata(exported64, old, format_version=version)
    with pytest.raises(CheckpointError, match=f"format {version}.*export it again with painn-export"):
        Artefact(old)


def test_the_bundled_model_is_current():
    artefact = Artefact(RESOURCES / "ethanol_painn.pt")
    assert artefact.metadata["format_version"] == FORMAT_VERSION
    assert not artefact.load().module.called  # its energy contract's first call is still to come


def test_exported_and_copied_models_have_not_been_called(exported32):
    """``called`` chooses the branch of the energy contract the profiling executor sees first
    (PaiNNForceField.forward): an export and a copy made by ``Model.to`` start with it False."""
    model = Artefact(exported32).load()
    assert not model.module.called
    model(torch.tensor(np.load(RESOURCES / "ethanol_gfn2xtb_subset.npz")["coords"][0] * 0.1, dtype=torch.float32))
    assert model.module.called
    assert not model.to(torch.float64).module.called


def test_files_that_are_not_artefacts(exported32, tmp_path):
    bare = tmp_path / "bare.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(3, 1)), str(bare))
    with pytest.raises(CheckpointError, match="without painn-deploy metadata"):
        Artefact(bare)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="is the file complete"):
        Artefact(junk)
    # an exported model damaged inside (its index intact): still asked whether it is complete
    import struct
    import zipfile

    raw = bytearray(exported32.read_bytes())
    with zipfile.ZipFile(exported32) as archive:
        member = next(i for i in archive.infolist() if i.filename.endswith(f"/extra/{METADATA_FILE}"))
    name_length, extra_length = struct.unpack("<HH", raw[member.header_offset + 26 : member.header_offset + 30])
    start = member.header_offset + 30 + name_length + extra_length
    raw[start : start + 8] = b"\x00" * 8
    (tmp_path / "damaged.pt").write_bytes(raw)
    with pytest.raises(CheckpointError, match=r"cannot read .*damaged.pt as an exported model .*is the file complete"):
        Artefact(tmp_path / "damaged.pt")
    with pytest.raises(CheckpointError, match="does not exist; create it with painn-export"):
        Artefact(tmp_path / "missing.pt")
    # a copy cut short: named as such, with the fixes load() can take (it named checkpoints, which load refuses),
    # and painn-harmonic says the same (it tried the file as a user's TorchScript model and lost the diagnosis)
    from painn_deploy.spectra.harmonic import open_model

    (tmp_path / "cut.pt").write_bytes(exported32.read_bytes()[:100_000])
    for opening in (Artefact, open_model):
        with pytest.raises(CheckpointError, match=r"cut.pt is an incomplete or damaged zip archive \(a copy cut "
                           r"short\?\): copy it again, or export the model again with painn-export$"):  # fmt: skip
            opening(tmp_path / "cut.pt")


def test_preflight_checks_in_one_place(exported32):
    artefact = Artefact(exported32)
    artefact.check_system([6, 6, 8, 1, 1, 1, 1, 1, 1], None, "ethanol.pdb")
    with pytest.raises(UnknownElementError, match=r"S \(Z=16\)"):
        artefact.check_system([6, 6, 16, 1, 1, 1, 1, 1, 1], None, "thiol.pdb")
    with pytest.raises(TopologyMismatchError, match="has 3 atoms .* exported for 9"):
        artefact.check_system([6, 6, 8], None, "x.pdb")
    # another molecule of known elements: exporting for it would not help; more copies of the molecule: it would
    aspirin = [6] * 9 + [8] * 4 + [1] * 8
    with pytest.raises(TopologyMismatchError, match=r"has 21 atoms \(C9H8O4\) but the model was exported for 9 "
                       r"\(C2H6O\); the model was trained on C2H6O alone, .* train a model on data of this system"):  # fmt: skip
        artefact.check_system(aspirin, None, "aspirin.pdb")
    with pytest.raises(
        TopologyMismatchError, match=r"\(C4H12O2\) .*; export the model for this system with painn-export"
    ):
        artefact.check_system([6, 6, 8, 1, 1, 1, 1, 1, 1] * 2, None, "two.pdb")
    with pytest.raises(TopologyMismatchError, match=r"atom 1: O \(model: C\)"):
        artefact.check_system([8, 6, 6, 1, 1, 1, 1, 1, 1], None, "x.pdb")


def test_a_molecule_model_refuses_box_vectors(exported64, ethanol):
    """A plain TorchForce told to use periodic boundaries passes box vectors, which a model exported without a box
    would ignore (a helper's atom-wrapped ethanol: 328 kJ/mol off, silently): refused, naming both fixes."""
    positions = torch.tensor(ethanol[1][0] * 0.1)
    with pytest.raises(InputError, match=r"exported without a periodic box but was called with box vectors.*"
                       r"painn-export CHECKPOINT --pdb SYSTEM.pdb.*setUsesPeriodicBoundaryConditions\(False\)"):  # fmt: skip
        load(exported64)(positions, torch.eye(3, dtype=torch.float64) * 3.0)
    assert torch.isfinite(load(exported64)(positions))


def test_periodic_preflight_checks(tmp_path, trained_checkpoint):
    from painn_deploy.deploy import export
    from painn_deploy.structures import write_pdb

    z, pos, box = water_like_box(n_side=3, spacing_nm=0.5)
    write_pdb(tmp_path / "box.pdb", z, pos, box, atoms_per_residue=9)
    export(trained_checkpoint, tmp_path / "box.pt", pdb=str(tmp_path / "box.pdb"))
    artefact = Artefact(tmp_path / "box.pt")
    assert artefact.periodic
    with pytest.raises(InputError, match="has no box"):
        artefact.check_system(z, None, "box.pdb")
    with pytest.raises(BoxTooSmallError, match="less than twice the model cutoff"):
        artefact.check_system(z, np.eye(3) * 0.8, "box.pdb")


def test_errors_inside_torchscript_reach_python_as_typed_exceptions(tmp_path, exported32):
    model = load(exported32)
    with pytest.raises(TopologyMismatchError, match="exported for 9 particles"), typed_errors():
        model.module.properties(torch.zeros(5, 3))  # (the module's own check, for TorchForce's callers)
    # a periodic static-list model: overflow and a box too small, raised inside TorchScript
    from painn_deploy.deploy import PaiNNForceField
    from painn_deploy.deploy.artefact import Model
    from painn_deploy.neighbors import static_grid

    z, pos, box = water_like_box(n_side=3, spacing_nm=0.5)
    pos, box = torch.tensor(pos), torch.tensor(box)
    cells, per_cell = static_grid(box * 10, pos * 10, 5.0)
    module = PaiNNForceField(small_potential(n_features=8), z, True, "static", torch.float64, pair_capacity=50,
                             static_cells=cells, atoms_per_cell=per_cell)  # fmt: skip
    model = Model(torch.jit.script(module), {})
    with pytest.raises(NeighborListOverflowError, match="larger --pair-capacity"):
        model.energy_and_forces(pos, box)
    with pytest.raises(BoxTooSmallError, match="twice the model cutoff"):
        model.energy_and_forces(pos, box * 0.3)


def test_python_callers_may_pass_arrays_and_openmm_quantities(exported64, ethanol):
    from openmm import unit

    model = load(exported64)
    positions_nm = ethanol[1][0] * 0.1
    reference = model.properties(torch.tensor(positions_nm))
    as_array = model.properties(np.asarray(positions_nm))
    as_list = model.properties(np.asarray(positions_nm).tolist())
    in_angstrom = model.properties(unit.Quantity(np.asarray(positions_nm) * 10.0, unit.angstrom))
    for got in (as_array, as_list, in_angstrom):
        torch.testing.assert_close(got["forces"], reference["forces"], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got["energy"], reference["energy"], rtol=1e-12, atol=1e-12)
    energy, forces = model.energy_and_forces(np.stack([positions_nm, positions_nm]))  # batched arrays too
    torch.testing.assert_close(forces[1], reference["forces"], rtol=1e-12, atol=1e-12)
    # a periodic model: box vectors as an array and as a quantity too
    from painn_deploy.deploy import PaiNNForceField
    from painn_deploy.deploy.artefact import Model

    z, pos, box = water_like_box(n_side=3, spacing_nm=0.5)
    module = PaiNNForceField(small_potential(n_features=8), z, True, "cell_list", torch.float64)
    periodic = Model(torch.jit.script(module), {})
    energy, forces = periodic.energy_and_forces(torch.tensor(pos), torch.tensor(box))
    for box_given in (np.asarray(box), unit.Quantity(np.asarray(box) * 10.0, unit.angstrom)):
        e, f = periodic.energy_and_forces(np.asarray(pos), box_given)
        torch.testing.assert_close(f, forces, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(periodic.energy_and_forces(np.asarray(pos), np.asarray(box) * 1.05)[0], energy)
    # atoms unwrapped by whole box vectors: no units warning (the check takes the minimum image in a box)
    import warnings

    shifts = np.random.default_rng(0).integers(-3, 4, size=(len(pos), 3))  # (1 nm apart without the images)
    unwrapped = np.asarray(pos) + shifts @ np.asarray(box)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e, _ = periodic.energy_and_forces(unwrapped, np.asarray(box))
    torch.testing.assert_close(e, energy, rtol=1e-10, atol=1e-8)
    # plain numbers in Angstrom, or atoms on top of each other: warned about at every call (a notebook reuses one
    # Model), nm: quiet
    model = load(exported64)
    for _ in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model.properties(np.asarray(positions_nm))
        with pytest.warns(UserWarning, match=r"neighbours are 1\.\d+ nm away .* are the positions in Angstrom"):
            model.properties(np.asarray(positions_nm) * 10.0)
        with pytest.warns(UserWarning, match=r"neighbours are 0\.0\d+ nm away .* the atoms overlap, or the positions"):
            model.properties(np.asarray(positions_nm) * 0.1)
        with pytest.warns(UserWarning, match=r"neighbours are 0\.0000 nm away .* the atoms overlap"):
            model.properties(np.zeros((9, 3)))
    # inputs that are not positions: typed errors with what is expected (an int64 tensor gave int64 zero forces;
    # a flat array, None or a quantity in kJ/mol gave TorchScript's or OpenMM's own errors)
    model = load(exported64)
    with pytest.raises(InputError, match="positions must be floating-point coordinates in nm, not a torch.int64"):
        model.properties(torch.zeros(9, 3, dtype=torch.int64))
    for wrong in (np.zeros(27), np.zeros((1, 1, 9, 3)), np.zeros((9, 2))):
        with pytest.raises(TopologyMismatchError, match=r"positions must be \[N, 3\] or \[B, N, 3\] with N = 9"):
            model.energy_and_forces(wrong)
    with pytest.raises(InputError, match=r"positions must be coordinates in nm \(an array \[N, 3\]\), not NoneType"):
        model.properties(None)
    with pytest.raises(InputError, match=r"positions must be a length \(nm\)"):
        model.properties(unit.Quantity(np.asarray(positions_nm), unit.kilojoule_per_mole))
    # the heads on features: the features of other positions, or of one frame for two, are named (they were
    # TorchScript's "shape '[36, 128]' is invalid")
    two = np.stack([positions_nm, positions_nm])
    _, _, s, v = model.energy_forces_features(two)
    torch.testing.assert_close(model.responses(s, v, two)["dipole"], model.properties(two)["dipole"])
    for wrong_s, wrong_v, pos in ((s[0], v[0], two), (s, v, positions_nm), (s[..., :3], v, two), (s, None, two)):
        with pytest.raises(InputError, match=r"responses: [sv] must be a tensor \[.*give the features energy_forc"):
            model.responses(wrong_s, wrong_v, pos)
    if not torch.cuda.is_available():  # the device named (it said "is the file complete?")
        with pytest.raises(InputError, match="device=cuda: torch finds 0 CUDA device"):
            Artefact(exported64).load("cuda")


def test_the_units_check_takes_unwrapped_atoms_of_any_kind_in_a_box():
    """An argon-like lattice (nearest neighbours 0.37 nm, no bonds) unwrapped by whole box vectors, as OpenMM's
    positions of a long run are: no Angstrom warning (the check required bond-like neighbours, and warned); the
    same lattice in Angstrom with the box in nm: warned."""
    import warnings

    from painn_deploy.deploy.artefact import _check_nm

    grid = torch.stack(torch.meshgrid(*[torch.arange(4.0)] * 3, indexing="ij"), -1).reshape(-1, 3) * 0.37
    box = torch.eye(3, dtype=torch.float64) * 1.48
    shifts = torch.randint(-3, 4, (64, 3), generator=torch.Generator().manual_seed(0)).double()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _check_nm(grid.double() + shifts @ box, box)
        _check_nm(grid.double(), box)
    with pytest.warns(UserWarning, match=r"are the positions in Angstrom\?"):
        _check_nm(grid.double() * 10.0 + 0.013 * torch.randn(64, 3, generator=torch.Generator().manual_seed(1)), box)
