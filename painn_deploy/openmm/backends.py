"""TorchForce and PythonForce backends for an exported PaiNN model."""

import io
import os
import tempfile
import weakref
from pathlib import Path
from typing import Optional, Union

import numpy as np
import openmm
import torch
from openmm import unit

from .. import elements
from ..allocator import tune_malloc
from ..deploy import ForcesOutput, load, load_metadata
from ..deploy.metadata import (
    FORCES_FORMAT_VERSION,
    FUSED_FORMAT_VERSION,
    KEY_ATOMIC_NUMBERS,
    KEY_CUTOFF_NM,
    KEY_FORMAT_VERSION,
    KEY_HEADS,
    KEY_PERIODIC,
    TAP_FORMAT_VERSION,
)
from ..errors import BoxTooSmallError, InputError, RecordingError, TopologyMismatchError

ModelLike = Union[str, Path, torch.nn.Module]
FEATURE_BATCH_BYTES = 64 * 2**20  # features kept for one call of the output heads (tap ring, fused recording)


def import_openmmtorch():
    """``import openmmtorch`` after torch (the order its shared libraries need).

    If ``openmm`` was imported before ``torch`` (in the user's script), OpenMM failed to load the
    openmm-torch platform plugins (libnvrtc.so.12 not found); load them again now that torch is in.
    """
    import re

    import openmmtorch
    import torch  # noqa: F401

    for failure in openmm.Platform.getPluginLoadFailures():
        match = re.search(r"library (\S+OpenMMTorch\w*\.so)", failure)
        if match and "OpenCL" not in match.group(1) and match.group(1) not in _RELOADED:
            openmm.Platform.loadPluginLibrary(match.group(1))
            _RELOADED.add(match.group(1))
    return openmmtorch


_RELOADED: set = set()


def model_metadata(model: ModelLike) -> dict:
    """Particle atomic numbers, cutoff, periodicity and heads of a model file or module."""
    if isinstance(model, (str, Path)):
        return load_metadata(model)
    z = [int(x) for x in model.atomic_numbers.tolist()]
    return {
        KEY_ATOMIC_NUMBERS: z,
        KEY_CUTOFF_NM: float(model.cutoff_angstrom) / 10.0,
        KEY_PERIODIC: bool(model.periodic),
        KEY_FORMAT_VERSION: FORCES_FORMAT_VERSION
        if hasattr(model, "energy_and_forces")
        else TAP_FORMAT_VERSION
        if hasattr(model, "tap_path")
        else FUSED_FORMAT_VERSION
        if hasattr(model, "forces_and_features")
        else 1,
        KEY_HEADS: ["energy", "forces"]
        + (["dipole"] if model.has_dipole else [])
        + (["polarizability"] if model.has_polarizability else []),
    }


def check_topology(topology: "openmm.app.Topology", metadata: dict, where: str = "the topology") -> None:
    """Raise :class:`TopologyMismatchError` unless the topology's elements, in order, are the
    particles the model was exported for."""
    expected = metadata[KEY_ATOMIC_NUMBERS]
    atoms = list(topology.atoms())
    missing = [a for a in atoms if a.element is None]
    if missing:
        a = missing[0]
        raise InputError(
            f"{where}: atom {a.index + 1} ({a.name} in residue {a.residue.name}) has no element; "
            f"add element symbols (PDB columns 77-78)"
        )
    got = [a.element.atomic_number for a in atoms]
    if len(got) != len(expected):
        raise TopologyMismatchError(
            f"{where} has {len(got)} atoms ({elements.formula(got)}) but the model was exported for "
            f"{len(expected)} ({elements.formula(expected)}); export the model for this system with "
            f"painn-export CHECKPOINT --pdb STRUCTURE.pdb"
        )
    bad = [i for i, (a, b) in enumerate(zip(got, expected)) if a != b]
    if bad:
        listing = ", ".join(
            f"atom {i + 1}: {elements.symbol(got[i])} (model: {elements.symbol(expected[i])})" for i in bad[:5]
        )
        raise TopologyMismatchError(
            f"{where} does not match the model's particle order at {len(bad)} atom(s): {listing}; reorder the "
            f"structure or export the model for it with painn-export --pdb"
        )


