"""painn-deploy models as an OpenMM-ML potential: ``MLPotential("painn", model="model.pt")``.

::

    from openmmml import MLPotential

    potential = MLPotential("painn", model="model.pt")  # or a painn-train checkpoint: model="best.ckpt"
    system = potential.createSystem(topology)  # everything with the model
    mixed = potential.createMixedSystem(topology, mm_system, ml_atoms)  # ML/MM, mechanical embedding

``painn`` is registered through the entry-point group ``openmmml.potentials`` (pyproject.toml), so
installing painn-deploy is enough.  ``model`` is

- an exported artefact (painn-export): for the ML molecule alone (the usual case; the ML atoms must
  then be the model's particles in its order), or for the whole system with ``--atoms`` (ML/MM
  artefacts: the ML atoms must be the artefact's);
- a painn-train checkpoint (``.ckpt``): exported here, for the ML atoms of the topology, periodic
  when the topology has a box.

Options, given to ``MLPotential(...)`` or to ``createSystem``/``createMixedSystem`` (these win):

- ``backend``: ``"python"`` (default): an ``openmm.PythonForce`` as OpenMM-ML's own potentials use,
  with the ML atoms selected by ``PythonForce.setParticles``; ``"torch"``: an ``openmmtorch.TorchForce``
  (C++, no Python in the step) whose module takes the ML atoms out of all particles' positions.
- ``device``: where the PythonForce backend runs the model, ``"cpu"`` or ``"cuda"`` (default: CUDA when
  available, as OpenMM-ML chooses).  A TorchForce runs on the device of the OpenMM platform.
- ``dtype``: ``"float32"`` or ``"float64"``, the precision of the model (default: the artefact's;
  float32 for a checkpoint).
- ``cudaGraphs``: replay the model from a CUDA graph (fixed-shape models on CUDA).
- ``ringCapacity``: the PythonForce keeps the features of that many evaluations for the dipole and
  polarizability heads (``computations[-1].adapter.ring``; painn-simulate's recording).

With a periodic box the ML atoms' pairs take the minimum image: a checkpoint is exported periodic,
and a periodic artefact is one.  A non-periodic artefact can still serve a periodic topology as long as
the ML atoms stay whole and away from their own images.  The python backend makes each ML molecule whole
before it evaluates when the ML atoms are some of the particles (OpenMM may pass positions wrapped atom by
atom); a TorchForce (``backend="torch"``) checks
every evaluation instead, and an ML molecule that straddles a boundary of the box is an error that names the fix
(NaN on CUDA, where nothing is read back).  The model is local (cutoff), so
``getMLLongRange()`` is False: mechanical embedding leaves the ML atoms' interactions with their
periodic images to the MM force field's long-range electrostatics.
"""

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import openmm
import torch
from openmm import unit
from openmmml.mlpotential import MLPotentialImpl, MLPotentialImplFactory
from torch import Tensor, nn

from .. import elements, neighbors
from ..deploy import Artefact, build_forcefield
from ..deploy import metadata as md
from ..deploy.artefact import check_box_width
from ..deploy.export import choose_neighbor_mode, warn_other_chemistry
from ..deploy.module import RaisesItsErrors, host_checks
from ..devices import torch_device
from ..errors import (
    CheckpointError,
    InputError,
    PainnDeployError,
    SimulationWarning,
    TopologyMismatchError,
)
from ..files import MODEL_FILE_FIX, file_sha256, is_checkpoint, require_file
from ..model.checkpoint import load_checkpoint
from ..structures import check_indices, molecule_index
from .forces import ModelForce, check_fixed_shapes, tie_molecules, topology_atomic_numbers, torch_force

BACKENDS = ("python", "torch")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
OPTIONS = ("backend", "device", "dtype", "cudaGraphs", "ringCapacity")
PERIODIC_FIX = (
    "Keep the ML molecule whole (wrap whole molecules into the box, as OpenMM's "
    "getState(enforcePeriodicBox=True) and Modeller do, not atom by atom) or use a periodic model: the painn-train "
    "checkpoint (model= in Python, --model for painn-simulate) is exported periodic for a topology with a box, or "
    "export one with painn-export CHECKPOINT --pdb ML_MOLECULE.pdb where the PDB has a CRYST1 box"
)


class PaiNNPotentialImplFactory(MLPotentialImplFactory):
    """Creates :class:`PaiNNPotentialImpl` objects for ``MLPotential("painn", model=..., **options)``."""

    def createImpl(self, name: str, model=None, **args) -> MLPotentialImpl:
        return PaiNNPotentialImpl(name, model, **args)


