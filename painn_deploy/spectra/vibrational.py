"""IR and Raman line shapes from dipole and polarizability time series.

Conventions (full derivations in docs/spectra.md):

* beta = 1/(k_B T), x = beta hbar omega, omega = 2 pi c nu~, F(x) the quantum correction of
  :func:`painn_deploy.spectra.quantum.absorption_factor` (F = 1 for the harmonic correction and
  for Kubo-transformed, ring-polymer MD, correlation functions).
* Analysis options are one frozen :class:`SpectrumOptions`; :func:`ir_spectrum`,
  :func:`raman_spectra` and :func:`resolve_settings` take it (or its fields as keywords).
* A run is one time series; a data array with a replica axis ([T, R, 3] dipoles, [T, R, 3, 3]
  polarizabilities) holds R runs.  Runs are averaged with equal weight.
* I[A](omega) = 1/(2 pi) int w(t) <dA(0).dA(t)> exp(-i omega t) dt is the windowed classical
  spectral density of :mod:`painn_deploy.spectra.correlation` (per unit angular frequency).  Every line
  shape weights it by omega^2, and omega^2 I[A] is estimated from the rate of change of A (:func:`_density`).

IR (McQuarrie, "Statistical Mechanics", ch. 21, in SI units; Ramirez et al., J. Chem. Phys.
121, 3973 (2004)): the absorption coefficient times refractive index of N_sys systems in
a volume V is n(omega) alpha(omega) = (N_sys / V) sigma(omega), with the absorption cross section
per system

    sigma(omega) = pi beta omega^2 / (3 c eps0) * F(x) * I[M](omega)             (m^2)

(M: total dipole moment of the system in C m).  The line shape returned is the molar cross
section per molecule

    epsilon_IR(nu~) = N_A sigma(omega) / n_molecules        in km mol^-1 (cm^-1)^-1

(1 km mol^-1 (cm^-1)^-1 = 10 m^2/mol), whose integral over a band in cm^-1 is the integrated
band intensity in km/mol.  For a harmonic mode it equals N_A/(12 eps0 c^2) |dM/dQ|^2, the
harmonic intensity of :mod:`painn_deploy.spectra.harmonic` (Neugebauer, Reiher, Kind & Hess,
J. Comput. Chem. 23, 895 (2002)).  To get n alpha in cm^-1: n alpha = epsilon_IR * 10 m^2/mol *
(n_molecules / N_A) / V.

Raman (Berne & Pecora, "Dynamic Light Scattering", ch. 7; Long, "The Raman Effect", ch. 5;
Thomas, Brehm, Fligg, Voehringer & Kirchner, PCCP 15, 6608 (2013)): with the polarizability
volume alpha(t) (symmetrised), its isotropic part a = Tr(alpha)/3 and anisotropic (traceless)
part b = alpha - a 1,

    C_iso(t)   = <da(0) da(t)>
    C_aniso(t) = 3/2 <Tr[db(0) db(t)]>        (C_aniso(0): the invariant gamma^2 of db = b - <b>)

Orientation averaging for linearly polarised excitation gives the polarised (VV, parallel) and
depolarised (VH, perpendicular) spectra and the depolarisation ratio

    I_par = I_iso + 4/45 I_aniso,   I_perp = 1/15 I_aniso,   rho = I_perp / I_par,

and the Raman "activity" spectrum 45 (I_par + I_perp) = 45 I_iso + 7 I_aniso.  Each component is
reported as the activity line shape

    S_c(nu~) = 2 beta omega^2 F(x) I[c](omega) * (d omega / d nu~)   in Angstrom^4 amu^-1 (cm^-1)^-1,

per molecule, whose band integral for a harmonic mode is a'^2 (iso), gamma'^2 (aniso) and
45 a'^2 + 7 gamma'^2 (activity), the harmonic Raman activity in Angstrom^4/amu of
:mod:`painn_deploy.spectra.harmonic`.  The relative weights of all components are kept (none is
normalised by itself).  The absolute Stokes scattering cross section follows as
d^2 sigma / (dOmega d nu~) = k_s^4 hbar / (2 omega (1 - exp(-x))) S_c (k_s the scattered wave
vector, S_c in SI units; for the activity component divide by 45); see docs/spectra.md.
"""

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .. import units
from ..errors import InputError
from ..units import (
    E_NM_TO_C_M,
    FS_PER_PS,
    KJ_PER_MOL_IN_AMU_A2_PER_PS2,
    KM_PER_MOL_PER_CM1_IN_M2_PER_MOL,
    NM3_TO_ANGSTROM3,
    RAD_PER_PS_PER_CM1,
    S_PER_PS,
    VACUUM_PERMITTIVITY_F_PER_M,
)
from . import integrator
from .correlation import KERNEL_FWHM_BINS, WINDOWS, autocorrelation, fft_length, spectral_density
from .quantum import absorption_factor, reduced_frequency, resolve_quantum_correction

IR_UNITS = "km mol^-1 (cm^-1)^-1"
RAMAN_UNITS = "Angstrom^4 amu^-1 (cm^-1)^-1"

#: Highest wavenumber shown by default (cm^-1): all fundamentals of organic molecules.
DEFAULT_WMAX_CM1 = 4000.0
#: Resolution (kernel FWHM, cm^-1) aimed at when neither a maximum correlation time nor a
#: resolution is given; limited to a quarter of the shortest run.
DEFAULT_RESOLUTION_CM1 = 10.0
#: Minimum number of lags in the correlation function.
MIN_LAGS = 4
#: A coarser resolution (kernel FWHM, cm^-1) than this merges neighbouring fundamentals, which in organic
#: molecules are often tens of cm^-1 apart: such a spectrum is computed with a warning.
COARSE_RESOLUTION_CM1 = 50.0
#: Depolarisation ratios are only reported where I_par exceeds this fraction of its maximum.
DEPOLARIZATION_THRESHOLD = 1e-2


