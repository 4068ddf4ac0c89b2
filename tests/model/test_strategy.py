"""The force strategies (painn_deploy.model.strategy) against autograd through the whole network.

One parametrised parity test: every strategy, one frame and a batch of frames, eager, scripted and
frozen as openmm-torch freezes a module, equal to autograd's energy, forces and features to 1e-10 in
float64."""

import pytest
import torch

from painn_deploy.model import all_pairs
from painn_deploy.model.strategy import Evaluator
from painn_deploy.neighbors import cell_list_pairs, minimum_image

from ..conftest import small_potential

N_FRAMES = 3


@pytest.fixture(scope="module")
def frames():
    """Three distorted ethanol-sized clusters (Angstrom) and their species."""
    g = torch.Generator().manual_seed(2)
    base = torch.tensor(
        [[0.0, 0.0, 0.0], [1.52, 0.0, 0.0], [2.0, 1.35, 0.0], [-0.4, 1.0, 0.2], [-0.4, -0.5, 0.9],
         [-0.3, -0.6, -0.9], [1.9, -0.5, 0.9], [1.9, -0.5, -0.9], [2.9, 1.3, 0.3]], dtype=torch.float64,
    )  # fmt: skip
    positions = base + 0.15 * torch.randn((N_FRAMES, 9, 3), generator=g, dtype=torch.float64)
    species = torch.tensor([1, 1, 2, 0, 0, 0, 0, 0, 0])
    return species, positions


def reference(potential, species, positions, box=None):
    """Energy [B] (eV), dE/dpositions [B, N, 3] and features, by autograd through PaiNNPotential's
    plain forward (the training path)."""
    energies, grads, ss, vs = [], [], [], []
    idx_i, idx_j = all_pairs(species.shape[0])
    for frame in positions:
        p = frame.clone().requires_grad_(True)
        r_ij = p[idx_j] - p[idx_i]
        if box is not None:
            r_ij = minimum_image(r_ij, box)
        s, v = potential.representation(species, idx_i, idx_j, r_ij)
        energy = potential.energy_head(s, species, torch.zeros_like(species), 1)[0]
        (grad,) = torch.autograd.grad(energy, p)
        energies.append(energy.detach())
        grads.append(grad)
        ss.append(s.detach())
        vs.append(v.detach())
    return torch.stack(energies), torch.stack(grads), torch.stack(ss), torch.stack(vs)


def evaluate(evaluator, strategy, species, positions, box=None):
    """Energy, dE/dpositions and features of [B, N, 3] positions through ``evaluator``."""
    b, n = positions.shape[:2]
    if strategy == "dense":
        r_ij = positions.unsqueeze(1) - positions.unsqueeze(2)
        if box is not None:
            r_ij = minimum_image(r_ij, box)
        mask = 1.0 - torch.eye(n, dtype=positions.dtype)
        out = evaluator(species, r_ij, species[:0], species[:0], mask, b)
        grad = out.gradient.sum(1) - out.gradient.sum(2)
    else:
        pairs = [cell_list_pairs(p, box, 5.0) for p in positions]
        idx_i = torch.cat([i + k * n for k, (i, _) in enumerate(pairs)])
        idx_j = torch.cat([j + k * n for k, (_, j) in enumerate(pairs)])
        flat = positions.reshape(b * n, 3)
        r_ij = flat[idx_j] - flat[idx_i]
        if box is not None:
            r_ij = minimum_image(r_ij, box)
        out = evaluator(species, r_ij, idx_i, idx_j, None, b)
        grad = torch.zeros_like(flat).index_add(0, idx_j, out.gradient).index_add(0, idx_i, -out.gradient)
        grad = grad.reshape(b, n, 3)
    return out.energy, grad, out.s, out.v


@pytest.mark.parametrize("variant", ["eager", "scripted", "frozen"])
@pytest.mark.parametrize("batch", [1, N_FRAMES], ids=["one frame", "batch"])
@pytest.mark.parametrize("strategy, chunk", [("dense", 0), ("sparse", 0), ("sparse", 17)],
                         ids=["dense", "sparse", "sparse in chunks"])  # fmt: skip
@pytest.mark.parametrize("periodic", [False, True], ids=["molecule", "periodic"])
def test_strategies_equal_autograd(frames, strategy, chunk, batch, variant, periodic):
    species, positions = frames
    positions = positions[:batch]
    box = torch.eye(3, dtype=torch.float64) * 10.5 if periodic else None
    potential = small_potential(n_features=16, seed=3)
    evaluator = Evaluator(potential, strategy, chunk or 2**20)
    if variant != "eager":
        evaluator = torch.jit.script(evaluator)
    if variant == "frozen":
        evaluator = torch.jit.freeze(evaluator.eval())
    ref_e, ref_g, ref_s, ref_v = reference(potential, species, positions, box)
    assert float(ref_g.abs().max()) > 0.1  # forces to get wrong
    e, g, s, v = evaluate(evaluator, strategy, species, positions, box)
    torch.testing.assert_close(e, ref_e, rtol=1e-10, atol=0)
    torch.testing.assert_close(g, ref_g, rtol=0, atol=1e-10 * float(ref_g.abs().max()))
    torch.testing.assert_close(s, ref_s, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(v, ref_v, rtol=1e-10, atol=1e-12)


def test_dense_frames_in_chunks_equal_one_call(frames):
    """On the CPU the dense strategy takes frames in cache-sized chunks: the same result as all at once."""
    species, positions = frames
    evaluator = Evaluator(small_potential(n_features=16, seed=3), "dense")
    whole = evaluate(evaluator, "dense", species, positions)
    evaluator.dense_chunk_elements = 9 * 9 * 3 * 16  # one frame per chunk
    chunked = evaluate(evaluator, "dense", species, positions)
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
