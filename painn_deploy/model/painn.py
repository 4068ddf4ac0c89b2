"""PaiNN representation: message and update blocks (Schütt et al. 2021, Eqs. 7-10, Fig. 2).

Shapes: N atoms, P directed pairs (i receives from j), F features.  Scalar features s: [..., N, F];
vector features v: [..., N, 3, F] (the component axis is always -2).  Lengths in Angstrom.

Each block has its forward pass and its vector-Jacobian product (VJP), written out so that the
forces of :mod:`painn_deploy.model.strategy` need no autograd.  ``forward`` of :class:`PaiNN` is
the plain autograd path (training, reference of the parity tests).
"""

from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor, nn

from .radial import SineRBF, cosine_cutoff, cosine_cutoff_derivative, safe_norm, silu_backward


def ungrouped(x: Tensor) -> Tensor:
    """``x`` through a view, which TorchScript's autodiff does not group with what follows.  Put after
    ``torch.cat``, it keeps the concatenation (fed by a list) and the products after it out of one
    differentiable subgraph whose only input is that list: a subgraph without a tensor input is kept even
    where the executor has no profile, which :meth:`~painn_deploy.deploy.PaiNNForceField.forward` relies on."""
    return x.view_as(x)


class MessageTape(NamedTuple):
    """What a message block's VJP needs: its input v, phi's hidden layer h and output phi [.., N, 3F], and
    (dense blocks) the v and r groups of the pair products phi_j * filters_ij [B, N, N, F] (empty for pair
    lists)."""

    v: Tensor
    h: Tensor
    phi: Tensor
    dv_v: Tensor
    dv_r: Tensor


class UpdateTape(NamedTuple):
    """What an update block's VJP needs."""

    u_v: Tensor
    v_v: Tensor
    norm: Tensor
    h: Tensor
    a_vv: Tensor
    a_sv: Tensor
    product: Tensor


