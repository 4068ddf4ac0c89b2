"""Configuration of ``painn-spectrum``: one frozen dataclass, from a YAML file and/or the command line.

:class:`SpectrumConfig` holds everything :func:`painn_deploy.spectra.compute_spectra` needs.  A YAML
file uses the field names as keys (unknown keys are an error that names them); command-line flags
override the file.  Each field's metadata carries its command-line flag and help text, so the
parser (:func:`add_arguments`) and the dataclass cannot drift apart.  ``metadata.json`` of a run
stores the configuration under ``"config"``; JSON is YAML, so that block can be reused as a file.
"""

import argparse
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import InputError
from .correlation import WINDOWS
from .quantum import QUANTUM_CHOICES
from .vibrational import DEFAULT_RESOLUTION_CM1, DEFAULT_WMAX_CM1, IR_UNITS, RAMAN_UNITS, SpectrumOptions

#: Temperature (K) when neither the configuration nor the files give one.
DEFAULT_TEMPERATURE_K = 300.0

DESCRIPTION = (
    "IR spectrum from the dipole autocorrelation and Raman spectra (isotropic, anisotropic, "
    "parallel/VV, perpendicular/VH, activity, depolarisation ratio) from the polarizability "
    "autocorrelation of MD property files. Every file, and every replica of a file with a replica axis, "
    "is an independent run; runs are averaged with equal weight and the shaded band and the stderr column "
    f"are the standard error over runs. IR line shape in {IR_UNITS} (integral over a band = intensity in "
    f"km/mol); Raman line shapes in {RAMAN_UNITS} (integral over a band = Raman activity in Angstrom^4/amu). "
    "Ring-polymer MD files (attribute correlation = kubo) are treated as Kubo-transformed correlation "
    "functions. Options can also come from --config FILE.yaml (keys: the option names below with "
    "underscores, e.g. resolution_cm1); flags override the file. See docs/spectra.md."
)


def _opt(default, flag=None, help="", metavar=None, kind="float"):
    return field(default=default, metadata={"flag": flag, "help": help, "metavar": metavar, "kind": kind})


