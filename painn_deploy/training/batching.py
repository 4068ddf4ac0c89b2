"""Batches of frames for training: concatenated atoms, all pairs within each frame."""

import numpy as np
import torch

from .. import units
from ..data import MoleculeDataset
from ..elements import masses_amu, species_index
from ..model import all_pairs, energy_and_forces
from ..structures import fragment_index

TARGET_KEYS = ("energy", "forces", "dipole", "polarizability")
PER_FRAME = ("energy", "dipole", "polarizability")  # sums over a frame's molecules


class FrameTensors:
    """A dataset held as tensors (model units) with a collate function for index batches.  ``molecules``: each
    atom's molecule (default: the covalently bonded fragments of the first frame): the output heads neutralise
    latent charges and take centres of mass per molecule, as the exported model does."""

    def __init__(self, data: MoleculeDataset, elements, dtype=torch.float32, molecules=None):
        n = len(data.atomic_numbers)
        self.n_atoms = n
        self.dtype = dtype
        if molecules is None:
            molecules = fragment_index(data.atomic_numbers, data.positions[0] * units.NM_PER_ANGSTROM)
        self.molecules = [int(m) for m in molecules]
        self.molecules_per_frame = max(self.molecules) + 1
        self.molecule_index = torch.tensor(self.molecules, dtype=torch.long)
        self.species = torch.from_numpy(species_index(data.atomic_numbers, elements))
        self.masses = torch.from_numpy(masses_amu(data.atomic_numbers)).to(dtype)
        self.positions = torch.from_numpy(data.positions).to(dtype)
        self.targets = {k: torch.from_numpy(v).to(dtype) for k in TARGET_KEYS if (v := data.target(k)) is not None}
        self.pair_i, self.pair_j = all_pairs(n)

    def collate(self, indices) -> dict:
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        b, n, m = len(idx), self.n_atoms, self.molecules_per_frame
        offsets = (torch.arange(b) * n).repeat_interleave(self.pair_i.shape[0])
        batch = {
            "species": self.species.repeat(b),
            "positions": self.positions[idx].reshape(b * n, 3),
            "idx_i": self.pair_i.repeat(b) + offsets,
            "idx_j": self.pair_j.repeat(b) + offsets,
            "batch": torch.arange(b).repeat_interleave(n) * m + self.molecule_index.repeat(b),  # (frame, molecule)
            "n_molecules": b * m,
            "frames": b,
            "masses": self.masses.repeat(b),
            "total_charge": torch.zeros(b * m, dtype=self.dtype),
        }
        for k, v in self.targets.items():
            batch[k] = v[idx].reshape(b * n, 3) if k == "forces" else v[idx]
        return batch


def predict_batch(model, batch: dict, with_forces: bool, training: bool) -> dict:
    """Model outputs (model units) for a collated batch; forces -dE/dr [N, 3] when ``with_forces``
    (``training`` keeps the graph for a force loss)."""
    positions = batch["positions"].requires_grad_(True)
    r_ij = positions[batch["idx_j"]] - positions[batch["idx_i"]]
    out = model(
        batch["species"], positions, batch["idx_i"], batch["idx_j"], r_ij,
        batch["batch"], batch["n_molecules"], batch["masses"], batch["total_charge"],
    )  # fmt: skip
    if batch["n_molecules"] != batch["frames"]:
        for key in PER_FRAME:
            if key in out:
                out[key] = out[key].reshape(batch["frames"], -1, *out[key].shape[1:]).sum(1)
    if with_forces:
        out["forces"] = energy_and_forces(out["energy"], positions, training)
    return out
