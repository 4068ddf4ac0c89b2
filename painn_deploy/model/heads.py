"""Output heads on PaiNN features (Schütt et al. 2021, Sec. 4.2, Eqs. 12-14, Fig. 3).

All heads take scalar features s [N, F], vector features v [N, 3, F], positions [N, 3]
(Angstrom) and the molecule index of each atom ``batch`` [N]; they return one value per
molecule (B molecules).  Units: eV, e*Angstrom, Angstrom^3.
"""

import torch
from torch import nn

from .radial import safe_norm, silu_backward


class GatedEquivariantBlock(nn.Module):
    """Gated equivariant block (Fig. 3): scalars gate linear combinations of vectors.

    (s [N, n_in], v [N, 3, n_in]) -> (s' [N, n_out], v' [N, 3, n_out]).
    """

    def __init__(self, n_in: int, n_out: int, scalar_activation: bool):
        super().__init__()
        self.n_out = n_out
        self.vector_mix = nn.Linear(n_in, 2 * n_out, bias=False)
        self.mlp = nn.Sequential(nn.Linear(n_in + n_out, n_in), nn.SiLU(), nn.Linear(n_in, 2 * n_out))
        self.scalar_activation = nn.SiLU() if scalar_activation else nn.Identity()

    def forward(self, s: torch.Tensor, v: torch.Tensor):
        v_norm, v_out = torch.split(self.vector_mix(v), self.n_out, dim=-1)
        x = self.mlp(torch.cat([s, safe_norm(v_norm, dim=1, eps_squared=1e-8)], dim=-1))
        s_out, gate = torch.split(x, self.n_out, dim=-1)
        return self.scalar_activation(s_out), gate.unsqueeze(1) * v_out


class GatedOutput(nn.Module):
    """Two gated equivariant blocks F -> F/2 -> 1: one scalar [N] and one vector [N, 3] per atom."""

    def __init__(self, n_features: int):
        super().__init__()
        self.block1 = GatedEquivariantBlock(n_features, n_features // 2, scalar_activation=True)
        self.block2 = GatedEquivariantBlock(n_features // 2, 1, scalar_activation=False)

    def forward(self, s: torch.Tensor, v: torch.Tensor):
        s, v = self.block1(s, v)
        s, v = self.block2(s, v)
        return s.squeeze(-1), v.squeeze(-1)


def sum_per_molecule(x: torch.Tensor, batch: torch.Tensor, n_molecules: int) -> torch.Tensor:
    """Sum atomwise values x [N, ...] into molecules [B, ...]."""
    out = torch.zeros((n_molecules,) + x.shape[1:], dtype=x.dtype, device=x.device)
    return out.index_add(0, batch, x)


class EnergyHead(nn.Module):
    """E = sum_i (scale * MLP(s_i) + e_ref[Z_i])  (eV).  ``scale`` and ``e_ref`` are fitted on the
    training data before training (see :func:`painn_deploy.data.statistics`)."""

    def __init__(self, n_features: int, n_species: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(n_features, n_features // 2), nn.SiLU(), nn.Linear(n_features // 2, 1))
        # start from the fitted reference energies: no random offset for the energy loss to undo
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("element_energies", torch.zeros(n_species))

    def forward(self, s: torch.Tensor, species: torch.Tensor, batch: torch.Tensor, n_molecules: int):
        e_atom = self.scale * self.mlp(s).squeeze(-1) + self.element_energies.index_select(0, species)
        return sum_per_molecule(e_atom, batch, n_molecules)

    def value_and_gradient(self, s: torch.Tensor, species: torch.Tensor):
        """Energy [B] (eV, float64) of each frame's atoms (s [B, N, F]) and its gradient [B, N, F] with respect to
        s, without autograd.  The atoms' energies are summed in float64, the network's part and the reference
        energies apart: in float32 a box of thousands of atoms would round its energy, and the energy changes a
        barostat judges, to whole kJ/mol."""
        h = self.mlp[0](s)
        e_network = torch.sum(self.scale * self.mlp[2](self.mlp[1](h)).squeeze(-1), dim=[-1], dtype=torch.float64)
        e_reference = torch.sum(self.element_energies.index_select(0, species), dim=[-1], dtype=torch.float64)
        grad_s = torch.matmul(silu_backward(self.mlp[2].weight * self.scale, h), self.mlp[0].weight)
        return e_network + e_reference, grad_s


class DipoleHead(nn.Module):
    """Dipole moment (e*Angstrom).

    Eq. 13 (``use_atomic_dipoles=True``): mu = sum_i mu_atom(v_i) + q_i r_i.
    Eq. 12 (``use_atomic_dipoles=False``): mu = sum_i q_i r_i (latent charges only).
    The latent charges of each molecule are shifted by a common amount so that they sum to the
    molecule's total charge; for a neutral molecule mu then does not depend on the origin.
    """

    def __init__(self, n_features: int, use_atomic_dipoles: bool = True):
        super().__init__()
        self.use_atomic_dipoles = use_atomic_dipoles
        self.output = GatedOutput(n_features)

    def forward(
        self,
        s: torch.Tensor,
        v: torch.Tensor,
        positions: torch.Tensor,
        batch: torch.Tensor,
        n_molecules: int,
        total_charge: torch.Tensor,
    ):
        q, mu_atom = self.output(s, v)
        n_atoms = sum_per_molecule(torch.ones_like(q), batch, n_molecules)
        excess = (sum_per_molecule(q, batch, n_molecules) - total_charge) / n_atoms
        q = q - excess.index_select(0, batch)
        mu = q.unsqueeze(-1) * positions
        if self.use_atomic_dipoles:
            mu = mu + mu_atom
        return sum_per_molecule(mu, batch, n_molecules)


class PolarizabilityHead(nn.Module):
    """Polarizability (Eq. 14, Angstrom^3):
    alpha = sum_i alpha0(s_i) I + nu(v_i) (x) r_i + r_i (x) nu(v_i), r_i relative to the centre
    of mass of its molecule; symmetric by construction.  alpha0 = scale * y_i + mean, with the
    per-atom isotropic mean fitted on the training data."""

    def __init__(self, n_features: int):
        super().__init__()
        self.output = GatedOutput(n_features)
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("isotropic_mean", torch.zeros(()))

    def forward(
        self,
        s: torch.Tensor,
        v: torch.Tensor,
        positions: torch.Tensor,
        masses: torch.Tensor,
        batch: torch.Tensor,
        n_molecules: int,
    ):
        a0, nu = self.output(s, v)
        a0 = self.scale * a0 + self.isotropic_mean
        mass = sum_per_molecule(masses, batch, n_molecules)
        com = sum_per_molecule(masses.unsqueeze(-1) * positions, batch, n_molecules) / mass.unsqueeze(-1)
        r = positions - com.index_select(0, batch)
        outer = nu.unsqueeze(2) * r.unsqueeze(1)
        eye = torch.eye(3, dtype=s.dtype, device=s.device)
        alpha_atom = a0.unsqueeze(-1).unsqueeze(-1) * eye + outer + outer.transpose(1, 2)
        return sum_per_molecule(alpha_atom, batch, n_molecules)
