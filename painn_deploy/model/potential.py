"""PaiNN potential: representation + heads, in model units (Angstrom, eV, e*Angstrom, Angstrom^3).

Forces are not a head: they are -dE/dr (conservative), by autograd in training
(:func:`energy_and_forces`) and by the hand-written gradients of :mod:`painn_deploy.model.strategy`
in the deployed model.
"""

from dataclasses import asdict, dataclass, field, fields
from typing import Dict, Optional

import torch
from torch import nn

from ..errors import InputError
from .heads import DipoleHead, EnergyHead, PolarizabilityHead
from .painn import PaiNN

TARGETS = ("energy", "forces", "dipole", "polarizability")


@dataclass(frozen=True)
class PaiNNConfig:
    """Hyperparameters of a PaiNN potential (defaults: the paper's)."""

    elements: tuple = ()  # atomic numbers the model knows, sorted
    n_features: int = 128
    n_interactions: int = 3
    n_rbf: int = 20
    cutoff_angstrom: float = 5.0
    targets: tuple = ("energy", "forces")
    dipole_model: str = "eq13"  # "eq13": charges + atomic dipoles; "eq12": latent charges only
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        unknown = set(self.targets) - set(TARGETS)
        if unknown:
            raise InputError(f"unknown target(s) {sorted(unknown)}; choose from {', '.join(TARGETS)}")
        if "forces" in self.targets and "energy" not in self.targets:
            raise InputError("target 'forces' needs 'energy' (forces are -dE/dr); add energy to --targets")
        if self.dipole_model not in ("eq13", "eq12"):
            raise InputError(f"dipole_model must be 'eq13' or 'eq12', not {self.dipole_model!r}")
        if not self.elements:
            raise InputError("PaiNNConfig needs the list of elements (atomic numbers) the model knows")
        object.__setattr__(self, "elements", tuple(sorted(int(z) for z in self.elements)))
        object.__setattr__(self, "targets", tuple(t for t in TARGETS if t in self.targets))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PaiNNConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InputError(f"unknown model hyperparameter(s) {sorted(unknown)}; known: {sorted(names)}")
        d = dict(d)
        for key in ("elements", "targets"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


class PaiNNPotential(nn.Module):
    """PaiNN with energy / dipole / polarizability heads.

    ``forward`` takes a batch of B molecules with N atoms in all:
    species [N] (indices into ``config.elements``), positions [N, 3] (Angstrom),
    directed pairs idx_i, idx_j [P] and their vectors r_ij = r_j - r_i [P, 3] (Angstrom,
    minimum image for periodic systems), batch [N] (molecule of each atom), masses [N] (amu),
    total_charge [B] (e).  It returns a dict with ``energy`` [B] (eV), ``dipole`` [B, 3]
    (e*Angstrom) and ``polarizability`` [B, 3, 3] (Angstrom^3) for the heads the model has
    """

    def __init__(self, config: PaiNNConfig):
        super().__init__()
        self.config = config
        f = config.n_features
        n_species = len(config.elements)
        self.representation = PaiNN(n_species, f, config.n_interactions, config.n_rbf, config.cutoff_angstrom)
        heads = config.targets
        self.energy_head = EnergyHead(f, n_species) if "energy" in heads else None
        self.dipole_head = DipoleHead(f, config.dipole_model == "eq13") if "dipole" in heads else None
        self.polarizability_head = PolarizabilityHead(f) if "polarizability" in heads else None

    def forward(
        self,
        species: torch.Tensor,
        positions: torch.Tensor,
        idx_i: torch.Tensor,
        idx_j: torch.Tensor,
        r_ij: torch.Tensor,
        batch: torch.Tensor,
        n_molecules: int,
        masses: torch.Tensor,
        total_charge: torch.Tensor,
        pair_weight: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        s, v = self.representation(species, idx_i, idx_j, r_ij, pair_weight)
        return self.heads(s, v, species, positions, batch, n_molecules, masses, total_charge)

    def heads(
        self,
        s: torch.Tensor,
        v: torch.Tensor,
        species: torch.Tensor,
        positions: torch.Tensor,
        batch: torch.Tensor,
        n_molecules: int,
        masses: torch.Tensor,
        total_charge: torch.Tensor,
        energy: bool = True,
        responses: bool = True,
    ) -> Dict[str, torch.Tensor]:
        """The output heads on the representation's features s [N, F] and v [N, 3, F]: the energy
        head if ``energy``, the dipole and polarizability heads if ``responses``.  The other
        arguments and the result are those of :meth:`forward`."""
        out: Dict[str, torch.Tensor] = {}
        if energy and self.energy_head is not None:
            out["energy"] = self.energy_head(s, species, batch, n_molecules)
        if not responses:
            return out
        if self.dipole_head is not None:
            out["dipole"] = self.dipole_head(s, v, positions, batch, n_molecules, total_charge)
        if self.polarizability_head is not None:
            out["polarizability"] = self.polarizability_head(s, v, positions, masses, batch, n_molecules)
        return out


def energy_and_forces(energy: torch.Tensor, positions: torch.Tensor, training: bool) -> torch.Tensor:
    """Forces -dE/dr [N, 3] from a summed energy; ``training`` keeps the graph for a force loss."""
    grads = torch.autograd.grad([energy.sum()], [positions], create_graph=training, retain_graph=training)
    grad = grads[0]
    if grad is None:
        return torch.zeros_like(positions)
    return -grad


def all_pairs(n_atoms: int, device: Optional[torch.device] = None):
    """All ordered pairs (i != j) of ``n_atoms`` atoms: idx_i, idx_j [n (n - 1)]."""
    idx = torch.arange(n_atoms, device=device)
    i, j = torch.meshgrid(idx, idx, indexing="ij")
    keep = i != j
    return i[keep], j[keep]
