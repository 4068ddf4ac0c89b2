"""Ring-polymer MD with every bead in one model evaluation, and replica ensembles, inside OpenMM.

The System's particles are F = R x P frames of the molecule's N particles (R replicas of a ring
polymer of P beads; classical MD: P = 1), frame-major.  For P > 1 they are the ring polymer's
normal-mode coordinates, not its beads: in normal modes the free ring polymer is a set of
independent harmonic oscillators, so :func:`ring_polymer_integrator` (an ``openmm.CustomIntegrator``)
propagates every particle on its own, exactly, and the force
(:class:`~painn_deploy.deploy.ForcesOutput`) turns modes into beads, evaluates all F frames in one
batched call and turns the bead forces back into mode forces.

Ring-polymer Hamiltonian (Craig & Manolopoulos, J. Chem. Phys. 121, 3368 (2004)):
H_P = sum_k [p_k^2 / 2m + m omega_P^2 (q_k - q_{k+1})^2 / 2 + V(q_k)], sampled at T_P = P T, with
omega_P = P k_B T / hbar; normal mode k has frequency omega_k = 2 omega_P sin(k pi / P).  The
thermostat is PILE-L (Ceriotti, Parrinello, Markland & Manolopoulos, J. Chem. Phys. 133, 124104
(2010)): the centroid gets the user's friction, internal mode k the friction 2 omega_k, as OpenMM's
``RPMDIntegrator`` does.
"""

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import openmm
import torch

from .. import units
from ..errors import InputError


def normal_modes(n_beads: int) -> np.ndarray:
    """The orthogonal matrix T [P, P] of the ring polymer's real normal modes: modes = T @ beads.
    Row 0 is the centroid mode (every bead 1/sqrt(P)); rows k and P - k are the cosine and sine
    modes of frequency index k."""
    p = n_beads
    k = np.arange(p)
    t = np.zeros((p, p))
    t[0] = 1.0 / math.sqrt(p)
    for m in range(1, p):
        if 2 * m < p:
            t[m] = math.sqrt(2.0 / p) * np.cos(2.0 * math.pi * k * m / p)
        elif 2 * m == p:
            t[m] = (-1.0) ** k / math.sqrt(p)
        else:
            t[m] = math.sqrt(2.0 / p) * np.sin(2.0 * math.pi * k * m / p)
    return t


def mode_frequencies_per_ps(n_beads: int, temperature_K: float) -> np.ndarray:
    """omega_k = 2 omega_P sin(k pi / P) (rad/ps) of the modes of :func:`normal_modes`."""
    omega_p = n_beads * units.BOLTZMANN_KJ_PER_MOL_K * temperature_K / units.HBAR_KJ_PER_MOL_PS
    return 2.0 * omega_p * np.sin(np.arange(n_beads) * math.pi / n_beads)


@dataclass(frozen=True)
class Layout:
    """How a System's particles hold R replicas of a P-bead ring polymer of N atoms."""

    n_atoms: int
    replicas: int = 1
    beads: int = 1

    @property
    def n_frames(self) -> int:
        return self.replicas * self.beads

    def modes(self) -> Optional[torch.Tensor]:
        """[P, P] matrix of every replica's ring polymer, particles = M @ beads, or None when P = 1."""
        if self.beads == 1:
            return None
        return torch.from_numpy(normal_modes(self.beads))

    def beads_nm(self, particles_nm: np.ndarray) -> np.ndarray:
        """Bead positions (or velocities, forces) [R, P, N, 3] of the System's particles [F * N, 3]."""
        x = np.asarray(particles_nm).reshape(self.replicas, self.beads, self.n_atoms * 3)
        if self.beads > 1:
            x = np.einsum("lk,rla->rka", normal_modes(self.beads), x)
        return x.reshape(self.replicas, self.beads, self.n_atoms, 3)

    def particles_nm(self, beads_nm: np.ndarray) -> np.ndarray:
        """The System's particles [F * N, 3] of bead positions [R, P, N, 3]."""
        x = np.asarray(beads_nm).reshape(self.replicas, self.beads, self.n_atoms * 3)
        if self.beads > 1:
            x = np.einsum("lk,rka->rla", normal_modes(self.beads), x)
        return x.reshape(-1, 3)


