"""An exported model file, opened once and checked once.

:class:`Artefact` reads the metadata straight from the file's zip archive (no model is
deserialised), hashes the file, refuses other formats, and runs the pre-flight checks of a system
against the model (elements, particle count, box).  :meth:`Artefact.load` gives the module, wrapped
in :class:`Model` so that errors raised inside TorchScript reach Python callers as the package's
typed exceptions.
"""

import json
import sys
import warnings
import zipfile
from functools import cached_property
from typing import Optional, Sequence

import numpy as np
import torch

from .. import elements
from ..devices import torch_device
from ..errors import BoxTooSmallError, CheckpointError, InputError, TopologyMismatchError, typed_errors
from ..files import MODEL_FILE_FIX, file_sha256, require_file, what_file
from . import metadata as md

EXPORT_AGAIN = "export it again with painn-export (from the painn-train checkpoint)"


class Artefact:
    """An exported model file: ``metadata`` (dict), ``sha256``, and the module from :meth:`load`."""

    def __init__(self, path):
        self.path = require_file(path, "exported model", "create it with painn-export", CheckpointError)
        self.metadata = read_metadata(self.path)
        version = self.metadata.get(md.KEY_FORMAT_VERSION)
        if self.metadata.get(md.KEY_FORMAT) != md.FORMAT or version != md.FORMAT_VERSION:
            raise CheckpointError(
                f"{self.path} is a painn-deploy artefact of format {version}, and this painn-deploy reads only "
                f"format {md.FORMAT_VERSION}; {EXPORT_AGAIN}"
            )
        self._models: dict = {}

    @cached_property
    def sha256(self) -> str:
        return file_sha256(self.path)

    @property
    def atomic_numbers(self) -> list:
        return list(self.metadata[md.KEY_ATOMIC_NUMBERS])

    @property
    def particle_atomic_numbers(self) -> list:
        """Atomic numbers of every particle the artefact takes positions for (the model's atoms and, for an
        ML/MM artefact, the others)."""
        return list(self.metadata.get(md.KEY_PARTICLE_ATOMIC_NUMBERS) or self.atomic_numbers)

    @property
    def atom_indices(self):
        """The model's atoms among the particles (ML/MM artefacts), or None: all particles are the model's."""
        return self.metadata.get(md.KEY_ATOM_INDICES)

    @property
    def periodic(self) -> bool:
        return bool(self.metadata[md.KEY_PERIODIC])

    @property
    def heads(self) -> list:
        return list(self.metadata[md.KEY_HEADS])

    @property
    def cutoff_nm(self) -> float:
        return float(self.metadata[md.KEY_CUTOFF_NM])

    @property
    def model_elements(self) -> list:
        """Atomic numbers of the elements the model knows."""
        return [elements.atomic_number(s) for s in self.metadata[md.KEY_MODEL_ELEMENTS]]

    @property
    def fixed_shapes(self) -> bool:
        return bool(self.metadata[md.KEY_FIXED_SHAPES])

    def load(self, device: str = "cpu") -> "Model":
        """The model on ``device`` (loaded once per device)."""
        if device not in self._models:
            torch_device(device, "device=")
            try:
                module = torch.jit.load(str(self.path), map_location=device)
            except Exception as exc:
                raise CheckpointError(
                    f"cannot load {self.path} as a TorchScript model ({str(exc).splitlines()[0]}); is the file "
                    f"complete? Otherwise {EXPORT_AGAIN}"
                ) from exc
            self._models[device] = Model(module, self.metadata, self)
        return self._models[device]

    def check_system(self, atomic_numbers: Sequence[int], box_nm: Optional[np.ndarray], where: str) -> None:
        """Pre-flight checks of a system against the model: its particles (count and elements, in order)
        and, for a periodic model, a box at least twice the cutoff wide."""
        got = [int(z) for z in atomic_numbers]
        expected = self.particle_atomic_numbers
        ml = got if self.atom_indices is None else [got[i] for i in self.atom_indices if i < len(got)]
        elements.check_known(ml, self.model_elements, where)
        if len(got) != len(expected):
            trained = self.metadata.get(md.KEY_TRAINING, {}).get("training_molecule")
            other_chemistry = (
                trained
                and self.atom_indices is None
                and elements.empirical_formula(got) != elements.empirical_formula(elements.formula_atoms(trained))
            )
            fix = (
                f"the model was trained on {trained} alone, so exporting it for {elements.formula(got)} would "
                f"run it on chemistry it has not seen: train a model on data of this system (painn-train)"
                if other_chemistry
                else "export the model for this system with painn-export CHECKPOINT --pdb STRUCTURE.pdb, or give "
                "the painn-train checkpoint itself as the model (painn-simulate --model, MLPotential model=), which "
                "is exported for the system on the fly"
            )
            raise TopologyMismatchError(
                f"{where} has {len(got)} atoms ({elements.formula(got)}) but the model was exported for "
                f"{len(expected)} ({elements.formula(expected)}); {fix}"
            )
        bad = [i for i, (a, b) in enumerate(zip(got, expected)) if a != b]
        if bad:
            listing = ", ".join(
                f"atom {i + 1}: {elements.symbol(got[i])} (model: {elements.symbol(expected[i])})" for i in bad[:5]
            )
            raise TopologyMismatchError(
                f"{where} does not match the model's particle order at {len(bad)} atom(s): {listing}; reorder the "
                f"structure or export the model for it with painn-export --pdb"
            )
        if not self.periodic:
            return
        if box_nm is None:
            raise InputError(f"the model is periodic but {where} has no box; give a PDB with a CRYST1 record")
        check_box_width(box_nm, self.cutoff_nm, where)


