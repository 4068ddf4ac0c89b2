"""The deployable potential: a ``torch.nn.Module`` in OpenMM units, scripted into the artefact.

It converts units, builds pairs and dispatches to the evaluator of :mod:`painn_deploy.model.strategy`;
nothing else.  Positions are [N, 3] or [B, N, 3] (B configurations of the same particles: beads,
replicas) in nm, float32 or float64; box vectors [3, 3] or [B, 3, 3] in nm.  Outputs: energy
(kJ/mol), forces (kJ/mol/nm), dipole (e*nm), polarizability (nm^3), with the leading B axis when the
positions have one.  The module computes in the dtype of its weights (``.to(torch.float64)`` changes
it) on the device they are on (``.to("cuda")``).

The all-pairs and static-list paths have fixed shapes and no host synchronisation on GPUs (CUDA
graphs; ``torch.export``).  Checks that need the host (box widths, static-list overflow) run on the
CPU only; on GPUs a box narrower than twice the cutoff or an overflowing static list gives NaN energy and forces.

Errors are values inside the module: the private methods return a message ("" for none) and only the methods
a caller runs raise it, in their own bodies.  TorchScript inlines the methods a method calls, and in torch 2.9 an
exception raised from inlined code can crash the process (its error path reads the call stack of modules freed
since, e.g. an earlier ``torch.jit.freeze`` copy: every TorchForce Context makes one); an exception raised in the
body of the method that runs has no such call stack.  Wrappers call :meth:`PaiNNForceField.evaluate_or_error`
and raise in their own bodies too (:class:`ForcesOutput`).
"""

import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .. import neighbors, units
from ..elements import masses_amu, species_index
from ..errors import InputError
from ..model import PaiNNPotential
from ..model.painn import ungrouped
from ..model.strategy import PAIRS_PER_CHUNK, Evaluator, choose_strategy


def host_checks() -> bool:
    """Whether checks that read values back to the host may run: not while ``torch.export`` or
    ``torch.compile`` trace the module (TorchScript and eager calls: yes)."""
    if torch.jit.is_scripting():
        return True
    return not torch.compiler.is_compiling()


