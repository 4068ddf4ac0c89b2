"""Reading MD property files and writing/reading spectrum and normal-mode CSV files.

Property file (HDF5, written by the MD part of painn-deploy):

* ``time`` [T] float64, attribute ``units``: "ps" (also "fs", "ns");
* ``dipole`` [T, 3] or, for R > 1 replicas, [T, R, 3], attribute ``units``: "e*nm" or
  "e*Angstrom" (also "e*Bohr", "Debye");
* ``polarizability`` [T, 3, 3] or [T, R, 3, 3], attribute ``units``: "nm^3" or "Angstrom^3"
  (also "Bohr^3");
* optional root attributes ``temperature_K``, ``timestep_fs``, ``record_interval_steps``,
  ``beads``, ``replicas`` (default 1), ``correlation`` ("classical", the default, or "kubo" for
  ring-polymer MD, whose bead-averaged properties give Kubo-transformed correlation functions) and
  ``molecules`` (how many molecules the dipole and polarizability are the sums of; line shapes are per molecule).

Values are converted to ps, e*nm and nm^3 with the factors of :mod:`painn_deploy.units`.  Each
replica is an independent run (:meth:`Properties.runs`).
"""

import csv
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import units
from ..errors import InputError
from ..files import require_file
from .quantum import CORRELATIONS
from .vibrational import SpectrumWarning, sampling_interval

SPECTRUM_COLUMNS = ("wavenumber_cm-1", "intensity", "stderr")
MODES_COLUMNS = ("mode", "wavenumber_cm-1", "ir_intensity_km_per_mol", "raman_activity_A4_per_amu")

_TIME_TO_PS = {"ps": 1.0, "fs": units.PS_PER_FS, "ns": units.PS_PER_NS}
_DIPOLE_TO_E_NM = {k: v * units.NM_PER_ANGSTROM for k, v in units.DIPOLE_TO_E_ANGSTROM.items()}
_POLARIZABILITY_TO_NM3 = {k: v * units.NM_PER_ANGSTROM**3 for k, v in units.POLARIZABILITY_TO_ANGSTROM3.items()}


def _normalise_unit(text: str) -> str:
    return text.strip().replace(" ", "").replace("Å", "Angstrom").replace("·", "*").lower()


def _factor(table: dict[str, float], unit: str, what: str, path: str) -> float:
    lookup = {_normalise_unit(k): v for k, v in table.items()}
    key = _normalise_unit(unit)
    if key not in lookup:
        raise InputError(
            f"{path}: {what} has units '{unit}', which painn-spectrum does not know. Accepted: "
            f"{', '.join(table)}. Fix the 'units' attribute of the dataset if the values are in one of them."
        )
    return lookup[key]


@dataclass
class Run:
    """One independent time series: a file, or one replica of a file with a replica axis."""

    label: str
    time_ps: np.ndarray
    dipole_e_nm: np.ndarray | None  # [T, 3]
    polarizability_nm3: np.ndarray | None  # [T, 3, 3]


@dataclass
class Properties:
    """Time series read from one property file, in ps, e*nm and nm^3.

    With R > 1 replicas the arrays keep the file's replica axis after time: dipole [T, R, 3],
    polarizability [T, R, 3, 3]; :meth:`runs` splits them into R independent runs.
    """

    path: str
    time_ps: np.ndarray
    dipole_e_nm: np.ndarray | None = None
    polarizability_nm3: np.ndarray | None = None
    temperature_K: float | None = None
    attrs: dict = field(default_factory=dict)
    replicas: int = 1
    correlation: str = "classical"
    timestep_fs: float | None = None
    beads: int | None = None  # of a ring-polymer run (file attribute)

    @property
    def n_frames(self) -> int:
        return int(self.time_ps.shape[0])

    def runs(self) -> list[Run]:
        """The independent runs of the file: one, or one per replica (labelled ``path[replica k]``)."""
        if self.replicas == 1:
            return [Run(self.path, self.time_ps, self.dipole_e_nm, self.polarizability_nm3)]

        def pick(a, k):
            return None if a is None else a[:, k]

        return [
            Run(f"{self.path}[replica {k}]", self.time_ps, pick(self.dipole_e_nm, k), pick(self.polarizability_nm3, k))
            for k in range(self.replicas)
        ]


