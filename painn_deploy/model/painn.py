"""PaiNN representation: message and update blocks (Schütt et al. 2021, Eqs. 7-10, Fig. 2).

Shapes: N atoms, P directed pairs (i receives from j), F features.
Scalar features s: [N, F]; vector features v: [N, 3, F].  Lengths in Angstrom.
"""

from typing import List, Optional

import torch
from torch import nn

from .radial import SineRBF, cosine_cutoff, safe_norm


class PaiNNMessage(nn.Module):
    """Message block (Eqs. 7-8): continuous filters from the radial basis, atomwise phi(s_j)."""

    def __init__(self, n_features: int):
        super().__init__()
        self.n_features = n_features
        self.phi = nn.Sequential(nn.Linear(n_features, n_features), nn.SiLU(), nn.Linear(n_features, 3 * n_features))

    def pair_terms(
        self,
        phi: torch.Tensor,
        v: torch.Tensor,
        filters: torch.Tensor,
        unit_vectors: torch.Tensor,
        idx_j: torch.Tensor,
        first: bool,
    ):
        """Messages of pairs to their atom i: ds [P, F] and dv [P, 3, F], from phi(s) [N, 3F]."""
        f = self.n_features
        x = phi.index_select(0, idx_j) * filters
        ds, dv_v, dv_r = torch.split(x, f, dim=-1)
        dv = unit_vectors.unsqueeze(2) * dv_r.unsqueeze(1)
        if not first:  # v_j is zero before the first block
            dv = dv + v.index_select(0, idx_j) * dv_v.unsqueeze(1)
        return ds, dv

    def forward(
        self,
        s: torch.Tensor,
        v: torch.Tensor,
        filters: torch.Tensor,
        unit_vectors: torch.Tensor,
        idx_i: torch.Tensor,
        idx_j: torch.Tensor,
        first: bool,
    ):
        ds, dv = self.pair_terms(self.phi(s), v, filters, unit_vectors, idx_j, first)
        s = s + torch.zeros_like(s).index_add(0, idx_i, ds)
        v = v + torch.zeros_like(v).index_add(0, idx_i, dv)
        return s, v


class PaiNNUpdate(nn.Module):
    """Update block (Eqs. 9-10): U v, V v, ||V v|| and <U v, V v>."""

    def __init__(self, n_features: int):
        super().__init__()
        self.n_features = n_features
        self.uv = nn.Linear(n_features, 2 * n_features, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(2 * n_features, n_features), nn.SiLU(), nn.Linear(n_features, 3 * n_features)
        )

    def forward(self, s: torch.Tensor, v: torch.Tensor):
        f = self.n_features
        u_v, v_v = torch.split(self.uv(v), f, dim=-1)
        a = self.mlp(torch.cat([s, safe_norm(v_v, dim=1, eps_squared=1e-8)], dim=-1))
        a_vv, a_sv, a_ss = torch.split(a, f, dim=-1)
        v = v + a_vv.unsqueeze(1) * u_v
        s = s + a_sv * torch.sum(u_v * v_v, dim=1) + a_ss
        return s, v


class PaiNN(nn.Module):
    """PaiNN representation.  ``forward(species [N], idx_i [P], idx_j [P], r_ij [P,3] (Angstrom))``
    returns scalar features [N, F] and vector features [N, 3, F].

    ``r_ij`` is the vector from atom i to atom j; ``pair_weight`` [P] (1 or 0) masks padding pairs.  Pairs beyond the cutoff may be included:
    the cosine cutoff makes their messages exactly zero, so an all-pairs list and a
    cut-off neighbour list give the same result.
    """

    def __init__(
        self, n_species: int, n_features: int = 128, n_interactions: int = 3, n_rbf: int = 20, cutoff: float = 5.0
    ):
        super().__init__()
        self.n_features = n_features
        self.n_interactions = n_interactions
        self.cutoff = cutoff
        self.embedding = nn.Embedding(n_species, n_features)
        self.rbf = SineRBF(n_rbf, cutoff)
        # the filters of all blocks in one linear map: fewer, larger operations
        self.filters = nn.Linear(n_rbf, 3 * n_features * n_interactions)
        self.messages = nn.ModuleList([PaiNNMessage(n_features) for _ in range(n_interactions)])
        self.updates = nn.ModuleList([PaiNNUpdate(n_features) for _ in range(n_interactions)])
        self.pairs_per_chunk = max(1024, 2**22 // (3 * n_features))  # a [pairs, 3F] float32 chunk: <= 16 MB

    def forward(
        self,
        species: torch.Tensor,
        idx_i: torch.Tensor,
        idx_j: torch.Tensor,
        r_ij: torch.Tensor,
        pair_weight: Optional[torch.Tensor] = None,
    ):
        r = safe_norm(r_ij, dim=-1)
        unit_vectors = r_ij / r.unsqueeze(-1)
        envelope = cosine_cutoff(r, self.cutoff)
        if pair_weight is not None:  # padding entries of a static pair list
            envelope = envelope * pair_weight
        # (W rbf + b) * envelope as one product [rbf * envelope, envelope] @ [W, b]^T: autograd then keeps
        # only the [P, n_rbf + 1] input for the backward pass instead of two [P, 9F] tensors
        weight = torch.cat([self.filters.weight, self.filters.bias.unsqueeze(-1)], dim=-1).t()
        s = self.embedding(species)
        v = torch.zeros((s.shape[0], 3, self.n_features), dtype=s.dtype, device=s.device)
        n_pairs = r.shape[0]
        chunk = self.pairs_per_chunk
        if n_pairs <= chunk:  # molecules: every block's filters in one matrix product, few large operations
            envelope = envelope.unsqueeze(-1)
            basis = torch.cat([self.rbf(r) * envelope, envelope], dim=-1)
            filters = torch.split(torch.matmul(basis, weight), 3 * self.n_features, dim=-1)
            k = 0
            for message, update in zip(self.messages, self.updates):
                s, v = message(s, v, filters[k], unit_vectors, idx_i, idx_j, k == 0)
                s, v = update(s, v)
                k += 1
            return s, v
        # large systems: pairs in chunks, so that no pair tensor exceeds ~16 MB.  Larger blocks are
        # allocated with mmap and freed back to the system each time, and faulting those pages in
        # again every step cost more than the arithmetic (x4 at 4608 atoms, benchmarks/scaling.py)
        bases: List[torch.Tensor] = []
        for start in range(0, n_pairs, chunk):
            end = min(start + chunk, n_pairs)
            env = envelope[start:end].unsqueeze(-1)
            bases.append(torch.cat([self.rbf(r[start:end]) * env, env], dim=-1))
        width = 3 * self.n_features
        k = 0
        for message, update in zip(self.messages, self.updates):
            phi = message.phi(s)
            w = weight[:, k * width : (k + 1) * width]
            ds_sum = torch.zeros_like(s)
            dv_sum = torch.zeros_like(v)
            for c, basis in enumerate(bases):
                start = c * chunk
                end = min(start + chunk, n_pairs)
                ds, dv = message.pair_terms(
                    phi, v, torch.matmul(basis, w), unit_vectors[start:end], idx_j[start:end], k == 0
                )
                ds_sum = ds_sum.index_add(0, idx_i[start:end], ds)
                dv_sum = dv_sum.index_add(0, idx_i[start:end], dv)
            s, v = update(s + ds_sum, v + dv_sum)
            k += 1
        return s, v
