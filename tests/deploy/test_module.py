"""The deployable module (PaiNNForceField): batches, dtypes, neighbour lists, periodic systems, and the
fixed-shape paths that CUDA graphs and torch.export need."""

import numpy as np
import pytest
import torch

from painn_deploy.deploy import ForcesOutput, PaiNNForceField
from painn_deploy.errors import InputError
from painn_deploy.neighbors import static_grid

from ..conftest import ETHANOL_NPZ, small_potential, water_like_box

ETHANOL_Z = [6, 6, 8, 1, 1, 1, 1, 1, 1]


def energy_forces(module, pos, box=None):
    out = module.properties(pos, box)
    return float(out["energy"].detach()), out["forces"].detach()


def static_module(pot, z, pos, box, capacity=40000, per_cell=None, **kwargs):
    cells, auto_per_cell = static_grid(box * 10, pos * 10, 5.0)
    return PaiNNForceField(pot, z, True, "static", torch.float64, pair_capacity=capacity, static_cells=cells,
                           atoms_per_cell=per_cell or auto_per_cell, **kwargs)  # fmt: skip


def ethanol_frames(n=4):
    return torch.tensor(np.load(ETHANOL_NPZ)["coords"][:n] * 0.1)


# ---- batches: B configurations in one evaluation ------------------------------------------------------------
def small_box(n_side=2, seed=0):
    z, pos, box = water_like_box(n_side=n_side, spacing_nm=0.55, seed=seed)
    return z, torch.tensor(pos), torch.tensor(box)


@pytest.mark.parametrize(
    "mode, periodic",
    [("all_pairs", False), ("cell_list", False), ("all_pairs", True), ("cell_list", True), ("static", True)],
)
def test_a_batch_equals_one_call_per_frame(mode, periodic):
    """Positions [B, N, 3] give what B separate calls give (float64, 1e-10 relative), for every output."""
    pot = small_potential(n_features=16, seed=1)
    if periodic:
        z, pos, box = small_box()
        frames = pos + 0.01 * torch.randn((3,) + pos.shape, generator=torch.Generator().manual_seed(0), dtype=pos.dtype)
        boxes = box.expand(3, 3, 3)
    else:
        z, frames, box, boxes = ETHANOL_Z, ethanol_frames(3), None, None
    if mode == "static":
        module = static_module(pot, z, frames[0], box, capacity=8000)
    else:
        module = PaiNNForceField(pot, z, periodic, mode, torch.float64)
    module = torch.jit.script(module)
    batched = module.properties(frames, boxes)
    assert batched["energy"].shape == (3,) and batched["forces"].shape == frames.shape
    assert batched["dipole"].shape == (3, 3) and batched["polarizability"].shape == (3, 3, 3)
    for b in range(3):
        single = module.properties(frames[b], box)
        for key, value in single.items():
            scale = float(value.abs().max())
            torch.testing.assert_close(batched[key][b], value, rtol=0, atol=1e-10 * scale, msg=key)
    assert not torch.allclose(batched["energy"][0], batched["energy"][1])  # not one frame repeated