class PaiNNPotentialImpl(MLPotentialImpl):
    """The ``painn`` potential of OpenMM-ML: a painn-deploy model (exported artefact or painn-train
    checkpoint) as a PythonForce or TorchForce on the ML atoms.  See the module documentation."""

    def __init__(self, name: str, model=None, **options):
        if model is None:
            raise InputError(
                f"MLPotential({name!r}) needs model=: an exported model (model.pt, from painn-export) or a "
                f"painn-train checkpoint (best.ckpt)"
            )
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise InputError(
                f"MLPotential({name!r}) does not take {', '.join(unknown)}; its options are model= and "
                f"{', '.join(OPTIONS)}"
            )
        self.name = name
        self.options = dict(options)
        _check_options(self.options)
        self.path = Path(model)
        self.artefact, self.record = open_model(self.path)
        self.computations: list = []  # the PythonForce computations made, newest last (their feature rings)

    def getMLLongRange(self) -> bool:
        return False  # a cutoff model: no interactions beyond its cutoff

    def addForces(
        self,
        topology: "openmm.app.Topology",
        system: "openmm.System",
        atoms,
        forceGroup: int,
        **args,
    ) -> None:
        options = {**self.options, **{k: v for k, v in args.items() if k in OPTIONS}}
        _check_options(options)
        backend = options.get("backend", "python")
        device = self._getTorchDevice(options)
        n_particles = topology.getNumAtoms()
        # An empty System: createMixedSystem(interpolate=True) collects the ML forces there and copies them into a
        # CustomCVForce, which OpenMM-ML's copy of a TorchForce crashes (it sees only the base class).
        if system.getNumParticles() == 0 and backend == "torch":
            raise InputError(
                "createMixedSystem(interpolate=True) needs the PythonForce backend: OpenMM-ML cannot copy a "
                "TorchForce into its CustomCVForce. Leave out backend='torch' (or pass backend='python')"
            )
        if system.getNumParticles() not in (0, n_particles):
            raise TopologyMismatchError(
                f"the System has {system.getNumParticles()} particles and the topology {n_particles}; create the "
                f"System for this topology"
            )
        ml = list(range(n_particles)) if atoms is None else check_indices(atoms, n_particles, "the topology")
        warn_cut_residues(topology, ml)
        z = topology_atomic_numbers(topology, "the topology", ml)
        box = _box_nm(topology, system)
        recipe = self._recipe(topology, ml, z, box, options.get("dtype"), atoms is not None)
        module = build_module(recipe, python_force=backend == "python")
        cuda_graphs = bool(options.get("cudaGraphs", False))
        if cuda_graphs:
            mode = (
                self.artefact.metadata[md.KEY_NEIGHBOR_LIST] if self.artefact else choose_neighbor_mode(len(z), "auto")
            )
            check_fixed_shapes(mode, f"the model of these {len(z)} ML atoms")
            if backend == "python" and device.type != "cuda":
                raise InputError(
                    f"cudaGraphs=True captures the model in CUDA graphs, which the PythonForce backend runs on a "
                    f"CUDA device only; this model runs on {device}: pass device='cuda', or leave out cudaGraphs"
                )
        if backend == "torch":
            force = torch_force(module, recipe.force_periodic, cuda_graphs)
        else:
            computation = PaiNNComputation(
                recipe, str(device), cuda_graphs, module, int(options.get("ringCapacity", 0))
            )
            self.computations.append(computation)
            force = openmm.PythonForce(computation)
            force.setUsesPeriodicBoundaryConditions(recipe.force_periodic)
            if recipe.ml_subset:  # the PythonForce receives the ML atoms only
                force.setParticles(ml)
        force.setName(f"PaiNN ({self.path.name})")
        force.setForceGroup(forceGroup)
        system.addForce(force)
        if box is not None:  # each ML molecule one OpenMM molecule (createMixedSystem removed their bonds)
            tie_molecules(system, [[ml[k] for k in group] for group in residue_groups(topology, ml)])

    def _recipe(self, topology, ml, z, box, dtype, subset: bool) -> "Recipe":
        """What the force runs, after the checks of the ML atoms against the model."""
        n_particles = topology.getNumAtoms()
        subset = subset and len(ml) < n_particles
        known, cutoff_nm = self._elements_and_cutoff()
        atoms = list(topology.atoms())
        elements.check_known(
            z, known, f"the ML region (model {self.path})",
            [f"atom {i} ({atoms[i].name} in residue {atoms[i].residue.name} {atoms[i].residue.id})" for i in ml],
            "Give only atoms of these elements as ML atoms (model the others with the MM force field in "
            "createMixedSystem), or ",
        )  # fmt: skip
        takes_all = False
        if self.artefact is not None:
            artefact = self.artefact
            model_periodic = artefact.periodic
            if artefact.atom_indices is None:
                artefact.check_system(z, box, "the ML molecule of the topology (its atoms in the order given)")
            else:  # an ML/MM artefact: positions of all particles, its own ML atoms
                takes_all = True
                own_atoms = [int(i) for i in artefact.atom_indices]
                if own_atoms != ml or len(artefact.particle_atomic_numbers) != n_particles:
                    raise TopologyMismatchError(
                        f"{self.path} was exported for ML/MM with ML atoms {_short(own_atoms)} among "
                        f"{len(artefact.particle_atomic_numbers)} particles, but here the ML atoms are {_short(ml)} "
                        f"among {n_particles}; give the artefact's ML atoms, export the model for the ML molecule "
                        f"alone (painn-export CHECKPOINT --pdb MOLECULE.pdb), or pass the checkpoint as model="
                    )
                artefact.check_system(list(artefact.particle_atomic_numbers), box, "the topology")
        else:
            model_periodic = box is not None
            warn_other_chemistry(z, self.record["atomic_numbers"])
        if box is not None:  # (a model that knows no box too: the ML atoms must stay a cutoff from their images)
            check_box_width(box, cutoff_nm, "the topology")
        return Recipe(
            path=str(self.path.resolve()),  # (a System serialized here may be read again elsewhere)
            sha256=file_sha256(self.path),
            checkpoint=self.artefact is None,
            atomic_numbers=list(z),
            atoms=list(ml),
            n_particles=n_particles,
            dtype=dtype,
            model_periodic=model_periodic,
            force_periodic=box is not None,
            check_whole=box is not None and not model_periodic,
            cutoff_nm=cutoff_nm,
            takes_all=takes_all,
            subset=subset,
            molecules=residue_groups(topology, ml),
        )

    def _elements_and_cutoff(self) -> Tuple[List[int], float]:
        if self.artefact is not None:
            known = self.artefact.model_elements
            return known, self.artefact.cutoff_nm
        config = self.record["config"]
        return [int(x) for x in config["elements"]], float(config["cutoff_angstrom"]) * 0.1


