"""Checks on a starting structure before any simulation starts."""

import numpy as np

from ..errors import InputError, UnitsError
from ..structures import nearest_neighbours

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
            f"fix the structure (e.g. remove duplicated atoms) before simulating"
        )