class SpectrumWarning(UserWarning):
    """A spectrum was computed but a setting or the data limit its reliability."""


def _warn(message: str, depth: int = 0) -> None:
    """Warn at the caller of the public function (``depth``: the helper functions between them)."""
    warnings.warn(message, SpectrumWarning, stacklevel=3 + depth)


@dataclass
class Spectrum:
    """One spectrum, averaged over runs.

    ``intensity`` is the mean over runs and ``stderr`` its standard error (standard deviation
    over runs / sqrt(n_runs); NaN with a single run).  ``runs`` holds the per-run spectra
    [n_runs, M].  ``units`` names the intensity unit; ``metadata`` the settings used.
    """

    name: str
    wavenumber_cm1: np.ndarray
    intensity: np.ndarray
    stderr: np.ndarray
    runs: np.ndarray
    units: str
    description: str = ""
    metadata: dict = field(default_factory=dict)

    @property
    def n_runs(self) -> int:
        return int(self.runs.shape[0])

    def peak_wavenumber_cm1(self, wmin_cm1: float = -np.inf, wmax_cm1: float = np.inf) -> float:
        """Wavenumber of the largest intensity between wmin and wmax (cm^-1)."""
        sel = (self.wavenumber_cm1 >= wmin_cm1) & (self.wavenumber_cm1 <= wmax_cm1) & np.isfinite(self.intensity)
        if not sel.any():
            raise InputError(f"no finite points of the spectrum between {wmin_cm1} and {wmax_cm1} cm^-1")
        idx = np.flatnonzero(sel)
        return float(self.wavenumber_cm1[idx[np.argmax(self.intensity[idx])]])

    def integrate(self, wmin_cm1: float, wmax_cm1: float) -> float:
        """Trapezoidal integral of the mean intensity over [wmin, wmax] cm^-1 (band intensity)."""
        sel = (self.wavenumber_cm1 >= wmin_cm1) & (self.wavenumber_cm1 <= wmax_cm1)
        if sel.sum() < 2:
            raise InputError(f"fewer than 2 grid points between {wmin_cm1} and {wmax_cm1} cm^-1")
        trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz
        return float(trapezoid(self.intensity[sel], self.wavenumber_cm1[sel]))


@dataclass
class RamanSpectra:
    """Raman components, all per molecule and with their physical relative weights."""

    isotropic: Spectrum
    anisotropic: Spectrum
    parallel: Spectrum
    perpendicular: Spectrum
    activity: Spectrum
    depolarization_ratio: Spectrum

    def components(self) -> dict[str, Spectrum]:
        """The components keyed by their file-name stem (``raman_isotropic`` ...)."""
        return {
            s.name: s
            for s in (
                self.isotropic,
                self.anisotropic,
                self.parallel,
                self.perpendicular,
                self.activity,
                self.depolarization_ratio,
            )
        }


@dataclass(frozen=True)
class SpectrumOptions:
    """What to compute from the time series; checked and resolved by :func:`resolve_settings`.

    temperature_K:
        Temperature (K) of beta and of the quantum correction.
    max_corr_time_ps / resolution_cm1:
        Maximum correlation time tau_max (ps), or the line-shape resolution (kernel FWHM, cm^-1)
        that sets it (not both); default: 10 cm^-1, at most a quarter of the shortest run.
    window, zero_pad:
        Lag window ("hann", "cos2", "none") and zero-padding factor (>= 1) of the cosine transform.
    wmin_cm1, wmax_cm1:
        Wavenumber range (cm^-1); wmax defaults to 4000 cm^-1, cut at Nyquist with a warning.
    quantum_correction:
        "auto" (harmonic for classical data, kubo for Kubo-transformed data), "none", "harmonic",
        "schofield", "standard" or "kubo" (see :func:`~painn_deploy.spectra.quantum.resolve_quantum_correction`).
    correlation:
        Kind of correlation function of the data: "classical" or "kubo" (ring-polymer MD).
    n_molecules:
        Molecules per simulated system: line shapes are per molecule.
    integrator_timestep_fs, correct_integrator_shift:
        MD time step (fs) and whether to undo the Verlet frequency shift (:mod:`.integrator`).
    """

    temperature_K: float = 300.0
    max_corr_time_ps: float | None = None
    resolution_cm1: float | None = None
    window: str = "hann"
    zero_pad: float = 4.0
    wmin_cm1: float = 0.0
    wmax_cm1: float | None = None
    quantum_correction: str = "auto"
    correlation: str = "classical"
    n_molecules: float = 1.0
    integrator_timestep_fs: float | None = None
    correct_integrator_shift: bool = False


def _options(options: "SpectrumOptions | None", temperature_K: float | None = None, **fields) -> SpectrumOptions:
    """``options`` (default :class:`SpectrumOptions`) with the given fields replaced."""
    if temperature_K is not None:
        fields["temperature_K"] = temperature_K
    return replace(options if options is not None else SpectrumOptions(), **fields)


