"""Neighbour lists in pure PyTorch (TorchScript-compatible, no custom ops).

Positions and boxes here are in the model's length unit (Angstrom).  Box vectors are the rows of
a [3, 3] tensor in OpenMM's reduced triclinic form (a = (ax, 0, 0), b = (bx, by, 0),
c = (cx, cy, cz) with ax >= 2|bx|, ...).  Its lattice vectors are at least min(ax, by, cz) long (the minimum
image), but only cz is the distance between two opposite faces (:func:`face_distances`), which sizes cells.
"""

from typing import List, Optional, Tuple

import torch

ALL_PAIRS = 0
CELL_LIST = 1
STATIC = 2
MODES = {"all_pairs": ALL_PAIRS, "cell_list": CELL_LIST, "static": STATIC}


def minimum_image(r_ij: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Minimum-image vectors [..., 3] for reduced triclinic boxes [..., 3, 3] that broadcast against r_ij's
    leading dimensions (valid when every width >= 2 cutoff)."""
    r_ij = r_ij - box[..., 2, :] * torch.round(r_ij[..., 2:3] / box[..., 2, 2:3])
    r_ij = r_ij - box[..., 1, :] * torch.round(r_ij[..., 1:2] / box[..., 1, 1:2])
    r_ij = r_ij - box[..., 0, :] * torch.round(r_ij[..., 0:1] / box[..., 0, 0:1])
    return r_ij


def fractional(positions: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Fractional coordinates [..., N, 3] of positions [..., N, 3] in a reduced triclinic box [..., 3, 3] that
    broadcasts against their leading dimensions: positions = fractional @ box, solved by back-substitution (the box
    is lower triangular), with no linear-algebra call that checks its result on the host."""
    a, b, c = box[..., 0:1, :], box[..., 1:2, :], box[..., 2:3, :]
    f_c = positions[..., 2:3] / c[..., 2:3]
    f_b = (positions[..., 1:2] - f_c * c[..., 1:2]) / b[..., 1:2]
    f_a = (positions[..., 0:1] - f_c * c[..., 0:1] - f_b * b[..., 0:1]) / a[..., 0:1]
    return torch.cat([f_a, f_b, f_c], -1)


def face_distances(box: torch.Tensor) -> torch.Tensor:
    """Distances [..., 3] between the opposite faces of a reduced triclinic box [..., 3, 3] (rows a, b, c): across
    a, V / |b x c|; across b, V / |c x a|; across c, cz.  At most ax, by and cz."""
    a, b, c = box[..., 0, :], box[..., 1, :], box[..., 2, :]
    volume = torch.abs(box[..., 0, 0] * box[..., 1, 1] * box[..., 2, 2])  # (lower triangular)
    return torch.stack(
        [
            volume / torch.linalg.vector_norm(torch.cross(b, c, dim=-1), dim=-1),
            volume / torch.linalg.vector_norm(torch.cross(c, a, dim=-1), dim=-1),
            volume / torch.linalg.vector_norm(torch.cross(a, b, dim=-1), dim=-1),
        ],
        -1,
    )


def too_small(box: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Whether a periodic box [..., 3, 3] is narrower than twice the cutoff ([...]; a tensor, for the paths that
    read nothing back to the host)."""
    return torch.any(torch.diagonal(box, dim1=-2, dim2=-1) < 2.0 * cutoff, -1)


def _hundredths(x: float) -> str:
    """A positive number with two decimals, rounded down (a width just under a limit reads under it; TorchScript
    has no format specifiers)."""
    hundredths = int(x * 100.0)
    return str(hundredths // 100) + "." + ("0" + str(hundredths % 100))[-2:]


def box_error(box: torch.Tensor, cutoff: float) -> str:
    """The message of the error of a periodic box [..., 3, 3] narrower than twice the cutoff or not in reduced
    form ("" for a usable box; the deployed module raises it where it is called)."""
    widths = torch.diagonal(box, dim1=-2, dim2=-1)
    if bool(torch.any(too_small(box, cutoff))):
        return (
            "BoxTooSmallError: the periodic box's narrowest width (" + _hundredths(float(widths.min())) + " Angstrom) "
            "must be at least twice the model cutoff (" + _hundredths(2.0 * cutoff) + " Angstrom), or atoms would "
            "see their own images. Use a larger box (more molecules) or a model with a smaller cutoff."
        )
    if bool(torch.any(box[..., 0, 1:] != 0.0)) or bool(torch.any(box[..., 1, 2] != 0.0)):
        return (
            "InputError: box vectors are not in OpenMM's reduced triclinic form "
            "(a along x, b in the xy plane); pass the vectors OpenMM gives."
        )
    return ""


def _cell_offsets(n_cells: List[int], periodic: bool, device: torch.device) -> torch.Tensor:
    """Offsets [K, 3] to the neighbouring cells, without duplicates in small periodic grids."""
    per_dim: List[torch.Tensor] = []
    for n in n_cells:
        if periodic and n < 3:
            per_dim.append(torch.arange(n, device=device))
        else:
            per_dim.append(torch.arange(-1, 2, device=device))
    grid = torch.meshgrid(per_dim[0], per_dim[1], per_dim[2], indexing="ij")
    return torch.stack([grid[0].reshape(-1), grid[1].reshape(-1), grid[2].reshape(-1)], dim=1)


def cell_list_candidates(
    positions: torch.Tensor,
    box: Optional[torch.Tensor],
    cutoff: float,
    fixed_cells: Optional[List[int]] = None,
    fixed_per_cell: int = 0,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Candidate pairs from a cell list: (idx_i [N, K*M], idx_j [N, K*M], valid [N, K*M], overflow []).

    Atoms are binned into cells at least ``cutoff`` wide; each atom is paired with every atom in
    its own and the neighbouring cells (M = most atoms in one cell).  Cost and memory grow
    linearly with N at fixed density.  With ``fixed_cells`` (periodic only) and ``fixed_per_cell``
    every shape is fixed and nothing is read back to the host (CUDA graphs); ``overflow`` is then
    true when a cell holds more than ``fixed_per_cell`` atoms or the cells became narrower than
    the cutoff.
    """
    n_atoms = positions.shape[0]
    device = positions.device
    overflow = torch.zeros((), dtype=torch.bool, device=device)
    if box is not None:
        frac = fractional(positions, box)
        frac = frac - torch.floor(frac)
        widths = face_distances(box)  # (cells at least a cutoff wide across each face)
        if fixed_cells is not None:
            # (filled on the device: a tensor made from a list is copied from the host, which a CUDA graph forbids)
            n_cells_t = torch.stack([torch.full((), n, dtype=torch.long, device=device) for n in fixed_cells])
            overflow = overflow | torch.any(widths / n_cells_t.to(widths.dtype) < cutoff)
        else:
            n_cells_t = torch.clamp(torch.floor(widths / cutoff), min=1).to(torch.long)
    else:
        lo = torch.min(positions, dim=0).values
        extent = torch.max(positions, dim=0).values - lo
        # cells a cutoff wide, but at most 8 N in all (wider cells along the longest axes where atoms are far apart:
        # a gas, a molecule blown apart), so that the grid never outgrows the atoms
        limit = 8 * max(n_atoms, 1)
        wide: List[float] = torch.clamp(torch.floor(extent / cutoff) + 1.0, min=1.0, max=float(limit)).tolist()
        counts = [int(c) for c in wide]
        while float(counts[0]) * float(counts[1]) * float(counts[2]) > float(limit):  # (floats: no int64 overflow)
            longest = counts.index(max(counts))
            counts[longest] = (counts[longest] + 1) // 2
        n_cells_t = torch.tensor(counts, dtype=torch.long, device=device)
        span = torch.maximum(n_cells_t.to(positions.dtype) * cutoff, extent)
        frac = (positions - lo) / span
    n_cells: List[int] = fixed_cells if (fixed_cells is not None and box is not None) else n_cells_t.tolist()
    cell3 = torch.floor(frac * n_cells_t.to(frac.dtype)).to(torch.long)
    cell3 = torch.minimum(torch.clamp(cell3, min=0), n_cells_t - 1)
    cell = (cell3[:, 0] * n_cells[1] + cell3[:, 1]) * n_cells[2] + cell3[:, 2]
    total_cells = n_cells[0] * n_cells[1] * n_cells[2]

    order = torch.argsort(cell)
    sorted_cell = cell.index_select(0, order)
    counts = torch.zeros(total_cells, dtype=torch.long, device=device).scatter_add_(0, cell, torch.ones_like(cell))
    start = torch.cumsum(counts, 0) - counts
    slot = torch.arange(n_atoms, device=device) - start.index_select(0, sorted_cell)
    if fixed_per_cell > 0:
        max_per_cell = fixed_per_cell
        overflow = overflow | (torch.max(counts) > fixed_per_cell)
        slot = torch.clamp(slot, max=max_per_cell)  # overflowing atoms go to a spare column, dropped below
    else:
        max_per_cell = int(counts.max())
    table = torch.full((total_cells, max_per_cell + 1), -1, dtype=torch.long, device=device)
    table[sorted_cell, slot] = order
    table = table[:, :max_per_cell]

    offsets = _cell_offsets(n_cells, box is not None, device)
    neighbour3 = cell3.unsqueeze(1) + offsets.unsqueeze(0)  # [N, K, 3]
    if box is not None:
        neighbour3 = torch.remainder(neighbour3, n_cells_t)
        cell_ok = torch.ones(neighbour3.shape[:2], dtype=torch.bool, device=device)
    else:
        cell_ok = torch.all((neighbour3 >= 0) & (neighbour3 < n_cells_t), dim=2)
        neighbour3 = torch.minimum(torch.clamp(neighbour3, min=0), n_cells_t - 1)
    neighbour = (neighbour3[:, :, 0] * n_cells[1] + neighbour3[:, :, 1]) * n_cells[2] + neighbour3[:, :, 2]
    idx_j = table.index_select(0, neighbour.reshape(-1)).reshape(n_atoms, -1)  # [N, K*M]
    idx_i = torch.arange(n_atoms, device=device).unsqueeze(1).expand_as(idx_j)
    valid = (idx_j >= 0) & (idx_j != idx_i) & cell_ok.repeat_interleave(max_per_cell, dim=1)
    return idx_i, torch.clamp(idx_j, min=0), valid, overflow


def pair_vectors(positions: torch.Tensor, box: Optional[torch.Tensor], idx_i: torch.Tensor, idx_j: torch.Tensor):
    """r_ij = r_j - r_i [P, 3], minimum image when ``box`` is given."""
    r_ij = positions.index_select(0, idx_j) - positions.index_select(0, idx_i)
    if box is not None:
        r_ij = minimum_image(r_ij, box)
    return r_ij


def cell_list_pairs(positions: torch.Tensor, box: Optional[torch.Tensor], cutoff: float):
    """Pairs closer than ``cutoff``: (idx_i [P], idx_j [P]), found with a cell list."""
    with torch.no_grad():
        idx_i, idx_j, valid, _ = cell_list_candidates(positions.detach(), box, cutoff)
        idx_i = idx_i[valid]
        idx_j = idx_j[valid]
        r = torch.linalg.norm(pair_vectors(positions.detach(), box, idx_i, idx_j), dim=1)
        keep = r < cutoff
    return idx_i[keep], idx_j[keep]


def static_pairs(
    positions: torch.Tensor, box: torch.Tensor, cutoff: float, capacity: int, cells: List[int], per_cell: int
):
    """Pairs closer than ``cutoff`` padded to a fixed ``capacity``: (idx_i, idx_j, weight [capacity], n_pairs, overflow).

    Every shape is fixed by (N, ``cells``, ``per_cell``, ``capacity``) and nothing is read back to
    the host, as CUDA graphs require.  Padding entries have weight 0 (they point from atom 0 to
    atom 0).  ``overflow`` is true when the pairs, a cell's atoms or the cell widths exceed what the
    fixed shapes hold.
    """
    with torch.no_grad():
        idx_i, idx_j, valid, overflow = cell_list_candidates(positions.detach(), box, cutoff, cells, per_cell)
        idx_i = idx_i.reshape(-1)
        idx_j = idx_j.reshape(-1)
        r = torch.linalg.norm(pair_vectors(positions.detach(), box, idx_i, idx_j), dim=1)
        keep = valid.reshape(-1) & (r < cutoff)
        n_pairs = keep.sum()
        overflow = overflow | (n_pairs > capacity)
        # a stable sort puts the kept pairs first without a host synchronisation
        order = torch.argsort((~keep).to(torch.int8), stable=True)
        if order.shape[0] < capacity:
            pad = torch.zeros(capacity - order.shape[0], dtype=order.dtype, device=order.device)
            order = torch.cat([order, pad])
            keep = torch.cat([keep, torch.zeros(pad.shape[0], dtype=torch.bool, device=keep.device)])
        order = order[:capacity]
        weight = keep.index_select(0, order)
        idx_i = torch.where(weight, idx_i.index_select(0, torch.clamp(order, max=idx_i.shape[0] - 1)), 0)
        idx_j = torch.where(weight, idx_j.index_select(0, torch.clamp(order, max=idx_j.shape[0] - 1)), 0)
    return idx_i, idx_j, weight, n_pairs, overflow


def static_grid(box: torch.Tensor, positions: torch.Tensor, cutoff: float, spare: float = 2.0):
    """Fixed cell grid and per-cell capacity for :func:`static_pairs`, from a reference
    configuration: (cells [3], per_cell) with ``spare`` times the fullest cell's atoms."""
    cells: List[int] = torch.clamp(torch.floor(face_distances(box) / cutoff), min=1).to(torch.long).tolist()
    _, idx_j, _, _ = cell_list_candidates(positions, box, cutoff, cells, 0)
    fullest = idx_j.shape[1] // _cell_offsets(cells, True, positions.device).shape[0]
    return cells, max(8, int(spare * fullest))
