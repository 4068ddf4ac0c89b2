"""Structures: reading PDB files, the molecules of a structure, and periodic boxes of copies of one molecule
(for liquids, benchmarks)."""

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from . import units
from .elements import masses_amu, symbol
from .errors import InputError, UnitsError
from .files import require_file, what_file


def load_pdb(pdb_path):
    """Read a PDB file: (openmm.app.PDBFile, atomic numbers [N], positions [N, 3] in nm, box vectors
    [3, 3] in nm or None).  Atoms without an element are an error naming the atom."""
    from openmm import app, unit

    require_file(
        pdb_path, "structure file", "give a PDB file (painn_deploy/resources/ holds ethanol.pdb and aspirin.pdb)"
    )
    kind = what_file(pdb_path)
    if kind and kind != "a PDB structure":  # (an XYZ file, a model given in the structure's place, ...)
        convert = " (ase convert FILE.xyz FILE.pdb, or Open Babel, writes one)" if "XYZ" in kind else ""
        raise InputError(f"{pdb_path} is {kind}, not a PDB structure: give a PDB file{convert}")
    check_element_columns(pdb_path)
    try:
        pdb = app.PDBFile(str(pdb_path))
    except Exception as exc:  # openmm raises plain Exceptions of several kinds on bad PDBs
        raise InputError(
            f"cannot read {pdb_path} as a PDB file ({type(exc).__name__}: {exc}); give a PDB file with ATOM or HETATM "
            "records and element columns (OpenMM's PDBFile or Modeller write such files)"
        ) from exc
    z = []
    for atom in pdb.topology.atoms():
        if atom.element is None:
            raise InputError(
                f"{pdb_path}: atom {atom.index + 1} ({atom.name} in {atom.residue.name}) has no element; "
                f"fill in the element column (columns 77-78) of the PDB file"
            )
        z.append(int(atom.element.atomic_number))
    positions = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer), dtype=np.float64)
    box = pdb.topology.getPeriodicBoxVectors()
    box_nm = None if box is None else np.asarray([[v.value_in_unit(unit.nanometer) for v in vec] for vec in box])
    return pdb, z, positions, box_nm


def check_element_columns(pdb_path) -> None:
    """Refuse an element column (77-78) of a PDB atom that holds no chemical element: OpenMM would silently guess
    the element from the atom name instead."""
    try:
        lines = Path(pdb_path).read_text(errors="replace").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read {pdb_path}: {exc.strerror}") from exc
    atom = 0
    for number, line in enumerate(lines, start=1):
        if line.startswith("ENDMDL"):  # OpenMM takes the atoms of the first model
            break
        if not line.startswith(("ATOM", "HETATM")):
            continue
        atom += 1
        text = line[76:78].strip()
        if text and not _is_element(text):
            raise InputError(
                f"{pdb_path}, line {number}: atom {atom} ({line[12:16].strip()} in {line[17:20].strip()}) has "
                f"'{text}' in its element column (columns 77-78), which is not a chemical element; write the "
                f"element's symbol there (e.g. C, H, O)"
            )


def _is_element(text: str) -> bool:
    from .elements import atomic_number
    from .errors import UnknownElementError

    try:
        atomic_number(text)
    except UnknownElementError:
        return False
    return True


def read_pdb(pdb_path):
    """Atomic numbers [N], positions [N, 3] (nm) and box vectors [3, 3] (nm, or None) of a PDB file."""
    _, z, positions, box_nm = load_pdb(pdb_path)
    return z, positions, box_nm


