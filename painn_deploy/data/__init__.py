"""Data ingestion: rMD17-style npz and anything ASE reads, converted to model units here only.

Model units: Angstrom, eV, eV/Angstrom, e*Angstrom, Angstrom^3.
"""

import math
import warnings
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np

from .. import elements, units
from ..errors import DataWarning, InputError, UnitsError, UnknownElementError
from ..files import file_sha256, require_file, what_file

NPZ_KEYS = {"energy": "energies", "forces": "forces", "dipole": "dipoles", "polarizability": "polarizabilities"}
#: Other names read for an npz array: those of the original MD17 and sGDML files (same units as rMD17)
NPZ_ALIASES = {"nuclear_charges": ("z",), "coords": ("R",), "energies": ("E",), "forces": ("F",)}
#: The singular of the npz names, for the near misses (difflib finds 'energy' too far from 'energies')
NPZ_SINGULAR = {"energies": "energy", "dipoles": "dipole", "polarizabilities": "polarizability", "coords": "coord"}
DATA_FILE_FIX = "give reference data: an .npz (nuclear_charges, coords, energies, ...) or a file ASE reads (.xyz)"


@dataclass
class FileUnits:
    """Units of the quantities in a data file.  ``energy`` None: the format's convention, kcal/mol for an
    rMD17-style .npz and eV (ASE's) for the files ASE reads (:meth:`for_format`).  ``forces`` None: energy/length;
    quantum-chemistry programs often write Hartree/Bohr beside coordinates in Angstrom."""

    length: str = "Angstrom"
    energy: Optional[str] = None
    dipole: str = "e*Angstrom"
    polarizability: str = "Angstrom^3"
    forces: Optional[str] = None

    def for_format(self, npz: bool) -> "FileUnits":
        return self if self.energy else replace(self, energy="kcal/mol" if npz else "eV")

    def describe(self) -> str:
        return (
            f"lengths in {self.length}, energies in {self.energy}, forces in {self.force_unit}, dipoles in "
            f"{self.dipole}, polarizabilities in {self.polarizability}"
        )

    @property
    def force_unit(self) -> str:
        return self.forces or f"{self.energy}/{self.length}"

    def factors(self) -> dict:
        """Multiplicative factors file unit -> model unit for every quantity."""
        tables = (
            ("length", self.length, units.LENGTH_TO_ANGSTROM),
            ("energy", self.energy, units.ENERGY_TO_EV),
            ("forces", self.force_unit, units.FORCE_TO_EV_PER_ANGSTROM),
            ("dipole", self.dipole, units.DIPOLE_TO_E_ANGSTROM),
            ("polarizability", self.polarizability, units.POLARIZABILITY_TO_ANGSTROM3),
        )
        out = {}
        for name, unit, table in tables:
            if unit not in table:
                raise InputError(f"unknown {'force' if name == 'forces' else name} unit {unit!r}; choose one of "
                                 f"{', '.join(table)}")  # fmt: skip
            out[name] = table[unit]
        return out


@dataclass
class MoleculeDataset:
    """Frames of molecules in model units.  All frames share ``atomic_numbers`` [N].

    positions [M, N, 3] (A); energy [M] (eV); forces [M, N, 3] (eV/A); dipole [M, 3] (e*A);
    polarizability [M, 3, 3] (A^3); absent targets are None.
    """

    atomic_numbers: np.ndarray
    positions: np.ndarray
    energy: Optional[np.ndarray] = None
    forces: Optional[np.ndarray] = None
    dipole: Optional[np.ndarray] = None
    polarizability: Optional[np.ndarray] = None
    source: str = ""
    sha256: str = ""
    units: Optional[FileUnits] = None  # the file's, as read

    def __len__(self) -> int:
        return self.positions.shape[0]

    def target(self, name: str) -> Optional[np.ndarray]:
        if name not in NPZ_KEYS:
            raise InputError(f"unknown target {name!r}; the targets are {', '.join(NPZ_KEYS)}")
        return getattr(self, name)

    def require(self, targets) -> None:
        missing = [t for t in targets if self.target(t) is None]
        if "energy" in missing:  # structures without reference data: nothing to learn from
            kind = what_file(self.source) if self.source else ""
            raise InputError(
                f"{self.source} has no energies: it holds structures only{f' ({kind})' if kind else ''}. Training "
                f"needs reference energies and forces; {DATA_FILE_FIX}"
            )
        if missing:
            raise InputError(
                f"{self.source} has no {', '.join(missing)} data; drop {'them' if len(missing) > 1 else 'it'} from "
                f"--targets or use a file that contains {'them' if len(missing) > 1 else 'it'}"
            )


