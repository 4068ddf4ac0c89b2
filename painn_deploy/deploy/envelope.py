"""The training data's envelope: the interatomic distances a model has seen, and a check of MD frames against it.

A model knows only the configurations it was trained on.  For each element pair the export stores

- ``shortest``: the shortest distance between two atoms of these elements (pairs within the cutoff);
- ``longest_nearest``: for an atom of element A, the longest distance to its nearest atom of element B (or of
  any element, ``"any"``): how far its bonded partner ever was.  An X-H bond stretched to 1.8 A while every
  hydrogen of the data had an atom within 1.33 A is outside the data, even though 1.8 A is well within the
  cutoff.  A bound is stored only where that nearest atom was always within the cutoff.

All distances in Angstrom (model units).  :class:`EnvelopeCheck` compares frames with these bounds.
"""

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from ase.data import covalent_radii

from ..elements import atomic_number, symbol

ANY = "any"
#: The longest nearest distance of a bonded pair in training data, in covalent radii: hot or ring-polymer data
#: stretch bonds beyond 1.2x (ethanol at 800 K: C-C 1.80 Angstrom, 1.18x), and the next neighbours (1-3
#: distances) start near 1.6x.
BONDED_NEAREST_FACTOR = 1.45
DENSE_MAX_ATOMS = 64  # above this, one frame at a time through a k-d tree (or blocks of rows for triclinic boxes)
CHUNK_ELEMENTS = 2_000_000  # distances computed at once (frames x atoms x atoms)


def pair_key(z_a: int, z_b: int) -> str:
    """``"C-H"``: the two symbols in alphabetical order."""
    return "-".join(sorted((symbol(z_a), symbol(z_b))))


def _minimum_image(delta: np.ndarray, box: Optional[np.ndarray]) -> np.ndarray:
    """Difference vectors [..., 3] moved to their nearest image (box vectors as rows, reduced triclinic)."""
    if box is None:
        return delta
    for k in (2, 1, 0):
        delta = delta - np.round(delta[..., k : k + 1] / box[k, k]) * box[k]
    return delta


def _distances(frames: np.ndarray, box: Optional[np.ndarray] = None, rows: Optional[slice] = None) -> np.ndarray:
    """Distances [F, n, N] from the atoms ``rows`` (default: all) to every atom; the self-distance is inf."""
    rows = rows or slice(0, frames.shape[1])
    delta = _minimum_image(frames[:, rows, None, :] - frames[:, None, :, :], box)
    d = np.sqrt(np.einsum("fijk,fijk->fij", delta, delta))
    own = np.arange(frames.shape[1])[rows]
    d[:, np.arange(len(own)), own] = np.inf
    return d