@dataclass(frozen=True)
class Recipe:
    """Everything needed to build the force's module again (plain values: pickled with the System)."""

    path: str  # absolute
    sha256: str  # of the file at path when the force was made
    checkpoint: bool
    atomic_numbers: List[int]  # of the ML atoms
    atoms: List[int]  # the ML atoms among the topology's particles
    n_particles: int
    dtype: Optional[str]
    model_periodic: bool
    force_periodic: bool  # the topology has a box
    check_whole: bool  # non-periodic model, periodic topology
    cutoff_nm: float
    takes_all: bool  # an ML/MM artefact: positions of every particle
    subset: bool  # the ML atoms are some of the particles
    molecules: List[List[int]]  # the ML atoms grouped by residue (indices into the ML atoms)

    @property
    def ml_subset(self) -> bool:
        """A model of the ML atoms alone among more particles: a PythonForce gets the ML atoms
        (setParticles), a TorchForce's module takes them out of all positions."""
        return self.subset and not self.takes_all


def build_module(recipe: Recipe, python_force: bool = False) -> nn.Module:
    """The scripted module for a recipe: the model (loaded, or exported from the checkpoint for the ML atoms)
    and, where needed, :class:`MLAtoms` around it (for a PythonForce: ``python_force``).  The file must be the
    one the force was made with."""
    require_file(recipe.path, "model", "give the model file at the path the System was made with", CheckpointError)
    if file_sha256(recipe.path) != recipe.sha256:
        raise CheckpointError(
            f"the model {recipe.path} is not the file this force was made with (its sha256 differs): put the "
            "original file back at that path, or make the System again with createMixedSystem/createSystem"
        )
    if recipe.checkpoint:
        record = load_checkpoint(recipe.path)
        eager = build_forcefield(
            record, recipe.atomic_numbers, recipe.model_periodic, "auto", recipe.dtype or "float32",
            molecules=molecule_index(recipe.molecules, range(len(recipe.atomic_numbers))),
        )  # fmt: skip
        module = torch.jit.script(eager)
    else:
        model = Artefact(recipe.path).load("cpu")
        if recipe.dtype is not None and DTYPES[recipe.dtype] != model.dtype:
            model = model.to(DTYPES[recipe.dtype])
        module = model.module
    select = recipe.ml_subset and not python_force  # (a PythonForce gets the ML atoms alone: setParticles)
    check_atoms = recipe.subset and recipe.takes_all
    if select or recipe.check_whole:
        module = torch.jit.script(
            MLAtoms(module, recipe.atoms, recipe.n_particles, select, check_atoms, recipe.model_periodic,
                    recipe.check_whole, recipe.cutoff_nm)
        )  # fmt: skip
    return module