def load_npz(path, file_units: Optional[FileUnits] = None, targets=tuple(NPZ_KEYS)) -> MoleculeDataset:
    """Read an rMD17-style npz (``nuclear_charges``, ``coords``, ``energies``, ``forces``, optional
    ``dipoles``, ``polarizabilities``; of these, only ``targets``) and convert to model units."""
    file_units = (file_units or FileUnits()).for_format(npz=True)
    path = require_file(path, "data file", DATA_FILE_FIX)
    arrays, names = _read_npz(path)
    for key in ("nuclear_charges", "coords", *(NPZ_KEYS[t] for t in NPZ_KEYS if t in targets)):
        if key in arrays:
            continue
        near = _near_miss(key, names)
        if key in ("nuclear_charges", "coords") or near:
            accepted = "; ".join(" or ".join(map(repr, (k, *NPZ_ALIASES.get(k, ())))) for k in NPZ_ARRAYS)
            raise InputError(
                f"{path} has no {key!r} array"
                + (f" but has {near!r}: rename {near!r} to {key!r}" if near else "")
                + f". The file's arrays: {', '.join(map(repr, names)) or 'none'}; the names read: {accepted} "
                "(nuclear_charges and coords are required)"
            )
    f = file_units.factors()
    charges = np.asarray(arrays["nuclear_charges"])
    if charges.dtype.kind == "f" and not np.all(charges == np.round(charges)):
        raise InputError(f"{path}: nuclear_charges are not whole numbers; they must be atomic numbers (1 for H, ...)")
    z = charges.astype(np.int64)
    data = MoleculeDataset(z, np.asarray(arrays["coords"], dtype=np.float64) * f["length"], source=str(path))
    for name, key in NPZ_KEYS.items():
        if key in arrays and name in targets:
            setattr(data, name, np.asarray(arrays[key], dtype=np.float64) * f[name])
    data.sha256, data.units = file_sha256(path), file_units
    _check_dataset(data)
    return data


NPZ_ARRAYS = ("nuclear_charges", "coords", *NPZ_KEYS.values())  # the arrays load_npz reads


def _near_miss(key: str, names) -> Optional[str]:
    """The array of ``names`` most likely meant as ``key`` or one of its aliases (another case, singular for
    plural, a typo), if any."""
    import difflib

    lowered = {name.lower(): name for name in names}
    for wanted in (key, NPZ_SINGULAR.get(key, key), *NPZ_ALIASES.get(key, ())):
        match = difflib.get_close_matches(wanted.lower(), list(lowered), n=1, cutoff=0.8)
        if match:
            return lowered[match[0]]
    return None


def _read_npz(path: Path) -> tuple[dict, list]:
    """The numeric arrays (of :data:`NPZ_ARRAYS`, under their own names or :data:`NPZ_ALIASES`) of an npz archive,
    read without pickle (never loads Python objects), and the names of all its arrays; a file that is not a
    complete npz of numeric arrays is an :class:`InputError` saying what it is instead."""
    kind = what_file(path)
    if kind != "an incomplete or damaged zip archive" and not zipfile.is_zipfile(path):  # (npz: a zip of .npy)
        what = f"is {kind}, not an npz archive" if kind else "is not an npz archive"
        raise InputError(
            f"{path} {what} (named numpy arrays, as numpy.savez writes); check the file name, or give an "
            "ASE-readable file (extxyz, ASE db) with another extension"
        )
    arrays = {}
    alias_of = {alias: key for key, aliases in NPZ_ALIASES.items() for alias in aliases}
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            for key in names:
                if key in alias_of and alias_of[key] not in names:
                    key_read = alias_of[key]
                elif key in NPZ_ARRAYS:
                    key_read = key
                else:  # other arrays (metadata such as 'method') are not used
                    continue
                try:
                    value = archive[key]
                except ValueError as exc:
                    if "pickle" not in str(exc):
                        raise
                    value = None  # an object array: not read (unpickling could run code)
                if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
                    raise InputError(
                        f"{path}: '{key}' is not a numeric array (Python objects or other data are not read); "
                        "data files must hold numeric arrays"
                    )
                arrays[key_read] = value
    except InputError:
        raise
    except Exception as exc:  # zip errors, truncated files, malformed members
        reason = "malformed array data" if "pickle" in str(exc) else f"{type(exc).__name__}: {exc}"
        raise InputError(f"cannot read {path} as an npz file ({reason}); is the file complete?") from None
    return arrays, names


