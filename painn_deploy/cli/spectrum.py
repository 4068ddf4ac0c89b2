"""painn-spectrum: IR and Raman spectra from MD property files.

    painn-spectrum run/properties.h5 [more.h5 ...] --ir --raman -o spectra/

Writes one CSV per spectrum (columns wavenumber_cm-1, intensity, stderr), PNG plots and
metadata.json (settings, units, warnings).  Formulas and units: docs/spectra.md.
"""

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from ..errors import InputError, PainnDeployError
from ..spectra.correlation import WINDOWS
from ..spectra.io import read_modes_csv, read_properties, write_spectrum_csv
from ..spectra.quantum import CORRECTIONS
from ..spectra.vibrational import (
    DEFAULT_RESOLUTION_CM1,
    DEFAULT_WMAX_CM1,
    IR_UNITS,
    RAMAN_UNITS,
    ir_spectrum,
    raman_spectra,
)

DEFAULT_TEMPERATURE_K = 300.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="painn-spectrum",
        description=(
            "IR spectrum from the dipole autocorrelation and Raman spectra (isotropic, anisotropic, "
            "parallel/VV, perpendicular/VH, activity, depolarisation ratio) from the polarizability "
            "autocorrelation of MD property files. Several files are averaged with equal weight; the "
            "shaded band and the stderr column are the standard error over files. IR line shape in "
            f"{IR_UNITS} (integral over a band = intensity in km/mol); Raman line shapes in {RAMAN_UNITS} "
            "(integral over a band = Raman activity in Angstrom^4/amu). See docs/spectra.md."
        ),
    )
    p.add_argument(
        "files",
        nargs="+",
        metavar="PROPERTIES.h5",
        help="HDF5 property files of independent runs (datasets time [ps], dipole [e*nm or e*Angstrom], "
        "polarizability [nm^3 or Angstrom^3], with 'units' attributes), all with the same sampling interval",
    )
    p.add_argument(
        "--ir",
        action="store_true",
        help="compute the IR spectrum (needs 'dipole'; without --ir/--raman: every quantity all files have)",
    )
    p.add_argument("--raman", action="store_true", help="compute the Raman spectra (needs 'polarizability')")
    p.add_argument(
        "-o",
        "--output",
        default="spectra",
        help="output directory for CSV, PNG and metadata.json (default: %(default)s/)",
    )
    p.add_argument(
        "--max-corr-time-ps",
        type=float,
        default=None,
        metavar="PS",
        help="maximum correlation time tau_max in ps (sets the resolution: "
        "FWHM = 1/(c tau_max) for hann/cos2). "
        f"Default: the tau_max giving {DEFAULT_RESOLUTION_CM1:g} cm^-1, at most 1/4 of the shortest run",
    )
    p.add_argument(
        "--resolution-cm1",
        type=float,
        default=None,
        metavar="CM-1",
        help="line-shape resolution (FWHM of the window kernel) in cm^-1; alternative to --max-corr-time-ps",
    )
    p.add_argument(
        "--window",
        choices=WINDOWS,
        default="hann",
        help="lag window on the correlation function: hann = cos2 = (1 + cos(pi t/tau_max))/2; none = rectangular (default: %(default)s)",
    )
    p.add_argument(
        "--zero-pad",
        type=float,
        default=4.0,
        metavar="FACTOR",
        help="zero-padding factor (dimensionless, >= 1) of the cosine transform: grid spacing = "
        "1/(2 c tau_max FACTOR) cm^-1 (interpolation only, no extra resolution; default: %(default)s)",
    )
    p.add_argument(
        "--wmin", type=float, default=0.0, metavar="CM-1", help="lowest wavenumber in cm^-1 (default: %(default)s)"
    )
    p.add_argument(
        "--wmax",
        type=float,
        default=None,
        metavar="CM-1",
        help=f"highest wavenumber in cm^-1 (default {DEFAULT_WMAX_CM1:g}, cut at the Nyquist wavenumber "
        "1/(2 dt c) with a warning; an explicit value beyond Nyquist is an error)",
    )
    p.add_argument(
        "--temperature-K",
        type=float,
        default=None,
        metavar="K",
        help="temperature in kelvin for beta and the quantum correction (default: the files' temperature_K "
        f"attribute, else {DEFAULT_TEMPERATURE_K:g} K)",
    )
    p.add_argument(
        "--quantum-correction",
        choices=CORRECTIONS,
        default="harmonic",
        help="quantum correction factor Q(beta hbar omega) applied to the classical spectral density "
        "(dimensionless): none = 1, harmonic = x/(1-exp(-x)) (gives the classical formula), "
        "schofield = exp(x/2), standard = 2/(1+exp(-x)) (default: %(default)s)",
    )
    p.add_argument(
        "--molecules",
        type=float,
        default=1.0,
        metavar="N",
        help="number of molecules in the simulated system: line shapes are divided by N (per molecule; "
        "default: %(default)s)",
    )
    p.add_argument(
        "--sticks",
        default=None,
        metavar="MODES.csv",
        help="overlay harmonic sticks from the modes.csv of painn-harmonic (IR in km/mol, Raman activity "
        "in Angstrom^4/amu, on a second y axis)",
    )
    p.add_argument("--no-plots", action="store_true", help="write CSV files only")
    return p