class PaiNNComputation:
    """The PythonForce's computation: a :class:`~painn_deploy.openmm.forces.ModelForce` on ``device``.

    Errors of the model (a molecule across the box boundary, ...) reach OpenMM as ``RuntimeError("TypeName:
    message")``, which OpenMM passes on as ``OpenMMException``; :func:`painn_deploy.errors.from_torchscript` gives
    the typed exception back.  Pickled (``XmlSerializer``) as its recipe: the model is read again from its file
    (the same file, by its sha256) at the first evaluation, so that a missing file or device is an error OpenMM
    reports, where one raised while OpenMM reads the System ends the process."""

    def __init__(
        self, recipe: Recipe, device: str = "cpu", cuda_graphs: bool = False, module=None, ring_capacity: int = 0
    ):
        self.recipe = recipe
        self.device = device
        self.cuda_graphs = cuda_graphs
        self.ring_capacity = ring_capacity
        self._adapter = None if module is None else self._make_adapter(module)  # (None: unpickled)

    def _make_adapter(self, module) -> ModelForce:
        # solute molecules among other particles: each made whole, so that the recorded dipole is theirs
        recipe = self.recipe
        molecules = recipe.molecules if recipe.force_periodic and recipe.ml_subset else None
        return ModelForce(module, recipe.force_periodic, self.device, self.cuda_graphs, self.ring_capacity,
                          molecules=molecules)  # fmt: skip

    @property
    def adapter(self) -> ModelForce:
        if self._adapter is None:
            torch_device(self.device, "device=")  # (a System read where its device is missing: named as such)
            self._adapter = self._make_adapter(build_module(self.recipe, python_force=True))
        return self._adapter

    def __call__(self, state):
        try:
            adapter = self.adapter
        except PainnDeployError as exc:
            raise RuntimeError(f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # (torch's own reading the model, or a recipe of another painn-deploy)
            raise RuntimeError(
                f"CheckpointError: the model {self.recipe.path} could not be read again for this force "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); a System made by another "
                "painn-deploy must be made again with createMixedSystem/createSystem"
            ) from exc
        return adapter.for_openmm(state, self._nan_cause)

    def _nan_cause(self) -> str:
        if self.recipe.check_whole and self.adapter.finite_positions:
            # (on CUDA the check gives NaN, not an error; positions at NaN or infinity give NaN too)
            return (
                "the ML atoms straddle a boundary of the periodic box or come too close to their periodic images, "
                "and the model is not periodic. " + PERIODIC_FIX
            )
        return ""

    def __reduce__(self):
        return (PaiNNComputation, (self.recipe, self.device, self.cuda_graphs, None, self.ring_capacity))