@dataclass
class SpectrumSettings:
    """Resolved analysis settings shared by all runs (see :func:`resolve_settings`).

    ``quantum_correction`` is the treatment applied (never "auto").
    """

    dt_ps: float
    n_lags: int
    window: str
    zero_pad: float
    wmin_cm1: float
    wmax_cm1: float
    temperature_K: float
    quantum_correction: str
    n_molecules: float = 1.0
    correlation: str = "classical"
    quantum_correction_reason: str = ""
    integrator_timestep_fs: float | None = None
    correct_integrator_shift: bool = False

    @property
    def max_corr_time_ps(self) -> float:
        return (self.n_lags - 1) * self.dt_ps

    @property
    def nyquist_cm1(self) -> float:
        return nyquist_cm1(self.dt_ps)

    @property
    def resolution_cm1(self) -> float:
        """FWHM of the line-shape kernel of the lag window (cm^-1)."""
        return resolution_for_max_corr_time(self.max_corr_time_ps, self.window)

    @property
    def grid_spacing_cm1(self) -> float:
        n = fft_length(self.n_lags, self.zero_pad)
        return 1.0 / (n * self.dt_ps * units.SPEED_OF_LIGHT_CM_PER_PS)

    def as_dict(self) -> dict:
        return {
            "dt_ps": self.dt_ps,
            "max_corr_time_ps": self.max_corr_time_ps,
            "window": self.window,
            "zero_pad": self.zero_pad,
            "wmin_cm1": self.wmin_cm1,
            "wmax_cm1": self.wmax_cm1,
            "nyquist_cm1": self.nyquist_cm1,
            "resolution_fwhm_cm1": self.resolution_cm1,
            "grid_spacing_cm1": self.grid_spacing_cm1,
            "temperature_K": self.temperature_K,
            "correlation": self.correlation,
            "quantum_correction": self.quantum_correction,
            "quantum_correction_reason": self.quantum_correction_reason,
            "n_molecules": self.n_molecules,
            "integrator_timestep_fs": self.integrator_timestep_fs,
            "integrator_shift_corrected": self.correct_integrator_shift,
        }


#: The largest zero-padding factor: beyond it the transform only costs memory (a grid 64 times finer).
MAX_ZERO_PAD = 64.0


def nyquist_cm1(dt_ps: float) -> float:
    """Nyquist wavenumber 1/(2 dt c) in cm^-1 of a sampling interval dt in ps."""
    return 1.0 / (2.0 * dt_ps * units.SPEED_OF_LIGHT_CM_PER_PS)


def require_frames(n_frames: int, where: str, window: str = "hann") -> None:
    """InputError, with the run length that helps, if ``where`` has too few frames for a spectrum."""
    if n_frames < 2 * MIN_LAGS:
        raise InputError(
            f"{where} has {n_frames} frames; a spectrum needs at least {2 * MIN_LAGS}. {_run_longer(window)}"
        )


def _run_longer(window: str) -> str:
    return (
        f"Run at least {run_length_for_resolution(COARSE_RESOLUTION_CM1, window):.3g} ps for a resolution of "
        f"{COARSE_RESOLUTION_CM1:g} cm^-1, {run_length_for_resolution(DEFAULT_RESOLUTION_CM1, window):.3g} ps for "
        f"the default {DEFAULT_RESOLUTION_CM1:g} cm^-1."
    )


def run_length_for_resolution(resolution_cm1: float, window: str = "hann") -> float:
    """The shortest run (ps) whose default analysis (correlations to a quarter of the run) reaches the given
    resolution (FWHM, cm^-1)."""
    return 4.0 * max_corr_time_for_resolution(resolution_cm1, window)


def resolution_for_max_corr_time(max_corr_time_ps: float, window: str = "hann") -> float:
    """FWHM (cm^-1) of the lag-window kernel of a maximum correlation time (ps)."""
    return KERNEL_FWHM_BINS[window] / (2.0 * units.SPEED_OF_LIGHT_CM_PER_PS * max_corr_time_ps)


def max_corr_time_for_resolution(resolution_cm1: float, window: str = "hann") -> float:
    """Maximum correlation time (ps) whose lag-window kernel has the given FWHM (cm^-1)."""
    if not resolution_cm1 > 0:
        raise InputError(f"the resolution must be a positive wavenumber (cm^-1), got {resolution_cm1}")
    return KERNEL_FWHM_BINS[window] / (2.0 * units.SPEED_OF_LIGHT_CM_PER_PS * resolution_cm1)


def sampling_interval(time_ps, where: str = "the time series") -> float:
    """Sampling interval (ps) of equally spaced times; InputError if they are not."""
    t = np.asarray(time_ps, dtype=np.float64)
    if t.ndim != 1:
        raise InputError(f"{where}: time must be a 1-D array, got shape {t.shape}")
    require_frames(t.shape[0], where)
    if not np.all(np.isfinite(t)):
        raise InputError(f"{where}: time contains NaN or infinite values")
    dt = (t[-1] - t[0]) / (t.shape[0] - 1)
    steps = np.diff(t)
    if not dt > 0 or np.max(np.abs(steps - dt)) > 1e-3 * dt + 1e-12:
        bad = int(np.argmax(np.abs(steps - dt)))
        raise InputError(
            f"{where}: frames are not equally spaced in time (step {bad} is {steps[bad]:.6g} ps, "
            f"the mean step is {dt:.6g} ps). Missing frames or a restart appended to the file? "
            "Split the file into runs with uniform spacing and pass them as separate runs."
        )
    return float(dt)


