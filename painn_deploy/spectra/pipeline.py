"""``compute_spectra``: property files -> IR/Raman spectra -> CSV, PNG and metadata.json.

The whole of ``painn-spectrum`` as one library call on a :class:`~.config.SpectrumConfig`:

1. read the files (:func:`~.io.read_properties`); each file, and each replica of a file with a replica
   axis, is one independent run, averaged with equal weight;
2. check that the files are distinct runs of one kind (no file or trajectory twice, one bead number) holding
   the same kind of correlation function ("classical", or "kubo" for ring-polymer MD) and pick the quantum
   treatment (:func:`~.quantum.resolve_quantum_correction`);
3. compute the spectra (:func:`~.vibrational.ir_spectrum`, :func:`~.vibrational.raman_spectra`),
   optionally undoing the Verlet frequency shift (:mod:`.integrator`), whose size at the top of the
   range is reported either way;
4. write one CSV per spectrum, PNG plots and metadata.json (settings, treatment, shift, warnings).

Formulas and units: docs/spectra.md.
"""

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import units
from ..errors import InputError
from ..files import check_output_folder, earlier_outputs, remove_stale_outputs, write_json
from . import integrator
from .config import DEFAULT_TEMPERATURE_K, SpectrumConfig
from .io import Properties, Sticks, read_modes_csv, read_properties, write_spectrum_csv
from .vibrational import (
    IR_UNITS,
    RAMAN_UNITS,
    RamanSpectra,
    Spectrum,
    SpectrumWarning,
    harmonic_line_shape,
    ir_spectrum,
    raman_spectra,
)

#: The file a run writes last, naming the files it wrote; an output folder holding one is not overwritten by
#: accident.
METADATA = "metadata.json"
MIXED_TIMESTEPS = "file attribute timestep_fs (the largest of the files)"


@dataclass
class SpectraResult:
    """What :func:`compute_spectra` computed and wrote.

    ``metadata`` is the content of metadata.json; ``notices`` are informational lines (quantum
    treatment, integrator shift), ``warnings`` the messages of the warnings issued on the way.
    """

    config: SpectrumConfig
    ir: Spectrum | None
    raman: RamanSpectra | None
    metadata: dict
    notices: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    sticks: Sticks | None = None  # painn-harmonic's modes (--sticks), drawn over the MD spectra

    def spectra(self) -> dict[str, Spectrum]:
        """Every spectrum keyed by its file-name stem (``ir``, ``raman_isotropic``, ...)."""
        out = {"ir": self.ir} if self.ir is not None else {}
        if self.raman is not None:
            out.update(self.raman.components())
        return out

    def summary(self) -> str:
        """A few lines for the terminal: runs, sampling, resolution, range, temperature, peaks."""
        s, m = self.metadata["settings"], self.metadata
        lines = [
            f"{m['n_runs']} run(s) from {len(m['files'])} file(s), sampling interval "
            f"{s['dt_ps'] * units.FS_PER_PS:g} fs (Nyquist {s['nyquist_cm1']:.0f} cm^-1), tau_max "
            f"{s['max_corr_time_ps']:.4g} ps, resolution (FWHM) {s['resolution_fwhm_cm1']:.3g} cm^-1, grid "
            f"{s['grid_spacing_cm1']:.3g} cm^-1, range {s['wmin_cm1']:g}-{s['wmax_cm1']:.0f} cm^-1, "
            f"T = {m['temperature_K']:g} K ({m['temperature_source']}), per molecule of {m['molecules']:g} "
            f"({m['molecules_source']})"
        ]
        for name, spectrum in (("IR", self.ir), ("Raman activity", self.raman and self.raman.activity)):
            if spectrum is None:
                continue
            if s["resolution_fwhm_cm1"] > PEAK_LIST_FWHM_CM1:
                peaks = f"not listed at a resolution coarser than {PEAK_LIST_FWHM_CM1:g} cm^-1 (run longer)"
            else:
                peaks = ", ".join(f"{v:.0f}" for v in _peaks(spectrum)) or "none"
            lines.append(f"{name} peaks (cm^-1): {peaks}")
        return "\n".join(lines)