class MLAtoms(RaisesItsErrors):
    """A model's evaluation within a larger set of particles, or inside a periodic box it does not know.

    ``select``: the model's atoms are ``atoms`` among ``n_particles`` positions; forces go back to all
    particles (zero on the others).  ``check_atoms``: the model takes all positions itself (an ML/MM artefact)
    and ``atoms`` only says which to check.  ``check_whole``: the model is not periodic but the system is; the
    ML atoms must then span, along each box vector, less than the box's width there minus the cutoff, so that
    no atom sees another's periodic image (it would not: the model knows no box).  Otherwise CPU evaluations
    raise an error and CUDA ones (no host synchronisation) return NaN energy and forces.
    """

    select: torch.jit.Final[bool]
    check_atoms: torch.jit.Final[bool]
    model_periodic: torch.jit.Final[bool]
    check_whole: torch.jit.Final[bool]
    n_particles: torch.jit.Final[int]
    cutoff_nm: torch.jit.Final[float]
    periodic_fix: torch.jit.Final[str]
    n_atoms: torch.jit.Final[int]
    n_features: torch.jit.Final[int]

    def __init__(
        self,
        model: nn.Module,
        atoms: Sequence[int],
        n_particles: int,
        select: bool,
        check_atoms: bool,
        model_periodic: bool,
        check_whole: bool,
        cutoff_nm: float,
    ):
        super().__init__()
        self.model = model
        self.select = bool(select)
        self.check_atoms = bool(check_atoms)
        self.model_periodic = bool(model_periodic)
        self.check_whole = bool(check_whole)
        self.n_particles = int(n_particles)
        self.cutoff_nm = float(cutoff_nm)
        self.periodic_fix = PERIODIC_FIX
        self.n_atoms = int(model.n_atoms)
        self.n_features = int(model.n_features)
        self.register_buffer("atoms", torch.tensor([int(a) for a in atoms], dtype=torch.long))
        self.register_buffer("dtype_marker", torch.zeros((), dtype=model.dtype_marker.dtype))

    def forward(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Energy (kJ/mol) and forces (kJ/mol/nm): the TorchForce contract with ``setOutputsForces(True)``."""
        energy, forces, _, _, error = self.evaluate_or_error(positions, boxvectors)
        if len(error) > 0:  # (errors are raised only by the method called: see painn_deploy.deploy.module)
            raise RuntimeError(error)
        return energy, forces

    @torch.jit.export
    def evaluate_or_error(
        self, positions: Tensor, boxvectors: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor, str]:
        """:meth:`energy_forces_features` and the message of its error ("" for none), as the model's."""
        with torch.no_grad():  # a copy before anything reads them (see PaiNNForceField._evaluate)
            positions = torch.empty_like(positions).copy_(positions)
        ml = positions.index_select(-2, self.atoms) if self.select or self.check_atoms else positions
        broken: Optional[Tensor] = None
        if self.check_whole:
            if boxvectors is None:
                error = "InputError: the ML atoms are in a periodic box: call with (positions, boxvectors)"
                return positions, positions, positions, positions, error
            broken, error = self._check_whole(ml, boxvectors.to(ml.dtype))
            if len(error) > 0:
                return positions, positions, positions, positions, error
        box = boxvectors if self.model_periodic else None
        energy, forces, s, v, error = self.model.evaluate_or_error(ml if self.select else positions, box)
        if len(error) > 0:
            return energy, forces, s, v, error
        if self.select:
            shape = positions.shape
            every = torch.zeros(shape, dtype=forces.dtype, device=forces.device)
            forces = every.index_copy(positions.dim() - 2, self.atoms, forces)
        if broken is not None:  # (on the GPU nothing raises: the step's energy and forces are NaN, and the run stops)
            energy = torch.where(broken, torch.full_like(energy, float("nan")), energy)
            forces = torch.where(broken.unsqueeze(-1).unsqueeze(-1), torch.full_like(forces, float("nan")), forces)
        return energy, forces, s, v, ""

    @torch.jit.export
    def responses(self, s: Tensor, v: Tensor, positions: Tensor) -> Dict[str, Tensor]:
        """The model's dipole and polarizability heads on the features of :meth:`energy_forces_features`."""
        return self.model.responses(s, v, positions)

    def _check_whole(self, ml: Tensor, box: Tensor) -> Tuple[Tensor, str]:
        """Whether the ML atoms come closer than the cutoff to one another's periodic images ([] or [B]), and
        the message of the error found on the host ("" for none)."""
        spacing = neighbors.face_distances(box)  # distances between the lattice planes across each box vector
        frac = neighbors.fractional(ml, box)
        extent = (frac.amax(-2) - frac.amin(-2)) * spacing  # [..., 3] nm
        # (atoms at NaN or infinite positions are not across a boundary: the model gives them NaN)
        too_wide = (extent > spacing - self.cutoff_nm) & torch.isfinite(extent)
        broken = too_wide.any(-1)
        if ml.device.type == "cpu" and host_checks() and bool(broken.any()):
            flat_extent = extent.reshape(-1, 3)
            flat_spacing = spacing.expand(extent.shape).reshape(-1, 3)
            k = int(torch.nonzero(too_wide.reshape(-1, 3))[0, 1])
            frame = int(torch.nonzero(too_wide.reshape(-1, 3))[0, 0])
            vector = ["a", "b", "c"][k]
            error = (
                "InputError: the ML atoms extend over " + _nm(flat_extent[frame, k]) + " nm across box vector "
                + vector + ", more than the box's width there (" + _nm(flat_spacing[frame, k]) + " nm) minus the "
                "model cutoff (" + _nm(torch.tensor(self.cutoff_nm)) + " nm): the ML molecule straddles a boundary of "
                "the periodic box (positions wrapped atom by atom?) or the box is too narrow, and the model is not "
                "periodic, so it would miss the interactions across the boundary. " + self.periodic_fix + "."
            )  # fmt: skip
            return broken, error
        return broken, ""


def _nm(x: Tensor) -> str:
    """A length (nm) with three decimals."""
    value = float(x)
    if not abs(value) < 1e9:  # (infinite, NaN or far too large: int() of it would fail)
        return str(value)
    milli = int(torch.round(x.double() * 1000.0))
    return str(milli // 1000) + "." + ("00" + str(milli % 1000))[-3:]


# ---- checks and helpers ---------------------------------------------------------------------------------------


def open_model(path: Path):
    """``(artefact, None)`` for an exported model, ``(None, record)`` for a painn-train checkpoint."""
    require_file(path, "model", MODEL_FILE_FIX, CheckpointError)
    if is_checkpoint(path):
        return None, load_checkpoint(path)
    return Artefact(path), None


def _check_options(options: dict) -> None:
    backend = options.get("backend", "python")
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    dtype = options.get("dtype")
    if dtype is not None and dtype not in DTYPES:
        raise InputError(f"dtype must be float32 or float64, not {dtype!r}")
    if "device" in options and backend == "python":  # (TorchForce runs on the Context's platform)
        torch_device(options["device"], "device=")


def warn_cut_residues(topology: "openmm.app.Topology", ml: Sequence[int]) -> None:
    """Warn when the ML atoms take only part of a residue: the model then sees another molecule (OpenMM-ML caps
    each bond they cut with a link hydrogen)."""
    chosen = set(ml)
    for residue in topology.residues():
        atoms = list(residue.atoms())
        left_out = [a.name for a in atoms if a.index not in chosen]
        if left_out and len(left_out) < len(atoms):
            warnings.warn(
                f"the ML atoms take only {len(atoms) - len(left_out)} of the {len(atoms)} atoms of residue "
                f"{residue.name} {residue.id} (left out: {', '.join(left_out[:8])}{' ...' if len(left_out) > 8 else ''}): "
                f"the model sees another molecule than the one it was trained on, with a link hydrogen on each cut "
                f"bond (a virtual site OpenMM-ML adds: createMixedSystem(..., returnInfo=True) returns the topology "
                f"with them and the map oldToNew of the atoms; place the positions by it and call the Context's "
                f"computeVirtualSites()). Give whole residues as ML atoms, e.g. "
                f"[a.index for a in topology.atoms() if a.residue.name == {residue.name!r}]",
                SimulationWarning,
                stacklevel=4,
            )
            return


def residue_groups(topology: "openmm.app.Topology", ml: Sequence[int]) -> List[List[int]]:
    """The ML molecules: the ML atoms' residues, joined where the topology bonds ML atoms of two residues (a
    peptide's residues), as lists of positions in ``ml`` in the order of their first atoms.  The rule of the
    ML atoms' molecules wherever positions are not at hand (OpenMM-ML's createSystem); each is made whole as one."""
    position = {int(i): k for k, i in enumerate(ml)}
    residue_of = [atom.residue.index for atom in topology.atoms()]
    parent = {residue_of[i]: residue_of[i] for i in position}

    def root(r):
        while parent[r] != r:
            parent[r] = parent[parent[r]]
            r = parent[r]
        return r

    for a, b in topology.bonds():
        if a.index in position and b.index in position:
            parent[root(a.residue.index)] = root(b.residue.index)
    groups: dict = {}
    for i, k in position.items():
        groups.setdefault(root(residue_of[i]), []).append(k)
    return sorted((sorted(g) for g in groups.values()), key=min)


def _short(indices: Sequence[int]) -> str:
    return str(list(indices)) if len(indices) <= 10 else f"[{', '.join(map(str, indices[:10]))}, ...] ({len(indices)})"


def _box_nm(topology, system) -> Optional[np.ndarray]:
    box = topology.getPeriodicBoxVectors()
    if box is None and system.usesPeriodicBoundaryConditions():
        box = system.getDefaultPeriodicBoxVectors()
    if box is None:
        return None
    return np.asarray([[x.value_in_unit(unit.nanometer) for x in v] for v in box])