def resolve_settings(
    dt_ps: float, n_frames: Sequence[int], options: SpectrumOptions | None = None, **fields
) -> SpectrumSettings:
    """Check the requested analysis against the sampling and length of the runs.

    ``options`` (default :class:`SpectrumOptions`), with any of its fields given as keywords
    replaced.  Raises :class:`InputError` for impossible requests (range beyond Nyquist, unknown
    options, too few frames, a quantum correction that conflicts with the kind of correlation
    function) and warns (:class:`SpectrumWarning`) when the result will be limited: default range
    clipped at Nyquist, maximum correlation time longer than half the shortest run (too short for
    the requested resolution: it is then cut to half the run).
    """
    opts = _options(options, **fields)
    max_corr_time_ps, resolution_cm1, window = opts.max_corr_time_ps, opts.resolution_cm1, opts.window
    zero_pad = opts.zero_pad
    temperature_K, n_molecules = opts.temperature_K, opts.n_molecules
    if window not in WINDOWS:
        raise InputError(f"unknown window '{window}': choose one of {', '.join(WINDOWS)}")
    treatment, reason = resolve_quantum_correction(opts.quantum_correction, opts.correlation)
    if not temperature_K > 0:
        raise InputError(f"the temperature must be positive (kelvin), got {temperature_K}")
    if not n_molecules > 0:
        raise InputError(f"the number of molecules must be positive, got {n_molecules}")
    if not 1 <= zero_pad <= MAX_ZERO_PAD:
        raise InputError(
            f"the zero-padding factor must be between 1 and {MAX_ZERO_PAD:g} (it only interpolates the grid), got "
            f"{zero_pad}"
        )
    if max_corr_time_ps is not None and resolution_cm1 is not None:
        raise InputError(
            "give either a maximum correlation time or a resolution, not both "
            "(the resolution is set by the maximum correlation time: FWHM = "
            f"{KERNEL_FWHM_BINS[window]:g} / (2 c tau_max) for the {window} window)"
        )
    step_fs = opts.integrator_timestep_fs
    if step_fs is not None and not (step_fs > 0 and step_fs <= dt_ps * FS_PER_PS * (1 + 1e-6)):
        raise InputError(
            f"the integrator time step {step_fs} fs must be positive and at most the sampling interval "
            f"{dt_ps * FS_PER_PS:g} fs (properties are recorded every k >= 1 steps)"
        )
    if opts.correct_integrator_shift and step_fs is None:
        raise InputError(
            "correcting the integrator frequency shift needs the MD time step: the files have no timestep_fs "
            "attribute, so give it (--integrator-timestep-fs)"
        )
    wmin_cm1, wmax_cm1 = _wavenumber_range(opts, dt_ps)
    n_lags = _lag_count(opts, dt_ps, n_frames, wmin_cm1, wmax_cm1)
    return SpectrumSettings(
        dt_ps=float(dt_ps),
        n_lags=n_lags,
        window=window,
        zero_pad=float(zero_pad),
        wmin_cm1=float(wmin_cm1),
        wmax_cm1=float(wmax_cm1),
        temperature_K=float(temperature_K),
        quantum_correction=treatment,
        n_molecules=float(n_molecules),
        correlation=opts.correlation,
        quantum_correction_reason=reason,
        integrator_timestep_fs=None if step_fs is None else float(step_fs),
        correct_integrator_shift=bool(opts.correct_integrator_shift),
    )


def _wavenumber_range(opts: SpectrumOptions, dt_ps: float) -> tuple[float, float]:
    """The range of the line shapes (cm^-1): checked against the Nyquist wavenumber, and against the integrator
    shift when it is corrected."""
    wmin_cm1, wmax_cm1, step_fs = opts.wmin_cm1, opts.wmax_cm1, opts.integrator_timestep_fs
    nyq = nyquist_cm1(dt_ps)
    if not 0 <= wmin_cm1 < nyq:
        raise InputError(
            f"wmin = {wmin_cm1:g} cm^-1 must be >= 0 and below the Nyquist wavenumber {nyq:.1f} cm^-1 "
            f"of the sampling interval {dt_ps * FS_PER_PS:g} fs"
        )
    if wmax_cm1 is None:
        wmax_cm1 = DEFAULT_WMAX_CM1
        if wmax_cm1 > nyq:
            _warn(
                f"the sampling interval {dt_ps * FS_PER_PS:g} fs resolves wavenumbers only up to the Nyquist "
                f"limit 1/(2 dt c) = {nyq:.1f} cm^-1, below the default {DEFAULT_WMAX_CM1:g} cm^-1: the "
                "spectrum is cut there and faster motions (e.g. X-H stretches near 3000-3700 cm^-1) are "
                "aliased to wrong wavenumbers. Record properties more often (smaller record interval).",
                depth=1,
            )
            wmax_cm1 = nyq
    elif wmax_cm1 > nyq * (1 + 1e-12):
        raise InputError(
            f"wmax = {wmax_cm1:g} cm^-1 is beyond the Nyquist wavenumber 1/(2 dt c) = {nyq:.1f} cm^-1 of the "
            f"sampling interval dt = {dt_ps * FS_PER_PS:g} fs: it cannot be resolved. Lower wmax, or record "
            f"properties at least every {FS_PER_PS / (2 * wmax_cm1 * units.SPEED_OF_LIGHT_CM_PER_PS):.3g} fs."
        )
    if opts.correct_integrator_shift:
        # the highest true wavenumber whose shifted line is still below Nyquist
        top = float(integrator.true_wavenumber(nyq, step_fs))
        if wmax_cm1 > top * (1 + 1e-12):
            if opts.wmax_cm1 is not None:
                raise InputError(
                    f"wmax = {wmax_cm1:g} cm^-1 cannot be corrected for the integrator shift: a {step_fs:g} fs "
                    f"Verlet step moves lines above {top:.1f} cm^-1 beyond the Nyquist wavenumber {nyq:.1f} "
                    "cm^-1. Lower wmax."
                )
            _warn(f"the range is cut at {top:.1f} cm^-1, the highest wavenumber whose line a {step_fs:g} fs "
                  f"Verlet step keeps below the Nyquist wavenumber {nyq:.1f} cm^-1", depth=1)  # fmt: skip
            wmax_cm1 = top
    if not wmax_cm1 > wmin_cm1:
        raise InputError(f"wmax ({wmax_cm1:g} cm^-1) must be larger than wmin ({wmin_cm1:g} cm^-1)")

    return float(wmin_cm1), float(wmax_cm1)


