"""Tests of painn_deploy.spectra (correlation, quantum corrections, IR/Raman line shapes, I/O, CLI)."""

import csv
import json
import math
import re
import warnings

import h5py
import numpy as np
import pytest

from painn_deploy import units
from painn_deploy.errors import InputError
from painn_deploy.spectra import (
    absorption_factor,
    autocorrelation,
    average_spectra,
    correction_factor,
    ir_spectrum,
    lag_window,
    raman_spectra,
    read_properties,
    reduced_frequency,
)
from painn_deploy.spectra.vibrational import SpectrumWarning, nyquist_cm1
from painn_deploy.units import IR_KM_PER_MOL_PER_E2_PER_AMU, RAD_PER_PS_PER_CM1

DT = 0.001  # ps
RNG_SEED = 20240611


def _bin(spectrum) -> float:
    return float(np.diff(spectrum.wavenumber_cm1).mean())


def _cos(nu_cm1, t, phase=0.0):
    return np.cos(nu_cm1 * RAD_PER_PS_PER_CM1 * t + phase)


def _random_rotation(rng) -> np.ndarray:
    from painn_deploy.structures import random_rotation

    return random_rotation(rng)


def _rotating_diatomic(n_frames=16000, k=1.6e5, m1=12.0, m2=16.0, q=0.25, rot_cm1=2.0, temperature=300.0, seed=0):
    """Analytic trajectory of a harmonic diatomic: random-phase vibration x(t) of the bond at
    omega0 = sqrt(k/mu) with thermal mean square amplitude kT/(mu omega0^2), bond direction u(t)
    rotating freely in a random plane; dipole q (r0 + x) u, polarizability
    (a0 + a1 x) 1 + (b0 + b1 x)(u u^T - 1/3)."""
    rng = np.random.default_rng(seed)
    mu = m1 * m2 / (m1 + m2)
    omega0 = math.sqrt(k / mu)  # rad/ps
    nu0 = omega0 * units.WAVENUMBER_PER_RAD_PER_PS
    kt = units.BOLTZMANN_KJ_PER_MOL_K * temperature
    amp = math.sqrt(2.0 * kt / (mu * omega0**2))  # <x^2> = amp^2/2 = kT/(mu omega0^2)
    t = np.arange(n_frames) * DT
    x = amp * np.cos(omega0 * t + rng.uniform(0, 2 * np.pi))
    e1, e2, _ = _random_rotation(rng).T
    phi = rot_cm1 * RAD_PER_PS_PER_CM1 * t + rng.uniform(0, 2 * np.pi)
    u = np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2
    r0 = 0.113
    dipole = q * (r0 + x)[:, None] * u
    a0, a1, b0, b1 = 2e-3, 4e-3, 3e-4, 3e-3  # nm^3, nm^2
    uu = u[:, :, None] * u[:, None, :] - np.eye(3) / 3.0
    pol = (a0 + a1 * x)[:, None, None] * np.eye(3) + (b0 + b1 * x)[:, None, None] * uu
    return dict(t=t, dipole=dipole, pol=pol, nu0=nu0, mu=mu, q=q, a1=a1, b1=b1)