def load_ase(path, file_units: Optional[FileUnits] = None, index=":", targets=tuple(NPZ_KEYS)) -> MoleculeDataset:
    """Read anything ASE reads (extxyz, ASE db, ...) with the units stated by the user.

    Each of ``targets`` comes from the attached calculator results, ``atoms.info`` or ``atoms.arrays`` under its
    name (``energy``, ``forces``, ``dipole``, ``polarizability`` as 3x3 or 9 values), and in an ASE database also
    from a row's ``data`` or key-value pairs.  Other properties are not read.  Default file units: Angstrom and eV
    (ASE's).
    """
    import ase.io

    file_units = (file_units or FileUnits()).for_format(npz=False)
    path = require_file(path, "data file", DATA_FILE_FIX)
    try:
        frames = _read_database(path) if path.suffix == ".db" else ase.io.read(str(path), index=index)
    except Exception as exc:  # ASE raises many kinds on unreadable files
        raise InputError(
            f"cannot read {path} with ASE ({type(exc).__name__}: {exc}); give an rMD17-style .npz or a file ASE "
            "reads (extxyz, ASE db)"
        ) from None
    if not frames:
        raise InputError(f"{path} contains no structures")
    z = frames[0].get_atomic_numbers()
    for k, atoms in enumerate(frames):
        if len(atoms) == len(z) and (atoms.get_atomic_numbers() == z).all():
            continue
        if atoms.get_chemical_formula() != frames[0].get_chemical_formula():
            differs = f"it holds {atoms.get_chemical_formula()}, frame 0 {frames[0].get_chemical_formula()}"
            fix = "painn-train reads one set of atoms per file: write the frames of each molecule to a file of its own"
        else:
            i = int(np.flatnonzero(atoms.get_atomic_numbers() != z)[0])
            differs = (
                f"the same atoms in another order: atom {i + 1} is {atoms.get_chemical_symbols()[i]}, in frame 0 "
                f"{frames[0].get_chemical_symbols()[i]}"
            )
            fix = "reorder the atoms of every frame like frame 0"
        raise InputError(
            f"{path}: all frames must contain the same atoms in the same order, and frame {k} (counted from 0) does "
            f"not: {differs}; {fix}"
        )
    if any(a.pbc.any() for a in frames):
        raise InputError(f"{path} holds periodic structures; training on periodic data is not supported yet")
    f = file_units.factors()

    def value(atoms, name):
        if atoms.calc is not None and name in atoms.calc.results:
            return atoms.calc.results[name]
        return atoms.info.get(name, atoms.arrays.get(name))

    def array(k, name, v, shape):
        v = np.asarray(v, dtype=np.float64)
        if v.size != int(np.prod(shape)):
            six = " (a symmetric tensor in 6 components?)" if name == "polarizability" and v.size == 6 else ""
            raise InputError(
                f"{path}: frame {k}: '{name}' has {v.size} values{six}, expected {' x '.join(map(str, shape)) or 1}"
                + ("; store the full 3 x 3 tensor (or its 9 values, row by row)" if name == "polarizability" else "")
            )
        return v.reshape(shape)

    def collect(name, shape):
        found = [value(a, name) for a in frames]
        missing = [k for k, v in enumerate(found) if v is None]
        if not missing:
            return np.stack([array(k, name, v, shape) for k, v in enumerate(found)])
        if len(missing) < len(frames):
            raise InputError(
                f"{path}: {len(missing)} of {len(frames)} frames have no '{name}' (the first: frame {missing[0]}); "
                f"every frame needs it"
            )
        similar = sorted({key for a in frames[:1] for key in [*a.info, *a.arrays] if name[:5] in key.lower()})
        if similar:  # another program's convention (MACE: REF_energy, REF_forces)
            raise InputError(
                f"{path} has no '{name}' but has {', '.join(map(repr, similar))}: painn-train reads the keys energy, "
                f"forces, dipole and polarizability; rename them (with ASE, for example atoms.info['{name}'] = "
                f"atoms.info.pop('{similar[0]}'), or atoms.arrays for per-atom values)"
            )
        return None

    n = len(z)
    data = MoleculeDataset(
        np.asarray(z, np.int64), np.stack([a.positions for a in frames]) * f["length"], source=str(path)
    )
    for name, shape in (("energy", ()), ("forces", (n, 3)), ("dipole", (3,)), ("polarizability", (3, 3))):
        v = collect(name, shape) if name in targets else None
        if v is not None:
            setattr(data, name, v * f[name])
    data.sha256, data.units = file_sha256(path), file_units
    _check_dataset(data)
    return data


def _read_database(path: Path) -> list:
    """The structures of an ASE database, each row's ``data`` and key-value pairs in ``atoms.info`` (where
    ``ase.io.read`` leaves them out)."""
    import ase.db

    frames = []
    for row in ase.db.connect(str(path)).select():
        atoms = row.toatoms()
        atoms.info.update(row.key_value_pairs)
        atoms.info.update(row.data)
        frames.append(atoms)
    return frames