def random_rotation(rng=0) -> np.ndarray:
    """A uniformly random proper rotation matrix [3, 3]; ``rng`` is a numpy Generator or a seed."""
    rng = np.random.default_rng(rng)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def molecular_box(
    atomic_numbers: Sequence[int],
    positions_nm: np.ndarray,
    n_molecules: int,
    density_g_per_cm3: Optional[float] = None,
    spacing_nm: Optional[float] = None,
    seed: int = 0,
    min_distance_nm: float = 0.18,
    attempts: int = 1000,
):
    """Copies of a molecule on a cubic lattice with random orientations, in a periodic cubic box, each copy
    turned until its atoms are at least ``min_distance_nm`` from those placed before (across the box's faces too;
    at most ``attempts`` orientations per copy, else a ValueError: too dense for this simple packing).

    Give either the mass density (g/cm^3) or the lattice spacing (nm).  Returns atomic numbers
    [n_molecules * N], positions [n_molecules * N, 3] (nm) and box vectors [3, 3] (nm).
    """
    rng = np.random.default_rng(seed)
    mol = np.asarray(positions_nm, dtype=np.float64)
    mol = mol - mol.mean(axis=0)
    n_side = int(np.ceil(n_molecules ** (1.0 / 3.0) - 1e-9))
    if spacing_nm is None:
        if density_g_per_cm3 is None:
            raise ValueError("give density_g_per_cm3 or spacing_nm")
        grams = masses_amu(atomic_numbers).sum() * n_molecules / units.AVOGADRO_PER_MOL
        volume_nm3 = grams / density_g_per_cm3 * 1e21
        spacing_nm = volume_nm3 ** (1.0 / 3.0) / n_side
    sites = np.array([(i, j, k) for i in range(n_side) for j in range(n_side) for k in range(n_side)])[:n_molecules]
    length = n_side * spacing_nm
    placed: dict = {}  # lattice site -> the copy placed there
    # the sites whose copies can come within min_distance_nm of a copy (each within its radius of its site)
    reach = int(np.ceil((2 * np.linalg.norm(mol, axis=1).max() + min_distance_nm) / spacing_nm))
    offsets = np.array([(i, j, k) for i in range(-reach, reach + 1) for j in range(-reach, reach + 1)
                        for k in range(-reach, reach + 1)])  # fmt: skip
    images = length * np.array([o for o in np.ndindex(3, 3, 3) if o != (1, 1, 1)], dtype=float) - length
    for k, site in enumerate(sites):
        near = {tuple((site + o) % n_side) for o in offsets} & placed.keys()
        others = np.concatenate([placed[s] for s in near]) if near else np.zeros((0, 3))
        for _ in range(attempts):
            copy = mol @ random_rotation(rng).T + (site + 0.5) * spacing_nm
            d = copy[:, None, :] - others[None, :, :]
            d -= length * np.round(d / length)  # (the nearest image in the cubic box)
            own = (copy[:, None, None, :] - copy[None, :, None, :] + images).reshape(-1, 3)  # its own images
            nearest = min(np.sqrt((d**2).sum(-1)).min(initial=np.inf), np.sqrt((own**2).sum(-1)).min())
            if nearest >= min_distance_nm:
                break
        else:
            partial = (
                f" ({n_molecules} is not a cube: the {n_side}^3 lattice sites share the volume of {n_molecules} "
                f"molecules; {(n_side - 1) ** 3 or 1} or {n_side**3} molecules pack more loosely)"
                if n_molecules < n_side**3
                else ""
            )
            raise ValueError(
                f"molecular_box: no orientation of copy {k + 1} of {n_molecules} in {attempts} tries keeps its atoms "
                f"{min_distance_nm:g} nm from the others and their images: {spacing_nm:.3g} nm apart is too dense for "
                f"randomly turned copies on a lattice{partial}; ask for a lower density or a larger spacing, or pack "
                "with a tool such as Packmol"
            )
        placed[tuple(site)] = copy
    z = list(atomic_numbers) * n_molecules
    return z, np.concatenate([placed[tuple(site)] for site in sites]), np.eye(3) * length


def nearest_neighbours(positions: np.ndarray, box=None) -> tuple[np.ndarray, np.ndarray]:
    """Each atom's distance to its nearest other atom and that atom's index (k-d tree; minimum image in an
    orthorhombic ``box`` [3, 3]), in the unit of ``positions`` [N, 3] (N >= 2).  Atoms that coincide may list
    themselves as their nearest."""
    from scipy.spatial import cKDTree

    pos = np.asarray(positions, dtype=np.float64)
    if box is not None and np.allclose(box, np.diag(np.diag(box))):
        widths = np.diag(np.asarray(box, dtype=np.float64))
        tree = cKDTree(np.mod(pos, widths), boxsize=widths)
        distance, index = tree.query(np.mod(pos, widths), k=2)
    else:
        distance, index = cKDTree(pos).query(pos, k=2)
    return distance[:, 1], index