def check_box(box_vectors_nm: Optional[np.ndarray], metadata: dict, where: str = "the periodic box") -> None:
    """Raise :class:`BoxTooSmallError` if a periodic model gets a box narrower than twice its cutoff."""
    if not metadata[KEY_PERIODIC]:
        return
    if box_vectors_nm is None:
        raise InputError(f"the model is periodic but {where} is missing; give a PDB with a CRYST1 record")
    widths = np.diag(np.asarray(box_vectors_nm))
    limit = 2.0 * metadata[KEY_CUTOFF_NM]
    if np.any(widths < limit):
        raise BoxTooSmallError(
            f"{where} has widths {np.round(widths, 4).tolist()} nm, less than twice the model cutoff "
            f"({limit:.3f} nm): atoms would interact with their own images. Use a larger box."
        )


def torch_force(model: ModelLike, periodic: bool, cuda_graphs: bool = False) -> "openmm.Force":
    """An ``openmmtorch.TorchForce`` for an exported model (path or module): through :class:`ForcesOutput`
    where the model has ``energy_and_forces`` (format 4), else the model itself (energy only)."""
    openmmtorch = import_openmmtorch()
    # (alive until TorchForce has copied it: a loaded module's methods live in its Python object)
    module = model if isinstance(model, torch.nn.Module) else torch.jit.load(str(model), map_location="cpu")
    if hasattr(module, "energy_and_forces") and not cuda_graphs:
        force = openmmtorch.TorchForce(torch.jit.script(ForcesOutput(_scripted(module))))
        force.setOutputsForces(True)
    elif isinstance(model, (str, Path)):
        force = openmmtorch.TorchForce(str(model))
    else:
        force = openmmtorch.TorchForce(_scripted(module))
    force.setUsesPeriodicBoundaryConditions(periodic)
    if cuda_graphs:
        force.setProperty("useCUDAGraphs", "true")
    return force


def _scripted(module: torch.nn.Module) -> torch.jit.ScriptModule:
    return module if isinstance(module, torch.jit.ScriptModule) else torch.jit.script(module)


class PropertiesForce:
    """The ``openmm.PythonForce`` backend: one model evaluation per step gives the energy, the
    forces and the representation's features, from which the dipole and polarizability of that
    configuration follow without evaluating the network again.

    After each evaluation ``last`` holds the energy (kJ/mol) and forces [N, 3] (kJ/mol/nm, numpy).
    Like :class:`FeatureTap`, it keeps the features and positions of its last ``capacity`` evaluations
    at distinct positions (a repeated force query adds nothing), numbered from 0 (``count`` so far), and
    :meth:`observables` runs the output heads on many of them in one call, so the MD driver can step
    in long ``integrator.step(n)`` calls and record every step.
    """

    def __init__(self, module: torch.nn.Module, periodic: bool, capacity: int = 100):
        if not hasattr(module, "forces_and_features"):
            raise InputError(
                "this exported model predates the fused backend (no forces_and_features method); export it "
                "again with painn-export, or record with --recording second"
            )
        self.periodic = periodic
        self.dtype = module.dtype_marker.dtype
        n_atoms, n_features = int(module.species.shape[0]), int(module.potential.representation.n_features)
        self._source = module  # (a loaded module's code lives as long as its Python object)
        if isinstance(module, torch.jit.ScriptModule):
            # frozen as openmm-torch freezes TorchForce's modules: weights become constants and whatever depends
            # on them alone is computed once (ethanol: x0.92 per evaluation); torch.jit.freeze works on a copy
            module = torch.jit.freeze(
                module.eval(), preserved_attrs=["forces_and_features", "observables_from_features"]
            )
        self.module = module
        frame_bytes = torch.zeros((), dtype=self.dtype).element_size() * 4 * n_atoms * n_features
        self.capacity = _ring_capacity(capacity, frame_bytes)
        self.last: dict = {}
        self.count = 0
        self._ring: list = [None] * self.capacity  # (s, v, positions) of evaluation k at k % capacity

    def __call__(self, state):
        positions = torch.from_numpy(_positions_nm(state))
        box = None
        if self.periodic:
            box = torch.from_numpy(np.asarray(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)))
        with torch.enable_grad():
            energy, forces, s, v = self.module.forces_and_features(positions, box)
        forces = forces.double().numpy()
        self.last = {"energy": energy.item(), "forces": forces}
        latest = self._ring[(self.count - 1) % self.capacity]
        if self.count == 0 or not torch.equal(latest[2], positions):
            self._ring[self.count % self.capacity] = (s, v, positions)
            self.count += 1
        return self.last["energy"], forces

    def positions_nm(self, index: int) -> np.ndarray:
        """Positions [N, 3] (nm) of evaluation ``index`` (0-based, one of the last ``capacity``)."""
        _check_ring(np.array([index]), self.count, self.capacity, "fused recording")
        return self._ring[index % self.capacity][2].numpy()

    def observables(self, indices) -> dict:
        """Energy [B] (kJ/mol), dipole [B, 3] (e*nm) and polarizability [B, 3, 3] (nm^3), numpy, of
        the evaluations ``indices``, in one call of the output heads."""
        indices = np.asarray(indices, dtype=np.int64)
        _check_ring(indices, self.count, self.capacity, "fused recording")
        frames = [self._ring[i % self.capacity] for i in indices]
        s = torch.cat([f[0] for f in frames])
        v = torch.cat([f[1] for f in frames])
        out = self.module.observables_from_features(s, v, torch.stack([f[2] for f in frames]))
        return {k: t.double().numpy() for k, t in out.items()}

    def force(self) -> "openmm.Force":
        f = openmm.PythonForce(self)
        f.setUsesPeriodicBoundaryConditions(self.periodic)
        return f


