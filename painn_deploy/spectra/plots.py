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


def _draw_sticks(ax, wavenumber_cm1, heights, label: str, xlim):
    twin = ax.twinx()
    nu = np.asarray(wavenumber_cm1, dtype=np.float64)
    h = np.asarray(heights, dtype=np.float64)
    sel = np.isfinite(h) & np.isfinite(nu) & (nu >= xlim[0]) & (nu <= xlim[1])
    twin.vlines(nu[sel], 0.0, h[sel], colors="k", lw=1.0, alpha=0.7, label="harmonic")
    twin.set_ylabel(unicode_units(label))
    top = 1.1 * (h[sel].max() if sel.any() and h[sel].max() > 0 else 1.0)
    lo, hi = ax.get_ylim()
    # put the sticks' zero at the height of the spectrum's zero
    twin.set_ylim(top * min(lo, 0.0) / hi if hi > 0 else 0.0, top)
    return twin


def spectrum_figure(
    spectra: Sequence,
    *,
    labels: Sequence[str] | None = None,
    title: str = "",
    ylabel: str | None = None,
    sticks: tuple[np.ndarray, np.ndarray, str] | None = None,
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
    ax.set_title(title + note, fontsize=11)
    handles, labs = ax.get_legend_handles_labels()
    if sticks is not None:
        twin = _draw_sticks(ax, sticks[0], sticks[1], sticks[2], xlim)
        h2, l2 = twin.get_legend_handles_labels()
        handles, labs = handles + h2, labs + l2
    if len(handles) > 1 or sticks is not None:
        ax.legend(handles, labs, loc="upper left")
    return fig


def plot_spectra(path, spectra: Sequence, **options) -> Path:
    """Plot one or more spectra (mean line, +-1 standard error band) on one axis to a PNG file; ``options``
    are those of :func:`spectrum_figure` (``labels``, ``title``, ``ylabel``, ``sticks``: optional
    (wavenumber_cm1, height, axis label) drawn as vertical lines on a second y axis, ``n_runs_note``)."""
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