def compute_spectra(config: SpectrumConfig) -> SpectraResult:
    """Run the analysis described by ``config`` and write its outputs to ``config.output``
    (nothing is written when it is None).

    Raises :class:`~painn_deploy.errors.InputError` for unusable input.  The warnings issued on
    the way are stored in the result and in metadata.json, and re-issued to the caller.
    """
    recorded: list = []
    try:
        with warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("always")
            result = _analyse(config)
            if config.output is not None:
                earlier = earlier_outputs(config.output, METADATA)
                result.written.extend(_write_outputs(result, Path(config.output)))
            result.warnings = [m for m, _ in _unique(recorded)]
            result.metadata["warnings"] = result.warnings
            if config.output is not None:
                result.written.append(_write_metadata(result, Path(config.output)))
                remove_stale_outputs(config.output, earlier, result.written)
    finally:
        for message, category in _unique(recorded):
            warnings.warn(message, category, stacklevel=2)
    return result


def _unique(recorded) -> list[tuple[str, type]]:
    """(message, category) of the user-facing warnings, once each (library deprecations dropped)."""
    seen = {}
    for w in recorded:
        if issubclass(w.category, UserWarning):
            seen.setdefault(str(w.message), w.category)
    return list(seen.items())


def _quantities(config: SpectrumConfig, props: list[Properties]) -> tuple[bool, bool]:
    do_ir, do_raman = config.ir, config.raman
    if not do_ir and not do_raman:
        do_ir = all(p.dipole_e_nm is not None for p in props)
        do_raman = all(p.polarizability_nm3 is not None for p in props)
        if not (do_ir or do_raman):
            raise InputError(
                "no quantity is recorded in every file: give files that all contain 'dipole' or all "
                "contain 'polarizability'"
            )
    for p in props:
        for wanted, flag, name, data in (
            (do_ir, "--ir", "dipole", p.dipole_e_nm),
            (do_raman, "--raman", "polarizability", p.polarizability_nm3),
        ):
            if wanted and data is None:
                raise InputError(
                    f"{p.path}: {flag} needs the '{name}' dataset, which this file lacks: record it with "
                    f"painn-simulate --record-{name} (a model with a {name} head), or leave out {flag}"
                )
    return do_ir, do_raman


def _correlation(props: list[Properties]) -> str:
    kinds = {p.correlation for p in props}
    if len(kinds) > 1:
        listing = "; ".join(f"{k}: {', '.join(p.path for p in props if p.correlation == k)}" for k in sorted(kinds))
        raise InputError(
            "cannot average classical MD and ring-polymer MD (Kubo-transformed) correlation functions: they "
            f"need different quantum treatments and describe different dynamics ({listing}). Analyse them separately."
        )
    return kinds.pop()


def _temperature(config: SpectrumConfig, props: list[Properties]) -> tuple[float, str]:
    """The temperature of beta in the line shapes: the one the runs sampled (their ``temperature_K``)."""
    temps = list(dict.fromkeys(p.temperature_K for p in props if p.temperature_K is not None))
    if temps and max(temps) - min(temps) > 1e-6 * max(temps):
        raise InputError(
            f"the files were run at different temperatures ({', '.join(f'{t:g}' for t in temps)} K): a spectrum "
            f"averages runs of one temperature. Analyse the runs of each temperature separately"
        )
    if config.temperature_K is not None:
        given = float(config.temperature_K)
        if temps and abs(temps[0] - given) > 1e-6 * given:
            raise InputError(
                f"--temperature-K {given:g} differs from the temperature the runs were sampled at ({temps[0]:g} K, "
                f"their temperature_K attribute): beta in the line shapes must be the sampling temperature (another "
                f"one rescales every intensity, and an RPMD run's Kubo transform is at its own temperature). Leave "
                f"out --temperature-K"
            )
        return given, "command line"
    if not temps:
        return DEFAULT_TEMPERATURE_K, "default (no temperature_K attribute in the files)"
    return float(temps[0]), "file attribute temperature_K"


