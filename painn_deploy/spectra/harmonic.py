"""Harmonic normal-mode analysis with an exported model: frequencies, IR intensities, Raman activities.

Model contract (TorchScript from ``torch.jit.load``, or an eager ``torch.nn.Module``):

* ``module(positions_nm [N, 3]) -> energy`` (scalar, kJ/mol), differentiable twice, or else the Hessian
  comes from central differences of the forces of ``properties()`` on all 6N displaced configurations
  at once ([6N, N, 3] positions, as exported models take them);
* ``module.properties(positions_nm) -> Dict[str, Tensor]`` with ``energy`` (kJ/mol), ``forces``
  (kJ/mol/nm) and, when the model predicts them, ``dipole`` [3] (e*nm) and ``polarizability``
  [3, 3] (nm^3).  Their position derivatives are taken by autograd when they are connected to
  the positions passed in, otherwise (``properties()`` of the exported PaiNNForceField detaches
  its input to compute forces) by central finite differences of ``properties()``.

Method (Wilson, Decius & Cross, "Molecular Vibrations" (1955), ch. 2; Ochterski, "Vibrational
analysis in Gaussian" (Gaussian white paper, 1999)):

1. minimise the energy (scipy L-BFGS-B on energy and gradient), report the largest atomic force;
2. Hessian H = d^2E/dx dx (kJ/mol/nm^2) by automatic differentiation, or by central differences of
   the forces for models whose forces are hand-written first derivatives (painn-deploy artefacts);
3. mass-weight it, H_mw = M^-1/2 H M^-1/2 (kJ/mol/nm^2/amu = ps^-2);
4. project out the 6 (5 for linear molecules) translations and infinitesimal rotations about
   the centre of mass (Eckart conditions at the reference geometry) by diagonalising H_mw in
   the orthogonal complement of their mass-weighted vectors;
5. eigenvalues lambda_k (ps^-2) give omega_k = sqrt(lambda_k) (rad/ps) and wavenumbers
   omega_k / (2 pi c) (cm^-1), negative for imaginary modes (lambda_k < 0);
6. normal coordinates Q_k (amu^1/2 nm) with Cartesian displacements x = M^-1/2 L Q; reduced
   mass 1 / sum_i |L_ik|^2 / m_i (amu, the Gaussian convention: sum_i m_i c_i^2 for the unit
   Cartesian displacement c; for a diatomic m1 m2 (m1 + m2)/(m1^2 + m2^2), not m1 m2/(m1 + m2)).

IR intensity (double harmonic approximation; Wilson, Decius & Cross ch. 7; Neugebauer, Reiher,
Kind & Hess, J. Comput. Chem. 23, 895 (2002)):

    A_k = N_A / (12 eps0 c^2) |d mu / d Q_k|^2            (SI: m/mol)

with d mu/dQ_k in e/amu^1/2 this is A_k = 974.880 |d mu/dQ_k|^2 km/mol (factor
:data:`~painn_deploy.units.IR_KM_PER_MOL_PER_E2_PER_AMU`, derived from units.py and
eps0; equal to 42.2561 km/mol per (D/Angstrom)^2/amu).

Raman activity (Long, "The Raman Effect" (2002), ch. 5; Neugebauer et al. 2002): with the
polarizability-volume derivative alpha'_k = d alpha / d Q_k (Angstrom^2 amu^-1/2), its mean
a'_k = Tr(alpha'_k)/3 and anisotropy gamma'_k^2 = 3/2 Tr(b'_k b'_k), b'_k = alpha'_k - a'_k 1,

    S_k = 45 a'_k^2 + 7 gamma'_k^2        (Angstrom^4/amu),
    rho_k = 3 gamma'_k^2 / (45 a'_k^2 + 4 gamma'_k^2)  (depolarisation ratio, linear polarisation).
"""

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.linalg import null_space
from scipy.optimize import minimize as sp_minimize

from .. import units
from ..elements import masses_amu as element_masses
from ..errors import CheckpointError, InputError, MinimizationError, typed_errors
from ..files import MODEL_FILE_FIX, is_checkpoint, require_file, what_file
from ..structures import BOND_TOLERANCE, count_fragments, covalent_bonds, fragment_index
from ..units import IR_KM_PER_MOL_PER_E2_PER_AMU, NM2_TO_ANGSTROM2

#: Default convergence threshold of the minimisation: largest atomic force (kJ/mol/nm).
DEFAULT_FMAX_KJ_MOL_NM = 1e-3
#: A molecule is linear when its smallest principal moment of inertia is below this fraction
#: of the largest.
LINEAR_TOLERANCE = 1e-6
#: Warn when the projected-out (translation/rotation) curvature exceeds this (cm^-1).
EXTERNAL_WARN_CM1 = 50.0
#: Smallest over largest moment of inertia below which a molecule taken as non-linear is called nearly linear.
NEARLY_LINEAR = 1e-2
#: Imaginary wavenumber (cm^-1) beyond which a minimised structure is reported as a saddle point, by the model's
#: dtype: float32 models give soft modes a few tens of i cm^-1 at a true minimum, float64 ones below 1 cm^-1.
IMAGINARY_WARN_CM1 = {torch.float64: 10.0, torch.float32: 50.0}
#: Without minimisation, a larger force (kJ/mol/nm) means the structure is not at a minimum of the model.
NONSTATIONARY_FORCE_KJ_MOL_NM = 1.0


class HarmonicWarning(UserWarning):
    """The harmonic analysis ran but its accuracy is limited (precision, convergence)."""