def _read_quantity(f, name: str, table: dict[str, float], path, own_unit: str) -> np.ndarray:
    """Dataset ``name`` of the open file in the unit of ``table``'s factors (``own_unit``, painn-simulate's),
    from its 'units' attribute."""
    ds = f[name]
    unit = ds.attrs.get("units")
    if unit is None:
        raise InputError(
            f"{path}: dataset '{name}' has no 'units' attribute, so its unit is unknown. Add one of "
            f"{', '.join(table)}, e.g. h5py.File(path, 'a')['{name}'].attrs['units'] = '{own_unit}'"
        )
    if isinstance(unit, bytes):
        unit = unit.decode()
    return np.asarray(ds[()], dtype=np.float64) * _factor(table, str(unit), name, path)


def _replica_count(data: np.ndarray, trailing: tuple[int, ...], name: str, n_frames: int, path: str) -> int | None:
    """R of an array [T, *trailing] (None: no replica axis) or [T, R, *trailing]; InputError otherwise."""
    dims = ", ".join(map(str, trailing))
    if data.shape == (n_frames, *trailing):
        return None
    if data.ndim == len(trailing) + 2 and data.shape[0] == n_frames and data.shape[2:] == trailing:
        return int(data.shape[1])
    raise InputError(
        f"{path}: '{name}' must have shape [T, {dims}] or, with replicas, [T, R, {dims}] for T = {n_frames} "
        f"frames, got {data.shape}"
    )


def _number_attr(attrs: dict, name: str, path, what: str, kind=float):
    """A numeric file attribute (None when absent), or :class:`InputError` naming it."""
    value = attrs.get(name)
    if value is None:
        return None
    try:
        number = kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(
            f"{path}: the '{name}' attribute must be {what}, got {value!r}; set it with "
            f"h5py.File(path, 'a').attrs['{name}'] = ..."
        ) from None
    if kind is int and number != float(value):
        raise InputError(f"{path}: the '{name}' attribute must be {what}, got {value!r}")
    return number