def ring_polymer_integrator(
    layout: Layout, temperature_K: float, friction_per_ps: float, timestep_fs: float
) -> openmm.CustomIntegrator:
    """The RPMD step in normal modes in OBABO order, as OpenMM's ``RPMDIntegrator`` takes it: half a PILE-L
    thermostat step, a half kick, the exact free ring-polymer evolution over dt, the forces at the
    new positions, a half kick, half a thermostat step.  Every operation acts on one particle's own
    degrees of freedom (per-DOF constants ``cw``, ``sw``, ``wsw``, ``c1``, ``c2``), which is why it
    fits ``openmm.CustomIntegrator`` and runs on every platform.  Without the thermostat
    (:func:`ring_polymer_thermostat_off`) the ring-polymer Hamiltonian is conserved."""
    dt_ps = timestep_fs * 1e-3
    integrator = openmm.CustomIntegrator(dt_ps)
    kt = units.BOLTZMANN_KJ_PER_MOL_K * temperature_K * layout.beads
    integrator.addGlobalVariable("kT", kt)
    for name in ("cw", "sw", "wsw", "c1", "c2", "x0"):
        integrator.addPerDofVariable(name, 0.0)
    integrator.addUpdateContextState()
    integrator.addComputePerDof("v", "c1*v + c2*sqrt(kT/m)*gaussian")
    integrator.addComputePerDof("v", "v + 0.5*dt*f/m")
    integrator.addComputePerDof("x0", "x")
    integrator.addComputePerDof("x", "cw*x + sw*v")
    integrator.addComputePerDof("v", "wsw*x0 + cw*v")
    integrator.addComputePerDof("v", "v + 0.5*dt*f/m")
    integrator.addComputePerDof("v", "c1*v + c2*sqrt(kT/m)*gaussian")

    omega = mode_frequencies_per_ps(layout.beads, temperature_K)
    gamma = np.where(np.arange(layout.beads) == 0, friction_per_ps, 2.0 * omega)
    cw = np.cos(omega * dt_ps)
    sw = np.where(omega > 0, np.sin(omega * dt_ps) / np.where(omega > 0, omega, 1.0), dt_ps)
    wsw = -omega * np.sin(omega * dt_ps)
    c1 = np.exp(-0.5 * gamma * dt_ps)
    c2 = np.sqrt(1.0 - c1**2)
    per_frame = {"cw": cw, "sw": sw, "wsw": wsw, "c1": c1, "c2": c2}
    for name, values in per_frame.items():
        per_particle = np.repeat(np.tile(values, layout.replicas), layout.n_atoms)
        integrator.setPerDofVariableByName(name, [openmm.Vec3(v, v, v) for v in per_particle])
    return integrator


def is_ring_polymer_integrator(integrator) -> bool:
    """Whether ``integrator`` is a :func:`ring_polymer_integrator`."""
    if not isinstance(integrator, openmm.CustomIntegrator):
        return False
    names = {integrator.getPerDofVariableName(i) for i in range(integrator.getNumPerDofVariables())}
    return {"cw", "sw", "wsw", "c1", "c2"} <= names


def ring_polymer_thermostat_off(integrator: openmm.CustomIntegrator) -> openmm.CustomIntegrator:
    """No PILE thermostat from now on (c1 = 1, c2 = 0 for every mode); returns the integrator."""
    n = len(integrator.getPerDofVariableByName("c1"))
    integrator.setPerDofVariableByName("c1", [openmm.Vec3(1.0, 1.0, 1.0)] * n)
    integrator.setPerDofVariableByName("c2", [openmm.Vec3(0.0, 0.0, 0.0)] * n)
    return integrator


def centroid_virial_kinetic_energy(beads_nm: np.ndarray, bead_forces: np.ndarray, temperature_K: float) -> float:
    """Quantum kinetic energy (kJ/mol) by the centroid-virial estimator (Herman, Bruskin & Berne,
    J. Chem. Phys. 76, 5150 (1982)): 3N k_B T / 2 - (1 / 2P) sum_k (q_k - q_c) . F_k, averaged over the
    replicas of bead positions and forces [R, P, N, 3]."""
    q = np.asarray(beads_nm)
    deviation = q - q.mean(axis=1, keepdims=True)
    virial = np.einsum("rkna,rkna->r", deviation, np.asarray(bead_forces)) / (2.0 * q.shape[1])
    classical = 1.5 * q.shape[2] * units.BOLTZMANN_KJ_PER_MOL_K * temperature_K
    return float(np.mean(classical - virial))


def spring_energy(beads_nm: np.ndarray, masses_amu: np.ndarray, temperature_K: float) -> float:
    """The ring polymers' springs, sum_k m omega_P^2 (q_k - q_{k+1})^2 / 2 (kJ/mol), averaged over the replicas of
    bead positions [R, P, N, 3] (masses [N])."""
    q = np.asarray(beads_nm)
    omega_p = q.shape[1] * units.BOLTZMANN_KJ_PER_MOL_K * temperature_K / units.HBAR_KJ_PER_MOL_PS
    stretch = np.sum((q - np.roll(q, -1, axis=1)) ** 2, axis=(1, 3))  # [R, N]
    return float(np.mean(0.5 * omega_p**2 * stretch @ np.asarray(masses_amu)))


def check_memory(
    layout: Layout, n_model_atoms: int, n_features: int, n_blocks: int, dtype_bytes: int, device: str
) -> None:
    """Refuse a batch of an all-pairs model the device cannot hold, with the estimate: on GPUs all F frames of its
    ``n_model_atoms`` go through the network at once (on the CPU the dense path takes cache-sized chunks)."""
    if device != "cuda" or not torch.cuda.is_available():
        return
    pairs = layout.n_frames * n_model_atoms**2
    estimate = dtype_bytes * (
        pairs * 3 * n_features * (2 * n_blocks + 2) + layout.n_frames * n_model_atoms * n_features * 40
    )
    free, _ = torch.cuda.mem_get_info()
    if estimate > 0.8 * free:
        raise InputError(
            f"{layout.replicas} replica(s) x {layout.beads} bead(s) of {n_model_atoms} atoms need about "
            f"{estimate / 2**30:.1f} GiB on the GPU, which has {free / 2**30:.1f} GiB free; use fewer beads or replicas"
        )