def _lag_count(opts: SpectrumOptions, dt_ps: float, n_frames: Sequence[int], wmin_cm1: float, wmax_cm1: float) -> int:
    """The number of lags of the correlation functions (tau_max / dt + 1): from the requested resolution or
    correlation time, or the default, limited by the shortest run."""
    max_corr_time_ps, resolution_cm1, window = opts.max_corr_time_ps, opts.resolution_cm1, opts.window
    shortest = int(min(n_frames))
    length_ps = (shortest - 1) * dt_ps
    require_frames(shortest, "the shortest run", window)
    run_limits = True  # whether the run's length, not a setting, limits tau
    if max_corr_time_ps is None and resolution_cm1 is None:
        tau = min(max_corr_time_for_resolution(DEFAULT_RESOLUTION_CM1, window), length_ps / 4.0)
        fwhm = resolution_for_max_corr_time(tau, window)
        if wmax_cm1 - wmin_cm1 > fwhm > COARSE_RESOLUTION_CM1:
            _warn(
                f"the shortest run ({length_ps:.4g} ps) resolves only {fwhm:.3g} cm^-1 (FWHM): bands closer than "
                f"that merge. {_run_longer(window)}",
                depth=1,
            )
    else:
        if resolution_cm1 is not None:
            tau = max_corr_time_for_resolution(resolution_cm1, window)
            what = f"the requested resolution {resolution_cm1:g} cm^-1 (needs tau_max = {tau:.3g} ps)"
        else:
            tau = float(max_corr_time_ps)
            what = f"the maximum correlation time {tau:g} ps"
        run_limits = tau > 0.5 * length_ps
        if not tau > 0:
            raise InputError(f"the maximum correlation time must be positive (ps), got {tau}")
        if run_limits:  # correlations at longer lags average over too few time origins: mostly noise
            _warn(
                f"the shortest run ({length_ps:.4g} ps) is too short for {what}: the correlation time is cut "
                f"to half the run ({0.5 * length_ps:.4g} ps), which resolves "
                f"{resolution_for_max_corr_time(0.5 * length_ps, window):.3g} cm^-1 (FWHM). Run at least "
                f"{2 * tau:.4g} ps.",
                depth=1,
            )
            tau = 0.5 * length_ps
    n_lags = int(round(tau / dt_ps)) + 1
    if n_lags < MIN_LAGS + 1:
        given = max_corr_time_ps is not None or resolution_cm1 is not None
        raise InputError(
            f"the maximum correlation time {tau:.4g} ps is only {n_lags - 1} sampling intervals of {dt_ps:.4g} ps; at "
            f"least {MIN_LAGS} are needed. "
            + ("Ask for a longer --max-corr-time-ps or a finer (smaller) --resolution-cm1, or record more often "
               "(painn-simulate --record-interval)." if given and not run_limits
               else f"The shortest run ({length_ps:.4g} ps) is too short: {_run_longer(window)}")
        )  # fmt: skip
    fwhm = resolution_for_max_corr_time((n_lags - 1) * dt_ps, window)
    if fwhm >= wmax_cm1 - wmin_cm1:
        wider = f"{fwhm:.3g} cm^-1 (FWHM), wider than the range {wmin_cm1:g}-{wmax_cm1:g} cm^-1"
        if not run_limits:
            setting = "--resolution-cm1" if resolution_cm1 is not None else "--max-corr-time-ps"
            raise InputError(f"{setting} gives a resolution of only {wider}: ask for a finer one")
        raise InputError(
            f"the shortest run ({length_ps:.4g} ps) is far too short for a spectrum: it resolves only {wider}. "
            f"{_run_longer(window)}"
        )
    return n_lags


def _is_multi(time_ps) -> bool:
    return isinstance(time_ps, (list, tuple)) and len(time_ps) > 0 and np.ndim(time_ps[0]) == 1


def _runs(time_ps, data, name: str, trailing: tuple[int, ...]) -> tuple[float, list[np.ndarray]]:
    """Normalise one run or a list of runs to (common dt, [array [T_r, *trailing]]).

    An array [T, R, *trailing] (a replica axis after time) counts as R runs.
    """
    times = list(time_ps) if _is_multi(time_ps) else [time_ps]
    if _is_multi(time_ps):
        if not isinstance(data, (list, tuple)) or len(data) != len(times):
            raise InputError(f"give one {name} array per run: {len(times)} time arrays but {name} does not match")
        arrays = list(data)
    else:
        arrays = [data]
    dts = []
    out = []
    for r, (t, a) in enumerate(zip(times, arrays, strict=True)):
        where = f"run {r}" if len(times) > 1 else "the run"
        a = np.asarray(a, dtype=np.float64)
        t = np.asarray(t, dtype=np.float64)
        replicas = a.ndim == len(trailing) + 2 and a.shape[2:] == trailing
        if not (a.shape[1:] == trailing or replicas) or a.shape[0] != t.shape[0]:
            dims = ", ".join(map(str, trailing))
            raise InputError(
                f"{where}: {name} must have shape [T, {dims}] (or [T, R, {dims}] for R replicas) with "
                f"T = {t.shape[0]} frames (the length of time), got {a.shape}"
            )
        if not np.all(np.isfinite(a)):
            raise InputError(f"{where}: {name} contains NaN or infinite values (a crashed run?)")
        dts.append(sampling_interval(t, where))
        out.extend([a[:, k] for k in range(a.shape[1])] if replicas else [a])
    dt = dts[0]
    for r, d in enumerate(dts):
        if abs(d - dt) > 1e-6 * dt:
            raise InputError(
                f"run {r} is sampled every {d:.6g} ps but run 0 every {dt:.6g} ps: runs averaged together "
                "need the same sampling interval; analyse them separately"
            )
    return dt, out