def _distinct_runs(props: list[Properties]) -> None:
    """Files that average into one spectrum are distinct runs of one kind: a file given twice, or two runs that
    repeat one trajectory (the same --seed), would shrink the standard error; ring polymers of different bead
    numbers are different approximations.  Runs of different models are averaged, with a warning."""
    seen: dict = {}
    for p in props:
        key = Path(p.path).resolve()
        if key in seen:
            raise InputError(f"{p.path} is given twice (also as {seen[key]}): name each run once")
        seen[key] = p.path
    series = [(p.path, p.dipole_e_nm if p.dipole_e_nm is not None else p.polarizability_nm3) for p in props]
    for k, (first, a) in enumerate(series):
        for second, b in series[k + 1 :]:
            m = min(len(a), len(b))  # (a run and a longer one of the same seed share their start)
            if a.shape[1:] == b.shape[1:] and m >= 2 and np.array_equal(a[:m], b[:m]):
                raise InputError(
                    f"{first} and {second} hold the same series (over their first {m} frames): one trajectory twice "
                    "(the same --seed?), which would count as two runs and shrink the standard error. Leave one out, "
                    "or run again with another --seed"
                )
    beads = sorted({p.beads for p in props if p.beads is not None})
    if len(beads) > 1:
        raise InputError(
            f"the files are ring-polymer runs of different bead numbers ({', '.join(map(str, beads))}): different "
            "approximations of the quantum dynamics, whose average has no meaning. Analyse them separately"
        )
    # a model is its checkpoint where it was exported from one (each export of it is another file)
    models = {p.attrs.get("checkpoint_sha256") or p.attrs.get("model_sha256") for p in props} - {None}
    if len(models) > 1:
        warnings.warn(
            f"the files were run with {len(models)} different models (attributes checkpoint_sha256, model_sha256): "
            "their spectra are averaged as if they were runs of one model",
            SpectrumWarning,
            stacklevel=3,
        )


def _molecules(config: SpectrumConfig, props: list[Properties]) -> tuple[float, str]:
    """The number of molecules the line shapes are per, and where it came from: --molecules, else the files'
    ``molecules`` attribute (the molecules whose dipole and polarizability painn-simulate recorded), else 1."""
    counts = {p.attrs.get("molecules") for p in props}
    if config.n_molecules is not None:
        if config.n_molecules < 1:
            raise InputError(f"--molecules must be at least 1 (the molecules recorded), not {config.n_molecules}")
        recorded = counts - {None}
        if recorded and recorded != {config.n_molecules}:
            warnings.warn(
                f"--molecules {config.n_molecules} differs from the molecules painn-simulate recorded in the files "
                f"({', '.join(str(c) for c in sorted(recorded))}; attribute molecules): the line shapes are divided "
                f"by {config.n_molecules}",
                SpectrumWarning,
                stacklevel=3,
            )
        return float(config.n_molecules), "command line"
    if len(counts) > 1:
        raise InputError(
            f"the files recorded different numbers of molecules ({', '.join(sorted(str(c or 'none') for c in counts))}; "
            "attribute molecules): a spectrum per molecule averages runs of one system. Analyse each system's "
            "files separately"
        )
    count = counts.pop()
    if count is None:
        return 1.0, "default (no molecules attribute in the files)"
    return float(count), "file attribute molecules"


def _timestep(config: SpectrumConfig, props: list[Properties]) -> tuple[float | None, str]:
    """MD time step (fs) for the integrator shift, and where it came from."""
    if config.integrator_timestep_fs is not None:
        given = float(config.integrator_timestep_fs)
        recorded = sorted({p.timestep_fs for p in props if p.timestep_fs is not None})
        if any(abs(step - given) > 1e-9 * given for step in recorded):
            raise InputError(
                f"--integrator-timestep-fs {given:g} differs from the time step the runs were made with "
                f"({', '.join(f'{step:g}' for step in recorded)} fs, their timestep_fs attribute): the frequency shift "
                "is that of the integrator's own step. Leave out --integrator-timestep-fs"
            )
        return given, "command line"
    steps = {p.timestep_fs for p in props}
    missing = [p.path for p in props if p.timestep_fs is None]
    if missing and len(steps) > 1:
        raise InputError(
            f"only some files give the MD time step (attribute timestep_fs; missing in {', '.join(missing)}): "
            "give it with --integrator-timestep-fs"
        )
    steps.discard(None)
    if not steps:
        return None, "unknown (no timestep_fs attribute)"
    if len(steps) > 1:
        if config.correct_integrator_shift:
            raise InputError(
                f"the files were run with different time steps ({', '.join(f'{s:g}' for s in sorted(steps))} fs); "
                "the integrator shift can only be corrected for one: analyse them separately"
            )
        return max(steps), MIXED_TIMESTEPS
    return steps.pop(), "file attribute timestep_fs"