def load(path, file_units: Optional[FileUnits] = None, targets=tuple(NPZ_KEYS)) -> MoleculeDataset:
    """Read a data file by its extension (``.npz``: rMD17 style; anything else: ASE); of the properties, only
    ``targets``."""
    path = Path(path)
    if path.suffix == ".npz":
        return load_npz(path, file_units, targets)
    return load_ase(path, file_units, targets=targets)


def _check_dataset(d: MoleculeDataset) -> None:
    if np.ndim(d.atomic_numbers) != 1:
        raise InputError(
            f"{d.source}: nuclear_charges have shape {np.shape(d.atomic_numbers)}, expected (atoms,): one atomic "
            "number per atom, the same for every frame"
        )
    m, n = d.positions.shape[:2]
    if m == 0:
        raise InputError(f"{d.source} holds no frames")
    _require_finite(d.source, "coords", d.positions)
    expected = {"energy": (m,), "forces": (m, n, 3), "dipole": (m, 3), "polarizability": (m, 3, 3)}
    if d.positions.shape != (m, len(d.atomic_numbers), 3):
        raise InputError(
            f"{d.source}: coords have shape {d.positions.shape}, expected (frames, {len(d.atomic_numbers)}, 3)"
        )
    for z in sorted(set(int(x) for x in d.atomic_numbers)):
        try:
            elements.symbol(z)
        except UnknownElementError as exc:
            raise InputError(
                f"{d.source}: {exc}; nuclear_charges must hold atomic numbers (1 for H, 6 for C, ...)"
            ) from None
    if d.energy is not None and d.energy.shape == (m, 1):  # one energy per frame as a column (sGDML, MD17)
        d.energy = d.energy.reshape(m)
    for name, shape in expected.items():
        v = d.target(name)
        if v is not None and v.shape != shape:
            raise InputError(f"{d.source}: {name} has shape {v.shape}, expected {shape}")
        if v is not None:
            _require_finite(d.source, name, v)


def _require_finite(source: str, name: str, values: np.ndarray) -> None:
    """Refuse NaN or infinite values in ``values`` [M, ...], naming the first frame that holds one."""
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if bad.any():
        frames = np.flatnonzero(bad)
        raise InputError(
            f"{source}: {name} contains NaN or infinite values in {len(frames)} of {len(values)} frames (the first: "
            f"frame {frames[0]}, counted from 0); remove those frames or recompute them"
        )