def _density(signal: np.ndarray, s: SpectrumSettings, scale: float = 1.0):
    """(omega, I(omega) with the requested window, omega^2 I(omega) with a Hann window).

    I is estimated from the rate of change, as omega^2 I = D / sinc^2(omega dt/2): D is the spectral density of
    the forward differences (A_{i+1} - A_i)/dt, whose transfer function is (2 sin(omega dt/2)/dt)^2.  (I(0) is
    set to 0: every line shape weights I by omega^2.)  Correlating A itself would leave a flat floor under the
    omega^2-weighted line shapes of a polar molecule that turns slowly over the run: the finite-run estimate
    of its large, slowly varying C(t) has a kink at t = 0 of order C(0)/T, whose transform falls only as
    1/omega^2.  Thomas et al. (PCCP 15, 6608 (2013)) correlate the derivative for the same reason.
    The second density is a classical, smoothly windowed line shape used only to detect aliasing (it does
    not depend on the quantum correction or on the sinc ripples of the rectangular window).
    """
    rate = np.diff(signal, axis=0) / s.dt_ps
    corr = autocorrelation(rate, s.n_lags - 1) * scale
    omega, rate_dens = spectral_density(corr, s.dt_ps, window=s.window, zero_pad=s.zero_pad)
    _, rate_smooth = spectral_density(corr, s.dt_ps, window="hann", zero_pad=s.zero_pad)
    half = 0.5 * omega[1:] * s.dt_ps
    transfer = np.concatenate([[np.inf], (2.0 * np.sin(half) / s.dt_ps) ** 2])  # of the differences
    dens = rate_dens / transfer
    if s.correct_integrator_shift:  # observed -> true frequencies, band integrals of I conserved
        dens = integrator.correct_density(omega, dens, s.integrator_timestep_fs)
    return omega, dens, omega**2 * rate_smooth / transfer


def _select(omega: np.ndarray, s: SpectrumSettings) -> np.ndarray:
    nu = omega / RAD_PER_PS_PER_CM1
    return (nu >= s.wmin_cm1 - 1e-9) & (nu <= s.wmax_cm1 + 1e-9)


def _check_aliasing(nu: np.ndarray, spectra: np.ndarray, s: SpectrumSettings, what: str) -> None:
    """Warn when the classical line shape omega^2 I(omega) (Hann window) of the runs is still
    above 5% of its maximum in the top 10% of the band below Nyquist (likely aliased).  Not for spectra
    resolved coarser than :data:`COARSE_RESOLUTION_CM1`: the sidelobes of so wide a lag-window kernel,
    weighted by omega^2, reach Nyquist without any aliasing (the default analysis warns about such runs)."""
    if s.resolution_cm1 > COARSE_RESOLUTION_CM1:
        return
    nyq = s.nyquist_cm1
    mean = np.abs(spectra).mean(axis=0)
    top = nu >= 0.9 * nyq
    if mean.max() > 0 and top.any() and mean[top].max() > 0.05 * mean.max():
        _warn(
            f"the classical {what} line shape is still {100 * mean[top].max() / mean.max():.0f}% of its "
            f"maximum near the Nyquist wavenumber {nyq:.0f} cm^-1: motions faster than the sampling can "
            "follow are aliased into the spectrum. Record properties more often."
        )


def _ir_prefactor(omega_rad_per_ps: np.ndarray, s: SpectrumSettings) -> np.ndarray:
    """N_A pi beta omega^2 F(x) / (3 c eps0) / n_molecules, converting I[M] in (e nm)^2 ps to
    km mol^-1 (cm^-1)^-1."""
    beta = 1.0 / (units.BOLTZMANN_J_PER_K * s.temperature_K)  # 1/J
    omega_si = omega_rad_per_ps / S_PER_PS  # rad/s
    x = reduced_frequency(omega_rad_per_ps / RAD_PER_PS_PER_CM1, s.temperature_K)
    density_si = E_NM_TO_C_M**2 * S_PER_PS  # (e nm)^2 ps -> (C m)^2 s
    sigma_per_density = (
        math.pi
        * beta
        * omega_si**2
        / (3.0 * units.SPEED_OF_LIGHT_M_PER_S * VACUUM_PERMITTIVITY_F_PER_M)
        * absorption_factor(x, s.quantum_correction)
        * density_si
    )  # m^2 per unit of I[M]
    return units.AVOGADRO_PER_MOL * sigma_per_density / KM_PER_MOL_PER_CM1_IN_M2_PER_MOL / s.n_molecules


def _raman_prefactor(omega_rad_per_ps: np.ndarray, s: SpectrumSettings) -> np.ndarray:
    """2 beta omega^2 F(x) d omega/d nu~ / n_molecules, converting I[alpha] in Angstrom^6 ps to
    Angstrom^4 amu^-1 (cm^-1)^-1 (1 kJ/mol = 100 amu Angstrom^2 ps^-2)."""
    beta = 1.0 / (units.BOLTZMANN_KJ_PER_MOL_K * s.temperature_K)  # mol/kJ
    x = reduced_frequency(omega_rad_per_ps / RAD_PER_PS_PER_CM1, s.temperature_K)
    return (
        2.0
        * beta
        * omega_rad_per_ps**2
        * absorption_factor(x, s.quantum_correction)
        / KJ_PER_MOL_IN_AMU_A2_PER_PS2
        * RAD_PER_PS_PER_CM1
        / s.n_molecules
    )


