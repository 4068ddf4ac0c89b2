"""How the energy's gradient is computed: the one place that chooses.

Both strategies run the representation forward, keep a typed tape of what each block's
vector-Jacobian product needs, and run those products in reverse: no autograd graph, so memory is
the tape's and first derivatives are all they give (second derivatives: autograd through
:class:`~painn_deploy.model.PaiNNPotential`, as in training).

- ``dense``: every pair of a small system as [B, N, N] arrays (broadcasts and sums instead of
  gathers and scatters).  Fixed shapes for fixed N.
- ``sparse``: a pair list (cell list or static list) over B frames of N atoms, processed in
  chunks of at most ``pairs_per_chunk`` pairs, so no pair tensor outgrows a few MB on the CPU and memory grows
  with the atoms, not the pairs (the tape keeps per-atom tensors and a [P, n_rbf + 1] basis); on a GPU in
  chunks of at least ``GPU_PAIRS_PER_CHUNK`` pairs (several GB of pair tensors at a time).

Inputs and outputs are in model units (Angstrom, eV).
"""

from typing import List, NamedTuple, Optional

import torch
from torch import Tensor, nn

from .painn import MessageTape, UpdateTape
from .potential import PaiNNPotential

STRATEGIES = ("dense", "sparse")
# a [pairs, 3F] float32 chunk of the paper's model (F = 128) stays below 16 MB, so that glibc serves it
# from the heap (see painn_deploy.allocator)
PAIRS_PER_CHUNK = 2**22 // (3 * 128)
# on a GPU, chunks of at least this many pairs ([pairs, 3F] float32 tensors of 0.8 GB for F = 128): the CPU's chunks
# would cost a box of 100,000 atoms some 35,000 kernel launches per evaluation
GPU_PAIRS_PER_CHUNK = 2**19
# frames evaluated together on the CPU by the dense strategy: [B, N, N, 3F] tensors of about 2 MB (float32), a core's
# second-level cache (benchmarks/results/batch.md compares half and twice this)
DENSE_CHUNK_ELEMENTS = 2**19