#: Ratios of energy changes to what the forces predict that mean other units, for the message.
UNIT_MIXUPS = (
    (1.0 / units.BOHR_TO_ANGSTROM, "forces per Bohr beside lengths in Angstrom"),
    (units.KCAL_PER_MOL_TO_KJ_PER_MOL, "kcal/mol against kJ/mol"),
    (units.ANGSTROM_PER_NM, "forces per nm against per Angstrom"),
    (1.0 / units.KCAL_PER_MOL_TO_EV, "kcal/mol against eV"),
    (units.HARTREE_TO_EV, "Hartree against eV"),
    (units.HARTREE_TO_EV / units.BOHR_TO_ANGSTROM, "Hartree/Bohr against eV/Angstrom"),
    (units.EV_TO_KJ_PER_MOL, "eV against kJ/mol"),
    (units.HARTREE_TO_EV / units.KCAL_PER_MOL_TO_EV, "Hartree against kcal/mol"),
    (units.HARTREE_TO_EV / units.KCAL_PER_MOL_TO_EV / units.BOHR_TO_ANGSTROM, "Hartree/Bohr against kcal/mol/Angstrom"),
)
#: Correlations between the energy changes and the forces' prediction from which the ratio of the two is judged,
#: and the ratios accepted: within 1/2-2 where they correlate, within 0.75-1.33 (which refuses forces per Bohr
#: read per Angstrom, 1.89) where they correlate so well that noise cannot shrink the ratio by a quarter.
UNIT_RATIO_BANDS = ((0.95, (0.75, 1.0 / 0.75)), (0.8, (0.5, 2.0)))
#: A correlation below which, over at least this many close pairs, the energies do not follow the forces at all
#: (consistent data give 0.98; energies shuffled against their frames -0.06 to 0.06)
NO_CORRELATION, NO_CORRELATION_PAIRS = 0.3, 50
#: Force RMS (eV/Angstrom) outside which data are unlikely to be molecules near thermal equilibrium: about 1 at
#: 300 K and 0.3 at 30 K (GFN2-xTB MD: ethanol 0.91-1.01, aspirin 1.17); an eV file read as kcal/mol gives 1/23 of
#: that (aspirin 0.051, ethanol 0.044), kcal/mol read as eV 23 times it
FORCE_RMS_RANGE_EV_A = (0.2, 10.0)
#: Median dipole magnitude (e*Angstrom) above which dipoles are unlikely to be in the unit given: neutral molecules
#: rarely exceed 7 Debye (GFN2-xTB MD: ethanol 0.41, aspirin 0.48); Debye read as e*Angstrom gives 4.8 times
#: that (ethanol 1.98, aspirin 2.33)
DIPOLE_MEDIAN_MAX_E_A = 1.5
#: Isotropic polarizability per atom (Angstrom^3, median over frames) outside which polarizabilities are unlikely
#: to be in the unit given: GFN2-xTB gives 0.25 (ethanol) and 0.58 (aspirin), about half of experiment; Bohr^3
#: read as Angstrom^3 gives 6.75 times that (ethanol 1.71), Angstrom^3 read as Bohr^3 0.15 times.  The upper
#: bound holds for molecules of H, C, N, O and F only (heavier atoms such as I reach 5 per atom).
POLARIZABILITY_PER_ATOM_RANGE_A3 = (0.1, 1.5)
LIGHT_ELEMENTS = (1, 6, 7, 8, 9)
#: Typical values of the quantities above, to rank the units that would make data plausible
TYPICAL = {"forces": 1.0, "dipole": 0.4, "polarizability": 0.6}
#: Median distance (Angstrom) from an atom to its nearest neighbour: about 1.1 in organic molecules, 2.9 in metal
#: clusters, 3.8 in noble-gas clusters; a factor of 10 (nm against Angstrom) or 1/1.89 (Angstrom read as Bohr)
#: falls outside
NEAREST_NEIGHBOUR_RANGE_A = (0.65, 6.0)
#: Atoms closer than this (Angstrom) overlap (duplicated atoms): the shortest bond, H-H, is 0.74, and hot MD
#: compresses bonds to about 0.5
MIN_DISTANCE_A = 0.2
#: Median distance (Angstrom) from a hydrogen atom to its nearest neighbour, a non-metal, above which the
#: coordinates are not in Angstrom: bonded hydrogens are 0.74 (H2) to 1.7 (H-Te) Angstrom from their partner; in
#: Bohr, O-H reads 1.81 and C-H 2.06
HYDROGEN_NEAREST_MAX_A = 1.78
#: H, B, C, N, O, F, Si, P, S, Cl, As, Se, Br, Te, I: the partners of the hydrogens that check judges
NON_METALS = (1, 5, 6, 7, 8, 9, 14, 15, 16, 17, 33, 34, 35, 52, 53)


#: Frame pairs nearer than this RMS displacement per atom (Angstrom) are near enough for the trapezoid rule.
CLOSE_PAIR_RMS_A = 0.15