def _spectrum(name, nu, runs, units_, description, s: SpectrumSettings, extra=None) -> Spectrum:
    runs = np.asarray(runs, dtype=np.float64)
    mean = runs.mean(axis=0)
    if runs.shape[0] > 1:
        stderr = runs.std(axis=0, ddof=1) / math.sqrt(runs.shape[0])
    else:
        stderr = np.full_like(mean, np.nan)
    meta = {"n_runs": int(runs.shape[0]), **s.as_dict(), **(extra or {})}
    return Spectrum(name, np.asarray(nu, dtype=np.float64), mean, stderr, runs, units_, description, meta)


def ir_spectrum(
    time_ps, dipole_e_nm, temperature_K: float | None = None, options: SpectrumOptions | None = None, **fields
) -> Spectrum:
    """IR absorption line shape from the dipole autocorrelation.

    Parameters
    ----------
    time_ps:
        Times [T] in ps (equally spaced), or a list of such arrays, one per run.
    dipole_e_nm:
        Total dipole moment [T, 3] in e*nm ([T, R, 3] for R replicas), or a list of arrays, one
        per run.  Runs (and replicas) are averaged with equal weight and their spread gives the
        standard error.
    temperature_K:
        Temperature in kelvin (beta in the prefactor and the quantum correction); overrides
        ``options.temperature_K`` (default 300 K).
    options, **fields:
        :class:`SpectrumOptions` (resolution, window, range, quantum correction, kind of
        correlation function, molecules, integrator shift), any field also accepted as a keyword.

    Returns
    -------
    Spectrum with ``intensity`` epsilon_IR(nu~) = N_A sigma(nu~)/n_molecules in km mol^-1
    (cm^-1)^-1, sigma = pi beta omega^2 F(x) I[M](omega) / (3 c eps0) (module docstring); its
    integral over a band in cm^-1 is the band intensity in km/mol.
    """
    dt, runs = _runs(time_ps, dipole_e_nm, "dipole", (3,))
    s = resolve_settings(dt, [r.shape[0] for r in runs], _options(options, temperature_K, **fields))
    per_run, check = [], []
    omega = None
    for r in runs:
        omega, dens, smooth = _density(r, s)
        per_run.append(dens * _ir_prefactor(omega, s))
        check.append(smooth)
    per_run = np.array(per_run)
    nu = omega / RAD_PER_PS_PER_CM1
    _check_aliasing(nu, np.array(check), s, "IR")
    sel = _select(omega, s)
    return _spectrum(
        "ir",
        nu[sel],
        per_run[:, sel],
        IR_UNITS,
        "IR absorption: molar cross section per molecule N_A sigma(nu~), "
        "sigma = pi beta omega^2 F(x) I[M](omega) / (3 c eps0)",
        s,
    )


def raman_spectra(
    time_ps,
    polarizability_nm3,
    temperature_K: float | None = None,
    options: SpectrumOptions | None = None,
    *,
    depolarization_threshold: float = DEPOLARIZATION_THRESHOLD,
    **fields,
) -> RamanSpectra:
    """Raman spectra from the polarizability autocorrelation.

    ``polarizability_nm3`` is the polarizability volume [T, 3, 3] in nm^3 ([T, R, 3, 3] for R
    replicas, or a list, one per run); the other parameters are those of :func:`ir_spectrum`.  Returns the isotropic,
    anisotropic, parallel (VV), perpendicular (VH) and activity (45 iso + 7 aniso) line shapes
    in Angstrom^4 amu^-1 (cm^-1)^-1 per molecule, and the depolarisation ratio I_perp/I_par
    (dimensionless, NaN where I_par < depolarization_threshold * max I_par; its standard error
    is a jackknife over runs).
    """
    dt, runs = _runs(time_ps, polarizability_nm3, "polarizability", (3, 3))
    s = resolve_settings(dt, [r.shape[0] for r in runs], _options(options, temperature_K, **fields))
    iso_runs, aniso_runs, check = [], [], []
    omega = None
    for r in runs:
        alpha = 0.5 * (r + np.swapaxes(r, 1, 2)) * NM3_TO_ANGSTROM3  # Angstrom^3
        a = np.trace(alpha, axis1=1, axis2=2) / 3.0
        b = alpha - a[:, None, None] * np.eye(3)
        omega, d_iso, c_iso = _density(a, s)
        _, d_aniso, c_aniso = _density(b, s, scale=1.5)
        pref = _raman_prefactor(omega, s)
        iso_runs.append(d_iso * pref)
        aniso_runs.append(d_aniso * pref)
        check.append(45.0 * c_iso + 7.0 * c_aniso)
    iso_runs = np.array(iso_runs)
    aniso_runs = np.array(aniso_runs)
    nu = omega / RAD_PER_PS_PER_CM1
    par_runs = iso_runs + 4.0 / 45.0 * aniso_runs
    perp_runs = aniso_runs / 15.0
    act_runs = 45.0 * iso_runs + 7.0 * aniso_runs
    _check_aliasing(nu, np.array(check), s, "Raman")
    sel = _select(omega, s)
    nu = nu[sel]
    iso = _spectrum("raman_isotropic", nu, iso_runs[:, sel], RAMAN_UNITS, "isotropic Raman, C_iso = <da(0) da(t)>", s)
    aniso = _spectrum(
        "raman_anisotropic",
        nu,
        aniso_runs[:, sel],
        RAMAN_UNITS,
        "anisotropic Raman, C_aniso = 3/2 <Tr db(0) db(t)>",
        s,
    )
    par = _spectrum(
        "raman_parallel", nu, par_runs[:, sel], RAMAN_UNITS, "polarised (VV) Raman, I_iso + 4/45 I_aniso", s
    )
    perp = _spectrum(
        "raman_perpendicular", nu, perp_runs[:, sel], RAMAN_UNITS, "depolarised (VH) Raman, I_aniso / 15", s
    )
    act = _spectrum(
        "raman_activity",
        nu,
        act_runs[:, sel],
        RAMAN_UNITS,
        "Raman activity line shape 45 I_iso + 7 I_aniso = 45 (I_par + I_perp)",
        s,
    )
    rho = depolarization_ratio(par, perp, threshold=depolarization_threshold)
    return RamanSpectra(iso, aniso, par, perp, act, rho)


