"""OpenMM forces from an exported model: thin adapters, no model logic.

- :func:`torch_force`: ``openmmtorch.TorchForce`` running the artefact in C++ through
  :class:`~painn_deploy.deploy.ForcesOutput` (the model returns its forces: no backward pass in
  openmm-torch), with CUDA graphs on request.
- :class:`ModelForce`: ``openmm.PythonForce`` calling the same module from Python on the model's
  device, optionally from a captured CUDA graph, and keeping every evaluation's features in a
  :class:`~painn_deploy.openmm.recorder.FeatureRing` for the dipole and polarizability.

Both take a System of ``n_frames`` copies of the model's particles (ring-polymer beads or normal
modes, replicas) and evaluate all of them in one batched call.
"""

import importlib
import io
import logging
import math
import re
import sys
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import openmm
import torch
from openmm import unit

from ..allocator import tune_malloc
from ..deploy import Artefact, ForcesOutput
from ..deploy import metadata as md
from ..deploy.export import FIXED_SHAPE_MODES
from ..errors import InputError, PainnDeployError, SimulationWarning, from_torchscript, typed_errors
from .recorder import FeatureRing

ArtefactLike = Union[str, Path, Artefact]
CUDA_GRAPH_WARMUP_STEPS = 10


def import_openmmtorch():
    """``import openmmtorch`` after torch (the order its shared libraries need), quietly (see
    :func:`quiet_import`).

    If ``openmm`` was imported before ``torch`` (in the user's script), OpenMM failed to load the
    openmm-torch platform plugins (libnvrtc.so.12 not found); load them again now that torch is in.
    """
    openmmtorch = quiet_import("openmmtorch")
    for failure in openmm.Platform.getPluginLoadFailures():
        match = re.search(r"library (\S+OpenMMTorch\w*\.so)", failure)
        if match and "OpenCL" not in match.group(1) and match.group(1) not in _RELOADED:
            openmm.Platform.loadPluginLibrary(match.group(1))
            _RELOADED.add(match.group(1))
    return openmmtorch


def quiet_import(name: str):
    """Import a third-party module without the import-time noise of it and its dependencies, all logged
    through ``logging`` or warnings and none of it about the run: pymbar (under openmmtools) logs a 9-line "JAX
    NOT FOUND" banner and a timeseries notice, and ``simtk.openmm`` (imported by openmmtools and openmmtorch)
    logs a deprecation warning on the root logger."""
    if name in sys.modules:
        return sys.modules[name]
    disabled = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    finally:
        logging.disable(disabled)


_RELOADED: set = set()


def as_artefact(model: ArtefactLike) -> Artefact:
    return model if isinstance(model, Artefact) else Artefact(model)


def torch_force(
    module: torch.nn.Module,
    periodic: bool,
    cuda_graphs: bool = False,
    n_frames: int = 1,
    modes: Optional[torch.Tensor] = None,
) -> "openmm.Force":
    """An ``openmmtorch.TorchForce`` for an exported module (see :class:`ForcesOutput` for ``n_frames``
    and ``modes``).  ``cuda_graphs`` sets openmm-torch's ``useCUDAGraphs`` (fixed-shape models only)."""
    openmmtorch = import_openmmtorch()
    force = openmmtorch.TorchForce(torch.jit.script(ForcesOutput(module, n_frames, modes)))
    force.setOutputsForces(True)
    force.setUsesPeriodicBoundaryConditions(periodic)
    if cuda_graphs:
        force.setProperty("useCUDAGraphs", "true")
        force.setProperty("CUDAGraphWarmupSteps", str(CUDA_GRAPH_WARMUP_STEPS))
    return force