def _warn(message: str, depth: int = 0) -> None:
    """Warn at the caller of the public function (``depth``: the helper functions between them)."""
    warnings.warn(message, HarmonicWarning, stacklevel=3 + depth)


def load_model(path, device: str = "cpu", atomic_numbers=None, box_nm=None, where: str = "the structure"):
    """The module of :func:`open_model`."""
    return open_model(path, device, atomic_numbers, box_nm, where)[0]


def open_model(path, device: str = "cpu", atomic_numbers=None, box_nm=None, where: str = "the structure"):
    """(module, training envelope or None): a model for harmonic analysis, checked against the structure before
    anything is evaluated, and the distances of its training data (:mod:`~painn_deploy.deploy.envelope`).

    * a painn-train checkpoint (``.ckpt``): built in float64 for ``atomic_numbers`` (default: the training
      molecule), which must be the training molecule's elements (in any order);
    * a painn-deploy artefact (checked by :meth:`~painn_deploy.deploy.Artefact.check_system`: elements,
      particle count and order); ML/MM and periodic artefacts are refused (a harmonic analysis is of one
      isolated molecule);
    * any TorchScript module with the contract of this module (nothing to check it against).

    ``atomic_numbers`` and ``box_nm`` describe the structure (``where`` names it in errors).
    """
    from ..deploy import metadata as md
    from ..deploy.artefact import Artefact, read_metadata

    path = require_file(path, "model", MODEL_FILE_FIX, CheckpointError)
    if is_checkpoint(path):
        module, envelope = _checkpoint_model(path, atomic_numbers, where)
        return module.to(device).eval(), envelope
    envelope = None
    try:
        read_metadata(path)
        is_artefact = True
    except CheckpointError:
        if what_file(path) != "a TorchScript model":  # (a damaged file or another kind: its own message)
            raise
        is_artefact = False
    if is_artefact:
        artefact = Artefact(path)
        check_artefact(str(path), artefact.metadata, artefact, atomic_numbers, box_nm, where)
        module, envelope = artefact.load(device).module, artefact.metadata.get(md.KEY_ENVELOPE)
    else:
        try:
            module = torch.jit.load(str(path), map_location=device)
        except (RuntimeError, ValueError, OSError) as exc:
            raise CheckpointError(
                f"{path}: cannot be loaded as a TorchScript model ({str(exc).splitlines()[0]}); {MODEL_FILE_FIX}"
            ) from exc
        try:  # a user's TorchScript model: its contract, properties(positions_nm)
            module.properties  # noqa: B018
        except AttributeError:
            raise CheckpointError(
                f"{path} is a TorchScript model without painn-deploy metadata and without a 'properties' method; "
                "give an exported model (.pt, from painn-export), a painn-train checkpoint (.ckpt), or a TorchScript "
                "model whose properties(positions_nm) returns energy, forces, dipole and polarizability"
            ) from None
    module.eval()
    return module, envelope if envelope and envelope.get("source") else None


def _checkpoint_model(path: Path, atomic_numbers, where: str):
    """The float64 eager module of a painn-train checkpoint for ``atomic_numbers`` (its training molecule), and
    its training envelope."""
    from .. import elements
    from ..deploy import build_forcefield
    from ..errors import TopologyMismatchError
    from ..model.checkpoint import load_checkpoint

    record = load_checkpoint(path)
    if "atomic_numbers" not in record:
        raise CheckpointError(f"{path} holds no training molecule; it was not written by painn-train")
    trained = [int(z) for z in record["atomic_numbers"]]
    z = trained if atomic_numbers is None else [int(a) for a in atomic_numbers]
    elements.check_known(z, record["config"]["elements"], where)
    if sorted(z) != sorted(trained):
        copies = len(z) // len(trained)
        fix = (
            f"For {copies} of them, export the model for the structure (painn-export {path} --pdb STRUCTURE.pdb "
            "--dtype float64 -o cluster.pt) and give that: the forces between the molecules are extrapolated"
            if copies > 1 and sorted(z) == sorted(trained * copies)
            else "Give the structure of the training molecule, or a model trained on this one"
        )
        raise TopologyMismatchError(
            f"{where} is {elements.formula(z)} ({len(z)} atoms), but the checkpoint {path} builds the model of its "
            f"training molecule, {elements.formula(trained)} ({len(trained)} atoms). {fix}"
        )
    return build_forcefield(record, z, dtype="float64"), record.get("training_envelope")


def model_dtype(module) -> tuple[torch.dtype, torch.device]:
    """dtype and device of the module's first floating parameter or buffer (float64/CPU if none)."""
    for tensors in (module.parameters(), module.buffers()):
        for t in tensors:
            if t.is_floating_point():
                return t.dtype, t.device
    return torch.float64, torch.device("cpu")


def _tensor(x: np.ndarray, dtype, device, grad: bool = False) -> torch.Tensor:
    t = torch.tensor(np.asarray(x, dtype=np.float64).reshape(-1, 3), dtype=dtype, device=device)
    return t.requires_grad_(grad)


def energy_and_gradient(module, positions_nm: np.ndarray) -> tuple[float, np.ndarray]:
    """Energy (kJ/mol) and its gradient -F (kJ/mol/nm, [N, 3]) by autograd of ``forward``."""
    dtype, device = model_dtype(module)
    pos = _tensor(positions_nm, dtype, device, grad=True)
    energy = module(pos)
    (grad,) = torch.autograd.grad(energy, pos)
    return float(energy.detach()), grad.detach().to("cpu", torch.float64).numpy()


@dataclass
class MinimizationResult:
    positions_nm: np.ndarray
    energy_kj_mol: float
    max_force_kj_mol_nm: float
    n_steps: int
    converged: bool
    message: str