def check_indices(atoms: Sequence[int], n_particles: int, where: str) -> List[int]:
    """0-based atom indices as a list, or :class:`InputError` when they are empty, repeated or outside the
    ``n_particles`` of ``where``."""
    chosen = [int(i) for i in atoms]
    if not chosen:
        raise InputError("no ML atoms given: pass the indices of the atoms the model should describe")
    outside = [i for i in chosen if not 0 <= i < n_particles]
    if outside:
        raise InputError(f"ML atom indices {outside[:5]} are outside the atoms 0 to {n_particles - 1} of {where}")
    if len(set(chosen)) != len(chosen):
        raise InputError("the ML atom indices contain duplicates")
    return chosen


def write_pdb(path, atomic_numbers: Sequence[int], positions_nm: np.ndarray, box_nm: Optional[np.ndarray] = None,
              atoms_per_residue: Optional[int] = None) -> None:  # fmt: skip
    """Write a PDB (element columns filled, CRYST1 when a box is given) with OpenMM's writer."""
    from openmm import Vec3, app, unit

    per = atoms_per_residue or len(atomic_numbers)
    longest = max((len(f"{symbol(int(z))}{i % per + 1}") for i, z in enumerate(atomic_numbers)), default=0)
    if longest > 4:  # PDB atom names have 4 characters: longer ones collide, and readers drop the repeats
        raise ValueError(
            f"{len(atomic_numbers)} atoms in residues of {per} give atom names longer than a PDB's 4 characters; "
            f"give atoms_per_residue (the atoms of one molecule)"
        )
    top = app.Topology()
    chain = top.addChain()
    residue = None
    for i, z in enumerate(atomic_numbers):
        if i % per == 0:
            residue = top.addResidue("MOL", chain)
        element = app.Element.getByAtomicNumber(int(z))
        top.addAtom(f"{symbol(int(z))}{i % per + 1}", element, residue)
    if box_nm is not None:
        top.setPeriodicBoxVectors([Vec3(*row) for row in np.asarray(box_nm)] * unit.nanometer)
    with open(Path(path), "w") as f:
        app.PDBFile.writeFile(top, np.asarray(positions_nm) * unit.nanometer, f)


def write_atoms_pdb(path, topology, positions_nm: np.ndarray, atoms: Sequence[int]) -> None:
    """Write the ``atoms`` of ``topology`` (with its residue and atom names, bonds and box) to a PDB."""
    from openmm import app, unit

    modeller = app.Modeller(topology, np.asarray(positions_nm) * unit.nanometer)
    chosen = set(int(i) for i in atoms)
    modeller.delete([a for a in topology.atoms() if a.index not in chosen])
    modeller.topology.setPeriodicBoxVectors(topology.getPeriodicBoxVectors())
    with open(Path(path), "w") as f:
        app.PDBFile.writeFile(modeller.topology, modeller.positions, f, keepIds=True)


# a bond: atoms closer than this factor times the sum of their covalent radii (C-H 1.28, C-C 1.82 Angstrom)
BOND_TOLERANCE = 1.2


def _covalent_pairs(structure):
    """(i, j, vector) of the atom pairs of an ase.Atoms closer than BOND_TOLERANCE x their covalent radii."""
    from ase.neighborlist import natural_cutoffs, neighbor_list

    return neighbor_list("ijD", structure, natural_cutoffs(structure, mult=BOND_TOLERANCE))