def _temperature(args, props) -> tuple[float, str]:
    if args.temperature_K is not None:
        return float(args.temperature_K), "command line"
    temps = [p.temperature_K for p in props if p.temperature_K is not None]
    if not temps:
        return DEFAULT_TEMPERATURE_K, "default (no temperature_K attribute in the files)"
    if max(temps) - min(temps) > 1e-6 * max(temps):
        warnings.warn(
            f"the files were run at different temperatures ({', '.join(f'{t:g}' for t in temps)} K); "
            f"using {temps[0]:g} K. Give --temperature-K or average runs of one temperature only.",
            UserWarning,
            stacklevel=2,
        )
    return float(temps[0]), "file attribute temperature_K"


def _peaks(spectrum, n: int = 6) -> list[float]:
    from scipy.signal import find_peaks

    y = np.nan_to_num(spectrum.intensity)
    if y.max() <= 0:
        return []
    idx, prop = find_peaks(y, prominence=0.02 * y.max())
    order = np.argsort(prop["prominences"])[::-1][:n]
    return sorted(float(spectrum.wavenumber_cm1[i]) for i in idx[order])


def _run(args) -> tuple[dict, Path, list[Path]]:
    out = Path(args.output)
    props = [read_properties(f) for f in args.files]
    do_ir, do_raman = args.ir, args.raman
    if not do_ir and not do_raman:
        do_ir = all(p.dipole_e_nm is not None for p in props)
        do_raman = all(p.polarizability_nm3 is not None for p in props)
        if not (do_ir or do_raman):
            raise InputError(
                "no quantity is recorded in every file: give files that all contain 'dipole' or all "
                "contain 'polarizability'"
            )
    for p in props:
        if do_ir and p.dipole_e_nm is None:
            raise InputError(f"{p.path}: --ir needs the 'dipole' dataset, which this file lacks")
        if do_raman and p.polarizability_nm3 is None:
            raise InputError(f"{p.path}: --raman needs the 'polarizability' dataset, which this file lacks")
    temperature, t_source = _temperature(args, props)
    sticks = read_modes_csv(args.sticks) if args.sticks else None
    opts = dict(
        temperature_K=temperature,
        max_corr_time_ps=args.max_corr_time_ps,
        resolution_cm1=args.resolution_cm1,
        window=args.window,
        zero_pad=args.zero_pad,
        wmin_cm1=args.wmin,
        wmax_cm1=args.wmax,
        quantum_correction=args.quantum_correction,
        n_molecules=args.molecules,
    )
    times = [p.time_ps for p in props]
    written: list[Path] = []
    meta: dict = {
        "files": [p.path for p in props],
        "file_attributes": {p.path: p.attrs for p in props},
        "temperature_K": temperature,
        "temperature_source": t_source,
        "quantum_correction": args.quantum_correction,
        "spectra": {},
    }
    ir = raman = None
    if do_ir:
        ir = ir_spectrum(times, [p.dipole_e_nm for p in props], **opts)
    if do_raman:
        raman = raman_spectra(times, [p.polarizability_nm3 for p in props], **opts)
    settings = ir.metadata if ir is not None else raman.activity.metadata
    meta["settings"] = settings

    comps = []
    if ir is not None:
        comps.append(ir)
    if raman is not None:
        comps.extend(raman.components().values())
    for s in comps:
        written.append(write_spectrum_csv(s, out / f"{s.name}.csv"))
        meta["spectra"][s.name] = {"file": f"{s.name}.csv", "units": s.units, "description": s.description}

    if not args.no_plots:
        from ..spectra.plots import plot_spectra

        qc = f"{args.quantum_correction} correction, {temperature:g} K"
        raman_y = f"Raman ({RAMAN_UNITS})"
        plots = []  # (file, spectra, labels, title, ylabel, harmonic sticks)
        if ir is not None:
            st = (
                (sticks.wavenumber_cm1, sticks.ir_intensity_km_per_mol, "harmonic IR intensity (km/mol)")
                if sticks
                else None
            )
            plots.append(("ir.png", [ir], ["MD"], f"IR ({qc})", f"IR ({IR_UNITS})", st))
        if raman is not None:
            st = (
                (sticks.wavenumber_cm1, sticks.raman_activity_A4_per_amu, "harmonic Raman activity (A^4/amu)")
                if sticks
                else None
            )
            plots += [
                ("raman_activity.png", [raman.activity], ["MD 45 iso + 7 aniso"], f"Raman activity ({qc})", raman_y, st),
                ("raman_iso_aniso.png", [raman.isotropic, raman.anisotropic], ["isotropic", "anisotropic"],
                 f"Raman isotropic / anisotropic ({qc})", raman_y, None),
                ("raman_polarized.png", [raman.parallel, raman.perpendicular], ["parallel (VV)", "perpendicular (VH)"],
                 f"Polarised Raman ({qc})", raman_y, None),
                ("raman_depolarization_ratio.png", [raman.depolarization_ratio], ["I_perp / I_par"],
                 "Depolarisation ratio", "depolarisation ratio (dimensionless)", None),
            ]  # fmt: skip
        for name, spectra, labels, title, ylabel, st in plots:
            written.append(plot_spectra(out / name, spectra, labels=labels, title=title, ylabel=ylabel, sticks=st))

    print(
        f"{len(props)} run(s), sampling interval {settings['dt_ps'] * 1e3:g} fs (Nyquist "
        f"{settings['nyquist_cm1']:.0f} cm^-1), tau_max {settings['max_corr_time_ps']:.4g} ps, "
        f"resolution (FWHM) {settings['resolution_fwhm_cm1']:.3g} cm^-1, "
        f"grid {settings['grid_spacing_cm1']:.3g} cm^-1, "
        f"range {settings['wmin_cm1']:g}-{settings['wmax_cm1']:.0f} cm^-1, T = {temperature:g} K ({t_source})"
    )
    if ir is not None:
        print(f"IR peaks (cm^-1): {', '.join(f'{v:.0f}' for v in _peaks(ir)) or 'none'}")
    if raman is not None:
        print(f"Raman activity peaks (cm^-1): {', '.join(f'{v:.0f}' for v in _peaks(raman.activity)) or 'none'}")
    meta_path = out / "metadata.json"
    meta["written"] = [str(p) for p in written]
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    return meta, meta_path, written


def _messages(caught) -> list[str]:
    """Unique messages of the user-facing warnings (library deprecation notices are dropped)."""
    return list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)))


def main(argv=None) -> int:
    """Entry point of ``painn-spectrum``; returns the exit status (0 ok, 1 bad input)."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            meta, meta_path, written = _run(args)
        except PainnDeployError as exc:
            for m in _messages(caught):
                print(f"warning: {m}", file=sys.stderr)
            print(f"error: {exc}", file=sys.stderr)
            return 1
    messages = _messages(caught)
    for m in messages:
        print(f"warning: {m}", file=sys.stderr)
    meta["warnings"] = messages
    meta_path.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    print(f"wrote {len(written) + 1} files to {meta_path.parent}/ (CSV: wavenumber_cm-1, intensity, stderr)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