#: Newton steps after L-BFGS-B (each on a fresh Hessian), the halvings tried before one is given up, the smallest
#: curvature they step along, relative to the stiffest, and the largest distance (nm) they move an atom.
NEWTON_STEPS = 20
NEWTON_HALVINGS = 10
NEWTON_MIN_CURVATURE = 1e-6
NEWTON_MAX_STEP_NM = 0.01
#: The length (nm) in whose units L-BFGS-B works, and so the length of its first step.
LBFGS_LENGTH_NM = 0.01


def minimize_positions(
    module, positions_nm, *, fmax_kj_mol_nm: float = DEFAULT_FMAX_KJ_MOL_NM, max_steps: int = 5000
) -> MinimizationResult:
    """Minimise the model energy with scipy L-BFGS-B until the largest atomic force < fmax."""
    x0 = np.asarray(positions_nm, dtype=np.float64).reshape(-1)
    # relative to the start: L-BFGS-B stops when the energy falls by less than ftol times |E|, and a molecule's
    # total energy (1e5 kJ/mol for aspirin) would make that stop come before the force threshold
    e0 = energy_and_gradient(module, x0)[0]
    # in coordinates of LBFGS_LENGTH_NM: L-BFGS-B's first step has unit length, 1 nm in nm coordinates, which
    # throws atoms out of a molecule, far from any data the model was trained on
    scale = LBFGS_LENGTH_NM

    def fun(y):
        e, g = energy_and_gradient(module, y * scale)
        return e - e0, g.reshape(-1) * scale

    res = sp_minimize(
        fun,
        x0 / scale,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_steps, "gtol": scale * fmax_kj_mol_nm / math.sqrt(3.0), "ftol": 1e-15, "maxcor": 50},
    )
    pos = res.x.reshape(-1, 3) * scale
    e, g = energy_and_gradient(module, pos)
    fmax, message, steps = float(np.linalg.norm(g, axis=1).max()), str(res.message), int(res.nit)
    if message.rstrip(": ") == "ABNORMAL":  # (scipy gives no reason for a failed line search)
        message = "L-BFGS-B's line search failed"
    base = message
    # near the minimum, soft modes change the energy by less than its rounding (in float32, for a large molecule,
    # while forces are still tens of kJ/mol/nm), and L-BFGS-B's line search stalls; the forces are still accurate,
    # so Newton steps finish the job within max_steps: each on a fresh Hessian with translations and rotations
    # projected out and only its positive modes, capped, and halved until it lowers the largest force
    newton = 0
    while fmax > fmax_kj_mol_nm and steps < max_steps and newton < NEWTON_STEPS:
        step = _newton_step(module, pos, g)
        for _ in range(NEWTON_HALVINGS):
            e_new, g_new = energy_and_gradient(module, pos + step)
            fmax_new = float(np.linalg.norm(g_new, axis=1).max())
            if np.isfinite(e_new) and fmax_new < fmax:
                break
            step = 0.5 * step
        else:  # no step along the Newton direction lowers the force: as close as this model's precision gets
            break
        pos, e, g, fmax, steps, newton = pos + step, e_new, g_new, fmax_new, steps + 1, newton + 1
        message = f"{base}; then {newton} Newton step(s) on the Hessian"
    return MinimizationResult(pos, e, fmax, steps, fmax <= fmax_kj_mol_nm, message)


