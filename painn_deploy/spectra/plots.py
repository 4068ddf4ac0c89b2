"""PNG plots of spectra (mean with standard-error band) and harmonic stick spectra.

Uses matplotlib's Agg canvas directly (no pyplot state, works without a display).  Axis labels are
plain Unicode (cm⁻¹, Å⁴), never TeX or mathtext: :func:`unicode_units` turns the ASCII unit
strings of the CSV files and metadata ("km mol^-1 (cm^-1)^-1") into what the plots show.
"""

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
WAVENUMBER_LABEL = "wavenumber (cm⁻¹)"


def unicode_units(text: str) -> str:
    """ASCII unit text with ``^exponents``, ``Angstrom`` and ``*`` -> Unicode superscripts, Å and ·.

    ``"km mol^-1 (cm^-1)^-1"`` -> ``"km mol⁻¹ (cm⁻¹)⁻¹"``; ``"Angstrom^4 amu^-1"`` -> ``"Å⁴ amu⁻¹"``;
    ``"e*Angstrom"`` -> ``"e·Å"``.
    """
    text = re.sub(r"\^(-?\d+)", lambda m: m.group(1).translate(_SUPERSCRIPT), text)
    return text.replace("Angstrom", "Å").replace("*", "·")


def _figure(nrows: int = 1, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(nrows, 1, i + 1) for i in range(nrows)]
    return fig, axes


def _draw_spectrum(ax, spectrum, label: str | None, color=None):
    nu, y, se = spectrum.wavenumber_cm1, spectrum.intensity, spectrum.stderr
    (line,) = ax.plot(nu, y, lw=1.2, label=label, color=color)
    if np.isfinite(se).any():
        ax.fill_between(nu, y - se, y + se, color=line.get_color(), alpha=0.3, lw=0)
    return line


def spectrum_figure(
    spectra: Sequence,
    *,
    labels: Sequence[str] | None = None,
    title: str = "",
    ylabel: str | None = None,
    n_runs_note: bool = True,
):
    """Figure of one or more spectra (mean line, +-1 standard error band where several runs were
    averaged) on one axis; see :func:`plot_spectra`."""
    fig, (ax,) = _figure()
    labels = list(labels) if labels is not None else [s.name for s in spectra]
    for s, lab in zip(spectra, labels, strict=True):
        _draw_spectrum(ax, s, lab)
    first = spectra[0]
    xlim = (float(first.wavenumber_cm1.min()), float(first.wavenumber_cm1.max()))
    ax.set_xlim(*xlim)
    ax.set_xlabel(WAVENUMBER_LABEL)
    ax.set_ylabel(unicode_units(ylabel or first.units))
    ax.axhline(0.0, color="0.6", lw=0.5)
    note = ""
    if n_runs_note:
        n = first.n_runs
        note = f"\n{n} run{'s' if n != 1 else ''}{', shaded: standard error over runs' if n > 1 else ''}"
    ax.set_title(title + note, fontsize=11, wrap=True)  # (long titles: RPMD, sticks, corrections)
    if len(spectra) > 1:
        ax.legend(loc="upper left")
    return fig


def plot_spectra(path, spectra: Sequence, **options) -> Path:
    """Plot one or more spectra (mean line, +-1 standard error band) on one axis to a PNG file; ``options``
    are those of :func:`spectrum_figure` (``labels``, ``title``, ``ylabel``, ``n_runs_note``)."""
    return _save(spectrum_figure(spectra, **options), path)


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_harmonic_sticks(path, wavenumber_cm1, ir_km_per_mol, raman_A4_per_amu, *, title: str = "") -> Path:
    """Two-panel stick plot: IR intensities (km/mol) and Raman activities (Angstrom^4/amu).

    Imaginary modes (negative wavenumbers) are drawn in red at negative wavenumbers.
    """
    nu = np.asarray(wavenumber_cm1, dtype=np.float64)
    panels = [
        (np.asarray(ir_km_per_mol, dtype=np.float64), "IR intensity (km/mol)"),
        (np.asarray(raman_A4_per_amu, dtype=np.float64), "Raman activity (Å⁴/amu)"),
    ]
    panels = [p for p in panels if np.isfinite(p[0]).any()] or panels[:1]
    fig, axes = _figure(len(panels), height=3.2)
    lo = min(0.0, float(nu.min()) - 50.0) if nu.size else 0.0
    hi = float(nu.max()) * 1.05 + 50.0 if nu.size else 4000.0
    for ax, (h, label) in zip(axes, panels, strict=True):
        good = np.isfinite(h)
        real = good & (nu >= 0)
        ax.vlines(nu[real], 0.0, h[real], colors="C0", lw=1.5)
        imag = good & (nu < 0)
        if imag.any():
            ax.vlines(nu[imag], 0.0, h[imag], colors="r", lw=1.5, label="imaginary")
            ax.legend(loc="upper right")
        ax.set_xlim(lo, hi)
        ax.set_ylim(bottom=0.0)
        ax.set_ylabel(label)
        ax.axhline(0.0, color="0.6", lw=0.5)
    axes[-1].set_xlabel("harmonic wavenumber (cm⁻¹)")
    if title:
        axes[0].set_title(title)
    return _save(fig, path)