def test_forces_in_the_dtype_of_the_positions_computed_in_the_dtype_of_the_weights_energies_in_float64():
    module = PaiNNForceField(small_potential(n_features=16), ETHANOL_Z, dtype=torch.float32)
    pos = ethanol_frames(1)[0]
    e32, f32 = module.energy_and_forces(pos.float())
    e64, f64 = module.energy_and_forces(pos)
    assert f32.dtype == torch.float32 and f64.dtype == torch.float64
    assert e32.dtype == e64.dtype == torch.float64 and float(e32) == float(e64)
    torch.testing.assert_close(f64.float(), f32, rtol=1e-5, atol=1e-4)
    # .to(float64) makes the same weights compute in float64
    double = torch.jit.script(module).to(torch.float64)
    e, f = double.energy_and_forces(pos)
    assert e.dtype == torch.float64
    reference = PaiNNForceField(small_potential(n_features=16).float().double(), ETHANOL_Z, dtype=torch.float64)
    torch.testing.assert_close(f, reference.energy_and_forces(pos)[1], rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("shape", ["dodecahedron", "octahedron"])
def test_pair_lists_find_every_pair_of_a_triclinic_box(shape):
    """OpenMM's rhombic dodecahedron and truncated octahedron (the boxes Modeller.addSolvent builds): the cell
    list and the static list give the forces of all pairs.  Their cells must be a cutoff wide across each face,
    which is narrower than the box vectors' diagonal elements: sized by those, they missed 78 of 9,728 pairs."""
    import math

    d = 3.0
    rows = {
        "dodecahedron": [[1.0, 0, 0], [0, 1.0, 0], [0.5, 0.5, math.sqrt(2) / 2]],
        "octahedron": [[1.0, 0, 0], [1 / 3, 2 * math.sqrt(2) / 3, 0], [-1 / 3, math.sqrt(2) / 3, math.sqrt(6) / 3]],
    }[shape]
    box = d * torch.tensor(rows, dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    positions = torch.rand((400, 3), dtype=torch.float64, generator=generator) @ box
    z = [8 if i % 3 == 0 else 1 for i in range(400)]
    pot = small_potential(n_features=8)
    e_all, f_all = PaiNNForceField(pot, z, True, "all_pairs", torch.float64).energy_and_forces(positions, box)
    for module in (PaiNNForceField(pot, z, True, "cell_list", torch.float64), static_module(pot, z, positions, box)):
        energy, forces = module.energy_and_forces(positions, box)
        torch.testing.assert_close(energy, e_all, rtol=1e-10, atol=0)
        torch.testing.assert_close(forces, f_all, rtol=0, atol=1e-9 * float(f_all.abs().max()))


# ---- the fixed-shape paths: no host synchronisation, no data-dependent shapes ---------------------------------
class Step(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, positions, boxvectors=None):
        return self.model.energy_forces_features(positions, boxvectors)


def exported_ops(program) -> set:
    ops = set()
    for module in program.graph_module.modules():
        if isinstance(module, torch.fx.GraphModule):
            ops |= {str(n.target) for n in module.graph.nodes if n.op == "call_function"}
    return ops


# operations that read a value back to the host (forbidden while a CUDA graph captures): .item(), nonzero, tensors made
# from Python lists (lift_fresh_copy: copied from the host), and linear algebra that checks its result on the host
HOST_READS = ("local_scalar_dense", "nonzero", "lift_fresh_copy", "linalg_solve", "linalg_inv", "linalg_det")


def ml_atoms_in_a_box(pot):
    """Ethanol's model inside a solvent box, as OpenMM-ML's createMixedSystem runs it (MLAtoms checks that the
    molecule stays whole across the box)."""
    from painn_deploy.openmm.mlpotential import MLAtoms

    model = PaiNNForceField(pot, ETHANOL_Z, dtype=torch.float64)
    return MLAtoms(model, list(range(9)), 9, False, False, False, True, 0.5), torch.eye(3, dtype=torch.float64) * 2.5


@pytest.mark.parametrize("case", ["molecule", "molecule batch", "static box batch", "ML atoms in a box"])
def test_fixed_shape_paths_export_without_host_synchronisation(case):
    """torch.export traces the step without reading any value back to the host (it fails on .item(),
    bool(tensor) and data-dependent shapes): the property CUDA graphs need, guarded on the CPU."""
    pot = small_potential(n_features=8)
    box = None
    if case.startswith("molecule"):
        module = PaiNNForceField(pot, ETHANOL_Z, dtype=torch.float64)
        pos = ethanol_frames(4 if case.endswith("batch") else 1)
        pos = pos if case.endswith("batch") else pos[0]
    elif case.startswith("ML atoms"):
        module, box = ml_atoms_in_a_box(pot)
        pos = ethanol_frames(1)[0] + 1.0
    else:
        z, frame, box = small_box(n_side=3)
        module = static_module(pot, z, frame, box, capacity=20000)
        pos = frame + 0.005 * torch.randn(
            (2,) + frame.shape, generator=torch.Generator().manual_seed(3), dtype=frame.dtype
        )
    program = torch.export.export(Step(module), (pos, box), strict=False)
    host_reads = [op for op in exported_ops(program) if any(name in op for name in HOST_READS)]
    assert not host_reads
    got = program.module()(pos, box)
    ref = module.energy_forces_features(pos, box)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_without_host_checks_invalid_frames_give_nan_energy_and_forces():
    """On the GPU nothing is read back to check a frame: a static list that overflows, a box narrower than twice the
    cutoff, or an ML molecule across the box boundary make that frame's energy and every force NaN (so that the run
    stops), not finite forces that miss pairs.  The exported program is the module as the GPU runs it."""
    pot = small_potential(n_features=8)
    z, frame, box = small_box(n_side=3)
    module = static_module(pot, z, frame, box, capacity=20000)
    program = torch.export.export(Step(module), (frame.expand(2, -1, -1).clone(), box), strict=False).module()
    crowded = frame.expand(2, -1, -1).clone()
    crowded[1, :40] = crowded[1, 0]  # forty atoms in one cell: more than it holds
    energy, forces = program(crowded + 1e-3 * torch.rand(crowded.shape, dtype=crowded.dtype), box)[:2]
    assert torch.isfinite(energy[0]) and torch.isfinite(forces[0]).all()
    assert torch.isnan(energy[1]) and torch.isnan(forces[1]).all()
    energy, forces = program(frame.expand(2, -1, -1).clone() * 0.5, box * 0.5)[:2]  # narrower than 2 x 0.5 nm
    assert torch.isnan(energy).all() and torch.isnan(forces).all()

    ml, box = ml_atoms_in_a_box(pot)
    program = torch.export.export(Step(ml), (ethanol_frames(1)[0] + 1.0, box), strict=False).module()
    whole = ethanol_frames(1)[0] + 1.0
    torn = whole.clone()
    torn[3] += torch.tensor([2.3, 0.0, 0.0], dtype=torn.dtype)  # one hydrogen wrapped to the far side of the box
    assert torch.isfinite(program(whole, box)[1]).all()
    energy, forces = program(torn, box)[:2]
    assert torch.isnan(energy) and torch.isnan(forces).all()


@pytest.mark.parametrize("mode, periodic", [("all_pairs", False), ("cell_list", False), ("cell_list", True),
                                            ("static", True)])  # fmt: skip
def test_an_atom_at_a_nan_or_infinite_position_makes_its_frame_nan(mode, periodic):
    """A frame with an atom at a NaN or infinite position (a run that blew up) has NaN energy and forces with every
    neighbour list; the pair lists would otherwise give that atom no pairs and the frame a finite energy.  The other
    frames of the batch are unchanged, and nothing raises (scripted, as openmm-torch runs it)."""
    pot = small_potential(n_features=8, seed=2)
    if periodic:
        z, frame, box = small_box()
        module = (static_module(pot, z, frame, box) if mode == "static"
                  else PaiNNForceField(pot, z, True, mode, torch.float64))  # fmt: skip
    else:
        z, frame, box = ETHANOL_Z, ethanol_frames(1)[0], None
        module = PaiNNForceField(pot, z, False, mode, torch.float64)
    scripted = torch.jit.script(module)
    for bad in (float("nan"), float("inf")):
        frames = frame.expand(3, -1, -1).clone()
        frames[1, 2, 0] = bad
        energy, forces = scripted.energy_and_forces(frames, box)
        assert torch.isnan(energy[1]) and torch.isnan(forces[1]).all()
        ref_energy, ref_forces = scripted.energy_and_forces(frame, box)
        for k in (0, 2):
            torch.testing.assert_close(energy[k], ref_energy, rtol=1e-12, atol=0.0)
            torch.testing.assert_close(forces[k], ref_forces, rtol=1e-12, atol=1e-12)


def test_a_cell_list_grid_stays_small_when_atoms_are_far_apart():
    """Without a box the cell list's grid spans the atoms; an atom far away (1e6 nm) or two molecules 1000 nm
    apart give the energies and forces of all pairs, with a grid of at most about 8 N cells (a grid a cutoff wide
    would need 1e19 cells for the second, and failed to allocate them)."""
    from painn_deploy.neighbors import cell_list_candidates

    pot = small_potential(n_features=8, seed=4)
    cell = torch.jit.script(PaiNNForceField(pot, ETHANOL_Z * 2, False, "cell_list", torch.float64))
    dense = PaiNNForceField(pot, ETHANOL_Z * 2, False, "all_pairs", torch.float64)
    one = ethanol_frames(1)[0]
    for far in (torch.tensor([1000.0, 0.0, 0.0]), torch.tensor([1e6, -1e6, 1e6])):
        two = torch.cat([one, one + far.to(one.dtype)])
        for got, ref in zip(cell.energy_and_forces(two), dense.energy_and_forces(two)):
            torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    # a long chain (4000 atoms 1.5 Angstrom apart) fits in 8 N cells a cutoff wide: each atom's candidates are the
    # 27 cells around it of at most 4 atoms, as without the limit
    chain = torch.zeros(4000, 3, dtype=torch.float64)
    chain[:, 0] = 1.5 * torch.arange(4000)
    idx_i, _, _, _ = cell_list_candidates(chain, None, 5.0)
    assert idx_i.shape[1] <= 27 * 4


def test_cell_list_has_data_dependent_shapes():
    """The control: the cell list's pair count depends on the positions, and torch.export says so."""
    z, frame, box = small_box()
    module = PaiNNForceField(small_potential(n_features=8), z, True, "cell_list", torch.float64)
    with pytest.raises(Exception):  # noqa: B017 (torch raises one of several data-dependence errors)
        torch.export.export(Step(module), (frame, box), strict=False)


def test_outputs_forces_contract_runs_no_autograd_machinery():
    """openmm-torch freezes the module and passes positions that require gradients.  Through
    ``ForcesOutput`` (TorchForce.setOutputsForces) no gradient flows, and TorchScript's executor must not
    wrap the graph in differentiable subgraphs (ethanol: +25% per call)."""
    import os
    import subprocess
    import sys

    script = f"""
import sys, torch
sys.path.insert(0, {str(ETHANOL_NPZ.parents[2])!r})
from tests.conftest import small_potential
from painn_deploy.deploy import ForcesOutput, PaiNNForceField
module = PaiNNForceField(small_potential(n_features=16, seed=3), {ETHANOL_Z}, False, "all_pairs", torch.float32)
frozen = torch.jit.freeze(torch.jit.script(ForcesOutput(module)).eval())
pos = (0.3 * torch.rand(9, 3, dtype=torch.float64)).requires_grad_(True)
for _ in range(3):
    frozen(pos)
"""
    env = dict(os.environ, PYTORCH_JIT_LOG_LEVEL=">profiling_graph_executor_impl")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Optimized" in out.stderr or "graph" in out.stderr  # the executor's log is there to read
    assert "prim::DifferentiableGraph" not in out.stderr
    pos = torch.rand(9, 3, dtype=torch.float64)
    module = PaiNNForceField(small_potential(n_features=16, seed=3), ETHANOL_Z, False, "all_pairs", torch.float32)
    torch.testing.assert_close(torch.jit.script(ForcesOutput(module))(pos)[1], module.energy_and_forces(pos)[1])


@pytest.mark.parametrize("mode", ["all_pairs", "cell_list", "static"])
def test_energy_contract_after_its_first_call_runs_no_differentiable_subgraphs(mode):
    """openmm-torch's energy contract (``TorchForce("model.pt")``): the module frozen as openmm-torch freezes
    it, called with positions that require gradients.  From the second call on, the executor runs the
    evaluation as plain operations, without the differentiable subgraphs it wraps around what it profiled
    (each one a ``<forward op>`` event); one remains, the linear term that carries the gradient.  Every call
    gives the energy and the forces of ``energy_and_forces``."""
    from torch.profiler import ProfilerActivity, profile

    pot = small_potential(n_features=16, seed=3)
    if mode == "all_pairs":
        module, box = PaiNNForceField(pot, ETHANOL_Z, False, mode, torch.float32), None
        frames = ethanol_frames(4)
    else:
        z, frame, box = small_box()
        frames = frame + 0.005 * torch.randn((4,) + frame.shape, generator=torch.Generator().manual_seed(1))
        if mode == "static":
            cells, per_cell = static_grid(box * 10, frame * 10, 5.0)
            module = PaiNNForceField(pot, z, True, "static", torch.float32, pair_capacity=8000, static_cells=cells,
                                     atoms_per_cell=per_cell)  # fmt: skip
        else:
            module = PaiNNForceField(pot, z, True, mode, torch.float32)
    frozen = torch.jit.freeze(torch.jit.script(module).eval())
    subgraphs = []
    for frame in frames:
        pos = frame.clone().requires_grad_(True)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            energy = frozen(pos, box)
        subgraphs.append(sum(e.count for e in prof.key_averages() if e.key == "<forward op>"))
        energy.backward()
        ref_energy, ref_forces = module.energy_and_forces(frame, box)
        assert float(energy.detach()) == pytest.approx(float(ref_energy), rel=1e-6)
        torch.testing.assert_close(-pos.grad, ref_forces, rtol=1e-5, atol=1e-4)
    assert subgraphs[1:] == [1, 1, 1], subgraphs


def test_forces_output_over_frames_and_normal_modes():
    """ForcesOutput over F frames sums the energies and returns every frame's forces; with an orthogonal
    mode matrix the particles are normal-mode coordinates and the forces come back transformed."""
    module = PaiNNForceField(small_potential(n_features=16), ETHANOL_Z, dtype=torch.float64)
    frames = ethanol_frames(4)
    energy, forces = module.energy_and_forces(frames)
    e, f = ForcesOutput(module, 4)(frames.reshape(-1, 3))
    assert float(e) == pytest.approx(float(energy.sum()), rel=1e-12)
    torch.testing.assert_close(f, forces.reshape(-1, 3))
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    modes = (q @ frames.reshape(4, -1)).reshape(-1, 3)  # particles = q @ beads, beads = q^T @ particles
    scripted = torch.jit.script(ForcesOutput(module, 4, q))
    e, f, beads, _, _ = scripted.evaluate(modes)
    torch.testing.assert_close(beads, frames)
    assert float(e) == pytest.approx(float(energy.sum()), rel=1e-12)
    torch.testing.assert_close(f, (q @ forces.reshape(4, -1)).reshape(-1, 3))
    # two replicas of two beads: each replica's ring polymer transformed by the one [2, 2] matrix, none mixed
    q2, _ = torch.linalg.qr(torch.randn(2, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    modes = (q2 @ frames.reshape(2, 2, -1)).reshape(-1, 3)
    e, f, beads, _, _ = torch.jit.script(ForcesOutput(module, 4, q2)).evaluate(modes)
    torch.testing.assert_close(beads, frames)
    torch.testing.assert_close(f, (q2 @ forces.reshape(2, 2, -1)).reshape(-1, 3))


# ---- neighbour lists and periodic systems ------------------------------------------------------------------------
def test_neighbor_modes_agree_periodic(box_system):
    pot, z, pos, box = box_system
    ref_e, ref_f = energy_forces(PaiNNForceField(pot, z, True, "all_pairs", torch.float64), pos, box)
    for module in (PaiNNForceField(pot, z, True, "cell_list", torch.float64), static_module(pot, z, pos, box)):
        e, f = energy_forces(torch.jit.script(module), pos, box)
        assert e == pytest.approx(ref_e, rel=1e-12)
        torch.testing.assert_close(f, ref_f, rtol=0, atol=1e-9)


@pytest.mark.parametrize("mode", ["cell_list", "static"])
def test_pairs_in_chunks_give_the_same_energy_forces_and_responses(box_system, mode):
    """Pair lists are processed in chunks (no pair tensor over ~16 MB): the same energy, forces and
    responses as in one piece, including the padding pairs of the static list, also through the
    TorchForce energy contract of the module frozen as openmm-torch freezes it."""
    pot, z, pos, box = box_system
    if mode == "static":
        whole, chunked = static_module(pot, z, pos, box), static_module(pot, z, pos, box, pairs_per_chunk=1000)
    else:
        whole = PaiNNForceField(pot, z, True, mode, torch.float64)
        chunked = PaiNNForceField(pot, z, True, mode, torch.float64, pairs_per_chunk=1000)  # ~20,000 pairs here
    ref = whole.properties(pos, box)
    out = torch.jit.script(chunked).properties(pos, box)
    assert float(out["energy"]) == pytest.approx(float(ref["energy"]), rel=1e-12)
    for key in ("forces", "dipole", "polarizability"):
        torch.testing.assert_close(out[key], ref[key], rtol=1e-10, atol=1e-9)
    frozen = torch.jit.freeze(torch.jit.script(chunked).eval())
    p = pos.clone().requires_grad_(True)
    energy = frozen(p, box)
    energy.backward()
    assert float(energy.detach()) == pytest.approx(float(ref["energy"]), rel=1e-12)
    torch.testing.assert_close(-p.grad, ref["forces"], rtol=0, atol=1e-9)


def test_neighbor_modes_agree_nonperiodic(box_system):
    pot, z, pos, _ = box_system
    ref_e, ref_f = energy_forces(PaiNNForceField(pot, z, False, "all_pairs", torch.float64), pos)
    e, f = energy_forces(PaiNNForceField(pot, z, False, "cell_list", torch.float64), pos)
    assert e == pytest.approx(ref_e, rel=1e-12)
    torch.testing.assert_close(f, ref_f, rtol=0, atol=1e-9)


def test_static_shapes_do_not_depend_on_positions(box_system):
    """The static list's pair arrays have the same shape for different configurations."""
    from painn_deploy.neighbors import static_pairs

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
    mol = ethanol_frames(1)[0]
    single = PaiNNForceField(pot, ETHANOL_Z, dtype=torch.float64)
    e1, _ = energy_forces(single, mol)
    pair_pos = torch.cat([mol, mol + torch.tensor([1.5, 0.0, 0.0], dtype=torch.float64)])
    box = torch.eye(3, dtype=torch.float64) * 3.2
    for mode in ("all_pairs", "cell_list"):
        e2, _ = energy_forces(PaiNNForceField(pot, ETHANOL_Z * 2, True, mode, torch.float64), pair_pos, box)
        assert e2 == pytest.approx(2 * e1, rel=1e-12)


def test_the_dipole_and_polarizability_of_molecules_are_the_sums_of_theirs(box_system):
    """Latent charges are neutral per molecule and positions taken from each molecule's centre of mass, so two
    ethanols 1.5 nm apart have the dipole and polarizability of each alone added up (1e-10), batched as per
    frame; as one molecule, a charge transfer between them grows with their distance.  In a periodic box,
    molecules moved to other images leave both unchanged (as one molecule, they moved by 13 times their thermal
    fluctuation in a user's liquid)."""
    pot = box_system[0]
    first, second = ethanol_frames(2)  # (two conformations: copies would carry equal excess charges)
    apart = torch.tensor([1.5, 0.0, 0.0], dtype=torch.float64)
    single = PaiNNForceField(pot, ETHANOL_Z, dtype=torch.float64)
    alone = [single.properties(first), single.properties(second + apart)]
    pair_pos = torch.cat([first, second + apart])
    pair = torch.jit.script(PaiNNForceField(pot, ETHANOL_Z * 2, dtype=torch.float64, molecules=[0] * 9 + [1] * 9))
    out = pair.properties(pair_pos)
    for key in ("dipole", "polarizability"):
        torch.testing.assert_close(out[key], alone[0][key] + alone[1][key], rtol=1e-10, atol=1e-14)
    merged = PaiNNForceField(pot, ETHANOL_Z * 2, dtype=torch.float64).properties(pair_pos)
    assert (merged["dipole"] - out["dipole"]).abs().max() > 1e-4 * out["dipole"].abs().max()
    frames = torch.stack([pair_pos, pair_pos + 0.01 * torch.randn(pair_pos.shape, dtype=torch.float64)])
    batched = pair.properties(frames)
    for b in range(2):
        for key, value in pair.properties(frames[b]).items():
            torch.testing.assert_close(batched[key][b], value, rtol=1e-10, atol=1e-12)

    _, z, pos, box = box_system
    index = [a // 9 for a in range(len(z))]  # (molecular_box: whole ethanols, one after another)
    module = PaiNNForceField(pot, z, True, "cell_list", torch.float64, molecules=index)
    reference = module.properties(pos, box)
    images = torch.randint(-2, 3, (len(z) // 9, 3), generator=torch.Generator().manual_seed(3)).to(torch.float64)
    moved = module.properties(pos + (images @ box).repeat_interleave(9, dim=0), box)
    assert float(moved["energy"]) == pytest.approx(float(reference["energy"]), rel=1e-12)
    for key in ("dipole", "polarizability"):
        torch.testing.assert_close(moved[key], reference[key], rtol=1e-10, atol=1e-12)
    with pytest.raises(InputError, match="molecules must give each of the 9 atoms a molecule index"):
        PaiNNForceField(pot, ETHANOL_Z, dtype=torch.float64, molecules=[0] * 8 + [2])


def test_box_smaller_than_twice_cutoff_is_an_error(box_system):
    pot, z, pos, _ = box_system
    module = torch.jit.script(PaiNNForceField(pot, z, True, "all_pairs", torch.float64))
    with pytest.raises(Exception, match="BoxTooSmallError.*twice the model cutoff"):
        module(pos, torch.eye(3, dtype=torch.float64) * 0.9)


def test_cell_list_cost_is_linear():
    """The cell list's candidate count per atom does not grow with the system size."""
    from painn_deploy.neighbors import cell_list_candidates

    counts = []
    for n_side in (4, 8):
        _, pos, box = water_like_box(n_side=n_side, spacing_nm=0.42)
        _, idx_j, _, _ = cell_list_candidates(torch.tensor(pos) * 10, torch.tensor(box) * 10, 5.0)
        counts.append(idx_j.shape[1])
    assert counts[1] <= 1.5 * counts[0]


def test_a_float32_model_sums_the_energy_of_a_box_in_float64():
    """576 atoms of liquid ethanol, -1.9e6 kJ/mol: a float32 sum rounds the energy to 0.125 kJ/mol, and the
    change a barostat judges (the box scaled by 1.0005) was 0.05 kJ/mol off the float64 model's.  The atoms'
    energies are summed in float64: the energy is float64 and the change within 0.01 kJ/mol."""
    from painn_deploy.deploy import build_forcefield
    from painn_deploy.model.checkpoint import load_checkpoint
    from painn_deploy.resources import BUNDLED_CHECKPOINT
    from painn_deploy.structures import molecular_box

    record = load_checkpoint(BUNDLED_CHECKPOINT)
    z, pos, box = molecular_box(ETHANOL_Z, ethanol_frames(1)[0].numpy(), 64, density_g_per_cm3=0.75, seed=0)
    changes = {}
    for dtype in (torch.float32, torch.float64):
        module = build_forcefield(record, z, periodic=True, neighbor_mode="cell_list", dtype=str(dtype)[6:])
        energies = []
        for scale in (1.0, 1.0005):
            energy, _ = module.energy_and_forces(torch.tensor(pos * scale, dtype=dtype),
                                                 torch.tensor(box * scale, dtype=dtype))  # fmt: skip
            assert energy.dtype == torch.float64
            energies.append(float(energy))
        changes[dtype] = energies[1] - energies[0]
    assert abs(changes[torch.float64]) > 1.0  # (a change the test can see)
    assert changes[torch.float32] == pytest.approx(changes[torch.float64], abs=0.01)