class RaisesItsErrors(nn.Module):
    """A model whose ``evaluate_or_error(positions, boxvectors)`` returns energy, forces, features and the message
    of an error ("" for none), and whose methods raise that error in their own bodies (see the module docstring)."""

    @torch.jit.export
    def energy_forces_features(
        self, positions: Tensor, boxvectors: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Energy (kJ/mol), forces (kJ/mol/nm) and the representation's final features s [.., N, F] and
        v [.., N, 3, F], from which ``responses`` gives the dipole and polarizability later."""
        energy, forces, s, v, error = self.evaluate_or_error(positions, boxvectors)
        if len(error) > 0:
            raise RuntimeError(error)
        return energy, forces, s, v


class PaiNNForceField(RaisesItsErrors):
    """PaiNN for a fixed set of N particles, in OpenMM units, with its neighbour list inside.

    ``neighbor_mode``: "all_pairs" (every pair, dense; molecules), "cell_list" (O(N), shapes depend on
    the positions) or "static" (periodic: a cell list with a fixed grid ``static_cells``, at most
    ``atoms_per_cell`` atoms per cell and ``pair_capacity`` pairs per frame, so every shape is fixed;
    see :func:`painn_deploy.neighbors.static_grid`).  ``pairs_per_chunk`` bounds the pair tensors of
    the pair-list paths on the CPU (on a GPU the chunks are larger: :mod:`painn_deploy.model.strategy`).
    """

    periodic: torch.jit.Final[bool]
    mode: torch.jit.Final[int]
    n_atoms: torch.jit.Final[int]
    n_particles: torch.jit.Final[int]
    select_atoms: torch.jit.Final[bool]
    n_features: torch.jit.Final[int]
    has_dipole: torch.jit.Final[bool]
    has_polarizability: torch.jit.Final[bool]
    cutoff_angstrom: torch.jit.Final[float]
    pair_capacity: torch.jit.Final[int]
    atoms_per_cell: torch.jit.Final[int]
    n_molecules: torch.jit.Final[int]

    def __init__(
        self,
        potential: PaiNNPotential,
        atomic_numbers: Sequence[int],
        periodic: bool = False,
        neighbor_mode: str = "all_pairs",
        dtype: torch.dtype = torch.float32,
        pair_capacity: int = 0,
        static_cells: Optional[Sequence[int]] = None,
        atoms_per_cell: int = 0,
        pairs_per_chunk: int = PAIRS_PER_CHUNK,
        atom_indices: Optional[Sequence[int]] = None,
        n_particles: int = 0,
        molecules: Optional[Sequence[int]] = None,
    ):
        super().__init__()
        if neighbor_mode not in neighbors.MODES:
            raise InputError(f"neighbor_mode must be one of {sorted(neighbors.MODES)}, not {neighbor_mode!r}")
        if neighbor_mode == "static":
            if not periodic:
                raise InputError(
                    "neighbor_mode='static' is for periodic systems; a molecule's all_pairs list already has fixed shapes"
                )
            if pair_capacity <= 0 or atoms_per_cell <= 0 or static_cells is None:
                raise InputError("neighbor_mode='static' needs pair_capacity, atoms_per_cell and static_cells")
        potential = copy.deepcopy(potential).to(dtype).eval()
        for p in potential.parameters():
            p.requires_grad_(False)
        config = potential.config
        n = len(atomic_numbers)
        self.evaluator = Evaluator(potential, choose_strategy(neighbor_mode), pairs_per_chunk)
        self.periodic = periodic
        self.mode = neighbors.MODES[neighbor_mode]
        self.n_atoms = n
        # the model's atoms among the particles of a larger system (ML/MM): positions come for all n_particles,
        # forces go back to all of them (zero on the others)
        self.select_atoms = atom_indices is not None
        self.n_particles = int(n_particles) if atom_indices is not None else n
        if atom_indices is not None and (len(atom_indices) != n or max(atom_indices) >= self.n_particles):
            raise InputError(f"atom_indices must hold {n} indices below n_particles={self.n_particles}")
        self.register_buffer(
            "atom_indices", torch.tensor(list(atom_indices) if atom_indices is not None else [], dtype=torch.long)
        )
        self.n_features = config.n_features
        self.has_dipole = "dipole" in config.targets
        self.has_polarizability = "polarizability" in config.targets
        self.cutoff_angstrom = float(config.cutoff_angstrom)
        self.pair_capacity = int(pair_capacity)
        self.static_cells: List[int] = [int(c) for c in static_cells] if static_cells is not None else [1, 1, 1]
        self.atoms_per_cell = int(atoms_per_cell)
        self.register_buffer("atomic_numbers", torch.tensor(list(atomic_numbers), dtype=torch.long))
        self.register_buffer("species", torch.from_numpy(species_index(atomic_numbers, config.elements)))
        self.register_buffer("masses", torch.from_numpy(masses_amu(atomic_numbers)).to(dtype))
        # each atom's molecule (0, 1, ...): the output heads neutralise latent charges and take centres of mass per
        # molecule, so that the dipole and polarizability of molecules far apart add up, in any periodic image
        index = [0] * n if molecules is None else [int(m) for m in molecules]
        if len(index) != n or sorted(set(index)) != list(range(max(index, default=-1) + 1)):
            raise InputError(f"molecules must give each of the {n} atoms a molecule index 0, 1, ... (every one used)")
        self.n_molecules = max(index, default=-1) + 1
        self.register_buffer("molecule_index", torch.tensor(index, dtype=torch.long))
        self.register_buffer("molecule_charges", torch.zeros(self.n_molecules, dtype=dtype))
        # all pairs as a dense [N, N] array: every pair but an atom with itself
        mask = 1.0 - torch.eye(n, dtype=dtype) if neighbor_mode == "all_pairs" else torch.zeros((0, 0), dtype=dtype)
        self.register_buffer("pair_mask", mask)
        self.register_buffer("dtype_marker", torch.zeros((), dtype=dtype))
        self.called = False  # whether forward ran (see forward)

    # ---- the artefact's API ---------------------------------------------------------------------------
    def forward(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Tensor:
        """Potential energy (kJ/mol): the TorchForce contract.  Differentiable with respect to
        ``positions`` (first derivatives, from the hand-written gradient).

        The evaluation appears twice, in a branch for the first call and one for every later call.
        TorchScript's profiling executor optimises the graph from what the first call showed it.  When the
        positions require gradients (openmm-torch's energy contract), it groups every operation it saw into
        differentiable subgraphs, even under ``no_grad``, and each subgraph costs time on every call.  The
        branch it never saw it leaves as plain operations (benchmarks/results/md_speed.md, ``plain``).
        ``called`` is saved with the module, so artefacts are saved with it False.  For ``torch.export``, export
        :meth:`energy_forces_features`."""
        if self.called:
            energy, forces, _, _, error = self._evaluate(positions, boxvectors)
        else:
            energy, forces, _, _, error = self._evaluate(positions, boxvectors)
            self.called = True
        if len(error) > 0:  # (raised here, not where it is found: see the module's docstring)
            raise RuntimeError(error)
        if positions.requires_grad:
            energy = _with_gradient(energy, positions, -forces)
        return energy

    @torch.jit.export
    def energy_and_forces(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Energy (kJ/mol) and forces (kJ/mol/nm): the TorchForce contract with ``setOutputsForces(True)``."""
        energy, forces, _, _, error = self._evaluate(positions, boxvectors)
        if len(error) > 0:
            raise RuntimeError(error)
        return energy, forces

    @torch.jit.export
    def evaluate_or_error(
        self, positions: Tensor, boxvectors: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor, str]:
        """:meth:`energy_forces_features` and the message of the error it would raise ("" for none; the tensors
        are then not results), for modules around this one, which raise it in their own bodies."""
        return self._evaluate(positions, boxvectors)

    @torch.jit.export
    def responses(self, s: Tensor, v: Tensor, positions: Tensor) -> Dict[str, Tensor]:
        """Dipole (e*nm) and polarizability (nm^3) from the features of :meth:`energy_forces_features`
        and the positions (nm) they were computed at: the output heads only.  Frames may be batched
        ([B, N, F], [B, N, 3, F], [B, N, 3]).  The sums of each molecule's (neutral latent charges, positions
        from its centre of mass), so each molecule must be whole, as OpenMM's positions are when a run starts
        with whole molecules."""
        with torch.no_grad():
            batched = positions.dim() == 3
            n = self.n_atoms
            if self.select_atoms and positions.shape[-2] == self.n_particles:
                positions = positions.index_select(-2, self.atom_indices)
            n_frames = positions.shape[0] if batched else 1
            pos = positions.to(self.dtype_marker.dtype).reshape(n_frames * n, 3) * units.ANGSTROM_PER_NM
            s = s.reshape(n_frames * n, self.n_features)
            v = v.reshape(n_frames * n, 3, self.n_features)
            m = self.n_molecules
            frame = torch.arange(n_frames, device=pos.device).repeat_interleave(n)
            batch = frame * m + self.molecule_index.repeat(n_frames)  # (frame, molecule)
            species = self.species.repeat(n_frames)
            out = self.evaluator.potential.heads(
                s, v, species, pos, batch, n_frames * m, self.masses.repeat(n_frames),
                self.molecule_charges.repeat(n_frames), False, True,
            )  # fmt: skip
            result: Dict[str, Tensor] = {}
            if self.has_dipole:
                dipole = out["dipole"].reshape(n_frames, m, 3).sum(1) * units.NM_PER_ANGSTROM
                result["dipole"] = dipole if batched else dipole[0]
            if self.has_polarizability:
                alpha = out["polarizability"].reshape(n_frames, m, 3, 3).sum(1) * units.NM_PER_ANGSTROM**3
                result["polarizability"] = alpha if batched else alpha[0]
        return result

    @torch.jit.export
    def properties(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Energy (kJ/mol), forces (kJ/mol/nm), dipole (e*nm) and polarizability (nm^3), where the model
        has those heads, of one evaluation."""
        energy, forces, s, v, error = self._evaluate(positions, boxvectors)
        if len(error) > 0:
            raise RuntimeError(error)
        result: Dict[str, Tensor] = {"energy": energy, "forces": forces}
        for key, value in self.responses(s, v, positions).items():
            result[key] = value
        return result

    # ---- units, pairs, dispatch ---------------------------------------------------------------------------
    def _evaluate(self, positions_nm: Tensor, box_nm: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor, Tensor, str]:
        """Energy (kJ/mol), forces (kJ/mol/nm, in the dtype of the positions) and the features, for [N, 3] or
        [B, N, 3] positions (nm), and the message of an error ("" for none; the tensors are then not results).

        Runs outside autograd, on a copy of the positions made before anything else reads them: openmm-torch
        passes positions that require gradients, and if TorchScript's profiling executor sees any operation
        on such a tensor, it wraps the whole graph in differentiable subgraphs (a cost that
        benchmarks/results/md_speed.md measures; :meth:`forward` avoids it by evaluating in a branch the
        executor never profiled)."""
        with torch.no_grad():
            # a copy, not detach() (which torch.jit.freeze removes)
            positions_nm = torch.empty_like(positions_nm).copy_(positions_nm)
            dtype = self.dtype_marker.dtype
            box: Optional[Tensor] = None
            if box_nm is not None and self.periodic:
                box = box_nm.to(dtype) * units.ANGSTROM_PER_NM
            host = positions_nm.device.type == "cpu" and host_checks()  # (then invalid frames are errors)
            error = self._input_error(positions_nm, box_nm, box, host)
            if len(error) > 0:  # (no return inside `with`: TorchScript cannot compile one)
                none = positions_nm.new_zeros((0,))
                energy, forces, s, v = none, none, none, none
            else:
                energy, forces, s, v, error = self._compute(positions_nm, box, host)
        return energy, forces, s, v, error

    def _compute(
        self, positions_nm: Tensor, box: Optional[Tensor], host: bool
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor, str]:
        """:meth:`_evaluate` (under its ``no_grad``) for inputs it checked (``box`` in Angstrom); the error: a
        static list's overflow found on the host."""
        batched = positions_nm.dim() == 3
        dtype = self.dtype_marker.dtype
        error = ""
        input_dtype = positions_nm.dtype
        if self.select_atoms:
            positions_nm = positions_nm.index_select(-2, self.atom_indices)
        positions = positions_nm.to(dtype).reshape(-1, self.n_atoms, 3) * units.ANGSTROM_PER_NM
        n_frames = positions.shape[0]
        # frames whose results cannot be right (a box narrower than twice the cutoff, a static list that
        # overflowed): where nothing is read back to the host (the GPU), their energy and forces are NaN; and
        # frames with atoms at NaN or infinite positions, on every device
        invalid: Optional[Tensor] = None
        if box is not None:
            box = box.expand(n_frames, 3, 3)
            if not host:
                invalid = neighbors.too_small(box, self.cutoff_angstrom)
        if self.mode == neighbors.ALL_PAIRS:
            r_ij = positions.unsqueeze(1) - positions.unsqueeze(2)  # r_j - r_i [B, N(i), N(j), 3]
            if box is not None:
                r_ij = neighbors.minimum_image(r_ij, box.reshape(n_frames, 1, 1, 3, 3))
            no_pairs = self.species[:0]  # (the dense strategy takes no pair list)
            result = self.evaluator(self.species, r_ij, no_pairs, no_pairs, self.pair_mask, n_frames)
            # r_ij = r_j - r_i (+ a fixed lattice vector): dE/dr_j = sum_i dE/dr_ij, dE/dr_i = -sum_j dE/dr_ij
            gradient = result.gradient.sum(1) - result.gradient.sum(2)
            energy = result.energy
        else:
            # atoms at NaN or infinite positions would have no pairs (a finite energy): their frames' energy and
            # forces are NaN, as with all pairs, and the pairs are searched with such atoms at the origin
            finite = torch.isfinite(positions)
            not_finite = ~finite.all(-1).all(-1)
            invalid = not_finite if invalid is None else invalid | not_finite
            positions = torch.where(finite, positions, torch.zeros_like(positions))
            idx_i, idx_j, r_ij, weight, overflow, error = self._pair_list(positions, box)
            result = self.evaluator(self.species, r_ij, idx_i, idx_j, weight, n_frames)
            flat = torch.zeros((n_frames * self.n_atoms, 3), dtype=dtype, device=positions.device)
            gradient = flat.index_add(0, idx_j, result.gradient).index_add(0, idx_i, -result.gradient)
            gradient = gradient.reshape(n_frames, self.n_atoms, 3)
            energy = result.energy
            if not host:
                invalid = overflow if invalid is None else invalid | overflow
        if invalid is not None:
            energy = torch.where(invalid, torch.full_like(energy, float("nan")), energy)
            gradient = torch.where(invalid.reshape(n_frames, 1, 1), torch.full_like(gradient, float("nan")), gradient)
        energy = energy * units.EV_TO_KJ_PER_MOL
        forces = (gradient * (-units.EV_TO_KJ_PER_MOL * units.ANGSTROM_PER_NM)).to(input_dtype)
        if self.select_atoms:
            every = torch.zeros((n_frames, self.n_particles, 3), dtype=input_dtype, device=forces.device)
            forces = every.index_copy(1, self.atom_indices, forces)
        s, v = result.s, result.v
        if not batched:
            energy, forces, s, v = energy[0], forces[0], s[0], v[0]
        return energy, forces, s, v, error

    def _input_error(self, positions_nm: Tensor, box_nm: Optional[Tensor], box: Optional[Tensor], host: bool) -> str:
        """The message of the error of inputs the model cannot evaluate ("" for none): positions of other
        particles, a box missing or not wanted, and (``host``) a box narrower than twice the cutoff."""
        n_dims = positions_nm.dim()
        if n_dims < 2 or n_dims > 3 or positions_nm.shape[-2] != self.n_particles or positions_nm.shape[-1] != 3:
            return (
                "TopologyMismatchError: the model was exported for " + str(self.n_particles) + " particles, "
                "positions [N, 3] or [B, N, 3], but received positions of shape " + str(positions_nm.shape)
                + "; export it for this system with painn-export --pdb."
            )  # fmt: skip
        if self.periodic:
            if box is None:
                return "InputError: this model is periodic: call it with (positions, boxvectors)"
            box_dims = box.dim()
            if (
                box_dims < 2 or box_dims > 3 or box.shape[-2] != 3 or box.shape[-1] != 3
                or (box_dims == 3 and box.shape[0] != 1 and (n_dims != 3 or box.shape[0] != positions_nm.shape[0]))
            ):  # fmt: skip
                return (
                    "InputError: box vectors must be [3, 3] (rows a, b, c in nm, as OpenMM gives them), or [B, 3, 3]: "
                    "one box per frame of positions [B, N, 3]; received " + str(box.shape) + " with positions of "
                    "shape " + str(positions_nm.shape)
                )  # fmt: skip
            if host:
                return neighbors.box_error(box, self.cutoff_angstrom)
        elif box_nm is not None:  # (a plain TorchForce told to use periodic boundaries: the box would be ignored)
            return (
                "InputError: this model was exported without a periodic box but was called with box vectors, "
                "which it would ignore; export it periodic (painn-export CHECKPOINT --pdb SYSTEM.pdb, with a "
                "CRYST1 box), or call it without box vectors (TorchForce: setUsesPeriodicBoundaryConditions(False))"
            )
        return ""

    def _pair_list(
        self, positions: Tensor, box: Optional[Tensor]
    ) -> Tuple[Tensor, Tensor, Tensor, Optional[Tensor], Tensor, str]:
        """Pairs of every frame (cell list or static list), frame-major over the B * N atoms:
        idx_i, idx_j, r_ij = r_j - r_i (Angstrom), weights (static: 0 for padding), a per-frame
        overflow flag [B] (static list) and the message of an overflow found on the host ("" for none)."""
        n_frames, n = positions.shape[0], self.n_atoms
        idx_i_all: List[Tensor] = []
        idx_j_all: List[Tensor] = []
        r_all: List[Tensor] = []
        weights: List[Tensor] = []
        overflows: List[Tensor] = []
        error = ""
        for b in range(n_frames):
            frame_box: Optional[Tensor] = None if box is None else box[b]
            if self.mode == neighbors.CELL_LIST:
                idx_i, idx_j = neighbors.cell_list_pairs(positions[b], frame_box, self.cutoff_angstrom)
                overflows.append(torch.zeros((), dtype=torch.bool, device=positions.device))
            else:
                assert frame_box is not None
                idx_i, idx_j, weight, n_pairs, overflow = neighbors.static_pairs(
                    positions[b], frame_box, self.cutoff_angstrom, self.pair_capacity, self.static_cells,
                    self.atoms_per_cell,
                )  # fmt: skip
                if len(error) == 0 and positions.device.type == "cpu" and host_checks() and bool(overflow):
                    error = (
                        "NeighborListOverflowError: the static neighbour list holds " + str(self.pair_capacity)
                        + " pairs and " + str(self.atoms_per_cell) + " atoms per cell of a fixed grid; this "
                        "configuration has " + str(int(n_pairs)) + " pairs (or a cell overflowed, or the box "
                        "shrank below the grid). Export again for this configuration (its box) with a larger "
                        "--pair-capacity, or use --neighbor-list cell_list."
                    )  # fmt: skip
                weights.append(weight.to(positions.dtype))
                overflows.append(overflow)
            r_all.append(neighbors.pair_vectors(positions[b], frame_box, idx_i, idx_j))
            idx_i_all.append(idx_i + b * n)
            idx_j_all.append(idx_j + b * n)
        weight_all: Optional[Tensor] = torch.cat(weights) if len(weights) > 0 else None
        r_ij = ungrouped(torch.cat(r_all))
        return torch.cat(idx_i_all), torch.cat(idx_j_all), r_ij, weight_all, torch.stack(overflows), error


def _with_gradient(energy: Tensor, positions: Tensor, gradient: Tensor) -> Tensor:
    """The value of ``energy`` with ``gradient`` (the shape of ``positions``) as its gradient with respect to
    ``positions`` for autograd (first derivatives only).

    Not ``energy + sum((positions - positions.detach()) * gradient)``: openmm-torch freezes the module
    (``torch.jit.freeze``), and freezing removes ``detach``, which made that gradient zero."""
    with torch.no_grad():  # copies that no graph optimisation folds into their sources
        value = torch.empty_like(positions).copy_(positions)
        offset = torch.sum((value.double() * gradient.double()).flatten(-2), -1)
        base = torch.empty(energy.shape, dtype=torch.float64, device=energy.device).copy_(energy)
    linear = torch.sum((positions.double() * gradient.double()).flatten(-2), -1) - offset  # zero, with that gradient
    return (base + linear).to(energy.dtype)


class ForcesOutput(nn.Module):
    """A model in the TorchForce contract with ``setOutputsForces(True)``, over a System whose particles are
    ``n_frames`` copies of the model's N particles (frame-major: beads or replicas).

    ``forward(positions [F * N, 3], boxvectors)`` returns the energy summed over the frames (kJ/mol) and the
    forces [F * N, 3] (kJ/mol/nm), from one batched evaluation, so openmm-torch runs no backward pass of its
    own.  With ``modes`` (the orthogonal [P, P] normal-mode matrix of ring polymers of P beads, the F frames being
    F / P replicas of P beads each) the particles are each ring polymer's normal modes rather than its beads:
    beads = modes^T @ particles, and the forces go back as modes @ bead forces, one replica at a time.
    :meth:`evaluate` also returns the frames' positions and features, for the recording heads."""

    n_frames: torch.jit.Final[int]
    use_modes: torch.jit.Final[bool]

    def __init__(self, model: nn.Module, n_frames: int = 1, modes: Optional[Tensor] = None):
        super().__init__()
        self.model = model
        self.n_frames = int(n_frames)
        self.use_modes = modes is not None
        self.register_buffer("modes", torch.zeros((0, 0), dtype=torch.float64) if modes is None else modes.double())

    def forward(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        energy, forces, _, _, _, error = self._evaluate(positions, boxvectors)
        if len(error) > 0:  # (raised here, not where it is found: see the module's docstring)
            raise RuntimeError(error)
        return energy, forces

    @torch.jit.export
    def evaluate(
        self, positions: Tensor, boxvectors: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Energy (kJ/mol, summed over frames), forces [F * N, 3], and the frames' positions [F, N, 3] (nm)
        and features s [F, N, F_], v [F, N, 3, F_]."""
        energy, forces, frames, s, v, error = self._evaluate(positions, boxvectors)
        if len(error) > 0:
            raise RuntimeError(error)
        return energy, forces, frames, s, v

    def _evaluate(
        self, positions: Tensor, boxvectors: Optional[Tensor]
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, str]:
        with torch.no_grad():  # before anything reads them: openmm-torch passes positions that require gradients
            positions = torch.empty_like(positions).copy_(positions)
        f = self.n_frames
        n = positions.shape[0] // f
        p = self.modes.shape[0] if self.use_modes else 1
        frames = positions.reshape(f // p, p, n * 3)  # [replicas, beads, N * 3]
        if self.use_modes:
            frames = torch.matmul(self.modes.t().to(positions.dtype), frames)
        frames = frames.reshape(f, n, 3)
        if f == 1:  # one configuration: the unbatched path
            energy, forces, s, v, error = self.model.evaluate_or_error(frames[0], boxvectors)
            forces, s, v = forces.unsqueeze(0), s.unsqueeze(0), v.unsqueeze(0)
        else:
            energy, forces, s, v, error = self.model.evaluate_or_error(frames, boxvectors)
        if len(error) > 0:
            return energy, forces, frames, s, v, error
        forces = forces.reshape(f // p, p, n * 3)
        if self.use_modes:
            forces = torch.matmul(self.modes.to(forces.dtype), forces)
        return energy.sum(), forces.reshape(f * n, 3), frames, s, v, ""