def _newton_step(module, pos: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """The Newton step [N, 3] on the Hessian at ``pos``, with translations and rotations projected out and only
    its positive modes (above NEWTON_MIN_CURVATURE of the stiffest), no atom moved more than NEWTON_MAX_STEP_NM."""
    d, _ = external_basis(pos, np.ones(len(pos)))
    project = np.eye(d.shape[0]) - d @ d.T
    w, v = np.linalg.eigh(project @ hessian(module, pos) @ project)
    keep = w > NEWTON_MIN_CURVATURE * w.max()
    step = -(v[:, keep] @ ((v[:, keep].T @ gradient.reshape(-1)) / w[keep])).reshape(-1, 3)
    return step * min(1.0, NEWTON_MAX_STEP_NM / max(float(np.linalg.norm(step, axis=1).max()), 1e-300))


def hessian(module, positions_nm) -> np.ndarray:
    """Cartesian Hessian d^2E / dx_i dx_j [3N, 3N] in kJ/mol/nm^2 (symmetrised): by double autograd
    where the model's energy is twice differentiable, otherwise (exported painn-deploy models, whose
    forces come from hand-written first derivatives) by central differences of the forces, all 6N
    displaced configurations in one batched evaluation (step :data:`FD_STEP_NM`)."""
    dtype, device = model_dtype(module)
    pos = _tensor(positions_nm, dtype, device, grad=True)
    energy = module(pos)
    (grad,) = torch.autograd.grad(energy, pos, create_graph=True)
    if not grad.requires_grad:
        return _finite_difference_hessian(module, positions_nm, FD_STEP_NM.get(dtype, FD_STEP_NM[torch.float32]))
    grad = grad.reshape(-1)
    n = grad.numel()
    h = np.zeros((n, n))
    for i in range(n):
        if not grad[i].requires_grad:
            continue
        (row,) = torch.autograd.grad(grad[i], pos, retain_graph=i < n - 1, allow_unused=True)
        if row is not None:
            h[i] = row.detach().to("cpu", torch.float64).numpy().reshape(-1)
    return 0.5 * (h + h.T)


def _finite_difference_hessian(module, positions_nm, step_nm: float) -> np.ndarray:
    dtype, device = model_dtype(module)
    base = np.asarray(positions_nm, dtype=np.float64).reshape(-1, 3)
    n = base.size
    displaced = np.repeat(base[None], 2 * n, axis=0).reshape(2 * n, n)
    displaced[np.arange(n), np.arange(n)] += step_nm
    displaced[n + np.arange(n), np.arange(n)] -= step_nm
    frames = torch.tensor(displaced.reshape(2 * n, -1, 3), dtype=dtype, device=device)
    forces = module.properties(frames)["forces"].detach().to("cpu", torch.float64).numpy().reshape(2 * n, n)
    h = -(forces[:n] - forces[n:]) / (2.0 * step_nm)
    return 0.5 * (h + h.T)


#: Central finite-difference steps (nm) used when a model's properties are not differentiable
#: w.r.t. the positions passed in (e.g. ``properties()`` detaches them to compute forces).  A longer step
#: averages the curvature over the step (1e-3 nm moves the bundled model's modes by more than 10 cm^-1); float32
#: forces keep 2e-5 nm within 1 cm^-1 of float64 (test_float32_artefact_gives_the_float64_frequencies).
FD_STEP_NM = {torch.float64: 1e-5, torch.float32: 2e-5}


def _autograd_derivatives(value: torch.Tensor, pos: torch.Tensor) -> np.ndarray | None:
    """d value_i / d pos [n_values, N, 3], or None if value is not connected to pos at all."""
    derivs = np.zeros((value.numel(), pos.shape[0], 3))
    connected = False
    for i in range(value.numel()):
        if value[i].requires_grad:
            (g,) = torch.autograd.grad(value[i], pos, retain_graph=True, allow_unused=True)
            if g is not None:
                connected = True
                derivs[i] = g.detach().to("cpu", torch.float64).numpy()
    return derivs if connected else None


def _finite_difference_derivatives(module, positions_nm: np.ndarray, key: str, step_nm: float) -> np.ndarray:
    """Central differences (v(x + h) - v(x - h)) / 2h of ``properties()[key]``, [n_values, N, 3]."""
    dtype, device = model_dtype(module)
    base = np.asarray(positions_nm, dtype=np.float64).reshape(-1, 3)
    n_values = None
    derivs = None
    for atom in range(base.shape[0]):
        for axis in range(3):
            vals = []
            for sign in (1.0, -1.0):
                x = base.copy()
                x[atom, axis] += sign * step_nm
                props = module.properties(_tensor(x, dtype, device, grad=True))
                vals.append(props[key].detach().to("cpu", torch.float64).numpy().reshape(-1))
            if derivs is None:
                n_values = vals[0].shape[0]
                derivs = np.zeros((n_values, base.shape[0], 3))
            derivs[:, atom, axis] = (vals[0] - vals[1]) / (2.0 * step_nm)
    return derivs


def property_derivatives(module, positions_nm) -> dict:
    """Values and Cartesian derivatives of the model's properties.

    Returns a dict with ``forces`` [N, 3] (kJ/mol/nm) and, when predicted, ``dipole`` [3]
    (e*nm), ``d_dipole`` [3, N, 3] (e), ``polarizability`` [3, 3] (nm^3) and
    ``d_polarizability`` [3, 3, N, 3] (nm^2), plus ``methods`` naming how each derivative was
    obtained: by autograd, or by central finite differences (step :data:`FD_STEP_NM`) when the
    returned property is not connected to the input positions in the autograd graph.
    """
    dtype, device = model_dtype(module)
    pos = _tensor(positions_nm, dtype, device, grad=True)
    props = module.properties(pos)
    out: dict = {"methods": {}}
    if "forces" in props:
        out["forces"] = props["forces"].detach().to("cpu", torch.float64).numpy().reshape(-1, 3)
    n_atoms = pos.shape[0]
    for key, shape in (("dipole", (3,)), ("polarizability", (3, 3))):
        if key not in props:
            continue
        value = props[key].reshape(-1)
        if value.numel() != math.prod(shape):
            raise InputError(f"the model's '{key}' has {value.numel()} values, expected shape {shape}")
        out[key] = value.detach().to("cpu", torch.float64).numpy().reshape(shape)
        derivs = _autograd_derivatives(value, pos)
        if derivs is None:
            step = FD_STEP_NM.get(dtype, FD_STEP_NM[torch.float32])
            derivs = _finite_difference_derivatives(module, positions_nm, key, step)
            out["methods"][key] = f"central finite differences, step {step:g} nm"
        else:
            out["methods"][key] = "autograd"
        out["d_" + key] = derivs.reshape(*shape, n_atoms, 3)
    return out


def principal_moments(positions_nm, masses_amu) -> np.ndarray:
    """The principal moments of inertia (amu nm^2, ascending) about the centre of mass."""
    r = np.asarray(positions_nm, dtype=np.float64).reshape(-1, 3)
    m = np.asarray(masses_amu, dtype=np.float64)
    rc = r - (m[:, None] * r).sum(axis=0) / m.sum()
    inertia = (
        m[:, None, None] * ((rc**2).sum(axis=1)[:, None, None] * np.eye(3) - rc[:, :, None] * rc[:, None, :])
    ).sum(axis=0)
    return np.linalg.eigvalsh(inertia)


def external_basis(positions_nm, masses_amu, linear: bool | None = None) -> tuple[np.ndarray, bool]:
    """Orthonormal mass-weighted translation and rotation vectors D [3N, 6 or 5] and linearity.

    Translations: sqrt(m_i) e_a; rotations: sqrt(m_i) e_a x (r_i - r_com) (a = x, y, z).  A
    molecule is linear when its smallest principal moment of inertia is below
    :data:`LINEAR_TOLERANCE` times the largest (or as given by ``linear``).
    """
    r = np.asarray(positions_nm, dtype=np.float64).reshape(-1, 3)
    m = np.asarray(masses_amu, dtype=np.float64)
    n = r.shape[0]
    rc = r - (m[:, None] * r).sum(axis=0) / m.sum()
    moments = principal_moments(r, m)
    if linear is None:
        linear = bool(n == 2 or moments[0] < LINEAR_TOLERANCE * moments[-1])
    sq = np.sqrt(m)[:, None]
    vecs = []
    for a in range(3):
        e = np.zeros(3)
        e[a] = 1.0
        vecs.append((sq * e).reshape(-1))
    for a in range(3):
        e = np.zeros(3)
        e[a] = 1.0
        vecs.append((sq * np.cross(e, rc)).reshape(-1))
    d = np.array(vecs).T  # [3N, 6]
    u, s, _ = np.linalg.svd(d, full_matrices=False)
    k = 5 if linear else 6
    if n == 1:
        k = 3
    return u[:, :k], linear


def _wavenumber(eigenvalues_ps2: np.ndarray) -> np.ndarray:
    return np.sign(eigenvalues_ps2) * np.sqrt(np.abs(eigenvalues_ps2)) * units.WAVENUMBER_PER_RAD_PER_PS


@dataclass
class HarmonicResult:
    """Normal modes of one structure (arrays over the 3N-6 or 3N-5 vibrational modes, ascending)."""

    wavenumber_cm1: np.ndarray
    ir_intensity_km_per_mol: np.ndarray
    raman_activity_A4_per_amu: np.ndarray
    depolarization_ratio: np.ndarray
    reduced_mass_amu: np.ndarray
    modes_mass_weighted: np.ndarray  # [M, N, 3] orthonormal columns of L
    displacements_nm: np.ndarray  # [M, N, 3] Cartesian displacement per unit Q (nm per amu^1/2 nm)
    dipole_derivatives_e_per_sqrt_amu: np.ndarray | None
    polarizability_derivatives_A2_per_sqrt_amu: np.ndarray | None
    positions_nm: np.ndarray
    masses_amu: np.ndarray
    atomic_numbers: np.ndarray | None
    energy_kj_mol: float
    max_force_kj_mol_nm: float
    linear: bool
    external_wavenumber_cm1: np.ndarray
    dtype: str
    minimization: dict = field(default_factory=dict)
    derivative_methods: dict = field(default_factory=dict)

    @property
    def n_modes(self) -> int:
        return int(self.wavenumber_cm1.shape[0])

    @property
    def zero_point_energy_kj_mol(self) -> float:
        """Harmonic zero-point energy, sum of h c nu~ / 2 over the real modes (imaginary ones left out)."""
        real = self.wavenumber_cm1[self.wavenumber_cm1 > 0]
        return float(0.5 * units.KJ_PER_MOL_PER_CM1 * real.sum())

    def table(self) -> str:
        """Human-readable table of the modes."""
        lines = [
            f"{'mode':>4}  {'wavenumber':>11}  {'IR intensity':>13}  {'Raman activity':>15}  {'depol.':>6}",
            f"{'':>4}  {'(cm^-1)':>11}  {'(km/mol)':>13}  {'(A^4/amu)':>15}  {'ratio':>6}",
        ]
        for i in range(self.n_modes):
            nu = self.wavenumber_cm1[i]
            tag = "i" if nu < 0 else " "
            lines.append(
                f"{i + 1:4d}  {abs(nu):10.2f}{tag}  {self.ir_intensity_km_per_mol[i]:13.4f}  "
                f"{self.raman_activity_A4_per_amu[i]:15.4f}  {self.depolarization_ratio[i]:6.3f}"
            )
        lines.append("(i: imaginary frequency, written as a negative wavenumber in the CSV)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-serialisable summary."""

        def arr(a):
            return None if a is None else np.asarray(a).tolist()

        return {
            "wavenumber_cm-1": arr(self.wavenumber_cm1),
            "ir_intensity_km_per_mol": arr(self.ir_intensity_km_per_mol),
            "raman_activity_A4_per_amu": arr(self.raman_activity_A4_per_amu),
            "depolarization_ratio": arr(self.depolarization_ratio),
            "reduced_mass_amu": arr(self.reduced_mass_amu),
            "external_wavenumber_cm-1": arr(self.external_wavenumber_cm1),
            "positions_nm": arr(self.positions_nm),
            "masses_amu": arr(self.masses_amu),
            "atomic_numbers": arr(self.atomic_numbers),
            "energy_kj_mol": self.energy_kj_mol,
            "zero_point_energy_kj_mol": self.zero_point_energy_kj_mol,
            "max_force_kj_mol_nm": self.max_force_kj_mol_nm,
            "linear": self.linear,
            "model_dtype": self.dtype,
            "minimization": self.minimization,
            "derivative_methods": self.derivative_methods,
            "displacements_nm_per_sqrt_amu_nm": arr(self.displacements_nm),
        }


def _checked_minimum(module, pos, atomic_numbers, minimize, fmax_kj_mol_nm, max_steps):
    """(positions, the minimisation's record): minimised when asked, with a warning when it did not converge;
    a :class:`MinimizationError` when it changed the molecule's bonds."""
    minimization: dict = {"performed": bool(minimize)}
    if minimize:
        start = pos
        mres = minimize_positions(module, pos, fmax_kj_mol_nm=fmax_kj_mol_nm, max_steps=max_steps)
        pos = mres.positions_nm
        minimization.update(
            steps=mres.n_steps, converged=mres.converged, message=mres.message, fmax_kj_mol_nm=fmax_kj_mol_nm
        )
        if not mres.converged:
            _warn(
                f"the minimisation stopped after {mres.n_steps} steps with a largest force of "
                f"{mres.max_force_kj_mol_nm:.3g} kJ/mol/nm (threshold {fmax_kj_mol_nm:g}; {mres.message}): "
                "frequencies of soft modes may be inaccurate",
                depth=1,
            )
        if atomic_numbers is not None:
            before, after = covalent_bonds(atomic_numbers, start), covalent_bonds(atomic_numbers, pos)
            stretched = None
            # a distorted start mended, not a reaction: bonds only formed, each joining two fragments (no ring
            # closed), and the fragments at the end are the model's molecules (no atom moved to another molecule)
            if before < after and _molecules_of(module) is not None:
                start_fragments = fragment_index(atomic_numbers, start)
                joins = all(start_fragments[a] != start_fragments[b] for a, b in after - before)
                if joins and _partition(fragment_index(atomic_numbers, pos)) == _partition(_molecules_of(module)):
                    stretched = _stretched_bonds(atomic_numbers, start, after - before)
            if stretched:
                _warn(
                    f"the start had {len(stretched)} bond(s) stretched beyond {BOND_TOLERANCE} times their covalent "
                    f"length ({', '.join(stretched[:6])}{', ...' if len(stretched) > 6 else ''}), which the "
                    "minimisation closed: the modes are of the minimised structure (check it)",
                    depth=1,
                )
            elif before != after:
                changed = [f"{a + 1}-{b + 1} {'broken' if (a, b) in before else 'formed'}"
                           for a, b in sorted(before ^ after)]  # fmt: skip
                raise MinimizationError(
                    f"the minimisation changed the molecule's bonds ({', '.join(changed[:6])}"
                    f"{', ...' if len(changed) > 6 else ''}; {count_fragments(atomic_numbers, start)} covalently "
                    f"bonded fragment(s) at the start, {count_fragments(atomic_numbers, pos)} at the end; atoms "
                    f"closer than {BOND_TOLERANCE} times their covalent radii; energy "
                    f"{mres.energy_kj_mol - energy_and_gradient(module, start)[0]:+.4g} kJ/mol from the "
                    "start). The model has no minimum near the starting structure, so its modes would be of another "
                    "molecule: check the structure and the model's training data, or minimise it yourself and give "
                    "--no-minimize"
                    + (
                        " (bonds only formed: a stretched start, mended, is told from a reaction by the model's "
                        "molecules, which this module does not hold as molecule_index)"
                        if before < after and _molecules_of(module) is None
                        else ""
                    )
                )
    return pos, minimization


def _molecules_of(module) -> list | None:
    """Each atom's molecule as the model holds it (painn-deploy's modules: ``molecule_index``), else None."""
    index = getattr(module, "molecule_index", None)
    return None if index is None else [int(k) for k in index.tolist()]


def _partition(labels) -> set:
    """The atoms grouped by their labels, as a set of frozensets (the grouping, whatever the labels)."""
    groups: dict = {}
    for atom, label in enumerate(labels):
        groups.setdefault(label, set()).add(atom)
    return {frozenset(g) for g in groups.values()}


#: A pair that is not bonded at the start but closer than this times its covalent length is a stretched bond.
STRETCHED_BOND = 1.5


def _stretched_bonds(atomic_numbers, start_nm: np.ndarray, formed: set) -> list[str]:
    """Descriptions of the ``formed`` bonds (pairs i < j) when every one of them was a stretched bond at the start
    (closer than STRETCHED_BOND times its covalent length), otherwise an empty list.  With the fragments joined
    into the model's molecules (the caller's check), a distorted start that the minimisation mended."""
    from ase.data import covalent_radii

    described = []
    for a, b in sorted(formed):
        length_nm = float(np.linalg.norm(start_nm[a] - start_nm[b]))
        covalent_nm = (covalent_radii[atomic_numbers[a]] + covalent_radii[atomic_numbers[b]]) * units.NM_PER_ANGSTROM
        if length_nm > STRETCHED_BOND * covalent_nm:
            return []
        described.append(
            f"{a + 1}-{b + 1} at {length_nm * units.ANGSTROM_PER_NM:.2f} Angstrom, {length_nm / covalent_nm:.2f} times"
        )
    return described


def _intensities(props: dict, disp: np.ndarray):
    """IR intensities (km/mol) and dipole derivatives, Raman activities (Angstrom^4/amu), depolarisation ratios
    and polarizability derivatives of the modes ``disp`` [3N, M] (NaN / None without the property)."""
    n_modes = disp.shape[1]
    d_mu = None
    ir = np.full(n_modes, np.nan)
    if "d_dipole" in props:
        d_mu = props["d_dipole"].reshape(3, -1) @ disp  # [3, M] e / amu^1/2
        d_mu = d_mu.T
        ir = IR_KM_PER_MOL_PER_E2_PER_AMU * (d_mu**2).sum(axis=1)
    d_alpha = None
    raman = np.full(n_modes, np.nan)
    rho = np.full(n_modes, np.nan)
    if "d_polarizability" in props:
        d_alpha = (props["d_polarizability"].reshape(9, -1) @ disp).T.reshape(n_modes, 3, 3) * NM2_TO_ANGSTROM2
        d_alpha = 0.5 * (d_alpha + np.swapaxes(d_alpha, 1, 2))
        a = np.trace(d_alpha, axis1=1, axis2=2) / 3.0
        b = d_alpha - a[:, None, None] * np.eye(3)
        gamma2 = 1.5 * (b**2).sum(axis=(1, 2))
        raman = 45.0 * a**2 + 7.0 * gamma2
        denom = 45.0 * a**2 + 4.0 * gamma2
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.where(denom > 0, 3.0 * gamma2 / denom, np.nan)

    return ir, d_mu, raman, rho, d_alpha


def check_artefact(what: str, metadata: dict, artefact, atomic_numbers, box_nm, where: str) -> None:
    """A harmonic analysis is of one whole, isolated molecule: ML/MM and periodic artefacts are refused, and the
    structure's atoms are checked against the artefact's (when there is one and ``atomic_numbers`` are given)."""
    from ..deploy import metadata as md

    if metadata.get(md.KEY_ATOM_INDICES) is not None:
        raise InputError(
            f"{what} is an ML/MM model (exported with --atoms): it describes part of a system, and a harmonic "
            "analysis needs the whole molecule. Give the painn-train checkpoint (.ckpt), or a model exported "
            "without --atoms"
        )
    if metadata.get(md.KEY_PERIODIC):
        raise InputError(
            f"{what} is a periodic model; a harmonic analysis is of one isolated molecule. Give the painn-train "
            "checkpoint (.ckpt), or a model exported without a box (painn-export CHECKPOINT --no-periodic)"
        )
    if artefact is not None and atomic_numbers is not None:
        artefact.check_system(atomic_numbers, box_nm, where)
        from .. import elements

        trained = metadata.get(md.KEY_TRAINING, {}).get("training_molecule")
        if trained and sorted(atomic_numbers) != sorted(elements.formula_atoms(trained)):
            _warn(
                f"{what} was trained on {trained} and exported for {where}, {elements.formula(atomic_numbers)}: "
                "the modes of what the training data did not hold (the molecules against each other, another "
                "molecule's bonds) are extrapolated"
            )


def harmonic_analysis(
    module,
    positions_nm,
    atomic_numbers=None,
    *,
    masses_amu=None,
    minimize: bool = True,
    fmax_kj_mol_nm: float = DEFAULT_FMAX_KJ_MOL_NM,
    max_steps: int = 5000,
    linear: bool | None = None,
    float64_hint: str | None = None,
    where: str = "the structure",
) -> HarmonicResult:
    """Normal-mode analysis of ``module`` at (or, with ``minimize``, near) ``positions_nm``.

    Parameters
    ----------
    module:
        Model following the contract in the module docstring (TorchScript or eager), or the
        :class:`~painn_deploy.deploy.artefact.Model` of an artefact (``painn_deploy.deploy.load``), checked as
        painn-harmonic checks the file (``atomic_numbers`` against its particles).
    positions_nm:
        Starting positions [N, 3] in nm.
    atomic_numbers:
        Atomic numbers [N]; masses are the IUPAC standard atomic masses unless ``masses_amu``.
    minimize, fmax_kj_mol_nm, max_steps:
        Minimise first (L-BFGS-B) until the largest atomic force is below fmax (kJ/mol/nm).
    linear:
        Force the linear (5 external modes) / non-linear (6) treatment; default: detect.
    float64_hint:
        How to get a float64 model, for the warning given when ``module`` is not float64.

    where:
        What the positions are, for the messages (a file name).

    Returns
    -------
    :class:`HarmonicResult` (wavenumbers in cm^-1, IR intensities in km/mol, Raman activities
    in Angstrom^4/amu; NaN when the model has no dipole / polarizability).

    Errors raised inside an exported model reach the caller as the package's typed exceptions.
    """
    from ..deploy.artefact import Model
    from ..structures import check_positions

    if atomic_numbers is not None:  # numbers or element symbols
        from .. import elements

        try:
            atomic_numbers = [elements.atomic_number(a) if isinstance(a, str) else int(a) for a in atomic_numbers]
        except (TypeError, ValueError) as exc:
            raise InputError(f"atomic_numbers must be atomic numbers or element symbols ({exc})") from None
    if isinstance(module, Model):
        what = str(module.artefact.path) if module.artefact is not None else "the model"
        check_artefact(what, module.metadata, module.artefact, atomic_numbers, None, where)
        module = module.module
    pos = positions_nm.detach().cpu().numpy() if isinstance(positions_nm, torch.Tensor) else positions_nm
    pos = np.asarray(pos)
    if not np.issubdtype(pos.dtype, np.floating):
        raise InputError(f"{where} must be floating-point coordinates in nm, not {pos.dtype}")
    pos = pos.astype(np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] < 2:
        raise InputError(f"{where} must have shape [N, 3] with N >= 2 atoms, got {pos.shape}")
    check_positions(pos, None, where=where)  # (NaN, overlapping atoms, Angstrom given as nm)
    with typed_errors():
        return _analysis(module, pos, atomic_numbers, masses_amu, minimize, fmax_kj_mol_nm, max_steps, linear,
                         float64_hint)  # fmt: skip


def _analysis(module, pos, atomic_numbers, masses_amu, minimize, fmax_kj_mol_nm, max_steps, linear, float64_hint):
    n_atoms = pos.shape[0]
    if masses_amu is None:
        if atomic_numbers is None:
            raise InputError("give atomic_numbers or masses_amu: the normal modes need the atomic masses")
        masses = element_masses(atomic_numbers)
    else:
        masses = np.asarray(masses_amu, dtype=np.float64)
    if masses.shape != (n_atoms,) or not np.all(masses > 0):
        raise InputError(f"need {n_atoms} positive masses (amu), got {masses}")
    dtype, _ = model_dtype(module)
    if dtype != torch.float64:
        name = str(dtype).replace("torch.", "")
        _warn(
            f"the model computes in {name}: the minimisation is limited by {name} precision (it may stop above "
            f"the force threshold) and second derivatives are differences of {name} forces, so low-frequency modes "
            "(below ~100 cm^-1) and small intensities are less reliable. "
            + (float64_hint or "Use a float64 model for harmonic analysis.")
        )
    pos, minimization = _checked_minimum(module, pos, atomic_numbers, minimize, fmax_kj_mol_nm, max_steps)
    molecules = _molecules_of(module)
    if atomic_numbers is not None and molecules is not None:
        fragments = fragment_index(atomic_numbers, pos)
        if _partition(fragments) != _partition(molecules):
            _warn(
                f"the analysed structure's {max(fragments) + 1} covalently bonded fragment(s) are not the model's "
                f"{len(set(molecules))} molecule(s): a dissociated structure, or atoms moved between molecules? Its "
                "modes are the fragments', and the dipole and polarizability heads keep each of the model's molecules "
                "neutral"
            )
    energy, grad = energy_and_gradient(module, pos)
    props = property_derivatives(module, pos)
    forces = props.get("forces", -grad)
    max_force = float(np.linalg.norm(forces, axis=1).max())
    if not minimize and max_force > NONSTATIONARY_FORCE_KJ_MOL_NM:
        _warn(
            f"the structure is not at a minimum of the model (largest force {max_force:.3g} kJ/mol/nm, not "
            "minimised): the frequencies of a non-stationary point are not the model's. Minimise (painn-harmonic without "
            "--no-minimize, harmonic_analysis with minimize=True), or give positions with more decimals: a PDB keeps 0.001 Angstrom, enough for forces of "
            "tens of kJ/mol/nm in stiff bonds"
        )

    h = hessian(module, pos)
    inv_sqrt_m = np.repeat(1.0 / np.sqrt(masses), 3)
    h_mw = h * inv_sqrt_m[:, None] * inv_sqrt_m[None, :]  # ps^-2
    d, is_linear = external_basis(pos, masses, linear)
    if linear:
        moments = principal_moments(pos, masses)
        if moments[0] > NEARLY_LINEAR * moments[-1]:
            _warn(
                f"linear=True (--linear yes) for a molecule that is not linear (smallest moment of inertia "
                f"{moments[0] / moments[-1]:.2g} of the largest): one rotation is taken for a vibration; leave "
                "linear out to detect it"
            )
    internal = null_space(d.T)  # [3N, 3N - k], orthonormal complement
    evals, evecs = np.linalg.eigh(internal.T @ h_mw @ internal)
    modes = internal @ evecs  # [3N, M], orthonormal mass-weighted normal modes
    wavenumber = _wavenumber(evals)
    external = _wavenumber(np.linalg.eigvalsh(d.T @ h_mw @ d))
    if np.max(np.abs(external), initial=0.0) > EXTERNAL_WARN_CM1:
        moments = principal_moments(pos, masses)
        nearly_linear = not is_linear and moments[0] < NEARLY_LINEAR * moments[-1]
        _warn(
            f"the projected-out translations/rotations have curvatures up to {np.max(np.abs(external)):.1f} "
            "cm^-1: "
            + (
                f"the molecule is nearly linear (smallest moment of inertia {moments[0] / moments[-1]:.2g} of the "
                "largest), so the rotation about its axis took a bending vibration with it. If it is linear at "
                "the model's minimum, give --linear yes (linear=True)"
                if nearly_linear
                else "the structure is not at a stationary point or the energy is not invariant under rotation; "
                "minimise more tightly"
            )
        )
    saddle = wavenumber[wavenumber < -IMAGINARY_WARN_CM1.get(dtype, 50.0)]
    if minimize and len(saddle):
        _warn(
            f"{len(saddle)} imaginary mode(s), down to {abs(saddle[0]):.1f}i cm^-1: the minimisation ended at a "
            "saddle point of the model, not a minimum (a symmetric start keeps its symmetry). Displace the "
            "structure along the mode (its displacements are in harmonic.json) and run again"
        )
    disp = modes * inv_sqrt_m[:, None]  # Cartesian displacement per unit normal coordinate
    reduced_mass = 1.0 / (disp**2).sum(axis=0)
    n_modes = modes.shape[1]

    ir, d_mu, raman, rho, d_alpha = _intensities(props, disp)

    return HarmonicResult(
        wavenumber_cm1=wavenumber,
        ir_intensity_km_per_mol=ir,
        raman_activity_A4_per_amu=raman,
        depolarization_ratio=rho,
        reduced_mass_amu=reduced_mass,
        modes_mass_weighted=modes.T.reshape(n_modes, n_atoms, 3),
        displacements_nm=disp.T.reshape(n_modes, n_atoms, 3),
        dipole_derivatives_e_per_sqrt_amu=d_mu,
        polarizability_derivatives_A2_per_sqrt_amu=d_alpha,
        positions_nm=pos,
        masses_amu=masses,
        atomic_numbers=None if atomic_numbers is None else np.asarray(atomic_numbers, dtype=np.int64),
        energy_kj_mol=energy,
        max_force_kj_mol_nm=max_force,
        linear=is_linear,
        external_wavenumber_cm1=external,
        dtype=str(dtype).replace("torch.", ""),
        minimization=minimization,
        derivative_methods=props["methods"],
    )
