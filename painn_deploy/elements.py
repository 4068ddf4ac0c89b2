"""Atomic numbers, symbols and masses, and the model's species map.

Symbols and standard atomic masses come from ASE (IUPAC 2016 values).
"""

import math
import re
from collections.abc import Iterable, Sequence
from typing import Optional

import numpy as np
from ase.data import atomic_masses_iupac2016, chemical_symbols

from .errors import UnknownElementError


def symbol(atomic_number: int) -> str:
    """Chemical symbol of an atomic number (``8 -> "O"``)."""
    if not 0 < int(atomic_number) < len(chemical_symbols):
        raise UnknownElementError(f"atomic number {atomic_number} is not a chemical element")
    return chemical_symbols[int(atomic_number)]


def atomic_number(element_symbol: str) -> int:
    """Atomic number of a chemical symbol (``"O" -> 8``), case-insensitive."""
    norm = element_symbol.strip().capitalize()
    if norm not in chemical_symbols[1:]:
        raise UnknownElementError(f"'{element_symbol}' is not a chemical element symbol")
    return chemical_symbols.index(norm)


def masses_amu(atomic_numbers: Iterable[int]) -> np.ndarray:
    """Standard atomic masses (amu, IUPAC 2016) of the given atomic numbers, shape [N]."""
    return np.array([atomic_masses_iupac2016[int(z)] for z in atomic_numbers], dtype=np.float64)


def formula(atomic_numbers: Iterable[int]) -> str:
    """Hill-order formula, e.g. ``C2H6O``."""
    counts: dict[str, int] = {}
    for z in atomic_numbers:
        s = symbol(int(z))
        counts[s] = counts.get(s, 0) + 1
    first = [k for k in ("C", "H") if k in counts] if "C" in counts else []  # Hill order
    order = first + sorted(k for k in counts if k not in first)
    return "".join(f"{s}{counts[s] if counts[s] > 1 else ''}" for s in order)


def empirical_formula(atomic_numbers: Iterable[int]) -> str:
    """The formula with the counts divided by their greatest common divisor: ``C2H6O`` for 64 ethanols."""
    z = [int(x) for x in atomic_numbers]
    divisor = math.gcd(*(z.count(x) for x in set(z))) if z else 1
    return formula(x for x in sorted(set(z)) for _ in range(z.count(x) // divisor))


def formula_atoms(text: str) -> list[int]:
    """The atomic numbers a formula such as ``C2H6O`` counts (in the formula's order)."""
    return [atomic_number(s) for s, n in re.findall(r"([A-Z][a-z]?)(\d*)", text) for _ in range(int(n or 1))]


def check_known(
    atomic_numbers: Iterable[int],
    known: Sequence[int],
    where: str,
    labels: Optional[Sequence[str]] = None,
    fix: str = "",
) -> None:
    """Raise :class:`UnknownElementError` naming every element of ``atomic_numbers`` that is not in ``known``;
    ``where`` says which structure was being checked, ``labels`` (one per atom) name the first atoms that have
    them, and ``fix`` comes before the advice to train on such data."""
    z = [int(x) for x in atomic_numbers]
    known_set = {int(x) for x in known}
    unknown = sorted(set(z) - known_set)
    if unknown:
        names = ", ".join(f"{symbol(x)} (Z={x})" for x in unknown)
        trained = ", ".join(symbol(x) for x in sorted(known_set))
        listing = ""
        if labels is not None:
            bad = [label for label, x in zip(labels, z) if x not in known_set]
            listing = ": " + "; ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise UnknownElementError(
            f"{where} contains {names}, which the model was not trained on (it knows {trained}){listing}. "
            f"{fix}{'train' if fix else 'Train'} a model on data that contains these elements."
        )


def species_index(atomic_numbers: Sequence[int], known: Sequence[int]) -> np.ndarray:
    """Map atomic numbers to indices into the model's element list ``known``, shape [N]."""
    check_known(atomic_numbers, known, "the structure")
    lookup = {int(z): i for i, z in enumerate(known)}
    return np.array([lookup[int(z)] for z in atomic_numbers], dtype=np.int64)
