"""Time-correlation functions and their windowed Fourier (cosine) transform.

Estimator (Allen & Tildesley, "Computer Simulation of Liquids", 2nd ed., sec. 8.1; the FFT
route is their Wiener-Khinchin algorithm): for a stationary signal A sampled at t_i = i dt,
i = 0..T-1,

    C(k dt) = 1/(T - k) * sum_{i=0}^{T-1-k} dA_i . dA_{i+k},     dA = A - <A>,

summed over the components of A (vector or tensor).  It is computed with FFTs of the signal
zero-padded to at least 2T points, so that the circular correlation the FFT computes equals the
linear one (no wrap-around).

Spectral density (Blackman-Tukey estimate; Priestley, "Spectral Analysis and Time Series",
sec. 6.2): the correlation function, truncated at the maximum correlation time tau_max = K dt
and multiplied by a lag window w(t), is cosine transformed

    I(omega) = 1/(2 pi) int_{-tau_max}^{tau_max} w(t) C(t) exp(-i omega t) dt
             ~ dt/(2 pi) [w_0 C_0 + 2 sum_{k=1}^{K} w_k C_k cos(omega k dt)],

so that int_{-inf}^{inf} I(omega) d omega = C(0) (units: [A]^2 * time per rad/time).  The
transform is evaluated with a real FFT of length L = zero_pad * 2K (at least 2K + 1): the
frequency grid spacing is 2 pi / (L dt), zero padding only interpolates the same spectrum.
"""

import numpy as np
from scipy import fft as sp_fft

from ..errors import InputError

#: Lag windows w(t) applied to C(t) on 0 <= t <= tau_max (see :func:`lag_window`).
WINDOWS = ("hann", "cos2", "none")

#: Full width at half maximum of the spectral kernel of each lag window (the Fourier transform
#: of w(t) on [-tau_max, tau_max]) in units of the bin 1/(2 tau_max) (frequency, cycles/time).
#: Hann: W(f) = 1/2 D(f) + 1/4 D(f-1) + 1/4 D(f+1) with D(0) = 1, D(+-1) = D(+-2) = 0, so
#: W(1) = W(0)/2: FWHM = 2 bins.  Rectangular ("none"): W = sinc, sin(pi x)/(pi x) = 1/2 at
#: x = 0.60335, FWHM = 1.2067 bins.
KERNEL_FWHM_BINS = {"hann": 2.0, "cos2": 2.0, "none": 1.2067}


def autocorrelation(signal, max_lag: int | None = None, *, subtract_mean: bool = True) -> np.ndarray:
    """Unbiased time autocorrelation ``C_k = <dA(0) . dA(k dt)>``, k = 0..max_lag.

    Parameters
    ----------
    signal:
        Array [T] or [T, ...]; trailing axes are components whose autocorrelations are summed
        (``[T, 3]`` dipole gives <mu(0) . mu(t)>; ``[T, 3, 3]`` gives <Tr A(0)^T A(t)>).
    max_lag:
        Largest lag in frames (default T - 1).
    subtract_mean:
        Subtract the time average of each component first (removes the zero-frequency line).

    Returns
    -------
    ndarray [max_lag + 1] in the units of ``signal`` squared.
    """
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim == 0 or x.shape[0] < 2:
        raise InputError(f"autocorrelation needs a time series of at least 2 frames, got shape {x.shape}")
    n = x.shape[0]
    x = x.reshape(n, -1)
    if max_lag is None:
        max_lag = n - 1
    if not 0 <= max_lag < n:
        raise InputError(f"max_lag must be between 0 and {n - 1} frames (the trajectory length), got {max_lag}")
    if subtract_mean:
        x = x - x.mean(axis=0)
    nfft = sp_fft.next_fast_len(2 * n, real=True)
    power = np.zeros(nfft // 2 + 1)
    for j in range(x.shape[1]):  # one component at a time keeps memory at O(nfft)
        spec = sp_fft.rfft(x[:, j], n=nfft)
        power += spec.real**2 + spec.imag**2
    corr = sp_fft.irfft(power, n=nfft)[: max_lag + 1]
    return corr / (n - np.arange(max_lag + 1))


def lag_window(n_lags: int, kind: str = "hann") -> np.ndarray:
    """Lag window w_k for k = 0..n_lags-1, with w = 0 at the last lag (tau_max) except "none".

    - ``"hann"``: w(t) = 1/2 [1 + cos(pi t / tau_max)], the right half of a Hann window
      spanning [-tau_max, tau_max] (Blackman & Tukey, "The Measurement of Power Spectra", 1958;
      the "Tukey-Hanning" lag window).
    - ``"cos2"``: w(t) = cos^2(pi t / (2 tau_max)), the form used by TRAVIS (Thomas et al.,
      PCCP 15, 6608 (2013)).  By cos^2(x/2) = (1 + cos x)/2 it is the same function as
      ``"hann"``; both names are accepted.
    - ``"none"``: w = 1 (rectangular truncation at tau_max; sinc ripples, negative lobes).
    """
    if kind not in WINDOWS:
        raise InputError(f"unknown window '{kind}': choose one of {', '.join(WINDOWS)}")
    if n_lags < 2:
        raise InputError(f"a lag window needs at least 2 lags, got {n_lags}")
    t = np.arange(n_lags) / (n_lags - 1)  # t / tau_max
    if kind == "hann":
        return 0.5 * (1.0 + np.cos(np.pi * t))
    if kind == "cos2":
        return np.cos(0.5 * np.pi * t) ** 2
    return np.ones(n_lags)


def fft_length(n_lags: int, zero_pad: float) -> int:
    """Length L of the cosine-transform FFT for K = n_lags - 1 lags and a zero-pad factor."""
    if not zero_pad >= 1.0:
        raise InputError(f"the zero-padding factor must be >= 1, got {zero_pad}")
    k = n_lags - 1
    return max(int(round(zero_pad * 2 * k)), 2 * k + 1)


def spectral_density(
    corr: np.ndarray, dt_ps: float, *, window: str = "hann", zero_pad: float = 4.0
) -> tuple[np.ndarray, np.ndarray]:
    """Windowed cosine transform of a correlation function (see the module docstring).

    Parameters
    ----------
    corr:
        C_k for k = 0..K (``autocorrelation(..., max_lag=K)``), units [A]^2.
    dt_ps:
        Sampling interval in ps.
    window, zero_pad:
        Lag window (:data:`WINDOWS`) and zero-padding factor (>= 1).

    Returns
    -------
    omega_rad_per_ps [M], density [M]
        Angular frequencies 0..pi/dt (rad/ps) and I(omega) in [A]^2 * ps (per rad/ps), with
        int I d omega over (-inf, inf) = C(0).
    """
    c = np.asarray(corr, dtype=np.float64)
    w = lag_window(c.shape[0], window)
    n = fft_length(c.shape[0], zero_pad)
    k = c.shape[0] - 1
    buf = np.zeros(n)
    buf[: k + 1] = c * w
    buf[n - k :] = (c * w)[1:][::-1]  # even extension: C(-t) = C(t)
    dens = sp_fft.rfft(buf).real * dt_ps / (2.0 * np.pi)
    omega = 2.0 * np.pi * np.arange(dens.shape[0]) / (n * dt_ps)
    return omega, dens