def check_box_width(box_nm, cutoff_nm: float, where: str) -> None:
    """Raise :class:`BoxTooSmallError` when a periodic box [3, 3] (nm) is narrower than twice the model cutoff,
    so that atoms would see their own periodic images."""
    widths = np.diag(np.asarray(box_nm, dtype=np.float64))
    limit = 2.0 * float(cutoff_nm)
    if np.any(widths < limit):
        raise BoxTooSmallError(
            f"the periodic box of {where} is {widths.min():.3f} nm wide at its narrowest (widths "
            f"{np.round(widths, 3).tolist()} nm), less than twice the model cutoff ({limit:.3f} nm): atoms would "
            f"interact with their own periodic images. Use a box at least {limit:.3f} nm wide: solvate with more "
            f"padding or more molecules (painn_deploy.solvation.solvate, or Modeller.addSolvent(padding=...)), or, "
            f"for a pure liquid, pack more molecules (painn_deploy.structures.molecular_box, or Packmol)"
        )


class Model:
    """A loaded artefact for Python callers: the scripted module's methods (see
    :class:`~painn_deploy.deploy.module.PaiNNForceField`), raising the package's typed exceptions.
    Positions and box vectors may be tensors, arrays or OpenMM quantities (nm when unitless); outputs are
    tensors.  ``module`` is the TorchScript module itself (for ``TorchForce``, ``torch.jit.freeze``)."""

    def __init__(self, module, metadata: dict, artefact: Optional["Artefact"] = None):
        self.module = module
        self.metadata = metadata
        self.artefact = artefact  # the file it was loaded from (its pre-flight checks), if any

    def __call__(self, positions, boxvectors=None):
        with typed_errors():
            return self.module(*self._inputs(positions, boxvectors))

    def energy_and_forces(self, positions, boxvectors=None):
        with typed_errors():
            return self.module.energy_and_forces(*self._inputs(positions, boxvectors))

    def energy_forces_features(self, positions, boxvectors=None):
        with typed_errors():
            return self.module.energy_forces_features(*self._inputs(positions, boxvectors))

    def responses(self, s, v, positions):
        positions = self._nm(positions, "positions")
        frames = list(positions.shape[:-2])
        n, f = int(self.module.n_atoms), int(self.module.n_features)
        expected = {"s": frames + [n, f], "v": frames + [n, 3, f]}
        for name, features in (("s", s), ("v", v)):
            if not isinstance(features, torch.Tensor) or list(features.shape) != expected[name]:
                got = list(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
                raise InputError(
                    f"responses: {name} must be a tensor {expected[name]} for positions {list(positions.shape)}, "
                    f"not {got}: give the features energy_forces_features returned for these positions"
                )
        with typed_errors():
            return self.module.responses(s.to(self.dtype), v.to(self.dtype), positions)

    def properties(self, positions, boxvectors=None):
        with typed_errors():
            return self.module.properties(*self._inputs(positions, boxvectors))

    def _inputs(self, positions, boxvectors):
        positions = self._nm(positions, "positions")
        n = int(self.module.n_particles)
        if positions.dim() not in (2, 3) or positions.shape[-2:] != (n, 3):
            whose = (
                f"every particle of the system it was exported for, its {int(self.module.n_atoms)} atoms among them"
                if n != int(self.module.n_atoms)
                else "the particles the model was exported for"
            )
            raise TopologyMismatchError(
                f"positions must be [N, 3] or [B, N, 3] with N = {n} ({whose}), not {list(positions.shape)}; for "
                "another system, export the model for it with painn-export --pdb"
            )
        box = None if boxvectors is None else self._nm(boxvectors, "boxvectors")
        _check_nm(positions, box)  # (every call: a notebook reuses one Model, and Angstrom is the likeliest mistake)
        return positions, box

    def _nm(self, x, name: str) -> torch.Tensor:
        """``x`` as a tensor: floating-point tensors as they are, arrays and OpenMM quantities in the model's dtype
        and device."""
        if isinstance(x, torch.Tensor):
            if not x.is_floating_point():
                raise InputError(f"{name} must be floating-point coordinates in nm, not a {x.dtype} tensor")
            return x
        unit = sys.modules.get("openmm.unit")  # (an OpenMM quantity exists only once openmm.unit is imported)
        if unit is not None and isinstance(x, unit.Quantity):
            try:
                x = x.value_in_unit(unit.nanometer)
            except TypeError as exc:
                raise InputError(f"{name} must be a length (nm): {exc}") from None
        try:
            if x is None:
                raise TypeError
            array = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{name} must be coordinates in nm (an array [N, 3]), not {type(x).__name__}") from None
        return torch.as_tensor(array, dtype=self.dtype, device=self.device)

    @property
    def dtype(self) -> torch.dtype:
        return self.module.dtype_marker.dtype

    @property
    def device(self) -> torch.device:
        return self.module.dtype_marker.device

    @property
    def n_atoms(self) -> int:
        return int(self.module.n_atoms)

    def to(self, *args, **kwargs) -> "Model":
        """A copy on another device or in another dtype (``torch.float64`` for Hessians and minimisation)."""
        import io

        buffer = io.BytesIO()
        torch.jit.save(self.module, buffer)
        buffer.seek(0)
        module = torch.jit.load(buffer).to(*args, **kwargs)
        module.called = False  # a copy not yet called (PaiNNForceField.forward)
        return Model(module, self.metadata, self.artefact)


#: How many atoms of the first frame :func:`_check_nm` measures the nearest neighbours of.
UNITS_SAMPLE_ATOMS = 128
#: No two atoms of a real structure are closer (nm; the H-H bond is 0.074).
CLOSEST_NM = 0.07


def _check_nm(positions: torch.Tensor, box: Optional[torch.Tensor] = None) -> None:
    """Warn when the first frame's atoms are so far apart that its positions are probably in Angstrom, or so
    close that they overlap: the median nearest-neighbour distance of up to 128 of its atoms, spread over the
    frame (minimum image in a ``box``), computed where the positions are."""
    from ..neighbors import minimum_image
    from ..structures import MIN_DISTANCE_NM, TOO_FAR_NM

    frame = positions.detach().reshape(-1, positions.shape[-2], 3)[0].to(torch.float64)
    n = frame.shape[0]
    if n < 2:
        return
    sample = torch.linspace(0, n - 1, min(n, UNITS_SAMPLE_ATOMS), device=frame.device).round().long()
    distances = torch.cdist(frame[sample], frame)
    distances[torch.arange(len(sample), device=frame.device), sample] = float("inf")
    nearest = distances.min(dim=1).values
    cell = None if box is None or box.shape[-2:] != (3, 3) else box.detach().reshape(-1, 3, 3)[0].to(torch.float64)
    if cell is not None and not bool(torch.any(cell[0, 1:] != 0.0) or cell[1, 2] != 0.0):  # (reduced form only)
        imaged = torch.linalg.norm(minimum_image(frame[None] - frame[sample][:, None], cell), dim=-1)
        imaged[torch.arange(len(sample), device=frame.device), sample] = float("inf")
        imaged = imaged.min(dim=1).values
        # atoms unwrapped by whole box vectors have their neighbours among the images, none closer than a bond;
        # Angstrom positions folded into a box in nm make a gas of atoms at random distances, some overlapping
        if float(imaged.min()) >= CLOSEST_NM:
            nearest = imaged
    if not bool(torch.isfinite(nearest).all()):
        return  # (NaN positions: the model's own check)
    median = float(nearest.median())
    if median > TOO_FAR_NM:
        warnings.warn(
            f"the atoms' nearest neighbours are {median:.2f} nm away (median), where bonded atoms are 0.1-0.2 nm "
            f"apart: are the positions in Angstrom? The model takes nm (or an OpenMM Quantity)",
            UserWarning,
            stacklevel=4,
        )
    elif median < MIN_DISTANCE_NM:
        warnings.warn(
            f"the atoms' nearest neighbours are {median:.4f} nm away (median), where bonded atoms are 0.1-0.2 nm "
            f"apart: the atoms overlap, or the positions are in a unit 10 times too large (the model takes nm)",
            UserWarning,
            stacklevel=4,
        )


def read_metadata(path) -> dict:
    """The metadata of an exported artefact, read from its zip archive without loading the model."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(f"/extra/{md.METADATA_FILE}")]
            if names:
                return json.loads(archive.read(names[0]))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        kind = what_file(path)
        if kind == "an incomplete or damaged zip archive":
            raise CheckpointError(
                f"{path} is {kind} (a copy cut short?): copy it again, or export the model again with painn-export"
            ) from None
        if kind and not zipfile.is_zipfile(path):  # another kind of file; else a damaged one
            raise CheckpointError(f"{path} is {kind}, not an exported model; {MODEL_FILE_FIX}") from None
        raise CheckpointError(
            f"cannot read {path} as an exported model ({exc}); is the file complete? Otherwise {EXPORT_AGAIN}"
        ) from exc
    kind = what_file(path)
    if kind == "a TorchScript model":
        raise CheckpointError(f"{path} is a TorchScript file without painn-deploy metadata; {EXPORT_AGAIN}")
    if kind and "torch.save" in kind:  # (the commands and MLPotential take checkpoints; this reads artefacts only)
        raise CheckpointError(
            f"{path} is {kind}, not an exported model: export it with painn-export (painn-simulate, painn-harmonic "
            "and OpenMM-ML's MLPotential('painn', model=...) also take the checkpoint itself)"
        )
    raise CheckpointError(f"{path} is {kind or 'a zip archive'}, not an exported model; {MODEL_FILE_FIX}")


def load(path, device: str = "cpu") -> Model:
    """Open an exported artefact and load its model: ``Artefact(path).load(device)``."""
    return Artefact(path).load(device)


def load_metadata(path) -> dict:
    """The metadata of an exported artefact (checked to be of the current format)."""
    return Artefact(path).metadata
