"""Frequency shift of Verlet-type integrators and its correction.

Velocity Verlet (and the leapfrog form of OpenMM's ``VerletIntegrator``, the BAOAB Langevin
splitting and Nose-Hoover chains built on velocity Verlet) integrate a harmonic oscillator of
angular frequency omega with time step dt into positions obeying

    x_{n+1} - 2 x_n + x_{n-1} = -(omega dt)^2 x_n,

whose solutions oscillate at the *observed* frequency

    omega' = (2/dt) arcsin(omega dt / 2) = omega (1 + (omega dt)^2 / 24 + ...)      (omega dt < 2)

(e.g. Leimkuhler & Matthews, "Molecular Dynamics", sec. 2.3; Allen & Tildesley, 2nd ed.,
sec. 3.2).  Lines of an MD spectrum are therefore blue-shifted, by about 0.5 % (19 cm^-1) for a
3700 cm^-1 O-H stretch at dt = 0.5 fs and 2.1 % (79 cm^-1) at 1 fs.  The inverse map is

    omega = (2/dt) sin(omega' dt / 2),      d omega / d omega' = cos(omega' dt / 2).

:func:`correct_density` moves a spectral density from the observed to the true frequencies,
conserving its integral over every band (it divides by the Jacobian d omega / d omega').  The
correction is exact for harmonic motion and leaves the band integral of the density (the mean
square fluctuation C(0) the run sampled) unchanged; it is applied before the omega^2 prefactor of
the line shape, which is then evaluated at the true frequency.
"""

import numpy as np

from .. import units
from ..errors import InputError


def _dt_ps(timestep_fs: float) -> float:
    if timestep_fs is None or not float(timestep_fs) > 0:
        raise InputError(f"the integrator time step must be a positive number of fs, got {timestep_fs}")
    return float(timestep_fs) * units.PS_PER_FS


def observed_omega(omega_rad_per_ps, timestep_fs: float) -> np.ndarray:
    """omega' = (2/dt) arcsin(omega dt/2) (rad/ps); NaN where omega dt >= 2 (Verlet is unstable)."""
    dt = _dt_ps(timestep_fs)
    s = 0.5 * np.asarray(omega_rad_per_ps, dtype=np.float64) * dt
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(s) < 1.0, 2.0 / dt * np.arcsin(np.clip(s, -1.0, 1.0)), np.nan)


def true_omega(omega_observed_rad_per_ps, timestep_fs: float) -> np.ndarray:
    """omega = (2/dt) sin(omega' dt/2) (rad/ps): the frequency a line observed at omega' belongs to."""
    dt = _dt_ps(timestep_fs)
    return 2.0 / dt * np.sin(0.5 * np.asarray(omega_observed_rad_per_ps, dtype=np.float64) * dt)


def observed_wavenumber(wavenumber_cm1, timestep_fs: float) -> np.ndarray:
    """Wavenumber (cm^-1) at which a Verlet run with this time step shows a harmonic line."""
    omega = np.asarray(wavenumber_cm1, dtype=np.float64) * units.RAD_PER_PS_PER_CM1
    return observed_omega(omega, timestep_fs) / units.RAD_PER_PS_PER_CM1


def true_wavenumber(observed_cm1, timestep_fs: float) -> np.ndarray:
    """Inverse of :func:`observed_wavenumber` (cm^-1)."""
    omega = np.asarray(observed_cm1, dtype=np.float64) * units.RAD_PER_PS_PER_CM1
    return true_omega(omega, timestep_fs) / units.RAD_PER_PS_PER_CM1


def shift_cm1(wavenumber_cm1, timestep_fs: float) -> np.ndarray:
    """Blue shift observed - true (cm^-1) of a harmonic line at ``wavenumber_cm1``."""
    nu = np.asarray(wavenumber_cm1, dtype=np.float64)
    return observed_wavenumber(nu, timestep_fs) - nu


def stability_limit_cm1(timestep_fs: float) -> float:
    """Wavenumber 2/(dt 2 pi c) (cm^-1) above which Verlet is unstable for harmonic motion."""
    return 2.0 / _dt_ps(timestep_fs) / units.RAD_PER_PS_PER_CM1


def correct_density(omega_rad_per_ps: np.ndarray, density: np.ndarray, timestep_fs: float) -> np.ndarray:
    """Spectral density on the same grid, moved from observed to true frequencies.

    ``density`` [..., M] is given on the equally spaced grid ``omega_rad_per_ps`` [M] of observed
    frequencies.  The result at a true frequency omega is I(omega') / cos(omega' dt/2) with
    omega' = :func:`observed_omega` (linear interpolation on the grid), so that int I d omega over
    any band is conserved.  Points whose omega' is undefined (omega dt >= 2) or beyond the grid
    are NaN.
    """
    omega = np.asarray(omega_rad_per_ps, dtype=np.float64)
    dens = np.asarray(density, dtype=np.float64)
    w_obs = observed_omega(omega, timestep_fs)
    valid = np.isfinite(w_obs) & (w_obs <= omega[-1])
    jac = np.cos(0.5 * np.where(valid, w_obs, 0.0) * _dt_ps(timestep_fs))  # d omega / d omega'
    flat = dens.reshape(-1, dens.shape[-1])
    out = np.full_like(flat, np.nan)
    for i, row in enumerate(flat):
        out[i, valid] = np.interp(w_obs[valid], omega, row) / jac[valid]
    return out.reshape(dens.shape)
