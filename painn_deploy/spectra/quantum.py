"""Quantum correction factors for classical time-correlation spectra.

A classical MD correlation function C_cl(t) is even in time, so its spectral density
I_cl(omega) is even in omega, while the quantum one obeys detailed balance,
I_qm(-omega) = exp(-beta hbar omega) I_qm(omega).  The usual approximations write

    I_qm(omega) ~ Q(x) I_cl(omega),     x = beta hbar omega = h c nu~ / (k_B T),

with (Ramirez, Lopez-Ciudad, Kumar & Marx, J. Chem. Phys. 121, 3973 (2004); Berens,
Mackay, White & Wilson, J. Chem. Phys. 79, 2375 (1983); Schofield, Phys. Rev. Lett. 4, 239
(1960)):

    none       Q = 1                           (no correction; violates detailed balance)
    harmonic   Q = x / (1 - exp(-x))           (exact for a harmonic system, Kubo transform)
    schofield  Q = exp(x / 2)
    standard   Q = 2 / (1 + exp(-x))           (from the symmetrised correlation function)

All -> 1 as x -> 0 and all but "none" satisfy Q(-x) = exp(-x) Q(x).

The line shapes in :mod:`painn_deploy.spectra.vibrational` are the quantum expressions
(McQuarrie, "Statistical Mechanics", ch. 21; Berne & Pecora, "Dynamic Light Scattering", ch. 7)

    spectrum(omega) ~ omega (1 - exp(-x)) / hbar * Q(x) I_cl(omega)
                    = beta omega^2 * F(x) * I_cl(omega),   F(x) = (1 - exp(-x)) Q(x) / x,

i.e. the classical result beta omega^2 I_cl times :func:`absorption_factor` F.  For the
harmonic correction F = 1 exactly: the harmonic-corrected spectrum *is* the classical
expression (Ramirez et al. 2004, sec. II).

Ring-polymer MD (RPMD) correlation functions approximate *Kubo-transformed* quantum correlation
functions K(t), whose spectral density is related exactly to the standard quantum one by
I_qm(omega) = x / (1 - exp(-x)) K(omega) (Craig & Manolopoulos, J. Chem. Phys. 121, 3368 (2004);
Habershon, Manolopoulos, Markland & Miller, Annu. Rev. Phys. Chem. 64, 387 (2013)).  The absorption
from K is therefore beta omega^2 K(omega): the treatment "kubo" has F = 1 and no approximation.  It
is chosen for files whose ``correlation`` attribute is "kubo"; no other correction may be applied
on top of it (:func:`resolve_quantum_correction`).
"""

import numpy as np

from ..errors import InputError
from ..units import SECOND_RADIATION_CM_K

#: Quantum corrections of classical correlation functions.
CORRECTIONS = ("none", "harmonic", "schofield", "standard")
#: Kinds of correlation function a property file can hold (its ``correlation`` attribute).
CORRELATIONS = ("classical", "kubo")
#: Treatments: the corrections of classical data, and "kubo" for Kubo-transformed (RPMD) data.
TREATMENTS = (*CORRECTIONS, "kubo")
#: Accepted requests: "auto" picks "harmonic" for classical and "kubo" for Kubo-transformed data.
QUANTUM_CHOICES = ("auto", *TREATMENTS)


def _check(kind: str) -> None:
    if kind not in TREATMENTS:
        raise InputError(f"unknown quantum correction '{kind}': choose one of {', '.join(TREATMENTS)}")