def _ring_capacity(capacity: int, frame_bytes: int) -> int:
    """Evaluations a feature ring keeps: ``capacity``, fewer if they would need more than FEATURE_BATCH_BYTES."""
    return int(max(1, min(capacity, FEATURE_BATCH_BYTES // frame_bytes)))


def _check_ring(indices: np.ndarray, count: int, capacity: int, what: str) -> None:
    if len(indices) and (indices.max() >= count or indices.min() < count - capacity):
        raise RecordingError(
            f"{what}: evaluations {indices.min()}-{indices.max()} requested, but the ring holds "
            f"{max(0, count - capacity)}-{count - 1}; read it at least every {capacity} evaluations"
        )


class FeatureTap:
    """The TorchForce recording backend: the exported model, given a ring file in shared memory,
    keeps the positions and features of every evaluation there (``PaiNNForceField._tap_write``), and
    the MD driver evaluates the dipole and polarizability heads on them, many frames per call.

    The energy and forces come from an ordinary ``openmmtorch.TorchForce`` (:meth:`force`), so a
    recorded run steps as fast as one that records nothing, in long ``integrator.step(n)`` calls.
    The ring holds the last ``capacity`` evaluations (fewer if they would need more than 64 MB); read
    them (:meth:`observables`) before it wraps.
    Close the tap (or use it as a context manager) to remove its file.
    """

    def __init__(self, model: ModelLike, capacity: int):
        if isinstance(model, (str, Path)):
            module = load(model)
        else:  # a private copy: the tap settings must not leak into the caller's module
            module = torch.jit.load(_script_bytes(model))
        if not hasattr(module, "tap_path"):
            raise InputError(
                "this exported model predates the feature tap (format 3); export it again with painn-export, "
                "or record with --recording fused or second"
            )
        self.module = module
        self.dtype = module.dtype_marker.dtype
        self.n_atoms = int(module.species.shape[0])
        self.n_features = int(module.potential.representation.n_features)
        self.slot = 3 * self.n_atoms + 4 * self.n_atoms * self.n_features
        self.capacity = _ring_capacity(capacity, 8 * self.slot)
        shm = Path("/dev/shm")
        directory = shm if shm.is_dir() else Path(tempfile.gettempdir())
        _remove_stale_rings(directory)
        handle, name = tempfile.mkstemp(prefix=f"painn-tap-{os.getpid()}-", suffix=".f64", dir=directory)
        os.close(handle)
        self.path = Path(name)
        self._remove = weakref.finalize(self, self.path.unlink, missing_ok=True)  # even if close() is never called
        self.ring = np.memmap(self.path, dtype=np.float64, mode="w+", shape=(1 + self.capacity * self.slot,))
        module.tap_path = str(self.path)
        module.tap_capacity = self.capacity

    @property
    def count(self) -> int:
        """Evaluations at distinct positions so far."""
        return int(self.ring[0])

    def positions_nm(self, index: int) -> np.ndarray:
        """Positions [N, 3] (nm) of evaluation ``index`` (0-based, one of the last ``capacity``)."""
        return self._slots([index])[:, : 3 * self.n_atoms].reshape(self.n_atoms, 3)

    def observables(self, indices) -> dict:
        """Energy [B] (kJ/mol), dipole [B, 3] (e*nm) and polarizability [B, 3, 3] (nm^3), numpy, of
        the evaluations ``indices``, in one call of the output heads."""
        rows = self._slots(indices)
        n, f = self.n_atoms, self.n_features
        positions = torch.from_numpy(rows[:, : 3 * n].reshape(-1, n, 3))
        s = torch.from_numpy(rows[:, 3 * n : 3 * n + n * f].reshape(-1, f)).to(self.dtype)
        v = torch.from_numpy(rows[:, 3 * n + n * f :].reshape(-1, 3, f)).to(self.dtype)
        out = self.module.observables_from_features(s, v, positions)
        return {k: t.double().numpy() for k, t in out.items()}

    def _slots(self, indices) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        _check_ring(indices, self.count, self.capacity, "feature tap")
        table = self.ring[1:].reshape(self.capacity, self.slot)
        return np.array(table[indices % self.capacity])

    def force(self) -> "openmm.Force":
        """An ``openmmtorch.TorchForce`` running the model with this tap (not with CUDA graphs)."""
        return torch_force(self.module, bool(self.module.periodic))

    def close(self) -> None:
        self.ring = None
        self._remove()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _remove_stale_rings(directory: Path) -> None:
    """Remove the ring files of feature taps whose process is gone (killed runs cannot clean up)."""
    for path in directory.glob("painn-tap-*-*.f64"):
        try:
            pid = int(path.name.split("-")[2])
            os.kill(pid, 0)
        except ValueError:
            continue
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except PermissionError:  # another user's live process
            continue


def _script_bytes(module: torch.nn.Module) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.jit.save(_scripted(module), buffer)
    buffer.seek(0)
    return buffer


def _positions_nm(state) -> np.ndarray:
    """A state's positions [N, 3] (nm) as a new numpy array.  ``State.getPositions(asNumpy=True)``
    spends ~0.1 ms (it looks itself up with ``dir()`` and wraps the array in units) in a callback
    that runs every step; read the array directly where this OpenMM has the method."""
    try:
        out = np.empty((state._getNumParticles(), 3))
        state._getVectorAsNumpy(openmm.State.Positions, out)
        return out
    except AttributeError:
        return np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))


def create_force(
    model: ModelLike,
    topology: "openmm.app.Topology",
    backend: str = "torch",
    cuda_graphs: bool = False,
    feature_capacity: int = 100,
):
    """A force for ``topology`` from an exported model (path, or a loaded/eager module).

    Checks that the topology matches the model's particles and that a periodic box is large
    enough.  ``backend="torch"`` returns an ``openmmtorch.TorchForce`` (:func:`torch_force`);
    ``backend="python"`` a ``(openmm.PythonForce, PropertiesForce)`` pair and ``backend="tap"`` a
    ``(TorchForce, FeatureTap)`` pair, whose second items hold the features of the last
    ``feature_capacity`` evaluations for the output heads.
    """
    tune_malloc()  # the model's tensors reused from step to step instead of faulted in anew (see allocator.py)
    meta = model_metadata(model)
    check_topology(topology, meta)
    box = topology.getPeriodicBoxVectors()
    box_nm = None if box is None else np.asarray([[x.value_in_unit(unit.nanometer) for x in v] for v in box])
    check_box(box_nm, meta, "the topology's periodic box")
    periodic = bool(meta[KEY_PERIODIC])
    if backend == "torch":
        return torch_force(model, periodic, cuda_graphs)
    if backend == "python":
        module = load(model) if isinstance(model, (str, Path)) else model
        adapter = PropertiesForce(module, periodic, feature_capacity)
        return adapter.force(), adapter
    if backend == "tap":
        if cuda_graphs:
            raise InputError("the feature tap copies features to the host each step: it cannot run in CUDA graphs")
        tap = FeatureTap(model, feature_capacity)
        return tap.force(), tap
    raise InputError(f"backend must be 'torch', 'python' or 'tap', not {backend!r}")


def create_system(
    model: ModelLike,
    topology: "openmm.app.Topology",
    backend: str = "torch",
    remove_cm_motion: bool = True,
    feature_capacity: int = 100,
):
    """An ``openmm.System`` with the topology's masses and the model's force; returns (system, adapter)
    where adapter is the :class:`PropertiesForce` (python backend), the :class:`FeatureTap` (tap
    backend) or None."""
    system = openmm.System()
    for atom in topology.atoms():
        system.addParticle(atom.element.mass)
    box = topology.getPeriodicBoxVectors()
    if box is not None:
        system.setDefaultPeriodicBoxVectors(*box)
    result = create_force(model, topology, backend, feature_capacity=feature_capacity)
    force, adapter = result if backend in ("python", "tap") else (result, None)
    system.addForce(force)
    if remove_cm_motion:
        system.addForce(openmm.CMMotionRemover())
    return system, adapter