def depolarization_ratio(
    parallel: Spectrum, perpendicular: Spectrum, threshold: float = DEPOLARIZATION_THRESHOLD
) -> Spectrum:
    """rho = I_perp / I_par of run-averaged spectra; standard error by jackknife over runs.

    NaN where the mean I_par is below ``threshold`` times its maximum (no band there).
    """
    vv, vh = parallel.runs, perpendicular.runs
    n = vv.shape[0]
    mean_vv = vv.mean(axis=0)
    valid = mean_vv > threshold * np.max(mean_vv) if np.max(mean_vv) > 0 else np.zeros_like(mean_vv, bool)
    safe = np.where(valid, mean_vv, 1.0)
    rho = np.where(valid, vh.mean(axis=0) / safe, np.nan)
    if n > 1:
        loo_vv = (vv.sum(axis=0) - vv) / (n - 1)
        loo_vh = (vh.sum(axis=0) - vh) / (n - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            loo = loo_vh / np.where(loo_vv != 0, loo_vv, np.nan)
        se = np.sqrt((n - 1) / n * ((loo - loo.mean(axis=0)) ** 2).sum(axis=0))
        se = np.where(valid, se, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_run = np.where(valid, vh / np.where(vv != 0, vv, np.nan), np.nan)
    else:
        se = np.full_like(rho, np.nan)
        per_run = rho[None, :]
    meta = dict(parallel.metadata)
    meta["depolarization_threshold"] = threshold
    return Spectrum(
        "raman_depolarization_ratio",
        parallel.wavenumber_cm1,
        rho,
        se,
        per_run,
        "1",
        "depolarisation ratio I_perp / I_par (linearly polarised excitation)",
        meta,
    )


def harmonic_line_shape(wavenumber_cm1, intensity, like: Spectrum, name: str = "harmonic") -> Spectrum:
    """Harmonic intensities (per mode, e.g. km/mol) as a line shape on the grid of the MD spectrum ``like``, made
    as ``like`` was: each mode is the spectral density of cos(omega_k t) (at the frequency a Verlet step shows it
    when ``like`` corrected that shift), analysed with ``like``'s settings and quantum factor F(x), and scaled so
    that its band integral with F = 1 is its intensity.  A classical MD band of a harmonic mode lies on top of it."""
    meta = like.metadata
    dt_ps, n_lags = meta["dt_ps"], int(round(meta["max_corr_time_ps"] / meta["dt_ps"])) + 1
    step_fs = meta.get("integrator_timestep_fs") if meta.get("integrator_shift_corrected") else None
    t = np.arange(n_lags) * dt_ps
    shape = np.zeros_like(like.wavenumber_cm1)
    for nu_k, height in zip(np.asarray(wavenumber_cm1, float), np.asarray(intensity, float), strict=True):
        if not (np.isfinite(nu_k) and np.isfinite(height) and nu_k > 0):
            continue
        shown = float(integrator.observed_wavenumber(nu_k, step_fs)) if step_fs else nu_k
        omega, dens = spectral_density(
            np.cos(shown * RAD_PER_PS_PER_CM1 * t), dt_ps, window=meta["window"], zero_pad=meta["zero_pad"]
        )
        if step_fs:
            dens = np.nan_to_num(integrator.correct_density(omega, dens, step_fs))
        per_cm1 = 2.0 * height * dens * RAD_PER_PS_PER_CM1  # the positive-frequency lobe holds half the density
        shape += np.interp(like.wavenumber_cm1, omega / RAD_PER_PS_PER_CM1, per_cm1)
    x = reduced_frequency(like.wavenumber_cm1, meta["temperature_K"])
    shape = shape * absorption_factor(x, meta["quantum_correction"])
    return Spectrum(
        name, like.wavenumber_cm1.copy(), shape, np.full_like(shape, np.nan), shape[None], like.units,
        "harmonic intensities broadened as the MD spectrum", dict(meta, n_runs=1),
    )  # fmt: skip


def average_spectra(spectra: Sequence[Spectrum], name: str | None = None) -> Spectrum:
    """Average spectra computed separately (same grid and units) with equal weight per run.

    The per-run spectra of all inputs are pooled; ``stderr`` is their standard deviation over
    runs divided by sqrt(number of runs).
    """
    if not spectra:
        raise InputError("average_spectra needs at least one spectrum")
    first = spectra[0]
    for sp in spectra[1:]:
        if sp.units != first.units:
            raise InputError(f"cannot average spectra in {first.units} and {sp.units}")
        if sp.wavenumber_cm1.shape != first.wavenumber_cm1.shape or not np.allclose(
            sp.wavenumber_cm1, first.wavenumber_cm1, rtol=1e-9, atol=1e-9
        ):
            raise InputError(
                "cannot average spectra on different wavenumber grids: compute them with the same "
                "sampling interval, maximum correlation time, zero padding and range"
            )
    runs = np.concatenate([sp.runs for sp in spectra], axis=0)
    mean = runs.mean(axis=0)
    if runs.shape[0] > 1:
        stderr = runs.std(axis=0, ddof=1) / math.sqrt(runs.shape[0])
    else:
        stderr = np.full_like(mean, np.nan)
    meta = dict(first.metadata)
    meta["n_runs"] = int(runs.shape[0])
    return Spectrum(
        name or first.name,
        first.wavenumber_cm1.copy(),
        mean,
        stderr,
        runs,
        first.units,
        first.description,
        meta,
    )