def training_envelope(atomic_numbers: Sequence[int], frames_angstrom: np.ndarray, cutoff_angstrom: float) -> dict:
    """The envelope (see the module docstring) of molecule frames [M, N, 3] (Angstrom, not periodic)."""
    z = np.asarray(atomic_numbers, dtype=int)
    frames = np.asarray(frames_angstrom, dtype=np.float64)
    kinds = sorted(set(z.tolist()))
    members = {a: np.flatnonzero(z == a) for a in kinds}
    shortest: dict = {}
    longest: dict = {}  # (a, b) -> [max nearest distance, always within the cutoff]
    per_chunk = max(1, CHUNK_ELEMENTS // max(1, len(z) ** 2))
    for start in range(0, len(frames), per_chunk):
        d = _distances(frames[start : start + per_chunk])
        for ia, a in enumerate(kinds):
            for b in kinds[ia:]:
                block = d[:, members[a]][:, :, members[b]]
                low = float(block.min()) if block.size else np.inf
                if np.isfinite(low) and low <= cutoff_angstrom:
                    key = pair_key(a, b)
                    shortest[key] = min(shortest.get(key, np.inf), low)
            for b in kinds + [ANY]:
                columns = members[b] if b != ANY else np.arange(len(z))
                nearest = d[:, members[a]][:, :, columns].min(axis=2)  # [F, n_a]
                if not np.all(np.isfinite(nearest)):  # no other atom of element b
                    continue
                high, within = longest.get((a, b), (0.0, True))
                longest[(a, b)] = (max(high, float(nearest.max())), within and bool(nearest.max() <= cutoff_angstrom))
    longest_nearest: dict = {}
    for (a, b), (high, within) in longest.items():
        longest_nearest.setdefault(symbol(a), {})[symbol(b) if b != ANY else ANY] = (
            _outward(high, 1) if within else None
        )
    return {
        "units": "Angstrom",
        "cutoff_angstrom": float(cutoff_angstrom),
        "n_frames": int(len(frames)),
        "shortest_angstrom": {k: _outward(v, -1) for k, v in sorted(shortest.items())},
        "longest_nearest_angstrom": longest_nearest,
    }


def _outward(value: float, direction: int) -> float:
    """``value`` rounded to 1e-4 Angstrom away from the data (down for shortest, up for longest distances)."""
    scaled = value * 1e4
    return float((np.ceil(scaled) if direction > 0 else np.floor(scaled)) / 1e4)


@dataclass(frozen=True)
class Excursion:
    """The worst distance of one kind outside the envelope in the checked frames.  ``atoms``: model atom
    indices (0-based; for ``longest`` the atom first, then its nearest partner); ``frame``: index into them."""

    kind: str  # "shortest" or "longest"
    key: str  # "C-H" (shortest), or "H->C" / "H->any" (longest nearest neighbour)
    atoms: tuple
    distance: float  # Angstrom
    bound: float  # Angstrom, the data's extreme
    frame: int

    @property
    def beyond(self) -> float:
        """How far outside the data's range, Angstrom (> 0)."""
        return self.bound - self.distance if self.kind == "shortest" else self.distance - self.bound

    @property
    def bonded(self) -> bool:
        """Whether the excursion is of a bond, where a model fails first: two atoms closer than ever, an atom
        further from its nearest atom than ever (a bond breaking), or from its nearest atom of an element it was
        always bonded to in the data (its longest distance within BONDED_NEAREST_FACTOR times their covalent
        radii).  An atom's nearest atom of an element it was not bonded to moves with the conformation (a
        carboxyl H and the nearest other H)."""
        if self.kind == "shortest" or self.key.endswith(ANY):
            return True
        a, b = (atomic_number(x) for x in self.key.split("->"))
        return bool(self.bound <= BONDED_NEAREST_FACTOR * (covalent_radii[a] + covalent_radii[b]))


def describe(e: Excursion, atoms: Sequence[int], elements: Sequence[str], where: str = "") -> str:
    """An excursion in words: ``atoms`` its two atoms' numbers as the user counts them, ``elements`` their
    symbols, ``where`` (e.g. " (replica 2)") after the first atom."""
    if e.kind == "shortest":
        return (
            f"atoms {atoms[0]} ({elements[0]}) and {atoms[1]} ({elements[1]}){where} are {e.distance:.3f} Angstrom "
            f"apart, {e.beyond:.3f} Angstrom closer than any {e.key} pair in the training data "
            f"({e.bound:.3f} Angstrom)"
        )
    target = e.key.split("->")[1]
    of, partner = (
        ("atom", f"atom {atoms[1]}, {elements[1]}") if target == ANY else (f"{target} atom", f"atom {atoms[1]}")
    )
    return (
        f"atom {atoms[0]} ({elements[0]}){where} is {e.distance:.3f} Angstrom from its nearest {of} ({partner}), "
        f"{e.beyond:.3f} Angstrom further than any {elements[0]} atom's nearest {of} in the training data "
        f"({e.bound:.3f} Angstrom)"
    )


class EnvelopeCheck:
    """Checks frames of a system (the model's atoms, ``atomic_numbers``) against an envelope."""

    def __init__(self, envelope: dict, atomic_numbers: Sequence[int]):
        self.envelope = envelope
        self.z = np.asarray(atomic_numbers, dtype=int)
        self.cutoff = float(envelope["cutoff_angstrom"])
        n = len(self.z)
        kinds = sorted(set(self.z.tolist()))
        self.kinds = kinds
        self.members = {a: np.flatnonzero(self.z == a) for a in kinds}
        self.kind = np.searchsorted(kinds, self.z)  # each atom's index into kinds
        shortest = envelope.get("shortest_angstrom", {})
        # the data's shortest distance of each pair of elements [K, K] (-inf: never seen within the cutoff)
        self.bound_table = np.full((len(kinds), len(kinds)), -np.inf)
        self.unseen_pairs = []
        for ia, a in enumerate(kinds):
            for ib in range(ia, len(kinds)):
                b = kinds[ib]
                if a == b and len(self.members[a]) < 2:
                    continue
                bound = shortest.get(pair_key(a, b))
                if bound is None:
                    self.unseen_pairs.append(pair_key(a, b))
                    continue
                self.bound_table[ia, ib] = self.bound_table[ib, ia] = bound
        self.short_max = float(self.bound_table.max()) if len(kinds) else -np.inf
        # (element a, target b or ANY, bound)
        self.long_bounds = []
        nearest = envelope.get("longest_nearest_angstrom", {})
        for a in kinds:
            for target, bound in nearest.get(symbol(a), {}).items():
                if bound is None:
                    continue
                b = ANY if target == ANY else next((k for k in kinds if symbol(k) == target), None)
                columns = np.arange(n) if b == ANY else self.members.get(b, np.array([], dtype=int))
                if len(columns) - (1 if b == ANY or b == a else 0) < 1:
                    continue  # no other atom of that element in this system
                self.long_bounds.append((a, b, float(bound), columns))

    def excursions(self, frames_angstrom: np.ndarray, box_angstrom: Optional[np.ndarray] = None) -> list:
        """The worst excursion of each kind and element pair in frames [F, N, 3] (Angstrom), worst first."""
        frames = np.asarray(frames_angstrom, dtype=np.float64).reshape(-1, len(self.z), 3)
        box = None if box_angstrom is None else np.asarray(box_angstrom, dtype=np.float64)
        worst: dict = {}

        def keep(e: Excursion):
            if e.beyond > 0 and (e.key not in worst or e.beyond > worst[e.key].beyond):
                worst[e.key] = e

        n = len(self.z)
        if n < 2:
            return []
        if n <= DENSE_MAX_ATOMS:
            per_chunk = max(1, CHUNK_ELEMENTS // (n * n))
            for start in range(0, len(frames), per_chunk):
                self._dense(_distances(frames[start : start + per_chunk], box), start, keep)
        else:
            orthorhombic = box is None or np.allclose(box, np.diag(np.diag(box)))
            for f, frame in enumerate(frames):
                if orthorhombic:
                    self._tree(frame, box, f, keep)
                else:
                    rows = max(1, CHUNK_ELEMENTS // n)
                    for start in range(0, n, rows):
                        block = slice(start, min(n, start + rows))
                        self._dense(_distances(frame[None], box, block), f, keep, block)
        # an atom whose nearest atom is of element B, too far: one fact, reported once (as "nearest atom")
        found = {}
        for e in sorted(worst.values(), key=lambda e: (e.kind, not e.key.endswith(ANY))):
            found.setdefault((e.kind, e.atoms, e.frame, round(e.distance, 9)), e)
        return sorted(found.values(), key=lambda e: -e.beyond)

    def _dense(self, d: np.ndarray, first_frame: int, keep, rows: Optional[slice] = None) -> None:
        """Excursions from distances [F, n, N] of the atoms ``rows`` (default all) to every atom."""
        rows = rows or slice(0, d.shape[2])
        own = np.arange(d.shape[2])[rows]
        if self.short_max > -np.inf:
            ka, kb = self.kind[own][:, None], self.kind[None, :]
            short = self.bound_table[ka, kb] - d  # > 0: closer than ever seen in the data
            codes = np.minimum(ka, kb) * len(self.kinds) + np.maximum(ka, kb)  # [n, N]: the pair's elements
            outside = short.max(axis=0) > 0
            for code in np.unique(codes[outside]):
                f, i, j = np.unravel_index(np.argmax(np.where(codes == code, short, -np.inf)), short.shape)
                keep(Excursion("shortest", pair_key(self.z[own[i]], self.z[j]), (int(own[i]), int(j)),
                               float(d[f, i, j]), float(self.bound_table[ka[i, 0], kb[0, j]]), first_frame + int(f)))  # fmt: skip
        for a, b, bound, columns in self.long_bounds:
            mine = np.flatnonzero(self.z[own] == a)
            if not len(mine):
                continue
            sub = d[:, mine][:, :, columns]  # [F, n_a, n_b]
            nearest = sub.min(axis=2)
            f, i = np.unravel_index(np.argmax(nearest), nearest.shape)
            partner = int(columns[np.argmin(sub[f, i])])
            keep(Excursion("longest", f"{symbol(a)}->{symbol(b) if b != ANY else ANY}", (int(own[mine[i]]), partner),
                           float(nearest[f, i]), bound, first_frame + int(f)))  # fmt: skip

    def _tree(self, frame: np.ndarray, box: Optional[np.ndarray], f: int, keep) -> None:
        from scipy.spatial import cKDTree

        if box is not None:
            widths = np.diag(box)
            frame = np.mod(frame, widths)
            make = lambda p: cKDTree(p, boxsize=widths)  # noqa: E731
        else:
            make = cKDTree
        tree = make(frame)
        if self.short_max > 0:
            pairs = tree.query_pairs(self.short_max, output_type="ndarray")
            if len(pairs):
                delta = _minimum_image(frame[pairs[:, 0]] - frame[pairs[:, 1]], box)
                d = np.linalg.norm(delta, axis=1)
                bounds = self.bound_table[self.kind[pairs[:, 0]], self.kind[pairs[:, 1]]]
                for k in np.flatnonzero(bounds - d > 0):
                    i, j = (int(x) for x in pairs[k])
                    keep(
                        Excursion("shortest", pair_key(self.z[i], self.z[j]), (i, j), float(d[k]), float(bounds[k]), f)
                    )
        for a, b, bound, columns in self.long_bounds:
            mine = self.members[a]
            target = make(frame[columns])
            k = 2 if b == ANY or b == a else 1
            dist, idx = target.query(frame[mine], k=k)
            if k == 2:  # the atom itself is among the targets: take the nearest other one
                is_self = columns[idx[:, 0]] == mine
                dist = np.where(is_self, dist[:, 1], dist[:, 0])
                idx = np.where(is_self, idx[:, 1], idx[:, 0])
            i = int(np.argmax(dist))
            keep(Excursion("longest", f"{symbol(a)}->{symbol(b) if b != ANY else ANY}",
                           (int(mine[i]), int(columns[idx[i]])), float(dist[i]), bound, f))  # fmt: skip
