"""The exported TorchScript artefact against the eager model, its metadata and neighbour lists."""

import json

import numpy as np
import pytest
import torch

from painn_deploy.deploy import PaiNNForceField, build_forcefield, export, load, load_metadata
from painn_deploy.errors import CheckpointError, InputError, UnknownElementError
from painn_deploy.training import load_checkpoint

from .conftest import ETHANOL_PDB, small_potential


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


def test_fused_features_give_the_properties_of_each_frame(exported64, ethanol):
    """forces_and_features per frame + observables_from_features for a batch of frames (the fused MD
    recording path) equals properties() frame by frame, and observables_batch as well."""
    module = load(exported64)
    frames = [torch.tensor(f * 0.1) for f in ethanol[1][:4]]
    features = [module.forces_and_features(p) for p in frames]
    s = torch.cat([f[2] for f in features])
    v = torch.cat([f[3] for f in features])
    batched = module.observables_from_features(s, v, torch.stack(frames))
    direct = module.observables_batch(torch.stack(frames))
    for k, (pos, (energy, forces, _, _)) in enumerate(zip(frames, features)):
        ref = module.properties(pos)
        assert not forces.requires_grad and not s.requires_grad
        assert float(energy.detach()) == pytest.approx(float(ref["energy"]), rel=1e-12)
        assert torch.allclose(forces, ref["forces"], rtol=0, atol=1e-10)
        for key in ("energy", "dipole", "polarizability"):
            assert torch.allclose(batched[key][k], ref[key], rtol=1e-10, atol=1e-14), key
            assert torch.allclose(direct[key][k], ref[key], rtol=1e-10, atol=1e-14), key
    # different frames give different values: the batch is not one frame repeated
    assert not torch.allclose(batched["dipole"][0], batched["dipole"][1])


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
    assert meta["recompute_above_pairs"] == 2**18 == load(path).recompute_above_pairs
    # the command line passes the recomputation threshold through to the artefact and its metadata
    assert main([str(trained_checkpoint), "-o", str(tmp_path / "r.pt"), "--recompute-above-pairs", "1000"]) == 0
    assert (
        load_metadata(tmp_path / "r.pt")["recompute_above_pairs"]
        == 1000
        == load(tmp_path / "r.pt").recompute_above_pairs
    )


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


# ---- neighbour lists and periodic systems ----------------------------------------------------


def water_like_box(n_side=4, spacing_nm=0.35, seed=0):
    """A cubic box of n_side^3 rigid ethanol copies at random orientations (nm)."""
    from painn_deploy.structures import molecular_box

    mol = np.load(ETHANOL_PDB.parent / "ethanol_gfn2xtb_subset.npz")["coords"][0] * 0.1
    return molecular_box([6, 6, 8, 1, 1, 1, 1, 1, 1], mol, n_side**3, spacing_nm=spacing_nm, seed=seed)


@pytest.fixture(scope="module")
def box_system():
    z, pos, box = water_like_box(n_side=4, spacing_nm=0.42)
    pot = small_potential(n_features=8)
    return pot, z, torch.tensor(pos), torch.tensor(box)


def energy_forces(module, pos, box=None):
    out = module.properties(pos, box)
    return float(out["energy"].detach()), out["forces"].detach()


def static_module(pot, z, pos, box, capacity=40000, per_cell=None, **kwargs):
    from painn_deploy.neighbors import static_grid

    cells, auto_per_cell = static_grid(box * 10, pos * 10, 5.0)
    return PaiNNForceField(pot, z, True, "static", torch.float64, pair_capacity=capacity, static_cells=cells,
                           atoms_per_cell=per_cell or auto_per_cell, **kwargs)  # fmt: skip


def test_neighbor_modes_agree_periodic(box_system):
    pot, z, pos, box = box_system
    ref_e, ref_f = energy_forces(PaiNNForceField(pot, z, True, "all_pairs", torch.float64), pos, box)
    for module in (PaiNNForceField(pot, z, True, "cell_list", torch.float64), static_module(pot, z, pos, box)):
        e, f = energy_forces(torch.jit.script(module), pos, box)
        assert e == pytest.approx(ref_e, rel=1e-12)
        torch.testing.assert_close(f, ref_f, rtol=0, atol=1e-9)