def _nearest_frames(flat: np.ndarray, rows: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Index of each frame's nearest other frame and the distance to it, for frames [M, D] (brute force in blocks
    of rows: faster than a k-d tree in D = 3N dimensions)."""
    sq = np.einsum("md,md->m", flat, flat)
    nearest, distance = np.empty(len(flat), dtype=int), np.empty(len(flat))
    for start in range(0, len(flat), rows):
        block = slice(start, min(len(flat), start + rows))
        d2 = sq[block, None] + sq[None, :] - 2.0 * flat[block] @ flat.T
        d2[np.arange(d2.shape[0]), np.arange(block.start, block.stop)] = np.inf
        nearest[block] = d2.argmin(axis=1)
        distance[block] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return nearest, distance


def check_units(d: MoleculeDataset, max_frames: int = 20_000) -> None:
    """Catch data read in the wrong units, before hours of training on them.

    - Forces must be minus the gradient of the energies in the units given.  For each frame whose nearest frame
      is within CLOSE_PAIR_RMS_A per atom, the energy change is compared with the trapezoid rule,
      -(F_a + F_b)/2 . (x_b - x_a).  With at least 10 such pairs, a least-squares ratio outside the band of
      UNIT_RATIO_BANDS for their correlation is an InputError, and so are energy changes that anticorrelate with
      r <= -0.8 (gradients stored as forces).  Consistent GFN2-xTB data give 1.00 (ethanol) and 0.96 (aspirin),
      r = 0.98; forces in Hartree/Bohr beside energies in eV give 51.  Data without close pairs (a few frames, or
      frames not from MD) are not judged.
    - A force RMS outside FORCE_RMS_RANGE_EV_A is warned about: a unit mistake that scales energies and forces
      alike (an eV file read as kcal/mol) keeps them consistent but not plausible.
    - So are dipoles above DIPOLE_MEDIAN_MAX_E_A and polarizabilities outside POLARIZABILITY_PER_ATOM_RANGE_A3.
      Each message names the unit in which the data would be plausible and the option that gives it.
    """
    where = f"{d.source} ({d.units.describe()})" if d.units else d.source
    _check_lengths(d, where)
    _check_response(d, where)
    if d.energy is None or d.forces is None or len(d) < 2:
        return
    take = np.unique(np.linspace(0, len(d) - 1, min(len(d), max_frames)).astype(int))
    x, energy, forces = d.positions[take], d.energy[take], d.forces[take]
    nearest, distance = _nearest_frames(x.reshape(len(x), -1))
    close = np.flatnonzero((distance > 0) & (distance / np.sqrt(x.shape[1]) < CLOSE_PAIR_RMS_A))
    j = nearest[close]
    predicted = -0.5 * np.einsum("mij,mij->m", forces[close] + forces[j], x[j] - x[close])
    actual = energy[j] - energy[close]
    rms = float(np.sqrt(np.mean(forces**2)))
    if len(close) >= 10 and np.std(predicted) > 0 and np.std(actual) > 0:
        r = float(np.corrcoef(predicted, actual)[0, 1])
        ratio = float(np.dot(predicted, actual) / np.dot(predicted, predicted))
        if r <= -UNIT_RATIO_BANDS[-1][0]:
            raise InputError(
                f"the forces of {where} are the gradient of its energies, not minus it: between nearby frames the "
                f"energy changes have the opposite sign of what the forces predict (correlation {r:.2f}). Store "
                f"forces = -dE/dx (negate the gradients)"
            )
        low, high = next((band for least, band in UNIT_RATIO_BANDS if r >= least), (0.0, math.inf))
        if ratio <= 0.0 or (len(close) >= NO_CORRELATION_PAIRS and r < NO_CORRELATION):  # (energies unrelated)
            raise InputError(
                f"the energies of {where} do not follow its forces: between nearby frames the energy changes do not "
                f"correlate with what the forces predict (correlation {r:.2f}). Are the energies in the order of the "
                f"frames, and the forces those of the same frames?"
            )
        if not low <= ratio <= high:
            factor = max(ratio, 1 / ratio)
            mixups = sorted(UNIT_MIXUPS, key=lambda known: abs(math.log(known[0] / factor)))
            nearest, what = mixups[0]
            fix = _ratio_fix(d.units, ratio, (low, high), rms)
            near = f"{factor:.4g} is close to {nearest:.4g}, {what}" if abs(math.log(nearest / factor)) < 0.2 else ""
            raise InputError(
                f"the forces of {where} are not minus the gradient of its energies: between nearby frames the energy "
                f"changes are {factor:.4g} times {'larger' if ratio > 1 else 'smaller'} than the "
                f"forces predict (correlation {r:.2f}). "
                + (f"{near}: give {fix}. " if near and fix else f"{near}. " if near else "")
                + (f"{fix} would make them agree. " if fix and not near else "")
                + f"Give the units the file uses with --energy-unit, --length-unit and --force-unit (forces are "
                f"read in energy/length units unless --force-unit), or convert the forces to match the energies "
                f"(known mix-ups: {'; '.join(f'{k:.4g}: {text}' for k, text in mixups)})"
            )
    low, high = FORCE_RMS_RANGE_EV_A
    if not low <= rms <= high:
        guess = ""
        if d.units is not None:
            quantity = "energy" if d.units.forces is None else "force"
            table = units.ENERGY_TO_EV if quantity == "energy" else units.FORCE_TO_EV_PER_ANGSTROM
            given = d.units.energy if quantity == "energy" else d.units.forces
            guess = _unit_guess(quantity, given, table, rms, FORCE_RMS_RANGE_EV_A, TYPICAL["forces"], "eV/Angstrom")
        warnings.warn(
            f"the forces of {where} have an RMS of {rms:.3g} eV/Angstrom as read; molecules near thermal "
            f"equilibrium have {low:g}-{high:g} (about 1 at 300 K, 0.3 at 30 K). "
            + (guess or "If the file's units are not the ones given, give them with --energy-unit and --length-unit")
            + (
                ". Structures near a minimum, or colder than 30 K, have smaller forces: then the units may be right"
                if rms < low
                else ""
            ),
            DataWarning,
            stacklevel=2,
        )


def _unit_guess(quantity: str, given: str, table: dict, value: float, plausible, typical: float, unit: str) -> str:
    """The units of ``table`` other than ``given`` in which ``value`` (model units, as read in ``given``) would be
    plausible, the one nearest ``typical`` first, as the fix for the user; '' if none."""
    if given not in table:
        return ""
    read = {other: value * factor / table[given] for other, factor in table.items() if other != given}
    fits = sorted(
        (other for other, v in read.items() if plausible[0] <= v <= plausible[1]),
        key=lambda other: abs(math.log(read[other] / typical)),
    )
    if not fits:
        return ""
    best = fits[0]
    others = f" (or {', '.join(fits[1:])})" if len(fits) > 1 else ""
    return f"A file in {best} read as {given}? In {best} this is {read[best]:.3g} {unit}: give --{quantity}-unit {best}{others}"


def _ratio_fix(file_units: Optional[FileUnits], ratio: float, band, rms: float) -> str:
    """The --energy-unit and --force-unit options (those that differ from ``file_units``) that bring the ratio of
    energy changes to the forces' prediction into ``band``, fewest options first and a plausible force RMS
    preferred; '' if none or the file units are not known."""
    if file_units is None or file_units.energy not in units.ENERGY_TO_EV:
        return ""
    energy, force = file_units.energy, file_units.force_unit
    if force not in units.FORCE_TO_EV_PER_ANGSTROM:
        return ""
    candidates = []
    for new_energy, to_ev in units.ENERGY_TO_EV.items():
        for new_force, to_ev_per_a in units.FORCE_TO_EV_PER_ANGSTROM.items():
            scale = to_ev_per_a / units.FORCE_TO_EV_PER_ANGSTROM[force]
            new_ratio = ratio * to_ev / units.ENERGY_TO_EV[energy] / scale
            if not band[0] <= new_ratio <= band[1]:
                continue
            options = [f"--energy-unit {new_energy}"] if new_energy != energy else []
            if new_force != (file_units.forces or f"{new_energy}/{file_units.length}"):
                options.append(f"--force-unit {new_force}")
            implausible = not FORCE_RMS_RANGE_EV_A[0] <= rms * scale <= FORCE_RMS_RANGE_EV_A[1]
            if options:
                candidates.append((implausible, len(options), abs(math.log(new_ratio)), " ".join(options)))
    return min(candidates)[3] if candidates else ""


def _check_response(d: MoleculeDataset, where: str) -> None:
    """Warn about dipoles and polarizabilities implausible for molecules in the units given (DIPOLE_MEDIAN_MAX_E_A,
    POLARIZABILITY_PER_ATOM_RANGE_A3)."""
    file_units = d.units or FileUnits()
    if d.dipole is not None and (median := float(np.median(np.linalg.norm(d.dipole, axis=1)))) > DIPOLE_MEDIAN_MAX_E_A:
        guess = _unit_guess(
            "dipole", file_units.dipole, units.DIPOLE_TO_E_ANGSTROM, median, (0.0, DIPOLE_MEDIAN_MAX_E_A),
            TYPICAL["dipole"], "e*Angstrom",
        )  # fmt: skip
        warnings.warn(
            f"the dipoles of {where} have a median magnitude of {median:.3g} e*Angstrom "
            f"({median / units.DEBYE_TO_E_ANGSTROM:.3g} Debye) as read; neutral molecules rarely exceed "
            f"{DIPOLE_MEDIAN_MAX_E_A:g} ({DIPOLE_MEDIAN_MAX_E_A / units.DEBYE_TO_E_ANGSTROM:.2g} Debye). "
            + (guess or "If the file's dipole unit is not the one given, give it with --dipole-unit"),
            DataWarning,
            stacklevel=3,
        )
    if d.polarizability is None:
        return
    n_atoms = len(d.atomic_numbers)
    per_atom = float(np.median(np.trace(d.polarizability, axis1=1, axis2=2))) / 3.0 / n_atoms
    low, high = POLARIZABILITY_PER_ATOM_RANGE_A3
    if not set(int(z) for z in d.atomic_numbers) <= set(LIGHT_ELEMENTS):
        high = math.inf
    if not low <= per_atom <= high:
        guess = _unit_guess(
            "polarizability", file_units.polarizability, units.POLARIZABILITY_TO_ANGSTROM3, per_atom, (low, high),
            TYPICAL["polarizability"], "Angstrom^3 per atom",
        )  # fmt: skip
        warnings.warn(
            f"the polarizabilities of {where} have an isotropic mean (trace/3) of {per_atom:.3g} Angstrom^3 per "
            f"atom (median over frames) as read; molecules have "
            + (f"{low:g}-{high:g} (of H, C, N, O, F). " if high < math.inf else f"at least {low:g}. ")
            + (guess or "If the file's polarizability unit is not the one given, give it with --polarizability-unit"),
            DataWarning,
            stacklevel=3,
        )


def _check_lengths(d: MoleculeDataset, where: str) -> None:
    """Refuse coordinates whose atoms are not about a bond length from their nearest neighbour (median over the
    atoms of the first frames): the length unit given is not the file's."""
    from ..structures import nearest_neighbours

    frames = d.positions[: min(len(d), 10)]
    if frames.shape[1] < 2 or not len(frames):
        return
    found = [nearest_neighbours(f) for f in frames]  # (distance, index) of each atom's nearest atom
    nearest = np.stack([distance for distance, _ in found])
    typical = float(np.median(nearest))
    low, high = NEAREST_NEIGHBOUR_RANGE_A
    if not low <= typical <= high:
        raise UnitsError(
            f"the atoms of {where} are {typical:.3g} Angstrom from their nearest neighbour (median) as read, where "
            f"bonded atoms are about 1-3 Angstrom apart: the coordinates are not in the length unit given. Give "
            f"the file's length unit with --length-unit (Angstrom, nm or Bohr)"
        )
    frame, atom = np.unravel_index(int(np.argmin(nearest)), nearest.shape)
    if nearest[frame, atom] < MIN_DISTANCE_A:
        others = np.linalg.norm(frames[frame] - frames[frame][atom], axis=1)
        others[atom] = np.inf
        a, b = sorted((int(atom), int(np.argmin(others))))
        raise InputError(
            f"{d.source}: in frame {frame}, atoms {a + 1} and {b + 1} are {nearest[frame, atom]:.3f} Angstrom apart "
            f"(overlapping atoms; bonds are 0.74 Angstrom and longer): fix the data (e.g. remove duplicated atoms)"
        )
    # hydrogens bonded to non-metals (in metal hydrides H-M reaches 2.5 Angstrom)
    z = np.asarray(d.atomic_numbers)
    partners = np.stack([z[index[:, 1]] for _, index in found])
    covalent = (z == 1)[None, :] & np.isin(partners, NON_METALS)
    if covalent.any() and (h := float(np.median(nearest[covalent]))) > HYDROGEN_NEAREST_MAX_A:
        raise UnitsError(
            f"the hydrogen atoms of {where} are {h:.3g} Angstrom from their nearest neighbour (median) as read, "
            f"where bonded hydrogens are 0.74-1.7 Angstrom from their partner: the coordinates are not in the "
            f"length unit given (Bohr read as Angstrom gives 1.81 for O-H, 2.06 for C-H). Give the file's length "
            f"unit with --length-unit (Angstrom, nm or Bohr), and --force-unit if the forces use another length"
        )


