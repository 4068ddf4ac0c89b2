"""Vibrational spectra from MD time series and harmonic normal-mode analysis.

Modules (one job each):

* :mod:`.correlation` - autocorrelation by FFT, lag windows, windowed cosine transform;
* :mod:`.quantum` - quantum correction factors (none, harmonic, Schofield, standard) and the
  Kubo treatment of ring-polymer MD correlation functions;
* :mod:`.integrator` - the Verlet frequency shift and its correction;
* :mod:`.vibrational` - IR and Raman line shapes in absolute units, averaging over runs (and replicas);
* :mod:`.io` - reading MD property files, writing/reading spectrum and normal-mode CSVs;
* :mod:`.plots` - PNG plots;
* :mod:`.config` - :class:`SpectrumConfig`, the configuration of ``painn-spectrum`` (YAML and flags);
* :mod:`.pipeline` - :func:`compute_spectra`, files -> spectra -> CSV/PNG/metadata.json;
* :mod:`.harmonic` - normal modes, IR intensities and Raman activities of a model (needs torch;
  imported on first use so that spectra do not load torch).

Unit factors come from :mod:`painn_deploy.units`.  Formulas, units and references: docs/spectra.md.
"""

from .config import SpectrumConfig
from .correlation import WINDOWS, autocorrelation, lag_window, spectral_density
from .io import Properties, Run, Sticks, read_modes_csv, read_properties, read_spectrum_csv, write_spectrum_csv
from .pipeline import SpectraResult, compute_spectra
from .quantum import (
    CORRECTIONS,
    absorption_factor,
    correction_factor,
    reduced_frequency,
    resolve_quantum_correction,
)
from .vibrational import (
    IR_UNITS,
    RAMAN_UNITS,
    RamanSpectra,
    Spectrum,
    SpectrumOptions,
    SpectrumSettings,
    SpectrumWarning,
    average_spectra,
    depolarization_ratio,
    ir_spectrum,
    nyquist_cm1,
    raman_spectra,
    resolve_settings,
)

_HARMONIC = ("HarmonicResult", "HarmonicWarning", "harmonic_analysis", "load_model")


def __getattr__(name):
    if name in _HARMONIC:
        from . import harmonic

        return getattr(harmonic, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CORRECTIONS",
    "IR_UNITS",
    "RAMAN_UNITS",
    "WINDOWS",
    "Properties",
    "RamanSpectra",
    "Run",
    "SpectraResult",
    "Spectrum",
    "SpectrumConfig",
    "SpectrumOptions",
    "SpectrumSettings",
    "SpectrumWarning",
    "Sticks",
    "absorption_factor",
    "autocorrelation",
    "average_spectra",
    "compute_spectra",
    "correction_factor",
    "depolarization_ratio",
    "ir_spectrum",
    "lag_window",
    "nyquist_cm1",
    "raman_spectra",
    "read_modes_csv",
    "read_properties",
    "read_spectrum_csv",
    "reduced_frequency",
    "resolve_quantum_correction",
    "resolve_settings",
    "spectral_density",
    "write_spectrum_csv",
    *_HARMONIC,
]
