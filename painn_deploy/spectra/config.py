"""Configuration of ``painn-spectrum``: one frozen dataclass, from a YAML file and/or the command line.

:class:`SpectrumConfig` holds everything :func:`painn_deploy.spectra.compute_spectra` needs.  A YAML
file uses the field names as keys (unknown keys are an error that names them); command-line flags
override the file.  Each field's metadata carries its command-line flag and help text, so the
parser (:func:`painn_deploy.configuration.add_arguments`) and the dataclass cannot drift apart.  ``metadata.json`` of a run
stores the configuration under ``"config"``; JSON is YAML, so that block can be reused as a file.
"""

from dataclasses import dataclass, fields

from ..configuration import Config, option
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
    "underscores, or the --config key an option names); flags override the file. See docs/spectra.md."
)


@dataclass(frozen=True)
class SpectrumConfig(Config):
    """Everything ``painn-spectrum`` does; field names are the keys of a YAML configuration file."""

    files: tuple[str, ...] = option(
        (),
        None,
        "HDF5 property files of independent runs (datasets time [ps], dipole [e*nm or e*Angstrom], polarizability "
        "[nm^3 or Angstrom^3], with 'units' attributes; a replica axis after time holds independent runs), all "
        "with the same sampling interval",
        "PROPERTIES.h5",
        "files",
    )
    output: str | None = option(
        "spectra",
        "--output",
        "output directory for CSV, PNG and metadata.json (default: spectra/)",
        "DIR",
        "path",
        short="-o",
    )
    ir: bool = option(
        False,
        "--ir",
        "compute the IR spectrum (needs 'dipole'; without --ir/--raman: every quantity all files have)",
        kind="bool",
    )
    raman: bool = option(False, "--raman", "compute the Raman spectra (needs 'polarizability')", kind="bool")
    max_corr_time_ps: float | None = option(
        None,
        "--max-corr-time-ps",
        "maximum correlation time tau_max in ps (sets the resolution: FWHM = 1/(c tau_max) for hann/cos2). "
        f"Default: the tau_max giving {DEFAULT_RESOLUTION_CM1:g} cm^-1, at most 1/4 of the shortest run",
        "PS",
    )
    resolution_cm1: float | None = option(
        None,
        "--resolution-cm1",
        "line-shape resolution (FWHM of the window kernel) in cm^-1; alternative to --max-corr-time-ps",
        "CM-1",
    )
    window: str = option(
        "hann",
        "--window",
        "lag window on the correlation function: hann = cos2 = (1 + cos(pi t/tau_max))/2; none = rectangular "
        "(default: hann)",
        kind=WINDOWS,
    )
    zero_pad: float = option(
        4.0,
        "--zero-pad",
        "zero-padding factor (dimensionless, 1 to 64) of the cosine transform: grid spacing = 1/(2 c tau_max FACTOR) "
        "cm^-1 (interpolation only, no extra resolution; default: 4)",
        "FACTOR",
    )
    wmin_cm1: float = option(0.0, "--wmin", "lowest wavenumber in cm^-1 (default: 0)", "CM-1")
    wmax_cm1: float | None = option(
        None,
        "--wmax",
        f"highest wavenumber in cm^-1 (default {DEFAULT_WMAX_CM1:g}, cut at the Nyquist wavenumber 1/(2 dt c) "
        "with a warning; an explicit value beyond Nyquist is an error)",
        "CM-1",
    )
    temperature_K: float | None = option(
        None,
        "--temperature-K",
        "temperature in kelvin for beta and the quantum correction, for files without a temperature_K attribute "
        f"(default {DEFAULT_TEMPERATURE_K:g} K); the runs' own temperature is used, and another one is refused",
        "K",
    )
    quantum_correction: str = option(
        "auto",
        "--quantum-correction",
        "quantum correction factor Q(beta hbar omega) (dimensionless) applied to the spectral density: "
        "auto = harmonic for classical MD and kubo for ring-polymer MD files; none = 1; harmonic = x/(1-exp(-x)) "
        "(gives the classical formula); schofield = exp(x/2); standard = 2/(1+exp(-x)); kubo = the exact "
        "relation of Kubo-transformed (RPMD) correlation functions, same formula as harmonic. Files marked kubo "
        "accept only auto, kubo or harmonic (default: auto)",
        kind=QUANTUM_CHOICES,
    )
    n_molecules: int | None = option(
        None,
        "--molecules",
        "number of molecules whose dipole and polarizability were recorded: line shapes are divided by N (per "
        "molecule; default: the files' molecules attribute, which painn-simulate writes, else 1)",
        "N",
        "int",
    )
    integrator_timestep_fs: float | None = option(
        None,
        "--integrator-timestep-fs",
        "MD time step in fs for the Verlet frequency shift, for files that do not record it (default: the files' "
        "timestep_fs attribute; another value than theirs is refused)",
        "FS",
    )
    correct_integrator_shift: bool = option(
        False,
        "--correct-integrator-shift",
        "map each wavenumber back from the Verlet-shifted omega' to omega = (2/dt) sin(omega' dt/2), keeping band "
        "integrals (the shift is reported either way)",
        kind="bool",
    )
    sticks: str | None = option(
        None,
        "--sticks",
        "overlay the harmonic spectrum from the modes.csv of painn-harmonic (IR in km/mol, Raman activity in "
        "Angstrom^4/amu), broadened as the MD spectrum and in its units",
        "MODES.csv",
        "path",
    )
    plots: bool = option(True, "--no-plots", "write CSV files only (no PNG plots)", kind="bool")
    overwrite: bool = option(
        False,
        "--overwrite",
        "replace the results of an earlier painn-spectrum in OUTPUT, deleting its files that this run does not "
        "write again (without it, such a folder is refused)",
        kind="bool",
    )

    def options(
        self, temperature_K: float, correlation: str, integrator_timestep_fs: float | None, n_molecules: float
    ) -> SpectrumOptions:
        """The analysis options, with what the files decide (temperature, correlation kind, time step, molecules)."""
        decided = {"temperature_K", "correlation", "integrator_timestep_fs", "n_molecules"}
        names = {f.name for f in fields(SpectrumOptions)} - decided
        return SpectrumOptions(
            temperature_K=temperature_K,
            correlation=correlation,
            integrator_timestep_fs=integrator_timestep_fs,
            n_molecules=n_molecules,
            **{n: getattr(self, n) for n in names},
        )