def _text_attr(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_properties(path) -> Properties:
    """Read a property file (see the module docstring) and convert to ps, e*nm, nm^3.

    The replica count is the file attribute ``replicas`` (default 1) and must match the arrays'
    replica axis.  ``correlation`` defaults to "classical" when the attribute is absent.
    """
    import h5py

    path = str(path)
    require_file(
        path, "property file", "give the properties.h5 of a run with --record-dipole or --record-polarizability"
    )
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        if "lock" not in str(exc):
            raise InputError(f"{path}: cannot be read as HDF5 ({exc}); is it a properties.h5 file?") from exc
        try:  # a run still writing it holds the lock; it flushes the file at each checkpoint
            f = h5py.File(path, "r", locking=False)
        except OSError as again:
            raise InputError(
                f"{path} is open for writing (a painn-simulate still running?) and cannot be read now ({again}); "
                "read it when the run has ended or after its next checkpoint"
            ) from again
        warnings.warn(
            f"{path} is open for writing (a painn-simulate still running?): this is the spectrum of the frames "
            "written up to its last checkpoint",
            SpectrumWarning,
            stacklevel=2,
        )
    with f:
        if "time" not in f:
            raise InputError(f"{path}: no 'time' dataset; a property file needs time [T] in ps")
        t = _read_quantity(f, "time", _TIME_TO_PS, path, "ps")
        if t.ndim != 1:
            raise InputError(f"{path}: 'time' must be 1-D [T], got shape {t.shape}")
        sampling_interval(t, str(path))  # enough frames, equally spaced
        dipole = _read_quantity(f, "dipole", _DIPOLE_TO_E_NM, path, "e*nm") if "dipole" in f else None
        pol = (
            _read_quantity(f, "polarizability", _POLARIZABILITY_TO_NM3, path, "nm^3") if "polarizability" in f else None
        )
        if dipole is None and pol is None:
            raise InputError(f"{path}: neither 'dipole' nor 'polarizability' is recorded; nothing to analyse")
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
    attrs = {k: (_text_attr(v) if isinstance(v, bytes) else v) for k, v in attrs.items()}
    temp = _number_attr(attrs, "temperature_K", path, "a temperature in kelvin")
    if temp is not None and not (math.isfinite(temp) and temp > 0):
        raise InputError(
            f"{path}: the 'temperature_K' attribute must be a positive temperature in kelvin, got {temp}; set it "
            f"with h5py.File(path, 'a').attrs['temperature_K'] = ..."
        )
    step = _number_attr(attrs, "timestep_fs", path, "a time step in fs")
    if step is not None and not (math.isfinite(step) and step > 0):
        raise InputError(
            f"{path}: the 'timestep_fs' attribute must be the MD time step in fs (positive), got {step}; set it with "
            "h5py.File(path, 'a').attrs['timestep_fs'] = ..., or delete it"
        )
    beads = _number_attr(attrs, "beads", path, "a whole number", int)
    interval = _number_attr(attrs, "record_interval_steps", path, "a whole number", int)
    if interval is not None and interval < 1:
        raise InputError(f"{path}: the 'record_interval_steps' attribute must be at least 1, got {interval}")
    if step is not None and interval is not None and len(t) > 1:
        spacing_fs = float(t[1] - t[0]) * 1e3
        if not math.isclose(spacing_fs, step * interval, rel_tol=1e-4):
            raise InputError(
                f"{path}: its frames are {spacing_fs:.6g} fs apart, but its attributes say every {interval} step(s) "
                f"of {step:g} fs ({step * interval:g} fs): the 'time' dataset (ps) or the 'timestep_fs' and "
                "'record_interval_steps' attributes are wrong; correct them with h5py.File(path, 'a')"
            )

    found = {}
    for name, data, trailing in (("dipole", dipole, (3,)), ("polarizability", pol, (3, 3))):
        if data is not None:
            found[name] = _replica_count(data, trailing, name, t.shape[0], path)
            if not np.all(np.isfinite(data)):
                frame = int(np.argmin(np.isfinite(data).reshape(len(data), -1).all(axis=1)))
                raise InputError(
                    f"{path}: {name} contains NaN or infinite values from frame {frame} on (a crashed run?); "
                    "analyse a copy of the file cut before that frame"
                )
    axes = set(found.values())
    if len(axes) > 1:
        raise InputError(f"{path}: 'dipole' and 'polarizability' have different replica axes: {found}")
    axis = axes.pop()  # None: no replica axis
    declared = _number_attr(attrs, "replicas", path, "a whole number", int)
    if declared is not None and (axis or 1) != declared:
        raise InputError(
            f"{path}: the file attribute replicas = {declared}, but the data have "
            f"{'no replica axis' if axis is None else f'a replica axis of {axis}'} ({', '.join(found)})"
        )
    replicas = axis or 1
    if axis == 1:  # [T, 1, ...]: a single replica
        dipole = None if dipole is None else dipole[:, 0]
        pol = None if pol is None else pol[:, 0]

    correlation = attrs.get("correlation")
    if correlation is None:
        correlation = "classical"
        if beads is not None and beads > 1:
            warnings.warn(
                f"{path}: beads = {beads} but no 'correlation' attribute: read as classical correlation "
                "functions (quantum correction as requested). If this is a ring-polymer MD run, its correlation "
                "functions are Kubo-transformed; mark it with h5py.File(path, 'a').attrs['correlation'] = 'kubo'",
                SpectrumWarning,
                stacklevel=2,
            )
    correlation = str(correlation).strip().lower()
    if correlation not in CORRELATIONS:
        raise InputError(
            f"{path}: unknown 'correlation' attribute {correlation!r}: expected one of {', '.join(CORRELATIONS)}"
        )
    return Properties(path, t, dipole, pol, temp, attrs, replicas, correlation, step, beads)


def write_spectrum_csv(spectrum, path) -> Path:
    """Write columns wavenumber_cm-1, intensity, stderr (``nan`` where undefined)."""
    rows = zip(spectrum.wavenumber_cm1, spectrum.intensity, spectrum.stderr, strict=True)
    return _write_csv(path, SPECTRUM_COLUMNS, ([f"{v:.10g}" for v in row] for row in rows))


def _write_csv(path, header, rows) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _read_csv(path, required: tuple[str, ...], fix: str) -> dict[str, np.ndarray]:
    path = require_file(path, "CSV file", fix)
    try:
        with path.open(newline="") as fh:
            rows = [r for r in csv.reader(fh) if r and not r[0].startswith("#")]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path} is not a CSV text file ({type(exc).__name__}); {fix}") from None
    if not rows:
        raise InputError(f"{path}: empty CSV file")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(header)}")
    try:
        data = np.array([[float(v) for v in r] for r in rows[1:]], dtype=np.float64).reshape(-1, len(header))
    except ValueError as exc:
        raise InputError(f"{path}: non-numeric value ({exc})") from exc
    return {h: data[:, i] for i, h in enumerate(header)}


