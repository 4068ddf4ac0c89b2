"""Recording the dipole and polarizability from the evaluation that gives the forces.

The force's own evaluation (:class:`painn_deploy.openmm.ModelForce`) appends the positions and the
representation's final features of every evaluation at new positions to a :class:`FeatureRing`,
on the model's device and without reading anything back to the host.  The MD driver then runs the
dipole and polarizability heads on many evaluations at once (:meth:`FeatureRing.responses`), so the
dynamics can run in long ``integrator.step(n)`` calls and still record every step.
"""

import numpy as np
import torch

from ..errors import RecordingError, typed_errors
from ..model.strategy import DENSE_CHUNK_ELEMENTS, frames_per_chunk

#: The most memory the features kept for one call of the output heads may take, by device type: on the CPU what
#: the heads' chunks keep in cache; a GPU keeps a hundred steps of aspirin's 64 beads, or of a 4,608-atom box (each
#: block of steps between two calls of the heads costs a round trip to Python).
RING_BYTES = {"cpu": 64 * 2**20, "cuda": 1024 * 2**20}


def ring_capacity(capacity: int, frame_bytes: int, device_type: str) -> int:
    """How many evaluations of ``frame_bytes`` a ring on ``device_type`` keeps: ``capacity``, or fewer to stay
    within :data:`RING_BYTES` (at least 1)."""
    return int(max(1, min(capacity, RING_BYTES.get(device_type, RING_BYTES["cpu"]) // frame_bytes)))


class FeatureRing:
    """The positions [F, N, 3] (nm) and features s [F, N, F_], v [F, N, 3, F_] of the last ``capacity``
    evaluations of F frames each (F = 1 classically, the beads or replicas otherwise), numbered from 0
    (``count`` so far); fewer than ``capacity`` if they would need more than :data:`RING_BYTES`."""

    def __init__(self, module, capacity: int, n_frames: int = 1, responses=None):
        """``module``: the exported model (ScriptModule or eager); ``responses`` (default: its method of
        that name) runs the output heads, for example those of a frozen copy."""
        self.respond = responses if responses is not None else module.responses
        n_atoms, n_features = int(module.n_atoms), int(module.n_features)
        dtype, device = module.dtype_marker.dtype, module.dtype_marker.device
        frame_bytes = torch.zeros((), dtype=dtype).element_size() * n_frames * n_atoms * (3 + 4 * n_features)
        self.capacity = ring_capacity(capacity, frame_bytes, device.type)
        shape = (self.capacity, n_frames, n_atoms)
        self.positions = torch.zeros(shape + (3,), dtype=dtype, device=device)
        self.s = torch.zeros(shape + (n_features,), dtype=dtype, device=device)
        self.v = torch.zeros(shape + (3, n_features), dtype=dtype, device=device)
        self.count = 0

    def append(self, positions_nm: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> None:
        """Keep one evaluation (device tensors; copied, so the caller may reuse its buffers)."""
        k = self.count % self.capacity
        self.positions[k].view_as(positions_nm).copy_(positions_nm, non_blocking=True)
        self.s[k].view_as(s).copy_(s, non_blocking=True)
        self.v[k].view_as(v).copy_(v, non_blocking=True)
        self.count += 1

    def check(self, indices: np.ndarray) -> None:
        if len(indices) and (indices.max() >= self.count or indices.min() < self.count - self.capacity):
            raise RecordingError(
                f"evaluations {indices.min()}-{indices.max()} requested, but the feature ring holds "
                f"{max(0, self.count - self.capacity)}-{self.count - 1}; read it at least every {self.capacity} "
                f"evaluations"
            )

    def positions_nm(self, index: int) -> np.ndarray:
        """Positions [F, N, 3] (nm) of evaluation ``index``."""
        self.check(np.array([index]))
        return self.positions[index % self.capacity].double().cpu().numpy()

    def responses(self, indices) -> dict:
        """Dipole [K, F, 3] (e*nm) and polarizability [K, F, 3, 3] (nm^3), numpy, of the evaluations
        ``indices``: the output heads on many evaluations at once, on the CPU in chunks whose feature tensors
        stay in a core's cache (:data:`~painn_deploy.model.strategy.DENSE_CHUNK_ELEMENTS`, as the dense
        evaluation; benchmarks/results/md_throughput.md times the heads)."""
        indices = np.asarray(indices, dtype=np.int64)
        self.check(indices)
        slots = torch.as_tensor(indices % self.capacity, device=self.positions.device)
        k, f = len(indices), self.positions.shape[1]
        chunk = frames_per_chunk(k, self.v[0].numel(), self.v.device, DENSE_CHUNK_ELEMENTS)
        parts = []
        with typed_errors(), torch.inference_mode():
            for start in range(0, max(k, 1), chunk):  # (k = 0: one empty call, for the output shapes)
                part = slots[start : start + chunk]
                s, v = self.s.index_select(0, part).flatten(0, 1), self.v.index_select(0, part).flatten(0, 1)
                parts.append(self.respond(s, v, self.positions.index_select(0, part).flatten(0, 1)))
        return {
            name: torch.cat([p[name] for p in parts]).reshape((k, f) + parts[0][name].shape[1:]).double().cpu().numpy()
            for name in parts[0]
        }