def frames_per_chunk(n_frames: int, elements_per_frame: int, device: torch.device, chunk_elements: int) -> int:
    """How many of ``n_frames`` frames to process together: all of them on a GPU; on the CPU as many as keep a
    tensor of ``elements_per_frame`` per frame within ``chunk_elements`` (a core's cache), at least one."""
    if device.type != "cpu":
        return max(n_frames, 1)
    return max(1, chunk_elements // elements_per_frame)


def choose_strategy(neighbor_mode: str) -> str:
    """``dense`` for the all-pairs neighbour mode (molecules), ``sparse`` for pair lists."""
    return "dense" if neighbor_mode == "all_pairs" else "sparse"


class Evaluation(NamedTuple):
    """Energy [B] (eV), its gradient with respect to the pair vectors (the shape of ``r_ij``, eV/Angstrom)
    and the final features s [B, N, F] and v [B, N, 3, F]."""

    energy: Tensor
    gradient: Tensor
    s: Tensor
    v: Tensor


class Evaluator(nn.Module):
    """A :class:`PaiNNPotential` evaluated by one strategy.  ``forward`` takes the pairs its strategy
    uses:

    - dense: r_ij [B, N, N, 3] (r_j - r_i) and ``pair_weight`` [N, N] (0 on the diagonal);
    - sparse: r_ij [P, 3] with idx_i, idx_j [P] into the B * N atoms of the frames (frame-major) and
      an optional ``pair_weight`` [P] (0 for padding entries).
    """

    strategy: torch.jit.Final[str]
    pairs_per_chunk: torch.jit.Final[int]
    gpu_pairs_per_chunk: torch.jit.Final[int]
    dense_chunk_elements: torch.jit.Final[int]

    def __init__(self, potential: PaiNNPotential, strategy: str, pairs_per_chunk: int = PAIRS_PER_CHUNK):
        super().__init__()
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, not {strategy!r}")
        if potential.energy_head is None:
            raise ValueError("forces need a model with an energy head")
        self.potential = potential
        self.strategy = strategy
        self.pairs_per_chunk = int(pairs_per_chunk)
        self.gpu_pairs_per_chunk = GPU_PAIRS_PER_CHUNK
        self.dense_chunk_elements = DENSE_CHUNK_ELEMENTS

    def forward(
        self,
        species: Tensor,
        r_ij: Tensor,
        idx_i: Tensor,
        idx_j: Tensor,
        pair_weight: Optional[Tensor],
        n_frames: int,
    ) -> Evaluation:
        if self.strategy == "sparse":
            return self.sparse(species, r_ij, idx_i, idx_j, pair_weight, n_frames)
        # frames in chunks whose [B, N, N, 3F] tensors stay in a core's cache
        pair_elements = r_ij.shape[1] * r_ij.shape[2] * 3 * self.potential.representation.n_features
        chunk = frames_per_chunk(n_frames, pair_elements, r_ij.device, self.dense_chunk_elements)
        if chunk >= n_frames:
            return self.dense(species, r_ij, pair_weight)
        parts: List[Evaluation] = []
        for start in range(0, n_frames, chunk):
            parts.append(self.dense(species, r_ij[start : start + chunk], pair_weight))
        return Evaluation(
            torch.cat([p.energy for p in parts]),
            torch.cat([p.gradient for p in parts]),
            torch.cat([p.s for p in parts]),
            torch.cat([p.v for p in parts]),
        )

    def dense(self, species: Tensor, r_ij: Tensor, pair_weight: Optional[Tensor]) -> Evaluation:
        rep = self.potential.representation
        b, n = r_ij.shape[0], r_ij.shape[1]
        basis, units = rep.pair_basis(r_ij, pair_weight)
        units_t = units.transpose(2, 3)
        s, v = rep.initial_features(species)
        s = s.expand(b, n, rep.n_features)
        v = v.expand(b, n, 3, rep.n_features)
        message_tapes: List[MessageTape] = []
        update_tapes: List[UpdateTape] = []
        k = 0
        for message, update in zip(rep.messages, rep.updates):
            # each block's filters [B, N, N, 3F] when they are needed, and again in the backward pass: all blocks'
            # filters at once, [B, N, N, 3F * blocks], would outgrow the core's cache that the chunk is sized for
            filters = torch.matmul(basis, rep.block_filter_weight(k))
            s, v, message_tape = message.dense(s, v, filters, units_t, k == 0)
            s, v, update_tape = update.forward_with_tape(s, v)
            message_tapes.append(message_tape)
            update_tapes.append(update_tape)
            k += 1
        energy, grad_s = self._energy_head(s, species)
        grad_basis = torch.zeros_like(basis)
        grad_units = torch.zeros_like(units)
        grad_v: Optional[Tensor] = None
        for k in range(rep.n_interactions - 1, -1, -1):
            block = 0
            for block_message, block_update in zip(rep.messages, rep.updates):  # (TorchScript: no reversed())
                if block == k:
                    grad_s, grad_v_mid = block_update.vjp(update_tapes[k], grad_s, grad_v)
                    block_weight = rep.block_filter_weight(k)
                    grad_s, grad_v_in, grad_basis_k, grad_units_k = block_message.dense_vjp(
                        message_tapes[k], torch.matmul(basis, block_weight), block_weight, units, grad_s, grad_v_mid,
                        k == 0,
                    )  # fmt: skip
                    grad_basis = grad_basis + grad_basis_k
                    grad_units = grad_units + grad_units_k
                    grad_v = grad_v_in
                block += 1
        gradient = rep.pair_vector_vjp(r_ij, pair_weight, grad_basis, grad_units)
        return Evaluation(energy, gradient, s, v)

    def sparse(
        self,
        species: Tensor,
        r_ij: Tensor,
        idx_i: Tensor,
        idx_j: Tensor,
        pair_weight: Optional[Tensor],
        n_frames: int,
    ) -> Evaluation:
        rep = self.potential.representation
        n, f = species.shape[0], rep.n_features
        n_pairs = r_ij.shape[0]
        chunk = (
            self.pairs_per_chunk if r_ij.device.type == "cpu" else max(self.pairs_per_chunk, self.gpu_pairs_per_chunk)
        )
        basis, units = rep.pair_basis(r_ij, pair_weight)
        s, v = rep.initial_features(species.repeat(n_frames))
        message_tapes: List[MessageTape] = []
        update_tapes: List[UpdateTape] = []
        k = 0
        for message, update in zip(rep.messages, rep.updates):
            w = rep.block_filter_weight(k)
            phi, h = message.atomwise(s)
            ds_sum = torch.zeros_like(s)
            dv_sum = torch.zeros_like(v)
            for start in range(0, n_pairs, chunk):
                end = min(start + chunk, n_pairs)
                j = idx_j[start:end]
                v_j = None if k == 0 else v.index_select(0, j)
                ds, dv = message.pair_terms(
                    phi.index_select(0, j), v_j, torch.matmul(basis[start:end], w), units[start:end]
                )
                ds_sum.index_add_(0, idx_i[start:end], ds)
                dv_sum.index_add_(0, idx_i[start:end], dv)
            message_tapes.append(MessageTape(v, h, phi, phi[:0], phi[:0]))
            s, v, update_tape = update.forward_with_tape(s + ds_sum, v + dv_sum)
            update_tapes.append(update_tape)
            k += 1
        energy, grad_s = self._energy_head(s.reshape(n_frames, n, f), species)
        grad_s = grad_s.reshape(n_frames * n, f)
        grad_basis = torch.zeros_like(basis)
        grad_units = torch.zeros_like(units)
        grad_v: Optional[Tensor] = None
        for k in range(rep.n_interactions - 1, -1, -1):
            block = 0
            for block_message, block_update in zip(rep.messages, rep.updates):  # (TorchScript: no reversed())
                if block == k:
                    tape = message_tapes[k]
                    w = rep.block_filter_weight(k)
                    grad_s_mid, grad_v_mid = block_update.vjp(update_tapes[k], grad_s, grad_v)
                    grad_phi = torch.zeros_like(tape.phi)
                    grad_v_in = grad_v_mid.clone() if k > 0 else grad_v_mid
                    for start in range(0, n_pairs, chunk):
                        end = min(start + chunk, n_pairs)
                        i = idx_i[start:end]
                        j = idx_j[start:end]
                        v_j = None if k == 0 else tape.v.index_select(0, j)
                        grad_phi_j, grad_v_j, grad_filters, grad_units_c = block_message.pair_terms_vjp(
                            tape.phi.index_select(0, j),
                            v_j,
                            torch.matmul(basis[start:end], w),
                            units[start:end],
                            grad_s_mid.index_select(0, i),
                            grad_v_mid.index_select(0, i),
                        )
                        grad_basis[start:end].add_(torch.matmul(grad_filters, w.t()))
                        grad_units[start:end].add_(grad_units_c)
                        if grad_v_j is not None:  # (not the first block: its s and v hold no positions)
                            grad_phi.index_add_(0, j, grad_phi_j)
                            grad_v_in.index_add_(0, j, grad_v_j)
                    grad_s = grad_s_mid
                    if k > 0:  # (the first block's s is the embedding: no positions behind it)
                        grad_s = grad_s + block_message.atomwise_vjp(tape.h, grad_phi)
                    grad_v = grad_v_in
                block += 1
        gradient = rep.pair_vector_vjp(r_ij, pair_weight, grad_basis, grad_units)
        return Evaluation(energy, gradient, s.reshape(n_frames, n, f), v.reshape(n_frames, n, 3, f))

    def _energy_head(self, s: Tensor, species: Tensor):
        head = self.potential.energy_head
        assert head is not None
        return head.value_and_gradient(s, species)