def make_split(n_frames: int, n_train: int, n_val: int, mode: str = "contiguous", seed: int = 0) -> dict:
    """Indices {train, val, test}.  ``contiguous``: consecutive blocks (train first, then
    validation, then test), as correlated MD frames need; ``random``: a seeded permutation."""
    if n_train + n_val >= n_frames:
        raise InputError(
            f"n_train + n_val = {n_train + n_val} leaves no test frames out of {n_frames}; lower --n-train or "
            f"--n-val to at most {n_frames - 1} together"
        )
    if mode == "contiguous":
        order = np.arange(n_frames)
    elif mode == "random":
        order = np.random.default_rng(seed).permutation(n_frames)
    else:
        raise InputError(f"split mode must be 'contiguous' or 'random', not {mode!r}")
    return {
        "train": order[:n_train].copy(),
        "val": order[n_train : n_train + n_val].copy(),
        "test": order[n_train + n_val :].copy(),
    }


def save_split(split: dict, path) -> None:
    np.savez(path, **{k: np.asarray(v, dtype=np.int64) for k, v in split.items()})


def load_split(path) -> dict:
    d = np.load(path)
    return {k: d[k] for k in ("train", "val", "test")}


def statistics(data: MoleculeDataset, indices: np.ndarray, elements) -> dict:
    """Statistics fitted on training frames: per-element reference energies (eV, least squares),
    an energy scale (RMS force component, eV/A, i.e. eV per Angstrom of displacement) and the
    per-atom isotropic polarizability mean and scale (A^3)."""
    stats = {}
    n_atoms = len(data.atomic_numbers)
    if data.energy is not None:
        counts = np.array([[np.sum(data.atomic_numbers == z) for z in elements]], dtype=np.float64)
        e = data.energy[indices]
        a = np.repeat(counts, len(e), axis=0)
        ref, *_ = np.linalg.lstsq(a, e, rcond=None)
        stats["element_energies"] = ref.tolist()
        residual = e - a @ ref
        scale = (
            np.sqrt(np.mean(data.forces[indices] ** 2))
            if data.forces is not None
            else np.std(residual) / np.sqrt(n_atoms)
        )
        stats["energy_scale"] = float(max(scale, 1e-3))
    if data.polarizability is not None:
        iso = np.trace(data.polarizability[indices], axis1=1, axis2=2) / 3.0
        stats["polarizability_isotropic_mean"] = float(np.mean(iso) / n_atoms)
        stats["polarizability_scale"] = float(max(np.std(data.polarizability[indices]), 1e-3))
    return stats