def _shift_report(settings: dict, step_fs: float | None, source: str, corrected: bool) -> tuple[dict, str, bool]:
    """(metadata block, message, whether it deserves a warning) for the Verlet frequency shift."""
    if step_fs is None:
        return (
            {"timestep_fs": None, "corrected": False},
            "the files give no MD time step (attribute timestep_fs), so the Verlet frequency shift "
            "omega' = (2/dt) arcsin(omega dt/2) was not assessed; give --integrator-timestep-fs",
            False,
        )
    top = settings["wmax_cm1"]
    shift = float(integrator.shift_cm1(top, step_fs))
    block = {
        "timestep_fs": step_fs,
        "timestep_source": source,
        "at_wavenumber_cm1": top,
        "shift_cm1": shift,
        "relative_shift": shift / top,
        "formula": "omega' = (2/dt) arcsin(omega dt/2)",
        "corrected": corrected,
    }
    what = (
        f"a {step_fs:g} fs Verlet-type time step shifts harmonic lines up by {shift:.1f} cm^-1 "
        f"({100 * shift / top:.2f} %) at {top:.0f} cm^-1, the top of the range (omega' = (2/dt) arcsin(omega dt/2))"
    )
    if corrected:
        return block, f"{what}; corrected: wavenumbers mapped back by omega = (2/dt) sin(omega' dt/2)", False
    remedy = (
        "the files were run with different time steps, the largest assessed here: analyse each time step "
        "separately to correct the shift (--correct-integrator-shift)"
        if source == MIXED_TIMESTEPS
        else "--correct-integrator-shift maps them back"
    )
    return block, f"{what}; {remedy}", shift > 0.5 * settings["resolution_fwhm_cm1"]


def _analyse(config: SpectrumConfig) -> SpectraResult:
    if not config.files:
        raise InputError("no property files given: name at least one properties.h5 (or 'files' in --config)")
    if config.output is not None:
        check_output_folder(config.output, METADATA, config.overwrite)
    props = [read_properties(f) for f in config.files]
    sticks = read_modes_csv(config.sticks) if config.sticks else None
    do_ir, do_raman = _quantities(config, props)
    correlation = _correlation(props)
    temperature, t_source = _temperature(config, props)
    step_fs, step_source = _timestep(config, props)
    n_molecules, molecules_source = _molecules(config, props)
    _distinct_runs(props)
    options = config.options(temperature, correlation, step_fs, n_molecules)
    runs = [run for p in props for run in p.runs()]
    times = [r.time_ps for r in runs]
    ir = ir_spectrum(times, [r.dipole_e_nm for r in runs], options=options) if do_ir else None
    raman = raman_spectra(times, [r.polarizability_nm3 for r in runs], options=options) if do_raman else None
    settings = ir.metadata if ir is not None else raman.activity.metadata

    notices = [f"quantum treatment: {settings['quantum_correction']} ({settings['quantum_correction_reason']})"]
    shift, message, serious = _shift_report(settings, step_fs, step_source, config.correct_integrator_shift)
    if serious:
        warnings.warn(
            f"{message}; this exceeds half the resolution ({settings['resolution_fwhm_cm1']:.3g} cm^-1 FWHM, half: "
            f"{settings['resolution_fwhm_cm1'] / 2:.3g} cm^-1)",
            SpectrumWarning,
            stacklevel=2,
        )
    else:
        notices.append(message)
    meta = {
        "files": [p.path for p in props],
        "runs": [r.label for r in runs],
        "n_runs": len(runs),
        "replicas": {p.path: p.replicas for p in props},
        "beads": {p.path: p.beads for p in props},
        "file_attributes": {p.path: p.attrs for p in props},
        "temperature_K": temperature,
        "temperature_source": t_source,
        "molecules": n_molecules,
        "molecules_source": molecules_source,
        "correlation": correlation,
        "quantum_correction": settings["quantum_correction"],
        "quantum_correction_requested": config.quantum_correction,
        "quantum_correction_reason": settings["quantum_correction_reason"],
        "integrator_shift": shift,
        "settings": settings,
        "notices": notices,
        "config": config.as_dict(),
        "spectra": {},
    }
    return SpectraResult(config, ir, raman, meta, notices, sticks=sticks)