def resolve_quantum_correction(requested: str, correlation: str = "classical") -> tuple[str, str]:
    """(treatment, reason) for a requested correction and the kind of correlation function.

    classical data: "auto" -> "harmonic"; "none", "harmonic", "schofield", "standard" as asked;
    "kubo" is refused (it declares the data Kubo-transformed).  Kubo-transformed (RPMD) data:
    "auto" and "kubo" -> "kubo" (F = 1, exact); "harmonic" -> "kubo" as well, since its factor
    x/(1 - exp(-x)) is exactly the Kubo relation; "none", "schofield" and "standard" are refused,
    because they would put a second correction on top of the Kubo transform.
    """
    if correlation not in CORRELATIONS:
        raise InputError(f"unknown correlation kind '{correlation}': expected one of {', '.join(CORRELATIONS)}")
    if requested not in QUANTUM_CHOICES:
        raise InputError(f"unknown quantum correction '{requested}': choose one of {', '.join(QUANTUM_CHOICES)}")
    if correlation == "classical":
        if requested == "kubo":
            raise InputError(
                "the quantum treatment 'kubo' is for Kubo-transformed (ring-polymer MD) correlation functions, "
                "but the data are classical (the files' 'correlation' attribute is 'classical' or absent). Use "
                "'harmonic' (the same factor, as an approximation for classical data) or 'auto'."
            )
        if requested == "auto":
            return "harmonic", "classical correlation functions: harmonic quantum correction (default)"
        return requested, f"classical correlation functions: {requested} quantum correction (requested)"
    if requested in ("auto", "kubo", "harmonic"):
        why = {
            "auto": "chosen automatically",
            "kubo": "requested",
            "harmonic": "requested as 'harmonic', whose factor x/(1-exp(-x)) is exactly the Kubo relation",
        }[requested]
        return "kubo", (
            "Kubo-transformed (ring-polymer MD) correlation functions: absorption beta omega^2 K(omega), "
            f"no further correction ({why})"
        )
    raise InputError(
        f"the quantum correction '{requested}' cannot be applied to ring-polymer MD data: their correlation "
        "functions are Kubo-transformed (file attribute correlation = 'kubo'), and the classical formula "
        "beta omega^2 K(omega) is already the quantum absorption; a further correction would be applied twice. "
        "Use --quantum-correction auto (or kubo)."
    )


def reduced_frequency(wavenumber_cm1, temperature_K: float) -> np.ndarray:
    """x = beta hbar omega = h c nu~ / (k_B T) (dimensionless) for wavenumbers in cm^-1."""
    if not temperature_K > 0:
        raise InputError(f"the temperature must be positive (kelvin), got {temperature_K}")
    return SECOND_RADIATION_CM_K * np.asarray(wavenumber_cm1, dtype=np.float64) / float(temperature_K)


def _one_minus_exp_over_x(x: np.ndarray) -> np.ndarray:
    """(1 - exp(-x)) / x, equal to 1 at x = 0."""
    safe = np.where(x == 0.0, 1.0, x)
    return np.where(x == 0.0, 1.0, -np.expm1(-safe) / safe)


def correction_factor(x, kind: str = "harmonic") -> np.ndarray:
    """Quantum correction factor Q(x), x = beta hbar omega (see the module docstring)."""
    _check(kind)
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        if kind == "none":
            return np.ones_like(x)
        if kind in ("harmonic", "kubo"):  # kubo: I_qm = x/(1-exp(-x)) K, exact
            return 1.0 / _one_minus_exp_over_x(x)
        if kind == "schofield":
            return np.exp(0.5 * x)
        return 2.0 / (1.0 + np.exp(-x))


def absorption_factor(x, kind: str = "harmonic") -> np.ndarray:
    """F(x) = (1 - exp(-x)) Q(x) / x: quantum-corrected spectrum / classical beta omega^2 spectrum.

    harmonic and kubo: 1; none: (1 - exp(-x))/x; schofield: 2 sinh(x/2)/x; standard: 2 tanh(x/2)/x.
    """
    _check(kind)
    x = np.asarray(x, dtype=np.float64)
    if kind in ("harmonic", "kubo"):
        return np.ones_like(x)
    if kind == "none":
        return _one_minus_exp_over_x(x)
    safe = np.where(x == 0.0, 1.0, x)
    with np.errstate(over="ignore"):
        half = np.sinh(0.5 * safe) if kind == "schofield" else np.tanh(0.5 * safe)
        val = 2.0 * half / safe
    return np.where(x == 0.0, 1.0, val)