def _triatomic_trajectory(n_frames=6000, seed=1):
    """Three point charges vibrating about a bent geometry (several incommensurate frequencies)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) * DT
    eq = np.array([[0.0, 0.0, 0.0], [0.0957, 0.0, 0.0], [-0.024, 0.0927, 0.0]])
    pos = np.repeat(eq[None], n_frames, axis=0)
    for nu in (1600.0, 3650.0, 3750.0, 900.0):
        pos = pos + 0.002 * rng.normal(size=(1, 3, 3)) * _cos(nu, t, rng.uniform(0, 6.3))[:, None, None]
    return t, pos


def _triatomic_properties(pos):
    charges = np.array([-0.8, 0.4, 0.4])
    dipole = (charges[None, :, None] * pos).sum(axis=1)
    pol = np.zeros((pos.shape[0], 3, 3))
    for i, j in ((0, 1), (0, 2)):
        v = pos[:, j] - pos[:, i]
        d = np.linalg.norm(v, axis=1)
        u = v / d[:, None]
        a = 1e-3 + 5e-3 * (d - 0.0957)
        b = 5e-4 + 8e-3 * (d - 0.0957)
        pol += a[:, None, None] * np.eye(3) + b[:, None, None] * (u[:, :, None] * u[:, None, :] - np.eye(3) / 3)
    return dipole, pol


# --- correlation -----------------------------------------------------------------------------


def test_autocorrelation_matches_direct_sum():
    rng = np.random.default_rng(RNG_SEED)
    x = rng.normal(size=(257, 3)) + 0.5
    c = autocorrelation(x, 40)
    d = x - x.mean(axis=0)
    direct = np.array([(d[: 257 - k] * d[k:]).sum() / (257 - k) for k in range(41)])
    np.testing.assert_allclose(c, direct, rtol=1e-10, atol=1e-12)


def test_lag_windows():
    h, c2, none = lag_window(101, "hann"), lag_window(101, "cos2"), lag_window(101, "none")
    assert h[0] == 1.0 and abs(h[-1]) < 1e-15 and abs(h[50] - 0.5) < 1e-12
    np.testing.assert_allclose(h, c2, atol=1e-14)  # cos^2(x/2) = (1 + cos x)/2
    assert np.all(none == 1.0)
    with pytest.raises(InputError, match="unknown window"):
        lag_window(10, "blackman")


# --- quantum corrections ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["harmonic", "schofield", "standard", "none"])
def test_quantum_factors_classical_limit(kind):
    x = np.array([1e-9, 1e-6, 1e-4])
    np.testing.assert_allclose(correction_factor(x, kind), 1.0, atol=2e-4)
    np.testing.assert_allclose(absorption_factor(x, kind), 1.0, atol=2e-4)
    assert correction_factor(0.0, kind) == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["harmonic", "schofield", "standard"])
def test_quantum_factors_detailed_balance(kind):
    x = np.linspace(0.05, 15.0, 50)
    np.testing.assert_allclose(correction_factor(-x, kind), np.exp(-x) * correction_factor(x, kind), rtol=1e-12)
    # absorption factor F(x) = (1 - e^-x) Q(x) / x
    np.testing.assert_allclose(absorption_factor(x, kind), -np.expm1(-x) * correction_factor(x, kind) / x, rtol=1e-12)


def test_quantum_factor_values_and_ordering():
    x = np.linspace(0.1, 10, 30)
    # "none" violates detailed balance
    assert not np.allclose(correction_factor(-x, "none"), np.exp(-x) * correction_factor(x, "none"))
    std, harm, scho = (correction_factor(x, k) for k in ("standard", "harmonic", "schofield"))
    assert np.all(std < harm) and np.all(harm < scho)  # Ramirez et al. 2004, fig. 1
    np.testing.assert_allclose(absorption_factor(x, "harmonic"), 1.0)
    # x = h c nu / kT: 1000 cm^-1 at 300 K is 4.796 (c2 = 1.438777 cm K)
    assert reduced_frequency(1000.0, 300.0) == pytest.approx(1.438777 * 1000 / 300, rel=1e-6)
    with pytest.raises(InputError, match="unknown quantum correction"):
        correction_factor(x, "egelstaff")


def test_quantum_correction_changes_ir_as_documented():
    t = np.arange(8000) * DT
    dip = np.zeros((8000, 3))
    dip[:, 0] = 0.01 * _cos(2000.0, t) + 0.01 * _cos(500.0, t)
    classical = ir_spectrum(t, dip, 300.0, quantum_correction="harmonic")
    scho = ir_spectrum(t, dip, 300.0, quantum_correction="schofield")
    x = reduced_frequency(classical.wavenumber_cm1, 300.0)
    expected = classical.intensity * np.where(x > 0, 2 * np.sinh(x / 2) / np.where(x > 0, x, 1.0), 1.0)
    np.testing.assert_allclose(scho.intensity, expected, rtol=1e-9, atol=1e-12 * classical.intensity.max())
    # Schofield raises the high-frequency band relative to the classical (harmonic) result
    i2000 = np.argmin(abs(x - reduced_frequency(2000.0, 300.0)))
    assert scho.intensity[i2000] > 2 * classical.intensity[i2000]


# --- line shapes ------------------------------------------------------------------------------


def test_ir_peaks_at_known_wavenumbers():
    t = np.arange(20000) * DT
    dip = np.zeros((t.size, 3))
    dip[:, 0] = 0.02 * _cos(1234.0, t, 0.3)
    dip[:, 1] = 0.01 * _cos(2950.0, t, 1.1)
    s = ir_spectrum(t, dip, 300.0, resolution_cm1=8.0)
    assert s.units == "km mol^-1 (cm^-1)^-1"
    assert abs(s.peak_wavenumber_cm1(1000, 1500) - 1234.0) <= _bin(s)
    assert abs(s.peak_wavenumber_cm1(2500, 3500) - 2950.0) <= _bin(s)
    assert abs(s.peak_wavenumber_cm1() - 2950.0) <= _bin(s)  # omega^2 prefactor: the 2950 band is strongest


def test_raman_peaks_at_known_wavenumbers():
    t = np.arange(20000) * DT
    isotropic = (1e-3 * _cos(1100.0, t, 0.2))[:, None, None] * np.eye(3)
    aniso = np.array([[1.0, 0.3, 0.0], [0.3, -0.5, 0.0], [0.0, 0.0, -0.5]]) * 1e-3
    anisotropic = _cos(700.0, t, 2.0)[:, None, None] * aniso
    r = raman_spectra(t, isotropic + anisotropic, 300.0)
    assert abs(r.isotropic.peak_wavenumber_cm1() - 1100.0) <= _bin(r.isotropic)
    assert abs(r.anisotropic.peak_wavenumber_cm1() - 700.0) <= _bin(r.anisotropic)
    assert abs(r.perpendicular.peak_wavenumber_cm1() - 700.0) <= _bin(r.perpendicular)
    # each component sees only its own part of the polarizability
    alone = raman_spectra(t, isotropic, 300.0), raman_spectra(t, anisotropic, 300.0)
    for name, only in (("isotropic", alone[0]), ("anisotropic", alone[1])):
        got, expected = getattr(r, name).intensity, getattr(only, name).intensity
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * expected.max())  # FFT rounding
    assert r.anisotropic.integrate(1000, 1200) < 1e-4 * r.anisotropic.integrate(600, 800)
    assert abs(r.isotropic.integrate(600, 800)) < 1e-4 * r.isotropic.integrate(1000, 1200)


def test_resolution_matches_window_kernel():
    t = np.arange(30000) * DT
    dip = np.zeros((t.size, 3))
    dip[:, 2] = _cos(1500.0, t)
    for window in ("hann", "none"):
        s = ir_spectrum(t, dip, 300.0, resolution_cm1=12.0, window=window, zero_pad=16, wmin_cm1=1400, wmax_cm1=1600)
        y = s.intensity
        above = s.wavenumber_cm1[y >= 0.5 * y.max()]
        assert above.max() - above.min() == pytest.approx(12.0, abs=2 * _bin(s))
        assert s.metadata["resolution_fwhm_cm1"] == pytest.approx(12.0, rel=1e-2)


def test_harmonic_diatomic_peaks_and_integrated_intensity():
    d = _rotating_diatomic()
    nu0 = d["nu0"]
    ir = ir_spectrum(d["t"], d["dipole"], 300.0)
    r = raman_spectra(d["t"], d["pol"], 300.0)
    band = (nu0 - 60, nu0 + 60)
    assert abs(ir.peak_wavenumber_cm1(*band) - nu0) <= _bin(ir)
    assert abs(ir.peak_wavenumber_cm1(500, 4000) - nu0) <= _bin(ir)
    assert abs(r.isotropic.peak_wavenumber_cm1() - nu0) <= _bin(r.isotropic)
    assert abs(r.anisotropic.peak_wavenumber_cm1(500, 4000) - nu0) <= _bin(r.anisotropic)
    assert abs(r.activity.peak_wavenumber_cm1(500, 4000) - nu0) <= _bin(r.activity)
    # band integrals equal the double-harmonic intensities: IR N_A/(12 eps0 c^2) q^2/mu (km/mol),
    # Raman a'^2 = a1^2/mu and gamma'^2 = b1^2/mu (Angstrom^4/amu)
    assert ir.integrate(*band) == pytest.approx(IR_KM_PER_MOL_PER_E2_PER_AMU * d["q"] ** 2 / d["mu"], rel=0.01)
    assert r.isotropic.integrate(*band) == pytest.approx(1e4 * d["a1"] ** 2 / d["mu"], rel=0.01)
    assert r.anisotropic.integrate(*band) == pytest.approx(1e4 * d["b1"] ** 2 / d["mu"], rel=0.01)
    activity = 1e4 * (45 * d["a1"] ** 2 + 7 * d["b1"] ** 2) / d["mu"]
    assert r.activity.integrate(*band) == pytest.approx(activity, rel=0.01)


def test_harmonic_line_shape_is_the_md_band_of_a_harmonic_mode():
    """Harmonic intensities broadened by the MD spectrum's own kernel (the --sticks overlay): the band integral is
    the intensity, and the MD band of a harmonic diatomic (not turning, so no rotational structure) lies on it."""
    from painn_deploy.spectra.vibrational import harmonic_line_shape

    d = _rotating_diatomic(rot_cm1=0.0)
    ir = ir_spectrum(d["t"], d["dipole"], 300.0, resolution_cm1=10.0)
    intensity = IR_KM_PER_MOL_PER_E2_PER_AMU * d["q"] ** 2 / d["mu"]
    harmonic = harmonic_line_shape([d["nu0"], np.nan], [intensity, 5.0], ir)
    band = (d["nu0"] - 60, d["nu0"] + 60)
    assert harmonic.integrate(*band) == pytest.approx(intensity, rel=0.01)
    assert harmonic.units == ir.units and np.array_equal(harmonic.wavenumber_cm1, ir.wavenumber_cm1)
    inside = (ir.wavenumber_cm1 > band[0]) & (ir.wavenumber_cm1 < band[1])
    peak = harmonic.intensity.max()
    assert np.abs(ir.intensity[inside] - harmonic.intensity[inside]).max() < 1e-3 * peak  # (measured: 3e-5)
    assert np.abs(harmonic.intensity[~inside]).max() < 0.03 * peak  # (the Hann kernel's side lobes)
    # made as the MD spectrum was, with a quantum factor F(x) other than 1 (the same intensity) ...
    md = ir_spectrum(d["t"], d["dipole"], 300.0, resolution_cm1=10.0, quantum_correction="standard")
    same = harmonic_line_shape([d["nu0"]], [intensity], md)
    assert np.abs(md.intensity - same.intensity).max() < 1e-3 * md.intensity.max()
    # ... and for a Verlet run's line (at omega' = 2/dt asin(omega dt/2)) with that shift corrected (the shape)
    from painn_deploy.spectra import integrator

    shown = float(integrator.observed_wavenumber(d["nu0"], 1.0))
    verlet = np.cos(shown * RAD_PER_PS_PER_CM1 * d["t"])[:, None] * np.array([0.01, 0.0, 0.0])
    md = ir_spectrum(
        d["t"], verlet, 300.0, resolution_cm1=10.0, correct_integrator_shift=True, integrator_timestep_fs=1.0
    )
    same = harmonic_line_shape([d["nu0"]], [1.0], md)
    same_scaled = same.intensity * md.intensity.max() / same.intensity.max()
    assert abs(md.peak_wavenumber_cm1() - d["nu0"]) <= _bin(md)
    assert np.abs(md.intensity - same_scaled).max() < 2e-3 * md.intensity.max()


def test_slowly_turning_polar_molecule_leaves_no_floor_under_the_bands():
    """A cold diatomic that turns by only a fraction of a revolution in the run: its large dipole and
    anisotropic polarizability change slowly.  The line shapes must still be zero away from the vibration, and
    the band integrals the double-harmonic ones (correlating the signal itself, not its rate of change, put a
    flat floor under omega^2 I(omega) larger than the band)."""
    d = _rotating_diatomic(rot_cm1=0.5, temperature=30.0)
    band = (d["nu0"] - 60, d["nu0"] + 60)
    ir = ir_spectrum(d["t"], d["dipole"], 30.0)
    aniso = raman_spectra(d["t"], d["pol"], 30.0).anisotropic
    assert ir.integrate(*band) == pytest.approx(IR_KM_PER_MOL_PER_E2_PER_AMU * d["q"] ** 2 / d["mu"], rel=0.01)
    assert aniso.integrate(*band) == pytest.approx(1e4 * d["b1"] ** 2 / d["mu"], rel=0.01)
    for spectrum in (ir, aniso):
        assert abs(spectrum.integrate(1500, 4000)) < 1e-3 * spectrum.integrate(*band)


def test_rigid_rotation_and_translation_invariance():
    t, pos = _triatomic_trajectory()
    rng = np.random.default_rng(7)
    rot = _random_rotation(rng)
    moved = pos @ rot.T + np.array([1.3, -0.7, 2.1])
    d1, p1 = _triatomic_properties(pos)
    d2, p2 = _triatomic_properties(moved)
    # the test has teeth: Cartesian components do change
    assert not np.allclose(autocorrelation(d1[:, 2], 50), autocorrelation(d2[:, 2], 50), rtol=1e-3)
    ir1, ir2 = ir_spectrum(t, d1, 300.0), ir_spectrum(t, d2, 300.0)
    np.testing.assert_allclose(ir2.intensity, ir1.intensity, rtol=1e-8, atol=1e-9 * ir1.intensity.max())
    r1, r2 = raman_spectra(t, p1, 300.0), raman_spectra(t, p2, 300.0)
    for name in ("isotropic", "anisotropic", "parallel", "perpendicular", "activity"):
        a, b = getattr(r1, name).intensity, getattr(r2, name).intensity
        np.testing.assert_allclose(b, a, rtol=1e-8, atol=1e-9 * a.max(), err_msg=name)


def test_relative_weights_of_raman_components():
    t, pos = _triatomic_trajectory(4000)
    _, pol = _triatomic_properties(pos)
    a = np.trace(pol, axis1=1, axis2=2) / 3
    iso_part = a[:, None, None] * np.eye(3)
    scaled = iso_part + 2.0 * (pol - iso_part)
    r1, r2 = raman_spectra(t, pol, 300.0), raman_spectra(t, scaled, 300.0)
    tol = 1e-9 * r1.anisotropic.intensity.max()
    np.testing.assert_allclose(r2.anisotropic.intensity, 4 * r1.anisotropic.intensity, rtol=1e-9, atol=tol)
    np.testing.assert_allclose(r2.isotropic.intensity, r1.isotropic.intensity, rtol=1e-9, atol=tol)
    # documented combinations
    np.testing.assert_allclose(r1.parallel.intensity, r1.isotropic.intensity + 4 / 45 * r1.anisotropic.intensity)
    np.testing.assert_allclose(r1.perpendicular.intensity, r1.anisotropic.intensity / 15)
    np.testing.assert_allclose(r1.activity.intensity, 45 * r1.isotropic.intensity + 7 * r1.anisotropic.intensity)
    # depolarisation ratio: 3/4 for a purely anisotropic, 0 for a purely isotropic signal
    pure_aniso = raman_spectra(t, pol - iso_part, 300.0).depolarization_ratio.intensity
    assert np.nanmax(np.abs(pure_aniso - 0.75)) < 1e-9
    pure_iso = raman_spectra(t, iso_part, 300.0).depolarization_ratio.intensity
    assert np.nanmax(np.abs(pure_iso)) < 1e-9


def test_averaging_two_runs_gives_mean_and_standard_error():
    t = np.arange(6000) * DT
    rng = np.random.default_rng(3)
    runs = []
    for amp in (0.01, 0.02):
        dip = np.zeros((t.size, 3))
        dip[:, 0] = amp * _cos(1700.0, t, rng.uniform(0, 6)) + 1e-3 * rng.normal(size=t.size)
        runs.append(dip)
    a, b = (ir_spectrum(t, d, 300.0) for d in runs)
    both = ir_spectrum([t, t], runs, 300.0)
    assert both.n_runs == 2
    np.testing.assert_allclose(both.intensity, 0.5 * (a.intensity + b.intensity), rtol=1e-12)
    np.testing.assert_allclose(both.stderr, 0.5 * np.abs(a.intensity - b.intensity), rtol=1e-9, atol=1e-15)
    pooled = average_spectra([a, b])
    np.testing.assert_allclose(pooled.intensity, both.intensity)
    np.testing.assert_allclose(pooled.stderr, both.stderr)
    assert np.all(np.isnan(a.stderr))  # one run: no spread
    # Raman with runs of different lengths
    pol = [np.eye(3)[None] * (1e-3 * _cos(900.0, t[:n]))[:, None, None] for n in (6000, 5000)]
    r = raman_spectra([t, t[:5000]], pol, 300.0)
    assert r.isotropic.n_runs == 2 and np.isfinite(r.isotropic.stderr).all()
    assert np.isfinite(r.depolarization_ratio.stderr[np.isfinite(r.depolarization_ratio.intensity)]).all()


# --- checks, warnings and errors ------------------------------------------------------------------


def test_coarse_sampling_warns_or_refuses():
    dt = 0.005  # 5 fs: Nyquist 3336 cm^-1
    t = np.arange(4000) * dt
    dip = np.zeros((t.size, 3))
    dip[:, 0] = _cos(1000.0, t)
    nyq = nyquist_cm1(dt)
    assert nyq == pytest.approx(1 / (2 * dt * units.SPEED_OF_LIGHT_CM_PER_PS))
    with pytest.warns(SpectrumWarning, match="Nyquist"):
        s = ir_spectrum(t, dip, 300.0)
    assert s.wavenumber_cm1.max() <= nyq + 1e-9
    with pytest.raises(InputError, match="beyond the Nyquist"):
        ir_spectrum(t, dip, 300.0, wmax_cm1=4000.0)
    with pytest.raises(InputError, match="below the Nyquist"):
        ir_spectrum(t, dip, 300.0, wmin_cm1=3500.0, wmax_cm1=3300.0)


def test_signal_near_nyquist_warns_about_aliasing():
    t = np.arange(4000) * DT
    dip = np.zeros((t.size, 3))
    dip[:, 0] = _cos(16000.0, t) + _cos(2000.0, t)
    with pytest.warns(SpectrumWarning, match="aliased"):
        ir_spectrum(t, dip, 300.0, wmax_cm1=3000)


def test_short_trajectory_warnings():
    t = np.arange(1000) * DT  # ~1 ps
    dip = np.zeros((t.size, 3))
    dip[:, 0] = _cos(1500.0, t)
    with pytest.warns(SpectrumWarning, match="too short for the requested resolution.*cut to half the run"):
        s = ir_spectrum(t, dip, 300.0, resolution_cm1=2.0)
    assert s.metadata["max_corr_time_ps"] == pytest.approx(0.999 / 2, abs=DT)
    with pytest.warns(SpectrumWarning, match="too short for the maximum correlation time 0.7 ps.*Run at least 1.4 ps"):
        s = ir_spectrum(t, dip, 300.0, max_corr_time_ps=0.7)
    assert s.metadata["max_corr_time_ps"] == pytest.approx(0.999 / 2, abs=DT)
    with pytest.raises(InputError, match="not both"):
        ir_spectrum(t, dip, 300.0, max_corr_time_ps=0.2, resolution_cm1=20.0)
    with pytest.raises(InputError, match="at least"):
        ir_spectrum(t[:5], dip[:5], 300.0)


def test_runs_too_short_for_a_useful_resolution_warn_and_far_too_short_ones_are_refused(tmp_path):
    def dipole(n):
        t = np.arange(n) * DT
        dip = np.zeros((n, 3))
        dip[:, 0] = _cos(1500.0, t)
        return t, dip

    # the default analysis correlates a quarter of the run: 1 ps resolves only ~130 cm^-1
    with pytest.warns(SpectrumWarning, match="resolves only .* Run at least 2.67 ps"):
        ir_spectrum(*dipole(1000), 300.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpectrumWarning)
        s = ir_spectrum(*dipole(3000), 300.0)  # 3 ps: finer than the 50 cm^-1 that merges bands
    assert s.metadata["resolution_fwhm_cm1"] < 50.0
    # 20 fs: the line shape is wider than the whole range
    with pytest.raises(InputError, match="far too short for a spectrum.*wider than the range 0-4000"):
        ir_spectrum(*dipole(20), 300.0)
    with pytest.warns(SpectrumWarning, match="too short for the requested resolution"):
        with pytest.raises(InputError, match="far too short"):  # correlated over the whole run, still too wide
            ir_spectrum(*dipole(8), 300.0, resolution_cm1=10.0)
    # a long run with a correlation time too short for any resolution: the setting is named, not the run
    with pytest.raises(InputError, match="--max-corr-time-ps gives a resolution of only .* ask for a finer one"):
        ir_spectrum(*dipole(3000), 300.0, max_corr_time_ps=0.004)
    with pytest.raises(InputError, match="--resolution-cm1 gives a resolution of only .* ask for a finer one"):
        ir_spectrum(*dipole(3000), 300.0, resolution_cm1=5000.0)
    # a file with too few frames is named, with the run length that helps, whatever its count
    for n in (0, 3):
        path = _write_h5(tmp_path / f"frames{n}.h5", *dipole(n))
        with pytest.raises(InputError, match=f"frames{n}.h5 has {n} frames; a spectrum needs at least 8. Run at least"):
            read_properties(path)
    t, dip = dipole(3000)
    t[1500:] += 0.01  # a restart appended to the file
    with pytest.raises(InputError, match="gap.h5: frames are not equally spaced"):
        read_properties(_write_h5(tmp_path / "gap.h5", t, dip))


def test_bad_time_series_are_refused():
    t = np.arange(1000) * DT
    dip = np.zeros((t.size, 3))
    dip[:, 0] = _cos(1500.0, t)
    t_gap = t.copy()
    t_gap[500:] += 0.01
    with pytest.raises(InputError, match="not equally spaced"):
        ir_spectrum(t_gap, dip, 300.0)
    bad = dip.copy()
    bad[10, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        ir_spectrum(t, bad, 300.0)
    with pytest.raises(InputError, match="shape"):
        ir_spectrum(t, dip[:, :2], 300.0)
    with pytest.raises(InputError, match="sampling interval"):
        ir_spectrum([t, 2 * t], [dip, dip], 300.0)
    with pytest.raises(InputError, match="temperature"):
        ir_spectrum(t, dip, -5.0)


def _write_h5(path, t, dipole=None, pol=None, *, time_units="ps", dip_units="e*nm", pol_units="nm^3", **attrs):
    with h5py.File(path, "w") as f:
        f.create_dataset("time", data=t).attrs["units"] = time_units
        if dipole is not None:
            ds = f.create_dataset("dipole", data=dipole)
            if dip_units is not None:
                ds.attrs["units"] = dip_units
        if pol is not None:
            f.create_dataset("polarizability", data=pol).attrs["units"] = pol_units
        for k, v in attrs.items():
            f.attrs[k] = v
    return path


def test_a_time_step_attribute_that_is_not_one_is_refused(tmp_path):
    d = _rotating_diatomic(400)
    path = _write_h5(tmp_path / "bad.h5", d["t"], d["dipole"], temperature_K=300.0, timestep_fs=-1.0)
    with pytest.raises(InputError, match=r"the 'timestep_fs' attribute must be the MD time step in fs \(positive\), "
                       r"got -1\.0"):  # fmt: skip
        read_properties(path)


def test_unit_attributes(tmp_path):
    d = _rotating_diatomic(4000)
    a = read_properties(_write_h5(tmp_path / "nm.h5", d["t"], d["dipole"], d["pol"], temperature_K=250.0))
    b = read_properties(
        _write_h5(
            tmp_path / "ang.h5",
            d["t"] * 1e3,
            d["dipole"] * 10,
            d["pol"] * 1e3,
            time_units="fs",
            dip_units="e*Angstrom",
            pol_units="Angstrom^3",
        )
    )
    assert a.temperature_K == 250.0 and b.temperature_K is None
    np.testing.assert_allclose(b.time_ps, a.time_ps, rtol=1e-12)
    np.testing.assert_allclose(b.dipole_e_nm, a.dipole_e_nm, rtol=1e-12)
    np.testing.assert_allclose(b.polarizability_nm3, a.polarizability_nm3, rtol=1e-12)
    sa = ir_spectrum(a.time_ps, a.dipole_e_nm, 300.0)
    sb = ir_spectrum(b.time_ps, b.dipole_e_nm, 300.0)
    np.testing.assert_allclose(sb.intensity, sa.intensity, rtol=1e-8, atol=1e-10 * sa.intensity.max())
    with pytest.raises(InputError, match="does not know"):
        read_properties(_write_h5(tmp_path / "bad.h5", d["t"], d["dipole"], dip_units="C*m"))
    for name, value, what in (
        ("temperature_K", "300 K", "a temperature in kelvin"),
        ("beads", 2.5, "a whole number"),
        ("replicas", "many", "a whole number"),
        ("timestep_fs", "0.5fs", "a time step in fs"),
        ("temperature_K", -300.0, "a positive temperature in kelvin"),
        ("temperature_K", float("nan"), "a positive temperature in kelvin"),
    ):
        path = _write_h5(tmp_path / f"{name}.h5", d["t"], d["dipole"], **{name: value})
        with pytest.raises(InputError, match=f"{name}.h5: the '{name}' attribute must be {what}, got"):
            read_properties(path)
    with pytest.raises(InputError, match="no 'units' attribute"):
        read_properties(_write_h5(tmp_path / "none.h5", d["t"], d["dipole"], dip_units=None))
    with pytest.raises(InputError, match="neither"):
        read_properties(_write_h5(tmp_path / "empty.h5", d["t"]))
    with pytest.raises(InputError, match="property file .*missing.h5 does not exist; give the properties.h5"):
        read_properties(tmp_path / "missing.h5")


# --- command line -------------------------------------------------------------------------------


def _read_csv(path):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["wavenumber_cm-1", "intensity", "stderr"]
    return np.array(rows[1:], dtype=float)


def test_cli_end_to_end(tmp_path, capsys):
    from painn_deploy.cli.spectrum import build_parser, main

    help_text = build_parser().format_help()
    for unit in ("ps", "cm^-1", "kelvin", "km/mol", "Angstrom^4/amu", "dimensionless"):
        assert unit in help_text
    files = []
    for seed in (0, 1):
        d = _rotating_diatomic(8000, seed=seed)
        files.append(str(_write_h5(tmp_path / f"run{seed}.h5", d["t"], d["dipole"], d["pol"], temperature_K=300.0)))
    sticks = tmp_path / "modes.csv"
    sticks.write_text(
        "mode,wavenumber_cm-1,ir_intensity_km_per_mol,raman_activity_A4_per_amu\n"
        f"1,{d['nu0']:.4f},{IR_KM_PER_MOL_PER_E2_PER_AMU * d['q'] ** 2 / d['mu']:.6f},1.0\n"
        "2,-150.0,5.0,1.0\n"  # an imaginary mode: left out of the line shape, with a warning
    )
    out = tmp_path / "spectra"
    rc = main([*files, "--ir", "--raman", "-o", str(out), "--sticks", str(sticks), "--wmax", "3000"])
    assert rc == 0
    for name in (
        "ir",
        "raman_isotropic",
        "raman_anisotropic",
        "raman_parallel",
        "raman_perpendicular",
        "raman_activity",
        "raman_depolarization_ratio",
    ):
        assert (out / f"{name}.csv").stat().st_size > 0
    for name in ("ir", "raman_activity", "raman_iso_aniso", "raman_polarized", "raman_depolarization_ratio"):
        assert (out / f"{name}.png").stat().st_size > 1000
    data = _read_csv(out / "ir.csv")
    nu, y, se = data.T
    grid = np.diff(nu).mean()
    sel = nu > 500
    assert abs(nu[sel][np.argmax(y[sel])] - d["nu0"]) <= grid
    assert np.isfinite(se).all() and (se >= 0).all()
    iso = _read_csv(out / "raman_isotropic.csv")
    assert abs(iso[np.argmax(iso[:, 1]), 0] - d["nu0"]) <= grid
    assert (out / "metadata.json").is_file()
    recorded = json.loads((out / "metadata.json").read_text())["warnings"]
    assert any(re.match(r"1 imaginary mode\(s\) of .*modes.csv \(down to 150\.0i cm\^-1\) are left out", w)
               for w in recorded)  # fmt: skip
    printed = capsys.readouterr().out
    assert "2 run(s)" in printed and "IR peaks" in printed

    # an impossible range is refused with a message, not a traceback (exit status 2: bad input)
    rc = main([files[0], "--ir", "-o", str(tmp_path / "x"), "--wmax", "20000"])
    assert rc == 2
    assert "Nyquist" in capsys.readouterr().err


def test_line_shapes_are_per_molecule_of_the_files(tmp_path):
    """painn-simulate writes the number of molecules it recorded (a liquid's box: all of them); the line shapes
    are per molecule of that number unless --molecules says otherwise, and files that disagree are refused."""
    from painn_deploy.spectra import SpectrumConfig, compute_spectra

    d = _rotating_diatomic(4000)
    one = _write_h5(tmp_path / "one.h5", d["t"], d["dipole"], temperature_K=300.0)
    box = _write_h5(tmp_path / "box.h5", d["t"], d["dipole"], temperature_K=300.0, molecules=4)
    ir = {}
    for name, path, given in (("one", one, None), ("box", box, None), ("given", box, 2)):
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            result = compute_spectra(SpectrumConfig(files=(str(path),), output=None, n_molecules=given))
        ir[name] = result.ir.intensity
        assert result.metadata["molecules"] == {"one": 1, "box": 4, "given": 2}[name]
        # --molecules against the files' own count: said (it divided every line shape silently)
        overridden = [
            str(w.message) for w in said if "differs from the molecules painn-simulate recorded" in str(w.message)
        ]
        assert len(overridden) == (name == "given")
    with pytest.raises(InputError, match=r"--molecules must be at least 1 \(the molecules recorded\), not 0"):
        compute_spectra(SpectrumConfig(files=(str(one),), output=None, n_molecules=0))
    np.testing.assert_allclose(ir["box"], ir["one"] / 4, rtol=1e-12)
    np.testing.assert_allclose(ir["given"], ir["one"] / 2, rtol=1e-12)
    with pytest.raises(InputError, match=r"different numbers of molecules .* Analyse each system's files "
                       r"separately$"):  # fmt: skip
        compute_spectra(SpectrumConfig(files=(str(one), str(box)), output=None))


def test_sticks_and_sizes_are_checked_before_anything_is_written(tmp_path, capsys):
    from painn_deploy.cli.spectrum import main

    d = _rotating_diatomic(4000)
    good = str(_write_h5(tmp_path / "good.h5", d["t"], d["dipole"], temperature_K=300.0))
    for sticks, message in ((tmp_path / "nope.csv", "does not exist"), (good, "is not a CSV text file")):
        assert main([good, "--ir", "--no-plots", "-o", str(tmp_path / "out"), "--sticks", str(sticks)]) == 2
        assert message in capsys.readouterr().err
    assert main([good, "--ir", "-o", str(tmp_path / "out"), "--zero-pad", "1e9"]) == 2
    assert "zero-padding factor must be between 1 and 64" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main([good, "--ir", "-o", str(tmp_path / "file" / "out")]) == 2
    assert "cannot write to" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_warns_on_coarse_sampling(tmp_path, capsys):
    from painn_deploy.cli.spectrum import main

    dt = 0.005  # Nyquist 3336 cm^-1 < default 4000 cm^-1
    t = np.arange(3000) * dt
    dip = np.zeros((t.size, 3))
    dip[:, 0] = 0.01 * _cos(1000.0, t)
    f = _write_h5(tmp_path / "coarse.h5", t, dip)
    assert main([str(f), "-o", str(tmp_path / "out"), "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "Nyquist" in err
    assert (tmp_path / "out" / "ir.csv").is_file() and not (tmp_path / "out" / "ir.png").exists()


def test_a_short_run_lists_no_peaks(tmp_path):
    """0.1 ps of dipoles: a spectrum at a resolution of about 1300 cm^-1, whose few maxima are not the bands, so the
    summary lists no peaks and says why (it listed "IR peaks: 1167, 3169")."""
    from painn_deploy.spectra import SpectrumConfig, compute_spectra

    t = np.arange(100) * 0.001
    dip = np.zeros((t.size, 3))
    dip[:, 0] = 0.01 * _cos(1000.0, t) + 0.01 * _cos(3000.0, t)
    path = _write_h5(tmp_path / "short.h5", t, dip)
    with pytest.warns(SpectrumWarning):
        result = compute_spectra(SpectrumConfig(files=(str(path),), output=None))
    assert result.metadata["settings"]["resolution_fwhm_cm1"] > 1000
    assert "IR peaks (cm^-1): not listed at a resolution coarser than 100 cm^-1 (run longer)" in result.summary()
