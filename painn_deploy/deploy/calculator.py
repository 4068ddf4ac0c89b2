"""An ASE calculator on an exported model: ``atoms.calc = PaiNNCalculator("model.pt")``.

For ASE's optimisers, vibrations, NEB and MD.  ASE works in eV and Angstrom and the model in kJ/mol and nm: the
conversion happens here, at the boundary.  The atoms are checked against the model's particles once per new set
of atomic numbers, cell or periodicity (:meth:`Artefact.check_system`); a periodic model needs a periodic cell.
Results: ``energy`` and ``free_energy`` (eV), ``forces`` (eV/Angstrom), and, for a model with the heads,
``dipole`` (e*Angstrom) and ``polarizability`` (Angstrom^3, a property of this calculator)."""

from typing import Optional, Union

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from .. import units
from ..errors import InputError
from .artefact import Artefact, Model

EV_PER_KJ_MOL = 1.0 / units.EV_TO_KJ_PER_MOL
EV_A_PER_KJ_MOL_NM = units.NM_PER_ANGSTROM / units.EV_TO_KJ_PER_MOL


def reduced_box(cell: np.ndarray) -> np.ndarray:
    """A lower-triangular cell [3, 3] (rows a, b, c; positive diagonal) in OpenMM's reduced form, the same lattice:
    c and b shortened by whole multiples of the vectors before them (|b_x| <= a_x/2, |c_x| <= a_x/2,
    |c_y| <= b_y/2)."""
    a, b, c = (np.array(v, dtype=np.float64) for v in cell)
    c = c - b * round(c[1] / b[1])
    c = c - a * round(c[0] / a[0])
    b = b - a * round(b[0] / a[0])
    return np.array([a, b, c])


class PaiNNCalculator(Calculator):
    """ASE calculator of an exported painn-deploy model (``.pt``), or of a loaded :class:`Model`.

    ``device``: where the model runs (``"cpu"``, ``"cuda"``); ``dtype``: ``torch.float64`` for optimisations and
    finite-difference vibrations tighter than float32 allows (the model is converted)."""

    implemented_properties = ["energy", "free_energy", "forces", "dipole", "polarizability"]

    def __init__(self, model: Union[str, Model], device: str = "cpu", dtype: Optional[torch.dtype] = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(model, Model):
            self.model = model
        else:
            if str(model).endswith(".ckpt"):
                raise InputError(
                    f"{model} is a painn-train checkpoint: export it for the calculator with painn-export "
                    f"{model} -o model.pt [--pdb STRUCTURE.pdb] [--dtype float64]"
                )
            self.model = Artefact(model).load(device)
        if dtype is not None and dtype != self.model.dtype:
            self.model = self.model.to(dtype)
        self._checked: Optional[tuple] = None

    def _check(self, atoms) -> Optional[np.ndarray]:
        """Box vectors (nm) for the model, in OpenMM's reduced form, after checking the atoms against it (when
        they changed); ``self._rotation`` turns ASE's frame into the box's."""
        periodic = bool(self.model.module.periodic)
        if periodic and not atoms.pbc.all():
            raise InputError(
                f"the model is periodic, but the Atoms have pbc={atoms.pbc.tolist()}: give them the cell and "
                "pbc=True, or use a model exported without a box"
            )
        if not periodic and atoms.pbc.any():
            raise InputError(
                f"the model is not periodic, but the Atoms have pbc={atoms.pbc.tolist()}: set atoms.pbc = False, or "
                "export the model for the periodic system (painn-export CHECKPOINT --pdb BOX.pdb)"
            )
        box_nm = None
        self._rotation = None
        lengths = np.linalg.norm(atoms.cell.array, axis=1)
        if periodic and not abs(np.linalg.det(atoms.cell.array)) > 1e-6 * np.prod(lengths):
            raise InputError(
                f"the Atoms are periodic but their cell is {'zero' if not lengths.any() else 'flat'} (vector "
                f"lengths {lengths.round(3).tolist()} Angstrom): set atoms.cell to the box (Angstrom)"
            )
        if periodic:  # ASE's cell in any orientation and basis: rotated to OpenMM's reduced triclinic form
            from ase.cell import Cell
            from ase.geometry import minkowski_reduce

            shortest, _ = minkowski_reduce(atoms.cell.array)  # (the lattice's shortest basis: the widest box)
            cell, self._rotation = Cell(shortest).standard_form()  # (cell = shortest @ rotation.T, lower triangular)
            box_nm = reduced_box(cell * np.sign(np.linalg.det(cell))) * units.NM_PER_ANGSTROM
        key = (tuple(atoms.numbers.tolist()), None if box_nm is None else box_nm.tobytes())
        if key != self._checked:
            if self.model.artefact is not None:
                self.model.artefact.check_system(atoms.numbers.tolist(), box_nm, "the Atoms")
            self._checked = key
        return box_nm

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        box_nm = self._check(self.atoms)
        rotation = np.eye(3) if self._rotation is None else self._rotation
        positions_nm = np.asarray(self.atoms.positions, dtype=np.float64) @ rotation.T * units.NM_PER_ANGSTROM
        responses = {"dipole", "polarizability"} & set(properties)
        if responses:
            module = self.model.module
            missing = sorted(r for r in responses if not bool(getattr(module, f"has_{r}")))
            if missing:
                raise InputError(
                    f"the model has no {' or '.join(missing)} head: train one with painn-train --targets "
                    f"energy,forces,{','.join(missing)}"
                )
            out = self.model.properties(positions_nm, box_nm)
            energy, forces = out["energy"], out["forces"]
        else:
            energy, forces = self.model.energy_and_forces(positions_nm, box_nm)
            out = {}
        self.results["energy"] = float(energy) * EV_PER_KJ_MOL
        self.results["free_energy"] = self.results["energy"]
        # (vectors back to ASE's frame: v @ rotation; the polarizability tensor: rotation^T alpha rotation)
        self.results["forces"] = forces.detach().to("cpu", torch.float64).numpy() @ rotation * EV_A_PER_KJ_MOL_NM
        if "dipole" in out:
            dipole = out["dipole"].detach().to("cpu", torch.float64).numpy() @ rotation
            self.results["dipole"] = dipole * units.ANGSTROM_PER_NM
        if "polarizability" in out:
            alpha = rotation.T @ out["polarizability"].detach().to("cpu", torch.float64).numpy() @ rotation
            self.results["polarizability"] = alpha * units.ANGSTROM_PER_NM**3