class PaiNNMessage(nn.Module):
    """Message block (Eqs. 7-8): continuous filters from the radial basis, atomwise phi(s_j)."""

    def __init__(self, n_features: int):
        super().__init__()
        self.n_features = n_features
        self.phi = nn.Sequential(nn.Linear(n_features, n_features), nn.SiLU(), nn.Linear(n_features, 3 * n_features))

    def atomwise(self, s: Tensor) -> Tuple[Tensor, Tensor]:
        """phi(s) [..., N, 3F] and its hidden layer h (before the SiLU)."""
        h = self.phi[0](s)
        return self.phi[2](self.phi[1](h)), h

    def atomwise_vjp(self, h: Tensor, grad_phi: Tensor) -> Tensor:
        """Gradient with respect to s of phi(s), given that of phi."""
        return torch.matmul(silu_backward(torch.matmul(grad_phi, self.phi[2].weight), h), self.phi[0].weight)

    def pair_terms(self, phi_j: Tensor, v_j: Optional[Tensor], filters: Tensor, unit_vectors: Tensor):
        """Messages of pairs to their atom i: ds [P, F] and dv [P, 3, F], from the neighbours' phi(s_j)
        [P, 3F] and v_j [P, 3, F] (None before the first block, where v is zero)."""
        f = self.n_features
        ds, dv_v, dv_r = torch.split(phi_j * filters, f, dim=-1)
        dv = unit_vectors.unsqueeze(-1) * dv_r.unsqueeze(-2)
        if v_j is not None:
            dv = dv + v_j * dv_v.unsqueeze(-2)
        return ds, dv

    def pair_terms_vjp(
        self,
        phi_j: Tensor,
        v_j: Optional[Tensor],
        filters: Tensor,
        unit_vectors: Tensor,
        grad_ds: Tensor,
        grad_dv: Tensor,
    ) -> Tuple[Tensor, Optional[Tensor], Tensor, Tensor]:
        """VJP of :meth:`pair_terms`: the gradients of phi_j [P, 3F], v_j (None if v_j is), the filters
        [P, 3F] and the unit vectors [P, 3], from those of ds [P, F] and dv [P, 3, F]."""
        f = self.n_features
        _, dv_v, dv_r = torch.split(phi_j * filters, f, dim=-1)
        grad_dv_r = torch.sum(unit_vectors.unsqueeze(-1) * grad_dv, dim=-2)
        grad_units = torch.sum(dv_r.unsqueeze(-2) * grad_dv, dim=-1)
        grad_v_j: Optional[Tensor] = None
        if v_j is None:
            grad_dv_v = torch.zeros_like(grad_dv_r)
        else:
            grad_dv_v = torch.sum(v_j * grad_dv, dim=-2)
            grad_v_j = grad_dv * dv_v.unsqueeze(-2)
        grad_x = torch.cat([grad_ds, grad_dv_v, grad_dv_r], dim=-1)
        return grad_x * filters, grad_v_j, grad_x * phi_j, grad_units

    def forward(
        self, s: Tensor, v: Tensor, filters: Tensor, unit_vectors: Tensor, idx_i: Tensor, idx_j: Tensor, first: bool
    ):
        v_j = None if first else v.index_select(0, idx_j)
        phi, _ = self.atomwise(s)
        ds, dv = self.pair_terms(phi.index_select(0, idx_j), v_j, filters, unit_vectors)
        return s + torch.zeros_like(s).index_add(0, idx_i, ds), v + torch.zeros_like(v).index_add(0, idx_i, dv)

    def dense(
        self, s: Tensor, v: Tensor, filters: Tensor, unit_vectors_t: Tensor, first: bool
    ) -> Tuple[Tensor, Tensor, MessageTape]:
        """:meth:`forward` on all pairs of B frames as dense arrays: s [B, N, F], v [B, N, 3, F],
        filters [B, N, N, 3F] and unit vectors [B, N, 3, N] (frame, i, component, j).  Neighbours come by
        broadcasting and messages are summed over j, where a pair list gathers and scatters."""
        b, n, f = s.shape[0], s.shape[1], self.n_features
        phi, h = self.atomwise(s)
        x = phi.unsqueeze(1) * filters
        ds, dv_v, dv_r = torch.split(x, f, dim=-1)
        dv = torch.bmm(unit_vectors_t.reshape(b * n, 3, n), dv_r.reshape(b * n, n, f)).reshape(b, n, 3, f)
        if not first:
            dv = dv + torch.sum(v.unsqueeze(1) * dv_v.unsqueeze(3), dim=2)
        return s + ds.sum(2), v + dv, MessageTape(v, h, phi, dv_v, dv_r)

    def dense_vjp(
        self,
        tape: MessageTape,
        filters: Tensor,
        filter_weight: Tensor,
        unit_vectors: Tensor,
        grad_s: Tensor,
        grad_v: Tensor,
        first: bool,
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """VJP of :meth:`dense` (unit vectors here [B, N, N, 3]): the gradients of its inputs s and v, of the
        pair basis [B, N, N, n_rbf + 1] (filters = basis @ ``filter_weight`` [n_rbf + 1, 3F]) and of the unit
        vectors [B, N, N, 3], from those of its outputs.  The first block's s, the embedding, gets no
        gradient."""
        b, n, f = grad_s.shape[0], grad_s.shape[1], self.n_features
        phi_s, phi_v, phi_r = torch.split(tape.phi.unsqueeze(1), f, dim=-1)
        w_s, w_v, w_r = torch.split(filter_weight, f, dim=-1)
        dv_v, dv_r = tape.dv_v, tape.dv_r
        grad_dv_r = torch.bmm(unit_vectors.reshape(b * n, n, 3), grad_v.reshape(b * n, 3, f)).reshape(b, n, n, f)
        grad_units = torch.bmm(dv_r.reshape(b * n, n, f), grad_v.reshape(b * n, 3, f).transpose(1, 2))
        grad_s_i = grad_s.unsqueeze(2)
        # filters enter only through x = phi_j * filters: the basis gradient, one filter group at a time
        grad_basis = torch.matmul(grad_s_i * phi_s, w_s.t()) + torch.matmul(grad_dv_r * phi_r, w_r.t())
        if first:  # v is zero: its message term and its gradient vanish, and s is the embedding
            return grad_s, grad_v, grad_basis, grad_units.reshape(b, n, n, 3)
        # sum_c v_j,c * grad_v_i,c one component at a time: no [B, N, N, 3, F] temporary
        grad_dv_v = tape.v[:, :, 0].unsqueeze(1) * grad_v[:, :, 0].unsqueeze(2)
        for c in range(1, 3):
            grad_dv_v.addcmul_(tape.v[:, :, c].unsqueeze(1), grad_v[:, :, c].unsqueeze(2))
        grad_basis = grad_basis + torch.matmul(grad_dv_v * phi_v, w_v.t())
        grad_v_in = grad_v + torch.sum(grad_v.unsqueeze(2) * dv_v.unsqueeze(3), dim=1)
        filters_s, filters_v, filters_r = torch.split(filters, f, dim=-1)
        grad_phi = torch.cat(
            [
                torch.sum(grad_s_i * filters_s, dim=1),
                torch.sum(grad_dv_v * filters_v, dim=1),
                torch.sum(grad_dv_r * filters_r, dim=1),
            ],
            dim=-1,
        )
        grad_s_in = grad_s + self.atomwise_vjp(tape.h, ungrouped(grad_phi))
        return grad_s_in, grad_v_in, grad_basis, grad_units.reshape(b, n, n, 3)


class PaiNNUpdate(nn.Module):
    """Update block (Eqs. 9-10): U v, V v, ||V v|| and <U v, V v>.  Atomwise: any leading dimensions."""

    def __init__(self, n_features: int):
        super().__init__()
        self.n_features = n_features
        self.uv = nn.Linear(n_features, 2 * n_features, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(2 * n_features, n_features), nn.SiLU(), nn.Linear(n_features, 3 * n_features)
        )

    def forward(self, s: Tensor, v: Tensor):
        s, v, _ = self.forward_with_tape(s, v)
        return s, v

    def forward_with_tape(self, s: Tensor, v: Tensor) -> Tuple[Tensor, Tensor, UpdateTape]:
        f = self.n_features
        u_v, v_v = torch.split(self.uv(v), f, dim=-1)
        norm = safe_norm(v_v, dim=-2, eps_squared=1e-8)
        h = self.mlp[0](ungrouped(torch.cat([s, norm], dim=-1)))
        a = self.mlp[2](self.mlp[1](h))
        a_vv, a_sv, a_ss = torch.split(a, f, dim=-1)
        product = torch.sum(u_v * v_v, dim=-2)
        v = torch.addcmul(v, a_vv.unsqueeze(-2), u_v)
        s = torch.addcmul(s + a_ss, a_sv, product)
        return s, v, UpdateTape(u_v, v_v, norm, h, a_vv, a_sv, product)

    def vjp(self, tape: UpdateTape, grad_s: Tensor, grad_v: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """The gradients of the inputs s and v from those of the outputs (``grad_v`` None: zero, as for
        the last block under an energy that depends on s only)."""
        f = self.n_features
        a_vv, a_sv = tape.a_vv, tape.a_sv
        grad_product = (grad_s * a_sv).unsqueeze(-2)
        grad_u_v = grad_product * tape.v_v
        grad_v_v = grad_product * tape.u_v
        if grad_v is None:  # a_vv gets no gradient: leave its rows out of the product
            grad_a = ungrouped(torch.cat([grad_s * tape.product, grad_s], dim=-1))
            grad_h = silu_backward(torch.matmul(grad_a, self.mlp[2].weight[f:]), tape.h)
        else:
            grad_a = ungrouped(torch.cat([torch.sum(grad_v * tape.u_v, dim=-2), grad_s * tape.product, grad_s], dim=-1))
            grad_h = silu_backward(torch.matmul(grad_a, self.mlp[2].weight), tape.h)
            grad_u_v = torch.addcmul(grad_u_v, grad_v, a_vv.unsqueeze(-2))
        grad_in = torch.matmul(grad_h, self.mlp[0].weight)
        grad_s_in = grad_s + grad_in[..., :f]
        grad_v_v = torch.addcmul(grad_v_v, (grad_in[..., f:] / tape.norm).unsqueeze(-2), tape.v_v)
        grad_v_in = torch.matmul(ungrouped(torch.cat([grad_u_v, grad_v_v], dim=-1)), self.uv.weight)
        if grad_v is not None:
            grad_v_in = grad_v_in + grad_v
        return grad_s_in, grad_v_in


class PaiNN(nn.Module):
    """PaiNN representation.  ``forward(species [N], idx_i [P], idx_j [P], r_ij [P,3] (Angstrom))``
    returns scalar features [N, F] and vector features [N, 3, F].

    ``r_ij`` is the vector from atom i to atom j; ``pair_weight`` [P] (1 or 0) masks padding pairs.
    Pairs beyond the cutoff may be included: the cosine cutoff makes their messages exactly zero, so
    an all-pairs list and a cut-off neighbour list give the same result.
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

    def forward(
        self, species: Tensor, idx_i: Tensor, idx_j: Tensor, r_ij: Tensor, pair_weight: Optional[Tensor] = None
    ):
        basis, unit_vectors = self.pair_basis(r_ij, pair_weight)
        filters = torch.split(torch.matmul(basis, self.filter_weight()), 3 * self.n_features, dim=-1)
        s, v = self.initial_features(species)
        k = 0
        for message, update in zip(self.messages, self.updates):
            s, v = message(s, v, filters[k], unit_vectors, idx_i, idx_j, k == 0)
            s, v = update(s, v)
            k += 1
        return s, v

    def initial_features(self, species: Tensor):
        """s [..., N, F] (the element embedding of species [..., N]) and v [..., N, 3, F] (zero)."""
        s = self.embedding(species)
        shape = s.shape[:-1] + (3, self.n_features)
        return s, torch.zeros(shape, dtype=s.dtype, device=s.device)

    def filter_weight(self) -> Tensor:
        """[W, b]^T [n_rbf + 1, 3F * blocks] of the filters, for :meth:`pair_basis` inputs."""
        return torch.cat([self.filters.weight, self.filters.bias.unsqueeze(-1)], dim=-1).t()

    def block_filter_weight(self, k: int) -> Tensor:
        """The columns of :meth:`filter_weight` of block ``k``: [n_rbf + 1, 3F]."""
        width = 3 * self.n_features
        return self.filter_weight()[:, k * width : (k + 1) * width]

    def pair_basis(self, r_ij: Tensor, pair_weight: Optional[Tensor]):
        """[rbf(r) * envelope, envelope] [..., n_rbf + 1] and unit vectors [..., 3] of pair vectors r_ij.

        The filters are (W rbf + b) * envelope = basis @ :meth:`filter_weight`; as one product, only the
        [P, n_rbf + 1] basis needs keeping for the gradient, not [P, 9F] filters."""
        r = safe_norm(r_ij, dim=-1)
        unit_vectors = r_ij / r.unsqueeze(-1)
        envelope = cosine_cutoff(r, self.cutoff)
        if pair_weight is not None:  # padding entries of a static pair list, the diagonal of all pairs
            envelope = envelope * pair_weight
        envelope = envelope.unsqueeze(-1)
        return torch.cat([self.rbf(r) * envelope, envelope], dim=-1), unit_vectors

    def pair_vector_vjp(
        self, r_ij: Tensor, pair_weight: Optional[Tensor], grad_basis: Tensor, grad_units: Tensor
    ) -> Tensor:
        """Gradient [..., 3] with respect to r_ij from those of :meth:`pair_basis`'s basis and unit vectors."""
        r = safe_norm(r_ij, dim=-1)
        units = r_ij / r.unsqueeze(-1)
        rbf, rbf_derivative = self.rbf.value_and_derivative(r)
        envelope = cosine_cutoff(r, self.cutoff)
        envelope_derivative = cosine_cutoff_derivative(r, self.cutoff)
        if pair_weight is not None:
            envelope = envelope * pair_weight
            envelope_derivative = envelope_derivative * pair_weight
        grad_r = torch.sum(grad_basis[..., :-1] * (rbf_derivative * envelope.unsqueeze(-1)), dim=-1)
        grad_r = grad_r + (torch.sum(grad_basis[..., :-1] * rbf, dim=-1) + grad_basis[..., -1]) * envelope_derivative
        # d(r / |r|)/dr = (1 - u u^T) / |r|
        radial = grad_r - torch.sum(grad_units * units, dim=-1) / r
        return radial.unsqueeze(-1) * units + grad_units / r.unsqueeze(-1)