@dataclass(frozen=True)
class SpectrumConfig:
    """Everything ``painn-spectrum`` does; field names are the keys of a YAML configuration file."""

    files: tuple[str, ...] = _opt(
        (),
        None,
        "HDF5 property files of independent runs (datasets time [ps], dipole [e*nm or e*Angstrom], polarizability "
        "[nm^3 or Angstrom^3], with 'units' attributes; a replica axis after time holds independent runs), all "
        "with the same sampling interval",
        "PROPERTIES.h5",
        "files",
    )
    output: str | None = _opt(
        "spectra", "--output", "output directory for CSV, PNG and metadata.json (default: spectra/)", "DIR", "path"
    )
    ir: bool = _opt(
        False,
        "--ir",
        "compute the IR spectrum (needs 'dipole'; without --ir/--raman: every quantity all files have)",
        kind="bool",
    )
    raman: bool = _opt(False, "--raman", "compute the Raman spectra (needs 'polarizability')", kind="bool")
    max_corr_time_ps: float | None = _opt(
        None,
        "--max-corr-time-ps",
        "maximum correlation time tau_max in ps (sets the resolution: FWHM = 1/(c tau_max) for hann/cos2). "
        f"Default: the tau_max giving {DEFAULT_RESOLUTION_CM1:g} cm^-1, at most 1/4 of the shortest run",
        "PS",
    )
    resolution_cm1: float | None = _opt(
        None,
        "--resolution-cm1",
        "line-shape resolution (FWHM of the window kernel) in cm^-1; alternative to --max-corr-time-ps",
        "CM-1",
    )
    window: str = _opt(
        "hann",
        "--window",
        "lag window on the correlation function: hann = cos2 = (1 + cos(pi t/tau_max))/2; none = rectangular "
        "(default: hann)",
        kind=WINDOWS,
    )
    zero_pad: float = _opt(
        4.0,
        "--zero-pad",
        "zero-padding factor (dimensionless, >= 1) of the cosine transform: grid spacing = 1/(2 c tau_max FACTOR) "
        "cm^-1 (interpolation only, no extra resolution; default: 4)",
        "FACTOR",
    )
    wmin_cm1: float = _opt(0.0, "--wmin", "lowest wavenumber in cm^-1 (default: 0)", "CM-1")
    wmax_cm1: float | None = _opt(
        None,
        "--wmax",
        f"highest wavenumber in cm^-1 (default {DEFAULT_WMAX_CM1:g}, cut at the Nyquist wavenumber 1/(2 dt c) "
        "with a warning; an explicit value beyond Nyquist is an error)",
        "CM-1",
    )
    temperature_K: float | None = _opt(
        None,
        "--temperature-K",
        "temperature in kelvin for beta and the quantum correction (default: the files' temperature_K "
        f"attribute, else {DEFAULT_TEMPERATURE_K:g} K)",
        "K",
    )
    quantum_correction: str = _opt(
        "auto",
        "--quantum-correction",
        "quantum correction factor Q(beta hbar omega) (dimensionless) applied to the spectral density: "
        "auto = harmonic for classical MD and kubo for ring-polymer MD files; none = 1; harmonic = x/(1-exp(-x)) "
        "(gives the classical formula); schofield = exp(x/2); standard = 2/(1+exp(-x)); kubo = the exact "
        "relation of Kubo-transformed (RPMD) correlation functions, same formula as harmonic. Files marked kubo "
        "accept only auto, kubo or harmonic (default: auto)",
        kind=QUANTUM_CHOICES,
    )
    n_molecules: float = _opt(
        1.0,
        "--molecules",
        "number of molecules in the simulated system: line shapes are divided by N (per molecule; default: 1)",
        "N",
    )
    integrator_timestep_fs: float | None = _opt(
        None,
        "--integrator-timestep-fs",
        "MD time step in fs for the Verlet frequency shift (default: the files' timestep_fs attribute)",
        "FS",
    )
    correct_integrator_shift: bool = _opt(
        False,
        "--correct-integrator-shift",
        "map each wavenumber back from the Verlet-shifted omega' to omega = (2/dt) sin(omega' dt/2), keeping band "
        "integrals (the shift is reported either way)",
        kind="bool",
    )
    sticks: str | None = _opt(
        None,
        "--sticks",
        "overlay harmonic sticks from the modes.csv of painn-harmonic (IR in km/mol, Raman activity in "
        "Angstrom^4/amu, on a second y axis)",
        "MODES.csv",
        "path",
    )
    plots: bool = _opt(True, "--no-plots", "write CSV files only (no PNG plots)", kind="bool")

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, _coerce(f, getattr(self, f.name)))

    @classmethod
    def from_mapping(cls, values: dict, source: str = "the configuration") -> "SpectrumConfig":
        """Build from a mapping keyed by field names; unknown keys are an :class:`InputError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(
                f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; the known keys are {', '.join(sorted(known))}"
            )
        return cls(**values)

    @classmethod
    def from_file(cls, path, **overrides) -> "SpectrumConfig":
        """Read a YAML file (keys = field names); ``overrides`` replace its values."""
        values = load_config_file(path)
        values.update(overrides)
        return cls.from_mapping(values, source=str(path))

    def options(self, temperature_K: float, correlation: str, integrator_timestep_fs: float | None) -> SpectrumOptions:
        """The analysis options, with what the files decide (temperature, correlation kind, time step)."""
        names = {f.name for f in fields(SpectrumOptions)} - {"temperature_K", "correlation", "integrator_timestep_fs"}
        return SpectrumOptions(
            temperature_K=temperature_K,
            correlation=correlation,
            integrator_timestep_fs=integrator_timestep_fs,
            **{n: getattr(self, n) for n in names},
        )

    def as_dict(self) -> dict:
        d = asdict(self)
        d["files"] = list(self.files)
        return d


def _coerce(f, value):
    """Check (and convert where unambiguous) one field's value; InputError names the field."""
    kind, name = f.metadata["kind"], f.name
    if kind == "files":
        if isinstance(value, (str, Path)):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, Path)) for v in value):
            raise InputError(f"'{name}' must be a list of file paths, got {value!r}")
        return tuple(str(v) for v in value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise InputError(f"'{name}' must be true or false, got {value!r}")
        return value
    if kind == "path":
        if value is None or isinstance(value, (str, Path)):
            return None if value is None else str(value)
        raise InputError(f"'{name}' must be a path, got {value!r}")
    if isinstance(kind, tuple):
        if value not in kind:
            raise InputError(f"'{name}' must be one of {', '.join(kind)}, got {value!r}")
        return value
    if value is None and f.default is None:
        return None
    if isinstance(value, bool):
        raise InputError(f"'{name}' must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"'{name}' must be a number, got {value!r}") from None


def load_config_file(path) -> dict:
    """The mapping of a YAML configuration file (InputError if missing, malformed or not a mapping)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such configuration file")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({exc})") from exc
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise InputError(f"{path}: a configuration file must be a mapping of option names to values")
    return dict(values)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--config`` and one argument per :class:`SpectrumConfig` field.

    Defaults are suppressed, so the parsed namespace holds only what was given on the command line
    (:func:`config_from_arguments` lays it over the file and the dataclass defaults).
    """
    parser.add_argument(
        "--config",
        metavar="FILE.yaml",
        help="YAML file of options (keys: the field names of SpectrumConfig, e.g. files, output, resolution_cm1, "
        "correct_integrator_shift); command-line flags override it",
    )
    for f in fields(SpectrumConfig):
        meta, kw = f.metadata, {"default": argparse.SUPPRESS, "help": f.metadata["help"], "dest": f.name}
        if meta["kind"] == "files":
            parser.add_argument(f.name, nargs="*", metavar=meta["metavar"], help=meta["help"], default=[])
            continue
        flags = ["-o", meta["flag"]] if f.name == "output" else [meta["flag"]]
        if meta["kind"] == "bool":
            kw["action"] = "store_false" if f.default else "store_true"
        elif isinstance(meta["kind"], tuple):
            kw["choices"] = meta["kind"]
        else:
            kw.update(type=str if meta["kind"] == "path" else float, metavar=meta["metavar"])
        parser.add_argument(*flags, **kw)
    return parser


def config_from_arguments(args: argparse.Namespace) -> SpectrumConfig:
    """Dataclass defaults <- ``--config`` file <- command-line flags."""
    given = dict(vars(args))
    path = given.pop("config", None)
    if not given.get("files"):
        given.pop("files", None)
    if path is None:
        return SpectrumConfig.from_mapping(given, source="the command line")
    return SpectrumConfig.from_file(path, **given)
