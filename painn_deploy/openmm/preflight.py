"""Checks on a starting structure before any simulation starts."""

import numpy as np

from ..errors import InputError, UnitsError

MIN_DISTANCE_NM = 0.05  # closer than this two atoms overlap (shortest bonds, H-H, are ~0.074 nm)


def check_positions(positions_nm: np.ndarray, box_nm=None, where: str = "the structure") -> None:
    """Raise for NaN coordinates, overlapping atoms, or coordinates that look like Angstrom read
    as nm (nearest-neighbour distances around 1 nm instead of 0.1 nm)."""
    pos = np.asarray(positions_nm, dtype=np.float64)
    if not np.all(np.isfinite(pos)):
        raise InputError(f"{where} has NaN or infinite coordinates")
    n = len(pos)
    if n < 2:
        return
    from scipy.spatial import cKDTree

    if box_nm is not None:
        widths = np.diag(np.asarray(box_nm))
        tree = cKDTree(np.mod(pos, widths), boxsize=widths) if np.allclose(box_nm, np.diag(widths)) else cKDTree(pos)
    else:
        tree = cKDTree(pos)
    dist, idx = tree.query(pos, k=2)
    nearest = dist[:, 1]
    i = int(np.argmin(nearest))
    if nearest[i] < MIN_DISTANCE_NM:
        raise InputError(
            f"{where}: atoms {i + 1} and {int(idx[i, 1]) + 1} are {nearest[i] * 10:.3f} Angstrom apart (overlapping); "
            f"fix the structure (e.g. remove duplicated atoms) before simulating"
        )
    typical = float(np.median(nearest))
    if typical > 0.5:
        raise UnitsError(
            f"{where}: the median nearest-neighbour distance is {typical:.2f} nm, ten times a chemical bond; "
            f"the coordinates look like Angstrom read as nm. Give positions in nm (PDB files are read correctly)."
        )
