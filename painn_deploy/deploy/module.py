"""The deployable potential: a plain ``torch.nn.Module`` in OpenMM units.

The same object is compiled with TorchScript for ``openmmtorch.TorchForce`` and called eagerly
by the ``openmm.PythonForce`` backend, so both backends share one code path.

Inputs: positions [N, 3] in nm (float32 or float64), optional box vectors [3, 3] in nm.
Outputs: energy in kJ/mol; :meth:`properties` adds forces (kJ/mol/nm), dipole (e*nm) and
polarizability (nm^3).  Unit conversion happens here and nowhere else on this side.
"""

import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .. import neighbors, units
from ..elements import masses_amu, species_index
from ..errors import InputError
from ..model import PaiNNPotential, all_pairs

# above this many pairs (~5,000 atoms of liquid) forces come from recomputing each block instead of from
# autograd's saved tensors, which would need ~27 kB per pair (7 GB here); the recomputation costs x1.3 the time
RECOMPUTE_ABOVE_PAIRS = 2**18


class PaiNNForceField(nn.Module):
    """PaiNN for a fixed set of N particles, in OpenMM units, with its neighbour list inside.

    ``neighbor_mode``: "all_pairs" (every pair every step; fastest for small molecules),
    "cell_list" (O(N), dynamic shapes) or "static" (periodic only: a cell list with a fixed grid
    ``static_cells``, at most ``atoms_per_cell`` atoms per cell and ``pair_capacity`` pairs, so
    every shape is fixed and nothing is read back to the host, as CUDA graphs need; an overflow
    raises an error on the CPU and gives a NaN energy on GPUs).  Use
    :func:`painn_deploy.neighbors.static_grid` for the grid of a reference configuration.
    ``recompute_above_pairs``: systems with more pairs than this get their forces by recomputation
    (memory O(N) instead of ~27 kB per pair; see :meth:`_energy_and_features`).

    Forces of all-pairs systems come from a hand-written backward pass (:meth:`PaiNN.backward_dense`),
    which is faster than autograd but gives first derivatives only: set ``autograd_forces = True``
    (also on a loaded TorchScript module) to differentiate twice, e.g. for a Hessian.
    """

    periodic: torch.jit.Final[bool]
    mode: torch.jit.Final[int]
    has_dipole: torch.jit.Final[bool]
    has_polarizability: torch.jit.Final[bool]
    cutoff_angstrom: torch.jit.Final[float]
    pair_capacity: torch.jit.Final[int]
    recompute_above_pairs: torch.jit.Final[int]
    tap: Optional[torch.Tensor]

    def __init__(
        self,
        potential: PaiNNPotential,
        atomic_numbers: Sequence[int],
        periodic: bool = False,
        neighbor_mode: str = "all_pairs",
        dtype: torch.dtype = torch.float32,
        total_charge_e: float = 0.0,
        pair_capacity: int = 0,
        static_cells: Optional[Sequence[int]] = None,
        atoms_per_cell: int = 0,
        recompute_above_pairs: int = RECOMPUTE_ABOVE_PAIRS,
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
        self.potential = copy.deepcopy(potential).to(dtype).eval()
        for p in self.potential.parameters():
            p.requires_grad_(False)
        config = potential.config
        n = len(atomic_numbers)
        self.periodic = periodic
        self.mode = neighbors.MODES[neighbor_mode]
        self.has_dipole = "dipole" in config.targets
        self.has_polarizability = "polarizability" in config.targets
        self.cutoff_angstrom = float(config.cutoff_angstrom)
        self.pair_capacity = int(pair_capacity)
        self.recompute_above_pairs = int(recompute_above_pairs)
        self.static_cells: List[int] = [int(c) for c in static_cells] if static_cells is not None else [1, 1, 1]
        self.atoms_per_cell = int(atoms_per_cell)
        self.register_buffer("atomic_numbers", torch.tensor(list(atomic_numbers), dtype=torch.long))
        self.register_buffer("species", torch.from_numpy(species_index(atomic_numbers, config.elements)))
        self.register_buffer("masses", torch.from_numpy(masses_amu(atomic_numbers)).to(dtype))
        self.register_buffer("batch", torch.zeros(n, dtype=torch.long))
        self.register_buffer("total_charge", torch.tensor([total_charge_e], dtype=dtype))
        idx_i, idx_j = all_pairs(n) if neighbor_mode == "all_pairs" else (torch.zeros(0, dtype=torch.long),) * 2
        self.register_buffer("idx_i", idx_i)
        self.register_buffer("idx_j", idx_j)
        # all pairs as a dense [N, N] array (forward_dense): every pair but an atom with itself
        mask = 1.0 - torch.eye(n, dtype=dtype) if neighbor_mode == "all_pairs" else torch.zeros((0, 0), dtype=dtype)
        self.register_buffer("pair_mask", mask)
        self.register_buffer("dtype_marker", torch.zeros((), dtype=dtype))
        # feature tap (see _tap_write): off unless a driver sets tap_path and tap_capacity on a loaded copy
        self.tap_path = ""
        self.tap_capacity = 0
        self.tap = None
        # forces of molecules (all pairs) and of systems above recompute_above_pairs come from hand-written
        # backward passes, first derivatives only; set this on a copy for second derivatives (Hessians)
        self.autograd_forces = False

    def _pairs(self, positions_nm: torch.Tensor, box_nm: Optional[torch.Tensor]):
        """Positions [N, 3] and box [3, 3] in Angstrom, the pairs idx_i, idx_j [P], their weights (static
        list) and the static list's overflow flag, for positions [N, 3] and box [3, 3] in nm."""
        if positions_nm.shape[0] != self.species.shape[0]:
            raise RuntimeError(
                "TopologyMismatchError: the model was exported for "
                + str(self.species.shape[0])
                + " particles but received "
                + str(positions_nm.shape[0])
                + "; export it for this system with painn-export --pdb."
            )
        positions = positions_nm.to(self.dtype_marker.dtype) * units.ANGSTROM_PER_NM
        box: Optional[torch.Tensor] = None
        if self.periodic:
            if box_nm is None:
                raise RuntimeError("this model is periodic: call forward(positions, boxvectors)")
            box = box_nm.to(self.dtype_marker.dtype) * units.ANGSTROM_PER_NM
            if positions.device.type == "cpu" or self.mode != neighbors.STATIC:  # no host sync under CUDA graphs
                neighbors.check_box(box, self.cutoff_angstrom)
        pair_weight: Optional[torch.Tensor] = None
        overflow = torch.zeros((), dtype=torch.bool, device=positions.device)
        if self.mode == neighbors.ALL_PAIRS:
            idx_i, idx_j = self.idx_i, self.idx_j
        elif self.mode == neighbors.CELL_LIST:
            idx_i, idx_j = neighbors.cell_list_pairs(positions, box, self.cutoff_angstrom)
        else:
            assert box is not None
            idx_i, idx_j, weight, n_pairs, overflow = neighbors.static_pairs(
                positions, box, self.cutoff_angstrom, self.pair_capacity, self.static_cells, self.atoms_per_cell
            )
            pair_weight = weight.to(positions.dtype)
            if positions.device.type == "cpu" and bool(overflow):
                raise RuntimeError(
                    "NeighborListOverflowError: the static neighbour list holds "
                    + str(self.pair_capacity)
                    + " pairs and "
                    + str(self.atoms_per_cell)
                    + " atoms per cell of a fixed grid; this configuration has "
                    + str(int(n_pairs))
                    + " pairs (or a cell overflowed, or the box shrank). Export again with a larger --pair-capacity "
                    "or use --neighbor-list cell_list."
                )
        return positions, box, idx_i, idx_j, pair_weight, overflow

    def _energy_and_features(self, positions_nm: torch.Tensor, box_nm: Optional[torch.Tensor]):
        """Energy (kJ/mol, scalar; differentiable with respect to ``positions_nm`` when that requires
        gradients) and the representation's features s [N, F] and v [N, 3, F], for positions [N, 3] and
        box [3, 3] in nm.  The energy's gradient comes from :meth:`_energy_gradient_features` (hand-written
        backward passes) unless ``autograd_forces`` asks for autograd through the whole network."""
        if positions_nm.requires_grad and not self.autograd_forces:
            energy, grad, s, v = self._energy_gradient_features(positions_nm, box_nm)
            return self._with_gradient(energy, positions_nm, grad), s, v
        positions, box, idx_i, idx_j, pair_weight, overflow = self._pairs(positions_nm, box_nm)
        rep = self.potential.representation
        if self.mode == neighbors.ALL_PAIRS:  # small systems: every pair, as dense [N, N] arrays
            s, v, _ = rep.forward_dense(self.species, self._dense_pair_vectors(positions, box), self.pair_mask)
        else:
            s, v = rep(self.species, idx_i, idx_j, neighbors.pair_vectors(positions, box, idx_i, idx_j), pair_weight)
        return self._energy(s, positions, overflow), s, v

    def _energy_gradient_features(self, positions_nm: torch.Tensor, box_nm: Optional[torch.Tensor]):
        """Energy (kJ/mol, scalar), its gradient [N, 3] (kJ/mol/nm) with respect to positions [N, 3] (nm)
        and the features s [N, F], v [N, 3, F], none of them holding an autograd graph.

        - All pairs (molecules): :meth:`PaiNN.forward_dense` and its hand-written backward pass
          :meth:`PaiNN.backward_dense`: an ethanol force call takes x0.7 the time it took with autograd
          (benchmarks/md_speed.py).
        - Above ``recompute_above_pairs`` pairs: autograd would keep ~27 kB per pair (39 GB for 30,000
          atoms of liquid), so the representation runs without it, keeping each block's inputs, and
          :meth:`PaiNN.backward_recomputed` evaluates each block again for the gradient, chunk by chunk.
        - Otherwise autograd.

        The positions are copied outside autograd first: openmm-torch passes positions that require
        gradients, and TorchScript's executor then wraps the graph in differentiable subgraphs that cost
        ethanol 0.15 ms per call even though no gradient flows through them (benchmarks/md_speed.py)."""
        with torch.no_grad():  # (a copy, not detach(), see _with_gradient)
            positions_nm = torch.empty_like(positions_nm).copy_(positions_nm)
            positions, box, idx_i, idx_j, pair_weight, overflow = self._pairs(positions_nm, box_nm)
        rep = self.potential.representation
        if self.mode == neighbors.ALL_PAIRS:
            with torch.no_grad():
                r_ij = self._dense_pair_vectors(positions, box)
                s, v, kept = rep.forward_dense(self.species, r_ij, self.pair_mask, True)
                energy, grad_s = self._energy_and_feature_gradient(s, overflow)
                grad_r = rep.backward_dense(r_ij, self.pair_mask, kept, grad_s)
            # r_ij = r_j - r_i (+ a fixed lattice vector): dE/dr_j = sum_i dE/dr_ij, dE/dr_i = -sum_j dE/dr_ij
            grad = grad_r.sum(0) - grad_r.sum(1)
        elif idx_i.shape[0] > self.recompute_above_pairs:
            with torch.no_grad():
                r_ij = neighbors.pair_vectors(positions, box, idx_i, idx_j)
                s, v, kept = rep.forward_in_chunks(self.species, idx_i, idx_j, r_ij, pair_weight, True)
            energy, grad_s = self._energy_and_feature_gradient(s, overflow)
            self._check_grad_enabled()  # (vector-Jacobian products of one block at a time)
            grad_r = rep.backward_recomputed(idx_i, idx_j, r_ij, pair_weight, kept, grad_s, torch.zeros_like(v))
            grad = torch.zeros(positions.shape, dtype=r_ij.dtype, device=r_ij.device)
            grad = grad.index_add(0, idx_j, grad_r).index_add(0, idx_i, -grad_r)
        else:
            self._check_grad_enabled()
            positions = positions.requires_grad_(True)
            s, v = rep(self.species, idx_i, idx_j, neighbors.pair_vectors(positions, box, idx_i, idx_j), pair_weight)
            energy = self._energy(s, positions, overflow)
            gradient = torch.autograd.grad([energy], [positions])[0]
            assert gradient is not None
            grad, energy = gradient, energy.detach()
            s, v = s.detach(), v.detach()
        return energy, (grad * units.ANGSTROM_PER_NM).to(positions_nm.dtype), s, v

    def _check_grad_enabled(self) -> None:
        if not torch.is_grad_enabled():
            raise RuntimeError(
                "forces of models with a cell list or static neighbour list need autograd: call "
                "energy_and_forces(), forces_and_features() or properties() with gradients enabled, not under "
                "torch.no_grad()"
            )

    def _dense_pair_vectors(self, positions: torch.Tensor, box: Optional[torch.Tensor]) -> torch.Tensor:
        """r_j - r_i [N, N, 3] (minimum image if periodic) of positions [N, 3] and box [3, 3], Angstrom."""
        r_ij = positions.unsqueeze(0) - positions.unsqueeze(1)
        if box is not None:
            r_ij = neighbors.minimum_image(r_ij.reshape(-1, 3), box).reshape(r_ij.shape)
        return r_ij

    def _energy_and_feature_gradient(self, s: torch.Tensor, overflow: torch.Tensor):
        """Energy (kJ/mol, scalar) of the final features s [N, F] and its gradient [N, F] with respect to s,
        without autograd (:meth:`EnergyHead.value_and_gradient`)."""
        head = self.potential.energy_head
        assert head is not None
        energy, grad_s = head.value_and_gradient(s, self.species)
        energy = energy[0] * units.EV_TO_KJ_PER_MOL
        if self.mode == neighbors.STATIC:  # sync-free overflow signal on GPUs
            energy = torch.where(overflow, torch.full_like(energy, float("nan")), energy)
        return energy, grad_s * units.EV_TO_KJ_PER_MOL

    def _with_gradient(self, energy: torch.Tensor, positions: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """The value of ``energy`` (no gradient of its own), with ``grad`` [N, 3] as its gradient with respect
        to ``positions`` for autograd (TorchForce's forces, ``forces_and_features``): first derivatives only.

        Not ``energy + sum((positions - positions.detach()) * grad)``: openmm-torch freezes the module
        (``torch.jit.freeze``), and freezing removes ``detach``, which made that gradient zero."""
        with torch.no_grad():  # copies that no graph optimisation folds into their sources
            value = torch.empty_like(positions).copy_(positions)
            offset = torch.sum(value.double() * grad.double())
            base = torch.empty((), dtype=torch.float64, device=energy.device).copy_(energy)
        linear = torch.sum(positions.double() * grad.double()) - offset  # zero, in float64, with gradient grad
        return (base + linear).to(energy.dtype)

    def _heads(
        self, s: torch.Tensor, v: torch.Tensor, positions: torch.Tensor, n_frames: int, energy: bool, responses: bool
    ) -> Dict[str, torch.Tensor]:
        """Heads on the features of ``n_frames`` frames of the N particles (s [B*N, F], v [B*N, 3, F],
        positions [B*N, 3] in Angstrom); outputs in OpenMM units with a leading dimension B."""
        if n_frames == 1:
            species, batch, masses, charge = self.species, self.batch, self.masses, self.total_charge
        else:
            n = self.species.shape[0]
            species = self.species.repeat(n_frames)
            batch = torch.arange(n_frames, device=positions.device).repeat_interleave(n)
            masses = self.masses.repeat(n_frames)
            charge = self.total_charge.repeat(n_frames)
        out = self.potential.heads(s, v, species, positions, batch, n_frames, masses, charge, energy, responses)
        result: Dict[str, torch.Tensor] = {}
        if energy:
            result["energy"] = out["energy"] * units.EV_TO_KJ_PER_MOL
        if self.has_dipole and responses:
            result["dipole"] = out["dipole"] * units.NM_PER_ANGSTROM
        if self.has_polarizability and responses:
            result["polarizability"] = out["polarizability"] * units.NM_PER_ANGSTROM**3
        return result

    def _energy(self, s: torch.Tensor, positions: torch.Tensor, overflow: torch.Tensor) -> torch.Tensor:
        """Energy (kJ/mol, scalar) of one frame's features; NaN if the static neighbour list overflowed."""
        energy = self._heads(s, s, positions, 1, True, False)["energy"][0]  # (the energy head ignores v)
        if self.mode == neighbors.STATIC:  # sync-free overflow signal on GPUs
            energy = torch.where(overflow, torch.full_like(energy, float("nan")), energy)
        return energy

    def _evaluate(
        self, positions_nm: torch.Tensor, box_nm: Optional[torch.Tensor], energy_only: bool
    ) -> Dict[str, torch.Tensor]:
        energy, s, v = self._energy_and_features(positions_nm, box_nm)
        result: Dict[str, torch.Tensor] = {"energy": energy}
        if not energy_only:
            positions = positions_nm.to(self.dtype_marker.dtype) * units.ANGSTROM_PER_NM
            for key, value in self._heads(s, v, positions, 1, False, True).items():
                result[key] = value[0]
        return result

    def forward(self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Potential energy (kJ/mol) of positions [N, 3] (nm); the TorchForce contract."""
        energy, s, v = self._energy_and_features(positions, boxvectors)
        if self.tap_path != "":
            self._tap_write(positions, s, v)
        return energy

    @torch.jit.export
    def energy_and_forces(
        self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Potential energy (kJ/mol, scalar) and forces [N, 3] (kJ/mol/nm) of positions [N, 3] (nm), without
        autograd where the model has hand-written backward passes: the TorchForce contract with
        ``setOutputsForces(True)`` (:class:`ForcesOutput`), in which openmm-torch runs no backward pass."""
        energy, grad, s, v = self._energy_gradient_features(positions, boxvectors)
        if self.tap_path != "":
            self._tap_write(positions, s, v)
        return energy, -grad

    def _tap_write(self, positions_nm: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> None:
        """Keep this evaluation's positions (nm) and features in the shared-memory ring ``tap_path``.

        TorchForce returns only the energy, and openmm-torch holds its own copy of this module, so
        the MD driver cannot ask it for the features the dipole and polarizability heads need.  With
        ``tap_path`` set, every evaluation at new positions writes them to a file in shared memory
        (float64: [count, then ``tap_capacity`` slots of positions [N, 3], s [N, F], v [N, 3, F]]),
        which the driver maps too (:class:`painn_deploy.openmm.FeatureTap`).  An evaluation at the
        positions of the latest slot (a repeated force query) writes nothing, so the slots follow
        the MD steps one to one.  Not for CUDA graphs (the copy to the host synchronises).
        """
        with torch.no_grad():  # (under autograd the in-place writes would chain each step's graph to the ring)
            n = positions_nm.shape[0]
            f = s.shape[1]
            slot = 3 * n + 4 * n * f
            tap = self.tap
            if tap is None:
                tap = torch.from_file(self.tap_path, True, 1 + self.tap_capacity * slot, dtype=torch.float64)
                self.tap = tap
            count = int(tap[0])
            p = positions_nm.detach().reshape(-1).to(device=tap.device, dtype=torch.float64)
            last = 1 + ((count - 1) % self.tap_capacity) * slot
            if count > 0 and torch.equal(tap[last : last + 3 * n], p):
                return
            base = 1 + (count % self.tap_capacity) * slot
            tap[base : base + 3 * n] = p
            tap[base + 3 * n : base + 3 * n + n * f] = s.reshape(-1).to(tap.device)
            tap[base + 3 * n + n * f : base + slot] = v.reshape(-1).to(tap.device)
            tap[0] = count + 1

    @torch.jit.export
    def observables(
        self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor] = None
    ) -> Dict[str, torch.Tensor]:
        """Energy (kJ/mol), dipole (e*nm) and polarizability (nm^3) without forces: no backward
        pass, the cheap way to record properties of a configuration."""
        return self._evaluate(positions.detach(), boxvectors, False)

    @torch.jit.export
    def observables_batch(
        self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor] = None
    ) -> Dict[str, torch.Tensor]:
        """:meth:`observables` of B configurations at once: positions [B, N, 3] (nm), boxvectors
        [B, 3, 3] (nm) for periodic models; outputs [B], [B, 3], [B, 3, 3].  For molecules (all
        pairs) the B frames go through the network as one batch, which costs far less per frame
        than B calls; other modes evaluate frame by frame."""
        n_frames = positions.shape[0]
        if self.mode != neighbors.ALL_PAIRS or self.periodic:
            frames: List[Dict[str, torch.Tensor]] = []
            for b in range(n_frames):
                frames.append(
                    self._evaluate(positions[b].detach(), None if boxvectors is None else boxvectors[b], False)
                )
            stacked: Dict[str, torch.Tensor] = {}
            for key in frames[0].keys():
                stacked[key] = torch.stack([f[key] for f in frames])
            return stacked
        n = self.species.shape[0]
        pos = positions.detach().to(self.dtype_marker.dtype).reshape(n_frames * n, 3) * units.ANGSTROM_PER_NM
        n_pairs = self.idx_i.shape[0]
        offsets = (torch.arange(n_frames, device=pos.device) * n).repeat_interleave(n_pairs)
        idx_i = self.idx_i.repeat(n_frames) + offsets
        idx_j = self.idx_j.repeat(n_frames) + offsets
        r_ij = neighbors.pair_vectors(pos, None, idx_i, idx_j)
        species = self.species.repeat(n_frames)
        s, v = self.potential.representation(species, idx_i, idx_j, r_ij, None)
        return self._heads(s, v, pos, n_frames, True, True)

    @torch.jit.export
    def forces_and_features(
        self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the fused MD backend evaluates each step: energy (kJ/mol, scalar), forces [N, 3]
        (kJ/mol/nm) and the representation's features s [N, F] and v [N, 3, F] (detached), from
        which :meth:`observables_from_features` gives the dipole and polarizability later, for
        many frames in one call."""
        energy, grad, s, v = self._energy_gradient_features(positions, boxvectors)
        return energy, -grad, s, v

    @torch.jit.export
    def observables_from_features(
        self, s: torch.Tensor, v: torch.Tensor, positions: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        """Energy [B] (kJ/mol), dipole [B, 3] (e*nm) and polarizability [B, 3, 3] (nm^3) of B frames
        from their features (s [B*N, F] and v [B*N, 3, F] of :meth:`forces_and_features`, frames
        concatenated) and positions [B, N, 3] (nm): the output heads only."""
        n_frames = positions.shape[0]
        pos = positions.detach().to(self.dtype_marker.dtype).reshape(-1, 3) * units.ANGSTROM_PER_NM
        return self._heads(s.detach(), v.detach(), pos, n_frames, True, True)

    @torch.jit.export
    def properties(self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """One evaluation: energy (kJ/mol), forces [N, 3] (kJ/mol/nm), dipole [3] (e*nm) and
        polarizability [3, 3] (nm^3) when the model has those heads."""
        energy, forces, s, v = self.forces_and_features(positions, boxvectors)
        result: Dict[str, torch.Tensor] = {"energy": energy, "forces": forces}
        # the response heads need no gradient: they run on the detached features
        pos = positions.detach().to(self.dtype_marker.dtype) * units.ANGSTROM_PER_NM
        for key, value in self._heads(s, v, pos, 1, False, True).items():
            result[key] = value[0]
        return result


class ForcesOutput(nn.Module):
    """An exported model in the TorchForce contract with ``setOutputsForces(True)``: ``forward`` returns the
    energy (kJ/mol) and the forces [N, 3] (kJ/mol/nm) of positions [N, 3] (nm), from the model's
    ``energy_and_forces``.  The model's hand-written backward pass gives the forces and openmm-torch
    runs no backward pass of its own: ethanol x0.81 per step against the energy-only contract
    (benchmarks/md_speed.py).  :func:`painn_deploy.openmm.torch_force` uses it for models that have the method."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(
        self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.model.energy_and_forces(positions, boxvectors)