#: Peaks are listed only at a resolution (FWHM) at least this fine: coarser, bands merge into a few maxima.
PEAK_LIST_FWHM_CM1 = 100.0


def _peaks(spectrum: Spectrum, n: int = 6) -> list[float]:
    from scipy.signal import find_peaks

    y = np.nan_to_num(spectrum.intensity)
    if y.max() <= 0:
        return []
    idx, prop = find_peaks(y, prominence=0.02 * y.max())
    order = np.argsort(prop["prominences"])[::-1][:n]
    return sorted(float(spectrum.wavenumber_cm1[i]) for i in idx[order])


def _write_outputs(result: SpectraResult, out: Path) -> list[Path]:
    written = []
    for s in result.spectra().values():
        written.append(write_spectrum_csv(s, out / f"{s.name}.csv"))
        result.metadata["spectra"][s.name] = {"file": f"{s.name}.csv", "units": s.units, "description": s.description}
    if result.config.plots:
        written.extend(_write_plots(result, out))
    return written


def _write_plots(result: SpectraResult, out: Path) -> list[Path]:
    from .plots import plot_spectra, unicode_units

    ir, raman, meta = result.ir, result.raman, result.metadata
    sticks = result.sticks
    imaginary = np.asarray([] if sticks is None else sticks.wavenumber_cm1, dtype=float)
    imaginary = imaginary[imaginary < 0]
    if len(imaginary):
        warnings.warn(
            f"{len(imaginary)} imaginary mode(s) of {result.config.sticks} (down to {abs(imaginary.min()):.1f}i "
            "cm^-1) are left out of the harmonic line shape: the harmonic analysis was not at a minimum",
            SpectrumWarning,
            stacklevel=2,
        )
    beads = sorted({b for b in meta["beads"].values() if b is not None})
    dynamics = "classical MD"
    if meta["correlation"] == "kubo":
        dynamics = f"RPMD, {'/'.join(map(str, beads))} beads" if beads else "RPMD"
    qc = (
        f"{dynamics}, {meta['temperature_K']:g} K, "
        f"{meta['settings']['resolution_fwhm_cm1']:.3g} cm⁻¹ FWHM, {meta['quantum_correction']} quantum treatment"
    )
    if meta["integrator_shift"].get("corrected"):
        qc += ", integrator shift corrected"
    raman_y = f"Raman ({unicode_units(RAMAN_UNITS)})"
    harmonic = "harmonic, same resolution"

    def with_sticks(spectrum, intensity, label):  # the MD spectrum, and the harmonic one broadened alike
        if sticks is None:
            return [spectrum], [label]
        return [spectrum, harmonic_line_shape(sticks.wavenumber_cm1, intensity, spectrum)], [label, harmonic]

    plots = []  # (file, spectra, labels, title, ylabel)
    if ir is not None:
        spectra, labels = with_sticks(ir, sticks.ir_intensity_km_per_mol if sticks else None, "MD")
        plots.append(("ir.png", spectra, labels, f"IR ({qc})", f"IR ({unicode_units(IR_UNITS)})"))
    if raman is not None:
        activity = sticks.raman_activity_A4_per_amu if sticks else None
        spectra, labels = with_sticks(raman.activity, activity, "MD 45 iso + 7 aniso")
        plots += [
            ("raman_activity.png", spectra, labels, f"Raman activity ({qc})", raman_y),
            ("raman_iso_aniso.png", [raman.isotropic, raman.anisotropic], ["isotropic", "anisotropic"],
             f"Raman isotropic / anisotropic ({qc})", raman_y),
            ("raman_polarized.png", [raman.parallel, raman.perpendicular], ["parallel (VV)", "perpendicular (VH)"],
             f"Polarised Raman ({qc})", raman_y),
            ("raman_depolarization_ratio.png", [raman.depolarization_ratio], ["I_perp / I_par"],
             f"Depolarisation ratio ({qc})", "depolarisation ratio (dimensionless)"),
        ]  # fmt: skip
    return [
        plot_spectra(out / name, spectra, labels=labels, title=title, ylabel=ylabel)
        for name, spectra, labels, title, ylabel in plots
    ]


def _write_metadata(result: SpectraResult, out: Path) -> Path:
    path = out / METADATA
    result.metadata["written"] = [str(p) for p in result.written] + [str(path)]
    return write_json(path, result.metadata, indent=2, default=str)