class ModelForce:
    """The ``openmm.PythonForce`` backend: one batched evaluation of all frames per force call, on
    ``device``, replayed from a CUDA graph when ``cuda_graphs`` (fixed-shape models on CUDA).

    After each call ``last`` holds the energy (kJ/mol) and forces (kJ/mol/nm, numpy; the buffer that the next call
    overwrites).  With
    ``ring_capacity`` > 0 it keeps every evaluation at new positions in ``ring`` (a
    :class:`FeatureRing`, numbered from 0; a repeated force query adds nothing).  ``molecules`` (periodic
    systems whose model atoms are solute molecules: index lists into the model's atoms): each molecule is first
    made whole by the minimum image, as OpenMM may pass positions wrapped atom by atom, so that the recorded
    dipole is the molecules'.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        periodic: bool,
        device: str = "cpu",
        cuda_graphs: bool = False,
        ring_capacity: int = 0,
        n_frames: int = 1,
        modes: Optional[torch.Tensor] = None,
        molecules: Optional[Sequence[Sequence[int]]] = None,
    ):
        self.periodic = periodic
        self.molecules = [np.asarray(m, dtype=np.int64) for m in molecules] if molecules else None
        self.device = torch.device(device)
        self.dtype = module.dtype_marker.dtype
        self._source = module  # (a loaded module's code lives as long as its Python object)
        # frozen as openmm-torch freezes TorchForce's modules: weights become constants, and what depends on them
        # alone is computed once.  Frozen from a saved copy: freezing a module scripted in this process leaves its
        # constants in Python's global compilation unit for good (pytorch#96726), some MB per force
        buffer = io.BytesIO()
        torch.jit.save(torch.jit.script(ForcesOutput(module, n_frames, modes)), buffer)
        buffer.seek(0)
        wrapper = torch.jit.load(buffer, map_location=self.device)
        self.module = torch.jit.freeze(wrapper.eval(), preserved_attrs=["evaluate"])
        self.ring = None
        if ring_capacity > 0:
            if _scripted(module) and not _same_device(module.dtype_marker.device, self.device):  # (ring, heads)
                buffer = io.BytesIO()
                torch.jit.save(module, buffer)
                buffer.seek(0)
                module = self._source = torch.jit.load(buffer, map_location=self.device)
            heads = torch.jit.freeze(module.eval(), preserved_attrs=["responses"]) if _scripted(module) else module
            self.ring = FeatureRing(module, ring_capacity, n_frames, responses=heads.responses)
        # positions and forces pass through buffers made at the first call and reused: no allocations per step
        # outside the model (one adapter serves one System; calls from several threads would share them)
        self._positions_np: Optional[np.ndarray] = None
        self._recorded = b""  # the positions of the last evaluation kept in the ring
        self.last: dict = {}
        self._graph = None
        if cuda_graphs and self.device.type == "cuda":
            self._graph = _CapturedEvaluation(self.module, self.dtype, self.device, periodic)

    @property
    def count(self) -> int:
        return self.ring.count if self.ring is not None else 0

    def __call__(self, state):
        positions_np = _positions_nm(state, self._positions_np)
        if positions_np is not self._positions_np:  # the first call: buffers of this System's size
            self._positions_np = positions_np
            with torch.inference_mode(False):  # (ordinary tensors, whatever mode the caller is in)
                self._positions = torch.zeros(positions_np.shape, dtype=self.dtype, device=self.device)
                self._box = torch.zeros((3, 3), dtype=self.dtype, device=self.device)
            self._forces_np = np.zeros(positions_np.shape)
        box = None
        if self.periodic:
            box_np = np.asarray(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer))
            if self.molecules is not None:
                for molecule in self.molecules:
                    positions_np[molecule] = make_whole(positions_np[molecule], box_np)
            box = self._box.copy_(torch.from_numpy(box_np))
        positions = self._positions.copy_(torch.from_numpy(positions_np))
        # inference mode: no autograd bookkeeping (version counters, views) in any of the model's operations
        with typed_errors(), torch.inference_mode():
            if self._graph is not None:
                energy, forces, frames, s, v = self._replay(positions, box)
            else:
                energy, forces, frames, s, v = self.module.evaluate(positions, box)
            # a repeated force query at the same positions adds nothing (compared as bytes, cheaper than numpy's
            # element-wise comparison)
            if self.ring is not None:
                key = positions_np.tobytes()
                if key != self._recorded:
                    self.ring.append(frames, s, v)
                    self._recorded = key
            torch.from_numpy(self._forces_np).copy_(forces)
        self.last = {"energy": float(energy), "forces": self._forces_np}
        return self.last["energy"], self._forces_np

    def _replay(self, positions, box):
        """The captured graph's evaluation; if the capture fails (not an error of the model's), a warning and the
        evaluation without a graph from then on."""
        try:
            return self._graph(positions, box)
        except RuntimeError as exc:
            if self._graph.graph is not None or from_torchscript(exc) is not None:
                raise
            warnings.warn(
                f"the CUDA graph of the model could not be captured ({str(exc).splitlines()[0]}): the run goes on "
                "without it (slower); --cuda-graphs off says so from the start",
                SimulationWarning,
                stacklevel=2,
            )
            self._graph = None
            return self.module.evaluate(positions, box)

    @property
    def finite_positions(self) -> bool:
        """Whether the positions of the last call were all finite."""
        return self._positions_np is None or bool(np.isfinite(self._positions_np).all())

    def for_openmm(self, state, nan_cause: Optional[Callable[[], str]] = None):
        """The call OpenMM makes: the package's errors go to OpenMM as ``RuntimeError("TypeName: message")``, whose
        type :func:`painn_deploy.errors.from_torchscript` gives back (OpenMM passes on only the message).  A NaN
        energy is such an error too, with ``nan_cause()`` or the usual causes: OpenMM's GPU platforms add forces in
        fixed point, where NaN becomes a force that throws the atoms apart and hides what went wrong."""
        try:
            energy, forces = self(state)
        except PainnDeployError as exc:
            raise RuntimeError(f"{type(exc).__name__}: {exc}") from exc
        if not math.isfinite(energy):
            cause = nan_cause() if nan_cause is not None else ""
            if not cause:
                cause = (
                    "atoms are at NaN or infinite positions (the run blew up before: lower the time step)"
                    if not self.finite_positions
                    else "on a GPU the model checks nothing on the host, and a static neighbour list that overflowed "
                    "or a box narrower than twice the cutoff gives NaN: run it on the CPU platform for the error"
                )
            raise RuntimeError(f"InputError: the model's energy is NaN: {cause}")
        return energy, forces

    def force(self) -> "openmm.Force":
        f = openmm.PythonForce(self.for_openmm)
        f.setUsesPeriodicBoundaryConditions(self.periodic)
        return f


def _same_device(a: torch.device, b: torch.device) -> bool:
    """Whether two devices are one (``cuda`` is the process's current CUDA device)."""

    def index(d: torch.device) -> int:
        return d.index if d.index is not None else (torch.cuda.current_device() if d.type == "cuda" else 0)

    return a.type == b.type and index(a) == index(b)


class _CapturedEvaluation:
    """``ForcesOutput.evaluate`` captured in a CUDA graph on static input buffers; each call copies the
    positions in and replays it.  The outputs are the graph's own buffers (copy what must be kept)."""

    def __init__(self, module, dtype, device, periodic: bool, warmup: int = 3):
        self.module = module
        self.positions: Optional[torch.Tensor] = None
        self.box = torch.zeros((3, 3), dtype=dtype, device=device) if periodic else None
        self.graph = None
        self.outputs = None
        self.warmup = warmup
        self.device = device
        self.dtype = dtype

    def _capture(self, positions: torch.Tensor) -> None:
        self.positions = positions.clone()
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(self.warmup):
                self.module.evaluate(self.positions, self.box)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        # (thread_local: CUDA calls of OpenMM's own threads during the capture do not invalidate it)
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self.outputs = self.module.evaluate(self.positions, self.box)
        self.graph = graph  # (only a complete capture is replayed)

    def __call__(self, positions: torch.Tensor, box: Optional[torch.Tensor]):
        if box is not None:
            self.box.copy_(box)
        if self.graph is None:
            self._capture(positions)
        self.positions.copy_(positions)
        self.graph.replay()
        return self.outputs


def tie_molecules(system: "openmm.System", molecules: Sequence[Sequence[int]]) -> None:
    """Add bonds of no energy that make each of ``molecules`` (particle indices) one OpenMM molecule.  OpenMM finds
    molecules by bonds, which the model's force does not declare (and OpenMM-ML's createMixedSystem removes from
    the ML atoms): without them, wrapped output (DCDReporter, getState(enforcePeriodicBox=True)) splits a molecule
    across the box, and a MonteCarloBarostat scales its atoms one by one, stretching every bond at once."""
    ties = openmm.CustomBondForce("0")
    ties.setName("molecules of the model (bonds of no energy)")
    for molecule in molecules:
        for a, b in zip(molecule[:-1], molecule[1:]):
            ties.addBond(int(a), int(b))
    if ties.getNumBonds():
        system.addForce(ties)


def make_whole(positions_nm: np.ndarray, box_nm: np.ndarray) -> np.ndarray:
    """Positions of one molecule made whole: each atom moved to the periodic image nearest the first atom
    (reduced triclinic box vectors as rows; the molecule must be smaller than half the box)."""
    delta = positions_nm - positions_nm[0]
    for k in (2, 1, 0):
        delta -= np.outer(np.round(delta[:, k] / box_nm[k, k]), box_nm[k])
    return positions_nm[0] + delta


def _scripted(module) -> bool:
    return isinstance(module, torch.jit.ScriptModule)


def _positions_nm(state, out: Optional[np.ndarray] = None) -> np.ndarray:
    """A state's positions [N, 3] (nm), written into ``out`` (None: a new array).
    ``State.getPositions(asNumpy=True)`` looks itself up with ``dir()`` and wraps the array in units, too
    slow for a callback that runs every step; read the array directly where this OpenMM has the method."""
    try:
        n = state._getNumParticles()
        out = np.empty((n, 3)) if out is None or len(out) != n else out
        state._getVectorAsNumpy(openmm.State.Positions, out)
    except AttributeError:
        positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        out = np.empty(positions.shape) if out is None or out.shape != positions.shape else out
        out[:] = positions
    return out


def topology_atomic_numbers(topology: "openmm.app.Topology", where: str = "the topology", atoms=None) -> list:
    """Atomic numbers of a topology's atoms (or of the atoms with indices ``atoms``); an atom without an element
    (a virtual site, a PDB without element columns) is an error naming it."""
    every = list(topology.atoms())
    z = []
    for a in every if atoms is None else [every[i] for i in atoms]:
        if a.element is None:
            raise InputError(
                f"{where}: atom {a.index + 1} ({a.name} in residue {a.residue.name} {a.residue.id}) has no element; "
                f"add element symbols (PDB columns 77-78), or leave a virtual site out of the ML atoms"
            )
        z.append(a.element.atomic_number)
    return z


def topology_box_nm(topology: "openmm.app.Topology") -> Optional[np.ndarray]:
    box = topology.getPeriodicBoxVectors()
    return None if box is None else np.asarray([[x.value_in_unit(unit.nanometer) for x in v] for v in box])


def check_fixed_shapes(neighbor_list: str, model: str) -> None:
    """CUDA graphs replay fixed shapes: refuse ``model``'s neighbour list when its shapes depend on the positions."""
    if neighbor_list not in FIXED_SHAPE_MODES:
        raise InputError(
            f"CUDA graphs need fixed shapes, and {model} uses the {neighbor_list} neighbour list; export with "
            f"painn-export --neighbor-list static (periodic) or all_pairs, or run without CUDA graphs"
        )


def create_force(
    model: ArtefactLike,
    topology: "openmm.app.Topology",
    backend: str = "torch",
    cuda_graphs: bool = False,
    ring_capacity: int = 0,
    device: str = "cpu",
    n_frames: int = 1,
    modes: Optional[torch.Tensor] = None,
):
    """A force for ``topology`` from an exported model, after the artefact's pre-flight checks of the
    topology (particles, elements, box).  Returns ``(force, adapter)``: ``backend="torch"`` gives a
    TorchForce and no adapter; ``backend="python"`` an ``openmm.PythonForce`` and its :class:`ModelForce`
    (with a feature ring of ``ring_capacity`` evaluations).  ``n_frames`` and ``modes``: a System of
    that many copies of the topology's particles (see :class:`~painn_deploy.deploy.ForcesOutput`)."""
    tune_malloc()  # the model's tensors reused from step to step instead of faulted in anew (see allocator.py)
    artefact = as_artefact(model)
    artefact.check_system(topology_atomic_numbers(topology), topology_box_nm(topology), "the topology")
    if cuda_graphs:
        check_fixed_shapes(artefact.metadata[md.KEY_NEIGHBOR_LIST], str(artefact.path))
    if backend == "torch":
        return torch_force(artefact.load().module, artefact.periodic, cuda_graphs, n_frames, modes), None
    if backend == "python":
        module = artefact.load(device).module
        adapter = ModelForce(module, artefact.periodic, device, cuda_graphs, ring_capacity, n_frames, modes)
        return adapter.force(), adapter
    raise InputError(f"backend must be 'torch' or 'python', not {backend!r}")


def create_system(
    model: ArtefactLike,
    topology: "openmm.app.Topology",
    backend: str = "torch",
    remove_cm_motion: bool = True,
    ring_capacity: int = 0,
    n_frames: int = 1,
    **kwargs,
):
    """An ``openmm.System`` of ``n_frames`` copies of the topology's particles (their masses) with the
    model's force; returns (system, adapter) as :func:`create_force` does.  Centre-of-mass motion is
    removed for a single copy only (a common remover would couple independent copies)."""
    system = openmm.System()
    for _ in range(n_frames):
        for atom in topology.atoms():
            system.addParticle(atom.element.mass if atom.element is not None else 0.0)
    box = topology.getPeriodicBoxVectors()
    if box is not None:
        system.setDefaultPeriodicBoxVectors(*box)
    force, adapter = create_force(model, topology, backend, ring_capacity=ring_capacity, n_frames=n_frames, **kwargs)
    system.addForce(force)
    if remove_cm_motion and n_frames == 1:
        system.addForce(openmm.CMMotionRemover())
    return system, adapter