def covalent_bonds(atomic_numbers: Sequence[int], positions_nm: np.ndarray) -> set:
    """The atom pairs (i < j) of a molecular structure (no box) closer than BOND_TOLERANCE times their covalent
    radii: the bonds of :func:`find_molecules`."""
    from ase import Atoms

    i, j, _ = _covalent_pairs(
        Atoms(numbers=list(atomic_numbers), positions=np.asarray(positions_nm) * units.ANGSTROM_PER_NM)
    )
    return {(int(a), int(b)) for a, b in zip(i, j) if a < b}


def fragment_index(atomic_numbers: Sequence[int], positions_nm: np.ndarray) -> List[int]:
    """Each atom's covalently bonded fragment (0, 1, ... in the order of their first atoms) in a molecular
    structure (no box), by the bond rule of :func:`find_molecules`."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(atomic_numbers)
    bonds = np.array(sorted(covalent_bonds(atomic_numbers, positions_nm)), dtype=int).reshape(-1, 2)
    i, j = bonds[:, 0], bonds[:, 1]
    labels = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)[1]
    first = {}
    return [first.setdefault(int(label), len(first)) for label in labels]


def count_fragments(atomic_numbers: Sequence[int], positions_nm: np.ndarray) -> int:
    """How many covalently bonded fragments a molecular structure (no box) has (:func:`fragment_index`)."""
    return max(fragment_index(atomic_numbers, positions_nm), default=-1) + 1


@dataclass
class Molecules:
    """The molecules of a structure.  ``finite``: lists of atom indices; ``networks``: components that bond to
    their own periodic image (a covalent solid, an infinite chain); ``whole_nm``: the positions with every
    finite molecule whole and its centre in the box (networks as given)."""

    finite: List[List[int]]
    networks: List[List[int]]
    whole_nm: np.ndarray


def molecule_index(groups: Sequence[Sequence[int]], atoms: Sequence[int]) -> List[int]:
    """Each of ``atoms``' molecule (0, 1, ... in the order of the molecules' first atoms), from ``groups``: lists
    of the indices that ``atoms`` holds, one list per molecule."""
    position = {int(a): k for k, a in enumerate(atoms)}
    index = [-1] * len(position)
    for m, group in enumerate(sorted((g for g in groups if len(g)), key=min)):
        for a in group:
            index[position[int(a)]] = m
    if min(index, default=0) < 0:
        raise InputError("molecule_index: every atom needs a molecule")
    return index


def find_molecules(
    topology,
    positions_nm: np.ndarray,
    box_nm: Optional[np.ndarray] = None,
    atoms: Optional[Sequence[int]] = None,
    wrap: bool = True,
) -> Molecules:
    """The molecules of a structure (of its ``atoms`` only, when given), joined by the topology's bonds (CONECT
    records, standard residues) and by covalent bonds within a residue: atoms closer than ``BOND_TOLERANCE``
    times the sum of their covalent radii, minimum image when ``box_nm`` is given.  Atoms of different residues
    are joined only by the topology's bonds, so neither ions beside water nor overlapping molecules merge.
    ``wrap=False`` leaves each molecule around its first atom instead of moving its centre into the box (a
    molecule already whole does not move: ML molecules stay beside the MM atoms they touch or bond to)."""
    from ase import Atoms
    from ase.geometry import find_mic

    positions = np.asarray(positions_nm, dtype=np.float64)
    residue = np.array([atom.residue.index for atom in topology.atoms()])
    z = [atom.element.atomic_number if atom.element is not None else 0 for atom in topology.atoms()]  # 0: no bonds
    structure = Atoms(numbers=z, positions=positions * units.ANGSTROM_PER_NM)
    if box_nm is not None:
        structure.set_cell(np.asarray(box_nm) * units.ANGSTROM_PER_NM)
        structure.set_pbc(True)
    i, j, d = _covalent_pairs(structure)
    keep = (i < j) & (residue[i] == residue[j])
    edges = [(a, b, v / units.ANGSTROM_PER_NM) for a, b, v in zip(i[keep], j[keep], d[keep])]
    listed = np.array([(b[0].index, b[1].index) for b in topology.bonds()], dtype=int).reshape(-1, 2)
    if len(listed):
        vectors = positions[listed[:, 1]] - positions[listed[:, 0]]
        if box_nm is not None:
            vectors = find_mic(vectors, np.asarray(box_nm), pbc=True)[0]
        edges += [(a, b, v) for (a, b), v in zip(listed, vectors)]
    chosen = np.ones(len(z), dtype=bool)
    if atoms is not None:
        chosen[:] = False
        chosen[np.asarray(list(atoms), dtype=int)] = True
    neighbours: List[list] = [[] for _ in z]
    for a, b, v in edges:
        if chosen[a] and chosen[b]:
            neighbours[a].append((b, v))
            neighbours[b].append((a, -v))
    whole = positions.copy()
    seen = np.zeros(len(z), dtype=bool)
    finite: List[List[int]] = []
    networks: List[List[int]] = []
    for root in range(len(z)):  # walk each molecule's bonds from its first atom, unwrapping as it goes
        if seen[root] or not chosen[root]:
            continue
        seen[root] = True
        members, stack, closed_on_image = [root], [root], False
        while stack:
            a = stack.pop()
            for b, v in neighbours[a]:
                if not seen[b]:
                    seen[b] = True
                    whole[b] = whole[a] + v
                    members.append(b)
                    stack.append(b)
                elif np.abs(whole[b] - whole[a] - v).max() > 1e-3:  # reached again through the box
                    closed_on_image = True
        members.sort()
        if closed_on_image:
            networks.append(members)
            whole[members] = positions[members]
            continue
        finite.append(members)
        if box_nm is not None and wrap:
            box = np.asarray(box_nm)
            whole[members] -= np.floor(whole[members].mean(axis=0) @ np.linalg.inv(box)) @ box
    return Molecules(finite, networks, whole)


MIN_DISTANCE_NM = 0.05  # closer than this two atoms overlap (shortest bonds, H-H, are ~0.074 nm)
TOO_FAR_NM = 0.5  # a median nearest-neighbour distance above this: coordinates 10 times too large


def check_positions(positions_nm: np.ndarray, box_nm=None, where: str = "the structure") -> None:
    """Raise for NaN coordinates, overlapping atoms, or coordinates 10 times too large or too small (median
    nearest-neighbour distances around 1 nm or 0.01 nm instead of 0.1 nm)."""
    pos = np.asarray(positions_nm, dtype=np.float64)
    if not np.all(np.isfinite(pos)):
        raise InputError(f"{where} has NaN or infinite coordinates")
    n = len(pos)
    if n < 2:
        return
    nearest, idx = nearest_neighbours(pos, box_nm)
    typical = float(np.median(nearest))
    if typical > TOO_FAR_NM:
        raise UnitsError(
            f"{where}: the median nearest-neighbour distance is {typical * 10:.1f} Angstrom, about ten times a "
            f"chemical bond (1-1.5 Angstrom): the coordinates look 10 times too large. A PDB file stores Angstrom: "
            f"check the program that wrote it (e.g. a conversion to Angstrom done twice) and divide the coordinates "
            f"by 10; positions given to the Python API are in nm."
        )
    if typical < MIN_DISTANCE_NM:
        raise UnitsError(
            f"{where}: the median nearest-neighbour distance is {typical * 10:.3f} Angstrom, about a tenth of a "
            f"chemical bond (1-1.5 Angstrom): the coordinates look 10 times too small, e.g. nm written where "
            f"Angstrom belong (a PDB file stores Angstrom); multiply the coordinates by 10."
        )
    i = int(np.argmin(nearest))
    if nearest[i] < MIN_DISTANCE_NM:
        # when two atoms coincide exactly the tree may list the atom itself as its second neighbour
        partner = int(idx[i, 1]) if int(idx[i, 1]) != i else int(idx[i, 0])
        first, second = sorted((i, partner))
        raise InputError(
            f"{where}: atoms {first + 1} and {second + 1} are {nearest[i] * 10:.3f} Angstrom apart (overlapping); "
            f"fix the structure (e.g. remove duplicated atoms)"
        )
