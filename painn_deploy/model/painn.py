"""PaiNN representation: message and update blocks (Schütt et al. 2021, Eqs. 7-10, Fig. 2).

Shapes: N atoms, P directed pairs (i receives from j), F features.
Scalar features s: [N, F]; vector features v: [N, 3, F].  Lengths in Angstrom.
"""

from typing import List, Optional, Tuple

import torch
from torch import nn

from .radial import SineRBF, cosine_cutoff, cosine_cutoff_derivative, safe_norm, silu_backward


class PaiNNMessage(nn.Module):
    """Message block (Eqs. 7-8): continuous filters from the radial basis, atomwise phi(s_j)."""

    def __init__(self, n_features: int):
        super().__init__()
        self.n_features = n_features
        self.phi = nn.Sequential(nn.Linear(n_features, n_features), nn.SiLU(), nn.Linear(n_features, 3 * n_features))

    def pair_terms(
        self, phi_j: torch.Tensor, v_j: Optional[torch.Tensor], filters: torch.Tensor, unit_vectors: torch.Tensor
    ):
        """Messages of pairs to their atom i: ds [P, F] and dv [P, 3, F], from the neighbours' phi(s_j)
        [P, 3F] and v_j [P, 3, F] (None before the first block, where v is zero)."""
        f = self.n_features
        x = phi_j * filters
        ds, dv_v, dv_r = torch.split(x, f, dim=-1)
        dv = unit_vectors.unsqueeze(2) * dv_r.unsqueeze(1)
        if v_j is not None:
            dv = dv + v_j * dv_v.unsqueeze(1)
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
        v_j = None if first else v.index_select(0, idx_j)
        ds, dv = self.pair_terms(self.phi(s).index_select(0, idx_j), v_j, filters, unit_vectors)
        s = s + torch.zeros_like(s).index_add(0, idx_i, ds)
        v = v + torch.zeros_like(v).index_add(0, idx_i, dv)
        return s, v

    def forward_dense(
        self,
        s: torch.Tensor,
        v: torch.Tensor,
        filters: torch.Tensor,
        unit_vectors_t: torch.Tensor,
        first: bool,
        keep: bool = False,
    ) -> Tuple[torch.Tensor, torch.Tensor, List[torch.Tensor]]:
        """:meth:`forward` on all pairs as dense arrays: filters [N, N, 3F] and unit vectors [N, 3, N]
        (i, component, j); neighbours come by broadcasting and messages are summed over j, where the
        pair list gathers and scatters.  With ``keep`` it also returns what :meth:`backward_dense`
        needs."""
        f = self.n_features
        h = self.phi[0](s)
        phi = self.phi[2](self.phi[1](h))
        x = phi.unsqueeze(0) * filters
        ds, dv_v, dv_r = torch.split(x, f, dim=-1)
        dv = torch.bmm(unit_vectors_t, dv_r)
        if not first:
            dv = dv + torch.sum(v.unsqueeze(0) * dv_v.unsqueeze(2), dim=1)
        kept: List[torch.Tensor] = [v, h, phi, x] if keep else []
        return s + ds.sum(1), v + dv, kept

    def backward_dense(
        self,
        kept: List[torch.Tensor],
        filters: torch.Tensor,
        unit_vectors: torch.Tensor,
        grad_s: torch.Tensor,
        grad_v: torch.Tensor,
        first: bool,
        grad_filters: torch.Tensor,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Vector-Jacobian product of :meth:`forward_dense` (unit vectors here [N, N, 3]): from the
        gradients of its outputs s [N, F] and v [N, 3, F], those of its inputs s, v and the unit vectors
        [N, N, 3]; the filters' [N, N, 3F] is written into ``grad_filters`` (a view of that shape), so
        that the caller turns every block's into the basis's gradient with one matrix product.  The first
        block's s, the embedding, gets no gradient."""
        v, h, phi, x = kept
        n, f = grad_s.shape[0], self.n_features
        _, dv_v, dv_r = torch.split(x, f, dim=-1)
        grad_dv_r = torch.bmm(unit_vectors, grad_v)  # [N, N, F]
        grad_units = torch.bmm(dv_r, grad_v.transpose(1, 2))  # [N, N, 3]
        if first:  # v is zero: its message term and its gradient vanish
            grad_dv_v = torch.zeros_like(grad_dv_r)
            grad_v_in = grad_v
        else:
            grad_dv_v = torch.sum(v.unsqueeze(0) * grad_v.unsqueeze(1), dim=2)
            grad_v_in = grad_v + torch.sum(grad_v.unsqueeze(1) * dv_v.unsqueeze(2), dim=0)
        grad_x = torch.cat([grad_s.unsqueeze(1).expand(n, n, f), grad_dv_v, grad_dv_r], dim=-1)
        torch.mul(grad_x, phi.unsqueeze(0), out=grad_filters)
        grad_s_in = grad_s
        if not first:
            grad_phi = torch.sum(grad_x * filters, dim=0)
            grad_h = silu_backward(torch.matmul(grad_phi, self.phi[2].weight), h)
            grad_s_in = grad_s + torch.matmul(grad_h, self.phi[0].weight)
        return grad_s_in, grad_v_in, grad_units


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
        s, v, _ = self.forward_keeping(s, v, False)
        return s, v

    def forward_keeping(
        self, s: torch.Tensor, v: torch.Tensor, keep: bool
    ) -> Tuple[torch.Tensor, torch.Tensor, List[torch.Tensor]]:
        """:meth:`forward`; with ``keep`` it also returns what :meth:`backward` needs."""
        f = self.n_features
        u_v, v_v = torch.split(self.uv(v), f, dim=-1)
        norm = safe_norm(v_v, dim=1, eps_squared=1e-8)
        h = self.mlp[0](torch.cat([s, norm], dim=-1))
        a = self.mlp[2](self.mlp[1](h))
        a_vv, a_sv, a_ss = torch.split(a, f, dim=-1)
        product = torch.sum(u_v * v_v, dim=1)
        v = torch.addcmul(v, a_vv.unsqueeze(1), u_v)
        s = torch.addcmul(s + a_ss, a_sv, product)
        kept: List[torch.Tensor] = [u_v, v_v, norm, h, a, product] if keep else []
        return s, v, kept

    def backward(
        self, kept: List[torch.Tensor], grad_s: torch.Tensor, grad_v: Optional[torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Vector-Jacobian product of :meth:`forward`: the gradients of its inputs s [N, F] and
        v [N, 3, F] from those of its outputs (``grad_v`` None: zero, as for the last block under an
        energy that depends on s only)."""
        u_v, v_v, norm, h, a, product = kept
        f = self.n_features
        a_vv, a_sv, _ = torch.split(a, f, dim=-1)
        grad_product = (grad_s * a_sv).unsqueeze(1)
        grad_u_v = grad_product * v_v
        grad_v_v = grad_product * u_v
        if grad_v is None:  # a_vv gets no gradient: leave its rows out of the product
            grad_a = torch.cat([grad_s * product, grad_s], dim=-1)
            grad_h = silu_backward(torch.matmul(grad_a, self.mlp[2].weight[f:]), h)
        else:
            grad_a = torch.cat([torch.sum(grad_v * u_v, dim=1), grad_s * product, grad_s], dim=-1)
            grad_h = silu_backward(torch.matmul(grad_a, self.mlp[2].weight), h)
            grad_u_v = torch.addcmul(grad_u_v, grad_v, a_vv.unsqueeze(1))
        grad_in = torch.matmul(grad_h, self.mlp[0].weight)
        grad_s_in = grad_s + grad_in[:, :f]
        grad_v_v = torch.addcmul(grad_v_v, (grad_in[:, f:] / norm).unsqueeze(1), v_v)
        grad_v_in = torch.matmul(torch.cat([grad_u_v, grad_v_v], dim=-1), self.uv.weight)
        if grad_v is not None:
            grad_v_in = grad_v_in + grad_v
        return grad_s_in, grad_v_in


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
        n_pairs = r_ij.shape[0]
        if n_pairs > self.pairs_per_chunk:
            s, v, _ = self.forward_in_chunks(species, idx_i, idx_j, r_ij, pair_weight, False)
            return s, v
        # molecules: every block's filters in one matrix product, few large operations
        basis, unit_vectors = self.pair_basis(r_ij, pair_weight)
        filters = torch.split(torch.matmul(basis, self.filter_weight()), 3 * self.n_features, dim=-1)
        s, v = self.initial_features(species)
        k = 0
        for message, update in zip(self.messages, self.updates):
            s, v = message(s, v, filters[k], unit_vectors, idx_i, idx_j, k == 0)
            s, v = update(s, v)
            k += 1
        return s, v

    def forward_dense(
        self, species: torch.Tensor, r_ij: torch.Tensor, pair_mask: torch.Tensor, keep: bool = False
    ) -> Tuple[torch.Tensor, torch.Tensor, List[torch.Tensor]]:
        """:meth:`forward` on every pair of a small system as dense [N, N] arrays: r_ij [N, N, 3]
        (r_j - r_i, Angstrom), pair_mask [N, N] (1, and 0 on the diagonal).  Neighbours come by
        broadcasting and messages by sums where the pair list gathers and scatters: fewer, cheaper
        operations (benchmarks/md_speed.py: x0.9 per step for ethanol, x0.8 for aspirin).  Returns
        s, v and, with ``keep``, the intermediates :meth:`backward_dense` needs."""
        n = r_ij.shape[0]
        basis, unit_vectors = self.pair_basis(r_ij.reshape(n * n, 3), pair_mask.reshape(n * n))
        filters = torch.matmul(basis, self.filter_weight()).reshape(n, n, -1)
        unit_vectors = unit_vectors.reshape(n, n, 3)
        unit_vectors_t = unit_vectors.transpose(1, 2)
        s, v = self.initial_features(species)
        width = 3 * self.n_features
        kept: List[torch.Tensor] = [filters, unit_vectors] if keep else []
        k = 0
        for message, update in zip(self.messages, self.updates):
            s, v, kept_message = message.forward_dense(
                s, v, filters[:, :, k * width : (k + 1) * width], unit_vectors_t, k == 0, keep
            )
            s, v, kept_update = update.forward_keeping(s, v, keep)
            kept += kept_message + kept_update
            k += 1
        return s, v, kept

    def backward_dense(
        self, r_ij: torch.Tensor, pair_mask: torch.Tensor, kept: List[torch.Tensor], grad_s: torch.Tensor
    ) -> torch.Tensor:
        """Gradient [N, N, 3] with respect to r_ij of a quantity of the final s alone (such as the
        energy), whose gradient with respect to s [N, F] is ``grad_s``, from the intermediates of
        :meth:`forward_dense` with ``keep``.  Written out rather than left to autograd: for small
        molecules autograd's backward pass took twice the time of the forward pass, mostly in the
        bookkeeping of many small operations (benchmarks/md_speed.py)."""
        n = r_ij.shape[0]
        filters, unit_vectors = kept[0], kept[1]
        width = 3 * self.n_features
        # every block's filter gradient, for one product with the filter weights at the end
        grad_filters = torch.empty_like(filters)
        grad_units = torch.zeros_like(unit_vectors)
        grad_v: Optional[torch.Tensor] = None
        per_block = 10  # tensors kept per block: 4 by the message, 6 by the update
        for k in range(self.n_interactions - 1, -1, -1):
            block = 0
            for message, update in zip(self.messages, self.updates):  # (TorchScript: no reversed ModuleList)
                if block == k:
                    start = 2 + per_block * k
                    grad_s, grad_v_mid = update.backward(kept[start + 4 : start + per_block], grad_s, grad_v)
                    grad_s, grad_v_in, grad_units_k = message.backward_dense(
                        kept[start : start + 4],
                        filters[:, :, k * width : (k + 1) * width],
                        unit_vectors,
                        grad_s,
                        grad_v_mid,
                        k == 0,
                        grad_filters[:, :, k * width : (k + 1) * width],
                    )
                    grad_v = grad_v_in
                    grad_units = grad_units + grad_units_k
                block += 1
        # [N * N, n_rbf + 1], as (W G^T)^T: MKL is faster with the long side last (ethanol: 55 against 82 us)
        grad_basis = torch.matmul(self.filter_weight(), grad_filters.reshape(n * n, -1).t()).t()
        # the basis and the unit vectors as functions of r_ij: basis(|r|), r / |r|
        r_ij = r_ij.reshape(n * n, 3)
        r = safe_norm(r_ij, dim=-1)
        units = unit_vectors.reshape(n * n, 3)
        grad_units = grad_units.reshape(n * n, 3)
        grad_r = torch.sum(grad_basis * self.pair_basis_derivative(r, pair_mask.reshape(n * n)), dim=-1)
        # d(r / |r|)/dr = (1 - u u^T) / |r|
        radial = grad_r - torch.sum(grad_units * units, dim=-1) / r
        return (radial.unsqueeze(-1) * units + grad_units / r.unsqueeze(-1)).reshape(n, n, 3)

    def initial_features(self, species: torch.Tensor):
        """s [N, F] (the element embedding) and v [N, 3, F] (zero) before the first block."""
        s = self.embedding(species)
        return s, torch.zeros((s.shape[0], 3, self.n_features), dtype=s.dtype, device=s.device)

    def filter_weight(self) -> torch.Tensor:
        """[W, b]^T [n_rbf + 1, 3F * blocks] of the filters, for :meth:`pair_basis` inputs."""
        return torch.cat([self.filters.weight, self.filters.bias.unsqueeze(-1)], dim=-1).t()

    def pair_basis(self, r_ij: torch.Tensor, pair_weight: Optional[torch.Tensor]):
        """[rbf(r) * envelope, envelope] [P, n_rbf + 1] and unit vectors [P, 3] of pair vectors r_ij [P, 3].

        The filters are (W rbf + b) * envelope = basis @ :meth:`filter_weight`: as one product,
        autograd keeps only the [P, n_rbf + 1] basis for the backward pass instead of two [P, 9F] tensors."""
        r = safe_norm(r_ij, dim=-1)
        unit_vectors = r_ij / r.unsqueeze(-1)
        envelope = cosine_cutoff(r, self.cutoff)
        if pair_weight is not None:  # padding entries of a static pair list
            envelope = envelope * pair_weight
        envelope = envelope.unsqueeze(-1)
        return torch.cat([self.rbf(r) * envelope, envelope], dim=-1), unit_vectors

    def pair_basis_derivative(self, r: torch.Tensor, pair_weight: Optional[torch.Tensor]) -> torch.Tensor:
        """d/dr [P, n_rbf + 1] (per Angstrom) of :meth:`pair_basis`'s basis at distances r [P]."""
        rbf, rbf_derivative = self.rbf.value_and_derivative(r)
        envelope = cosine_cutoff(r, self.cutoff)
        envelope_derivative = cosine_cutoff_derivative(r, self.cutoff)
        if pair_weight is not None:
            envelope = envelope * pair_weight
            envelope_derivative = envelope_derivative * pair_weight
        envelope = envelope.unsqueeze(-1)
        envelope_derivative = envelope_derivative.unsqueeze(-1)
        return torch.cat([rbf_derivative * envelope + rbf * envelope_derivative, envelope_derivative], dim=-1)

    def forward_in_chunks(
        self,
        species: torch.Tensor,
        idx_i: torch.Tensor,
        idx_j: torch.Tensor,
        r_ij: torch.Tensor,
        pair_weight: Optional[torch.Tensor],
        keep_inputs: bool,
    ) -> Tuple[torch.Tensor, torch.Tensor, List[torch.Tensor]]:
        """:meth:`forward` for large systems: pairs in chunks, so that no pair tensor exceeds ~16 MB.
        Larger blocks are allocated with mmap and freed back to the system each time, and faulting
        those pages in again every step cost more than the arithmetic (x4 at 4608 atoms,
        benchmarks/scaling.py).  With ``keep_inputs`` (call it under ``torch.no_grad()``) it also
        returns every block's s, v, s + messages, v + messages, for :meth:`backward_recomputed`."""
        chunk = self.pairs_per_chunk
        n_pairs = r_ij.shape[0]
        weight = self.filter_weight()
        bases: List[torch.Tensor] = []
        units: List[torch.Tensor] = []
        for start in range(0, n_pairs, chunk):
            end = min(start + chunk, n_pairs)
            basis, unit_vectors = self.pair_basis(
                r_ij[start:end], None if pair_weight is None else pair_weight[start:end]
            )
            bases.append(basis)
            units.append(unit_vectors)
        s, v = self.initial_features(species)
        width = 3 * self.n_features
        kept: List[torch.Tensor] = []
        k = 0
        for message, update in zip(self.messages, self.updates):
            phi = message.phi(s)
            w = weight[:, k * width : (k + 1) * width]
            ds_sum = torch.zeros_like(s)
            dv_sum = torch.zeros_like(v)
            for c, basis in enumerate(bases):
                start = c * chunk
                end = min(start + chunk, n_pairs)
                j = idx_j[start:end]
                v_j = None if k == 0 else v.index_select(0, j)
                ds, dv = message.pair_terms(phi.index_select(0, j), v_j, torch.matmul(basis, w), units[c])
                ds_sum = ds_sum.index_add(0, idx_i[start:end], ds)
                dv_sum = dv_sum.index_add(0, idx_i[start:end], dv)
            if keep_inputs:
                kept += [s, v, s + ds_sum, v + dv_sum]
            s, v = update(s + ds_sum, v + dv_sum)
            k += 1
        return s, v, kept

    def backward_recomputed(
        self,
        idx_i: torch.Tensor,
        idx_j: torch.Tensor,
        r_ij: torch.Tensor,
        pair_weight: Optional[torch.Tensor],
        kept: List[torch.Tensor],
        grad_s: torch.Tensor,
        grad_v: torch.Tensor,
    ) -> torch.Tensor:
        """Gradient [P, 3] with respect to r_ij of a quantity whose gradients with respect to the final
        s [N, F] and v [N, 3, F] are ``grad_s`` and ``grad_v``, from the inputs ``kept`` by
        :meth:`forward_in_chunks`.  Each block is evaluated again, pair chunk by pair chunk, so memory
        stays O(N F + chunk) where autograd over the whole graph keeps ~27 kB per pair (gradient
        checkpointing, which TorchScript has no function for).  First derivatives only."""
        chunk = self.pairs_per_chunk
        n_pairs = r_ij.shape[0]
        weight = self.filter_weight()
        width = 3 * self.n_features
        grad_r = torch.zeros_like(r_ij)
        for k in range(self.n_interactions - 1, -1, -1):
            block = 0
            for message, update in zip(self.messages, self.updates):  # (TorchScript: no reversed ModuleList)
                if block == k:
                    s_in, v_in, s_mid, v_mid = kept[4 * k], kept[4 * k + 1], kept[4 * k + 2], kept[4 * k + 3]
                    s_mid = s_mid.detach().requires_grad_(True)
                    v_mid = v_mid.detach().requires_grad_(True)
                    s_out, v_out = update(s_mid, v_mid)
                    grad_s_mid, grad_v_mid = _grads([s_out, v_out], [s_mid, v_mid], [grad_s, grad_v])
                    s_in = s_in.detach().requires_grad_(True)
                    phi = message.phi(s_in)
                    phi_d = phi.detach()
                    grad_phi = torch.zeros_like(phi_d)
                    grad_v = grad_v_mid.clone()
                    w = weight[:, k * width : (k + 1) * width]
                    for start in range(0, n_pairs, chunk):
                        end = min(start + chunk, n_pairs)
                        i = idx_i[start:end]
                        j = idx_j[start:end]
                        r_c = r_ij[start:end].detach().requires_grad_(True)
                        basis, unit_vectors = self.pair_basis(
                            r_c, None if pair_weight is None else pair_weight[start:end]
                        )
                        phi_j = phi_d.index_select(0, j).requires_grad_(True)
                        inputs = [phi_j, r_c]
                        v_j: Optional[torch.Tensor] = None
                        if k > 0:
                            v_j = v_in.index_select(0, j).requires_grad_(True)
                            inputs.append(v_j)
                        ds, dv = message.pair_terms(phi_j, v_j, torch.matmul(basis, w), unit_vectors)
                        g = _grads([ds, dv], inputs, [grad_s_mid.index_select(0, i), grad_v_mid.index_select(0, i)])
                        grad_phi.index_add_(0, j, g[0])
                        grad_r[start:end] += g[1]
                        if k > 0:
                            grad_v.index_add_(0, j, g[2])
                    grad_s = grad_s_mid
                    if k > 0:  # (the first block's s is the embedding: no positions behind it)
                        grad_s = grad_s + _grads([phi], [s_in], [grad_phi])[0]
                block += 1
        return grad_r


def _grads(outputs: List[torch.Tensor], inputs: List[torch.Tensor], grad_outputs: List[torch.Tensor]):
    """Vector-Jacobian products d(outputs . grad_outputs)/d inputs (zeros where independent)."""
    grad_opt: List[Optional[torch.Tensor]] = []
    for g in grad_outputs:
        grad_opt.append(g)
    grads = torch.autograd.grad(outputs, inputs, grad_opt, allow_unused=True)
    result: List[torch.Tensor] = []
    for g, x in zip(grads, inputs):
        result.append(torch.zeros_like(x) if g is None else g)
    return result