def read_spectrum_csv(path) -> dict[str, np.ndarray]:
    """Read a spectrum CSV written by :func:`write_spectrum_csv` (arrays keyed by column)."""
    return _read_csv(path, SPECTRUM_COLUMNS, "give a spectrum CSV written by painn-spectrum")


def write_modes_csv(result, path) -> Path:
    """Write the normal-mode table of a :class:`~painn_deploy.spectra.harmonic.HarmonicResult`."""
    modes = zip(result.wavenumber_cm1, result.ir_intensity_km_per_mol, result.raman_activity_A4_per_amu, strict=True)
    rows = ([i + 1, f"{nu:.6f}", f"{ir:.8g}", f"{ra:.8g}"] for i, (nu, ir, ra) in enumerate(modes))
    return _write_csv(path, MODES_COLUMNS, rows)


def write_molden(result, path) -> Path:
    """Write the normal modes in Molden's format (``[FREQ]``, ``[FR-COORD]`` in Bohr, ``[FR-NORM-COORD]``, and
    ``[INT]`` with the IR intensities in km/mol), which Molden, Jmol and Avogadro animate.  Imaginary modes have
    negative wavenumbers.  Needs the atomic numbers."""
    from ..elements import symbol

    if result.atomic_numbers is None:
        raise InputError("a Molden file names the atoms: give the atomic numbers to the harmonic analysis")
    lines = ["[Molden Format]", "[FREQ]"]
    lines += [f"{nu:.4f}" for nu in result.wavenumber_cm1]
    lines.append("[FR-COORD]")
    for z, xyz in zip(result.atomic_numbers, np.asarray(result.positions_nm) * units.BOHR_PER_NM, strict=True):
        lines.append(f"{symbol(int(z)):<2} {xyz[0]:16.10f} {xyz[1]:16.10f} {xyz[2]:16.10f}")
    lines.append("[FR-NORM-COORD]")
    for k, displacement in enumerate(np.asarray(result.displacements_nm)):
        displacement = displacement / np.abs(displacement).max()  # (viewers scale the motion themselves)
        lines.append(f"vibration {k + 1}")
        lines += [f"{d[0]:12.8f} {d[1]:12.8f} {d[2]:12.8f}" for d in displacement]
    intensities = np.nan_to_num(np.asarray(result.ir_intensity_km_per_mol, dtype=np.float64))
    lines.append("[INT]")
    lines += [f"{a:.6f}" for a in intensities]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Sticks:
    """Harmonic stick spectrum read from a modes CSV (``nan`` where not available)."""

    wavenumber_cm1: np.ndarray
    ir_intensity_km_per_mol: np.ndarray
    raman_activity_A4_per_amu: np.ndarray


def read_modes_csv(path) -> Sticks:
    """Read the modes CSV written by painn-harmonic (:func:`write_modes_csv`)."""
    d = _read_csv(path, MODES_COLUMNS, "give the modes.csv written by painn-harmonic")
    return Sticks(d["wavenumber_cm-1"], d["ir_intensity_km_per_mol"], d["raman_activity_A4_per_amu"])