@pytest.mark.parametrize("recompute", [False, True], ids=["autograd", "recomputed"])
@pytest.mark.parametrize("mode", ["cell_list", "static"])
def test_pairs_in_chunks_give_the_same_energy_forces_and_responses(box_system, mode, recompute):
    """Large systems evaluate the messages in chunks of pairs (no pair tensor over ~16 MB), and the
    largest get their forces by recomputing each block instead of from autograd's saved tensors;
    both agree with the plain evaluation, including the padding pairs of the static list."""
    import copy

    pot, z, pos, box = box_system
    chunked_pot = copy.deepcopy(pot)
    chunked_pot.representation.pairs_per_chunk = 1000  # this box has ~20,000 pairs
    above = 0 if recompute else 10**9
    make = (lambda p: static_module(p, z, pos, box, recompute_above_pairs=above)) if mode == "static" else (
        lambda p: PaiNNForceField(p, z, True, mode, torch.float64, recompute_above_pairs=above))  # fmt: skip
    ref = make(pot).properties(pos, box) if not recompute else PaiNNForceField(
        pot, z, True, "cell_list", torch.float64).properties(pos, box)  # fmt: skip
    chunked = torch.jit.script(make(chunked_pot))
    out = chunked.properties(pos, box)
    # the TorchForce contract, forward(positions, box).backward(), also on the module frozen as openmm-torch
    # freezes it (freezing removes detach(), which once zeroed the recomputed forces there)
    for module in (chunked, torch.jit.freeze(torch.jit.script(make(chunked_pot)).eval())):
        p = pos.clone().requires_grad_(True)
        energy = module(p, box)
        energy.backward()
        assert float(energy.detach()) == pytest.approx(float(ref["energy"]), rel=1e-12)
        torch.testing.assert_close(-p.grad, ref["forces"], rtol=0, atol=1e-9)
    assert chunked.potential.representation.pairs_per_chunk == 1000
    assert float(out["energy"]) == pytest.approx(float(ref["energy"]), rel=1e-12)
    torch.testing.assert_close(out["forces"], ref["forces"], rtol=0, atol=1e-9)
    for key in ("dipole", "polarizability"):
        if key in ref:
            torch.testing.assert_close(out[key], ref[key], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("periodic", [False, True], ids=["molecule", "periodic"])
def test_hand_written_backward_of_molecules_equals_autograd(periodic):
    """All-pairs (molecule) forces come from PaiNN.backward_dense, not autograd: equal to autograd's
    through the whole network to 1e-10 in float64, eager, scripted and frozen as openmm-torch freezes
    it; ``autograd_forces`` gives second derivatives."""
    from openmm import app, unit

    pdb = app.PDBFile(str(ETHANOL_PDB))
    z = [a.element.atomic_number for a in pdb.topology.atoms()]
    pos = torch.tensor(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    pos = pos + 0.01 * torch.randn(pos.shape, generator=torch.Generator().manual_seed(1), dtype=pos.dtype)
    box = torch.eye(3, dtype=torch.float64) * 1.2 if periodic else None
    pot = small_potential(n_features=16, seed=3)
    eager = PaiNNForceField(pot, z, periodic, "all_pairs", torch.float64)

    def energy_forces(module, autograd):
        module.autograd_forces = autograd
        p = pos.clone().requires_grad_(True)
        energy = module(p, box)
        energy.backward()
        return float(energy.detach()), -p.grad

    ref_e, ref_f = energy_forces(eager, True)
    assert float(torch.max(torch.abs(ref_f))) > 1.0  # a test with forces to get wrong
    scripted = torch.jit.script(eager)
    for module in (eager, scripted, torch.jit.freeze(torch.jit.script(eager).eval())):
        e, f = energy_forces(module, False)
        assert e == pytest.approx(ref_e, rel=1e-12)
        torch.testing.assert_close(f, ref_f, rtol=0, atol=1e-10 * float(torch.max(torch.abs(ref_f))))
    for module, autograd in ((scripted, False), (scripted, True)):
        module.autograd_forces = autograd
        p = pos.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(module(p, box), p, create_graph=True)
        curvature = 0.0
        if grad.requires_grad:
            (row,) = torch.autograd.grad(grad[0, 0], p, allow_unused=True)
            curvature = 0.0 if row is None else float(torch.max(torch.abs(row)))
        assert (curvature > 1.0) == autograd  # second derivatives only with autograd_forces


def test_outputs_forces_contract_runs_no_autograd_machinery():
    """openmm-torch freezes the module and passes positions that require gradients.  Through
    ``energy_and_forces`` (TorchForce.setOutputsForces) no gradient flows, and TorchScript's executor
    must not wrap the graph in differentiable subgraphs (they cost ethanol ~15% per call)."""
    from painn_deploy.openmm import ForcesOutput

    z = [6, 6, 8, 1, 1, 1, 1, 1, 1]
    module = PaiNNForceField(small_potential(n_features=16, seed=3), z, False, "all_pairs", torch.float32)
    frozen = torch.jit.freeze(torch.jit.script(ForcesOutput(module)).eval())
    pos = (0.3 * torch.rand(9, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)).requires_grad_(True)
    for _ in range(3):  # the profiling executor optimises on the second call
        energy, forces = frozen(pos)
    assert "prim::DifferentiableGraph" not in str(torch.jit.last_executed_optimized_graph())
    _, ref = module.energy_and_forces(pos.detach())
    torch.testing.assert_close(forces, ref)


def test_neighbor_modes_agree_nonperiodic(box_system):
    pot, z, pos, _ = box_system
    ref_e, ref_f = energy_forces(PaiNNForceField(pot, z, False, "all_pairs", torch.float64), pos)
    e, f = energy_forces(PaiNNForceField(pot, z, False, "cell_list", torch.float64), pos)
    assert e == pytest.approx(ref_e, rel=1e-12)
    torch.testing.assert_close(f, ref_f, rtol=0, atol=1e-9)


def test_static_shapes_do_not_depend_on_positions(box_system):
    """The static list's pair arrays have the same shape for different configurations."""
    from painn_deploy.neighbors import static_grid, static_pairs

    pot, z, pos, box = box_system
    cells, per_cell = static_grid(box * 10, pos * 10, 5.0)
    shapes = set()
    for shift in (0.0, 0.11, 0.37):
        i, j, w, n, overflow = static_pairs((pos + shift) * 10, box * 10, 5.0, 40000, cells, per_cell)
        shapes.add((i.shape, j.shape, w.shape))
        assert not bool(overflow) and int(w.sum()) == int(n)
    assert len(shapes) == 1


def test_static_overflow_is_reported(box_system):
    pot, z, pos, box = box_system
    with pytest.raises(RuntimeError, match="NeighborListOverflowError.*pair-capacity"):
        static_module(pot, z, pos, box, capacity=100)(pos, box)
    with pytest.raises(RuntimeError, match="NeighborListOverflowError"):
        static_module(pot, z, pos, box, per_cell=2)(pos, box)
    with pytest.raises(InputError, match="for periodic systems"):
        PaiNNForceField(pot, z, False, "static", torch.float64, pair_capacity=10)


@pytest.mark.parametrize("mode", ["all_pairs", "cell_list"])
def test_periodic_wrapping_and_translation(box_system, mode):
    pot, z, pos, box = box_system
    module = PaiNNForceField(pot, z, True, mode, torch.float64)
    e0, f0 = energy_forces(module, pos, box)
    shifted = pos + torch.tensor([0.13, -0.41, 0.77], dtype=torch.float64)
    e1, f1 = energy_forces(module, shifted, box)
    wrapped = shifted - torch.floor(shifted / torch.diagonal(box)) * torch.diagonal(box)
    e2, f2 = energy_forces(module, wrapped, box)
    assert e1 == pytest.approx(e0, rel=1e-12) and e2 == pytest.approx(e0, rel=1e-12)
    torch.testing.assert_close(f1, f0, rtol=0, atol=1e-9)
    torch.testing.assert_close(f2, f0, rtol=0, atol=1e-9)


def test_far_apart_molecules_add_up(box_system):
    pot, _, _, _ = box_system
    z1 = [6, 6, 8, 1, 1, 1, 1, 1, 1]
    mol = torch.tensor(np.load(ETHANOL_PDB.parent / "ethanol_gfn2xtb_subset.npz")["coords"][0] * 0.1)
    single = PaiNNForceField(pot, z1, dtype=torch.float64)
    e1, _ = energy_forces(single, mol)
    pair_pos = torch.cat([mol, mol + torch.tensor([1.5, 0.0, 0.0], dtype=torch.float64)])
    box = torch.eye(3, dtype=torch.float64) * 3.2
    for mode in ("all_pairs", "cell_list"):
        e2, _ = energy_forces(PaiNNForceField(pot, z1 * 2, True, mode, torch.float64), pair_pos, box)
        assert e2 == pytest.approx(2 * e1, rel=1e-12)


def test_box_smaller_than_twice_cutoff_is_an_error(box_system):
    pot, z, pos, _ = box_system
    module = torch.jit.script(PaiNNForceField(pot, z, True, "all_pairs", torch.float64))
    with pytest.raises(Exception, match="BoxTooSmallError.*twice the model cutoff"):
        module(pos, torch.eye(3, dtype=torch.float64) * 0.9)


def test_cell_list_cost_is_linear(box_system):
    """The cell list's candidate count per atom does not grow with the system size."""
    from painn_deploy.neighbors import cell_list_candidates

    counts = []
    for n_side in (4, 8):
        _, pos, box = water_like_box(n_side=n_side, spacing_nm=0.42)
        _, idx_j, _, _ = cell_list_candidates(torch.tensor(pos) * 10, torch.tensor(box) * 10, 5.0)
        counts.append(idx_j.shape[1])
    assert counts[1] <= 1.5 * counts[0]


def test_metadata_json_is_valid_json(exported32):
    extra = {"metadata.json": ""}
    torch.jit.load(str(exported32), _extra_files=extra)
    assert json.loads(extra["metadata.json"])["format"] == "painn-deploy-torchscript"
