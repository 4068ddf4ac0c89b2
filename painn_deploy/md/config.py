"""Simulation configuration: one frozen dataclass shared by the CLI and the Python API."""

import math
from dataclasses import dataclass, fields
from typing import Optional, Tuple

from .. import units
from ..configuration import Config, option
from ..errors import InputError
from ..resources import WATER_MODELS

MIN_TIMESTEP_FS = 0.01  # shorter steps are a unit mistake (ps given as fs), not a choice

TRAJECTORY_FORMATS = ("dcd", "xtc")

INTEGRATORS = ("langevin", "nose-hoover", "verlet")
BACKENDS = ("auto", "torch", "python")
SWITCHES = ("auto", "on", "off")
RPMD_INTEGRATORS = ("batched", "openmm")
MAX_WAVENUMBER_CM1 = 4000.0  # highest frequency the recorded series must resolve
MAX_SEED = 2**31 - 2  # OpenMM takes int seeds, and the driver uses seed + 1


def flag(name: str) -> str:
    """The command-line flag of a configuration field (``timestep_fs`` -> ``--timestep``)."""
    for f in fields(SimulationConfig):
        if f.name == name:
            return f.metadata["flag"] or f.metadata["metavar"]
    raise KeyError(name)


def parse_margin(text) -> Tuple[float, bool]:
    """``--envelope-margin``: (value, is_fraction) from ``"0.3"`` (Angstrom) or ``"20%"`` (of each distance
    bound); ``"inf"`` never stops (warnings only).  Raises InputError."""
    raw = str(text).strip()
    fraction = raw.endswith("%")
    try:
        value = float(raw[:-1] if fraction else raw)
    except ValueError:
        value = float("nan")
    if not value >= 0:  # also NaN
        raise InputError(
            f"--envelope-margin {text!r} is not a distance in Angstrom (e.g. 0.3) or a percentage (e.g. 20%); "
            f"use inf to warn without stopping"
        )
    return (value / 100.0 if fraction else value), fraction


def nyquist_limit_fs(max_wavenumber_cm1: float = MAX_WAVENUMBER_CM1) -> float:
    """Longest sampling interval (fs) that resolves ``max_wavenumber_cm1``: 1 / (2 c nu_max)."""
    return 1.0 / (2.0 * units.SPEED_OF_LIGHT_CM_PER_S * max_wavenumber_cm1) * 1e15


@dataclass(frozen=True)
class SimulationConfig(Config):
    """Everything ``painn-simulate`` does; field names are the keys of a YAML configuration file (``--config``)."""

    structure: Optional[str] = option(
        None, None, "starting structure (PDB with element columns; a CRYST1 box makes it periodic)", "STRUCTURE",
        "path",
    )  # fmt: skip
    model: Optional[str] = option(
        None, "--model", "exported model (.pt from painn-export) or a painn-train checkpoint (.ckpt, exported on the "
        "fly); default: the bundled ethanol model when the structure is ethanol", "MODEL", "path",
    )  # fmt: skip
    output: str = option("md_run", "--output", "output directory", "DIR", "str", short="-o")
    steps: int = option(10000, "--steps", "number of MD steps (1e6 accepted)", "N", "int")
    temperature_K: float = option(300.0, "--temperature", "temperature (K)", "K")
    timestep_fs: float = option(0.5, "--timestep", "time step (fs)", "FS")
    integrator: str = option(
        "langevin", "--integrator", "langevin: openmmtools BAOAB (NVT); nose-hoover: Nose-Hoover chain (NVT); "
        "verlet: velocity Verlet (NVE; ring polymers: no thermostat, H_P conserved), after an equilibration "
        "(--equilibration-steps) with the langevin / PILE thermostat at --friction", kind=INTEGRATORS,
    )  # fmt: skip
    friction_per_ps: float = option(
        1.0, "--friction", "Langevin friction / collision rate (1/ps); for ring polymers the centroid's", "PER_PS"
    )
    beads: int = option(
        1, "--beads", "ring-polymer beads P (> 1: RPMD, PILE thermostat; all beads in one batched evaluation)", "P",
        "int",
    )  # fmt: skip
    rpmd_integrator: str = option(
        "batched", "--rpmd-integrator", "batched: normal-mode CustomIntegrator, every bead in one evaluation; "
        "openmm: OpenMM's RPMDIntegrator, one evaluation per bead (for comparison; no recording)",
        kind=RPMD_INTEGRATORS,
    )  # fmt: skip
    replicas: int = option(
        1, "--replicas", "independent copies of the molecule in one System (one batched evaluation per step, "
        "independent thermostat noise); properties.h5 gets a replica axis", "R", "int",
    )  # fmt: skip
    bead_trajectory: bool = option(
        False, "--bead-trajectory", "also write every bead's positions (beads.dcd, or .xtc with --trajectory-format "
        "xtc: replicas x beads x atoms per frame, in that order); the trajectory holds the centroids", kind="bool",
    )  # fmt: skip
    ml_residues: str = option(
        "", "--ml-residues", "a solute in solvent: residue names (comma-separated) the model describes; every other "
        "atom comes from --mm-forcefield, and the two interact by mechanical embedding (OpenMM-ML)", "NAMES", "str",
    )  # fmt: skip
    mm_forcefield: str = option(
        "amber14/tip3p", "--mm-forcefield", "the MM force field: amber14 with its water model; ethanol (residue EOH) "
        "is bundled", kind=tuple(f"amber14/{w}" for w in WATER_MODELS),
    )  # fmt: skip
    forcefield_file: str = option(
        "", "--forcefield-file", "more OpenMM force-field XML files for the MM region (templates of other "
        "molecules), comma-separated", "FILES", "str",
    )  # fmt: skip
    pressure_bar: float = option(
        0.0, "--pressure", "pressure (bar) of a Monte Carlo barostat (NPT: a periodic box of the model's molecules, or a "
        "solvated structure); 0: constant volume",
        "BAR",
    )  # fmt: skip
    mm_cutoff_nm: float = option(0.9, "--mm-cutoff", "direct-space cutoff (nm) of the MM nonbonded forces (PME)", "NM")
    record_dipole: bool = option(False, "--record-dipole", "record the dipole moment (e*nm) in properties.h5",
                                 kind="bool")  # fmt: skip
    record_polarizability: bool = option(
        False, "--record-polarizability", "record the polarizability (nm^3) in properties.h5", kind="bool"
    )
    record_interval: int = option(
        1, "--record-interval", f"steps between recorded properties (at most {nyquist_limit_fs():.2f} fs to resolve "
        f"4000 cm^-1)", "STEPS", "int",
    )  # fmt: skip
    trajectory_interval: int = option(100, "--trajectory-interval", "steps between trajectory frames", "STEPS", "int")
    trajectory_format: str = option(
        "dcd", "--trajectory-format", "trajectory.dcd (single precision) or trajectory.xtc (compressed to 0.001 nm)",
        kind=TRAJECTORY_FORMATS,
    )  # fmt: skip
    log_interval: int = option(
        100,
        "--log-interval",
        "steps between log lines (log.csv) and stability checks (Ctrl-C stops a run at the "
        "next of these or of the checkpoints)",
        "STEPS",
        "int",
    )
    checkpoint_interval: int = option(10000, "--checkpoint-interval", "steps between checkpoints", "STEPS", "int")
    equilibration_steps: int = option(
        0, "--equilibration-steps", "steps run before production, not recorded", "STEPS", "int"
    )
    platform: str = option(
        "auto", "--platform", "OpenMM platform: Reference, CPU, CUDA, OpenCL, or auto (fastest available)", "NAME",
        "str",
    )  # fmt: skip
    seed: int = option(0, "--seed", "random seed (velocities and thermostat)", "N", "int")
    resume: bool = option(
        False, "--resume", "continue from OUTPUT/checkpoint.chk, with the options of OUTPUT/run.json unless flags "
        "change them (e.g. painn-simulate --resume -o OUTPUT --steps N extends a run)", kind="bool",
    )  # fmt: skip
    resume_from: str = option(
        "", "--resume-from", "continue from another checkpoint of the run, e.g. checkpoint.prev.chk (the one before "
        "the latest, kept in OUTPUT) when the latest is damaged", "CHECKPOINT", "str",
    )  # fmt: skip
    overwrite: bool = option(
        False, "--overwrite", "start afresh in an OUTPUT that holds a previous run, deleting that run's files first "
        "(without it, a non-empty OUTPUT is refused)", kind="bool",
    )  # fmt: skip
    backend: str = option(
        "auto", "--backend", "torch: openmm-torch's TorchForce (C++); python: openmm.PythonForce, which also keeps "
        "each evaluation's features, so the dipole and polarizability heads run on 100 steps at once; auto: python "
        "when recording, else torch", kind=BACKENDS,
    )  # fmt: skip
    cuda_graphs: str = option(
        "auto", "--cuda-graphs", "capture the model's evaluation in a CUDA graph (auto: on the CUDA platform, for "
        "models with fixed shapes: all pairs, or the static neighbour list)", kind=SWITCHES,
    )  # fmt: skip
    max_temperature_K: float = option(
        0.0, "--max-temperature", "stop when the temperature exceeds this (K); 0 (the default): 10 x target, at "
        "least 2000 K", "K",
    )  # fmt: skip
    max_force_kj_per_mol_nm: float = option(
        1e5, "--max-force", "stop when a force exceeds this (kJ/mol/nm)", "KJ_PER_MOL_NM"
    )
    envelope_margin: str = option(
        "0.3", "--envelope-margin", "warn when a configuration leaves the interatomic distances of the model's "
        "training data, and stop when it goes further than this beyond them: Angstrom (0.3), or a percentage of "
        "each distance (20%); inf: warn only", "MARGIN", "str",
    )  # fmt: skip
    progress: str = option("auto", "--progress", "progress display", kind=("auto", "bar", "lines", "none"))
    threads: int = option(
        0, "--threads", "PyTorch threads, and OpenMM CPU platform threads when given; 0 (the default): PyTorch one "
        "below 1000 atoms (more only adds contention), else all cores. A reproducible minimisation of a solvated "
        "system on the CPU platform needs 1 (its PME sums in thread order)", "N",
        "int",
    )  # fmt: skip

    def __post_init__(self):
        super().__post_init__()
        if self.structure is None:
            raise InputError("give the starting structure (a PDB file) to simulate")
        for name in ("steps", "equilibration_steps", "seed", "threads"):
            if getattr(self, name) < 0:
                raise InputError(f"{flag(name)} must be a non-negative whole number, not {getattr(self, name)!r}")
        for name in ("beads", "replicas"):
            if getattr(self, name) < 1:
                raise InputError(f"{flag(name)} must be at least 1, not {getattr(self, name)!r}")
        for name in ("temperature_K", "timestep_fs", "friction_per_ps", "pressure_bar", "mm_cutoff_nm",
                     "max_temperature_K", "max_force_kj_per_mol_nm"):  # fmt: skip
            value = getattr(self, name)
            if math.isnan(value):
                raise InputError(f"{flag(name)} must be a number, not {value!r}")
            if math.isinf(value) and name not in ("max_temperature_K", "max_force_kj_per_mol_nm"):
                raise InputError(f"{flag(name)} must be finite, not {value}")
        if self.temperature_K <= 0:
            raise InputError(f"--temperature must be positive (K), not {self.temperature_K:g}")
        if not MIN_TIMESTEP_FS <= self.timestep_fs <= 4:
            raise InputError(
                f"--timestep {self.timestep_fs:g} is outside {MIN_TIMESTEP_FS:g}-4 fs: it is in fs (not ps); without "
                f"constraints use 0.25-1 fs"
            )
        if self.friction_per_ps <= 0:
            raise InputError(
                f"--friction must be positive (1/ps), not {self.friction_per_ps:g}: it is the Langevin thermostat's "
                f"(with --integrator verlet, the equilibration's); for dynamics without a thermostat use --integrator "
                f"verlet"
            )
        if self.max_temperature_K < 0:
            raise InputError(
                f"--max-temperature must be positive (K), or 0 for the default (10 x --temperature, at least "
                f"2000 K), not {self.max_temperature_K:g}"
            )
        if 0 < self.max_temperature_K <= self.temperature_K:
            raise InputError(
                f"--max-temperature {self.max_temperature_K:g} K is not above --temperature {self.temperature_K:g} "
                f"K: the run would stop at once; raise it, or give 0 for the default"
            )
        if self.max_force_kj_per_mol_nm <= 0:
            raise InputError(f"--max-force must be positive (kJ/mol/nm), not {self.max_force_kj_per_mol_nm:g}")
        if self.mm_cutoff_nm <= 0:
            raise InputError(f"--mm-cutoff must be positive (nm), not {self.mm_cutoff_nm:g}")
        if self.seed > MAX_SEED:
            raise InputError(f"--seed must be at most {MAX_SEED}, not {self.seed}")
        parse_margin(self.envelope_margin)
        if self.resume_from:
            object.__setattr__(self, "resume", True)
        if self.resume and self.overwrite:
            raise InputError(
                "--resume continues the run in the output directory and --overwrite deletes it: give one of them"
            )
        if self.ml_residues and (self.beads > 1 or self.replicas > 1):
            raise InputError("--ml-residues (a solute in solvent) runs one classical copy: drop --beads and --replicas")
        if self.pressure_bar < 0:
            raise InputError(f"--pressure must be positive (bar), or 0 for constant volume, not {self.pressure_bar}")
        if self.pressure_bar > 0 and self.integrator == "verlet":
            raise InputError(
                "--pressure (NPT) needs a thermostat, and --integrator verlet runs without one (NVE): use --integrator "
                "langevin or nose-hoover, or drop --pressure"
            )
        if self.beads == 1 and (self.rpmd_integrator == "openmm" or self.bead_trajectory):
            what = "--bead-trajectory" if self.bead_trajectory else "--rpmd-integrator openmm"
            raise InputError(f"{what} is for ring polymers: give --beads P (P > 1), or drop it")
        if self.beads > 1 and self.rpmd_integrator == "openmm":
            if self.records:
                raise InputError(
                    "--rpmd-integrator openmm evaluates each bead separately and cannot record; record with the "
                    "default batched integrator"
                )
            if self.replicas > 1 or self.bead_trajectory:
                raise InputError("--replicas and --bead-trajectory need the batched ring-polymer integrator")
        if self.beads > 1 and self.integrator == "nose-hoover":
            raise InputError(
                "ring-polymer MD (--beads > 1) uses the PILE thermostat (--integrator langevin) or, after an "
                "equilibration with it, none (verlet: the ring-polymer Hamiltonian is conserved); Nose-Hoover is not "
                "available for it"
            )
        if self.backend == "torch" and self.records:
            raise InputError(
                "recording the dipole or polarizability needs --backend python (or auto): TorchForce runs the "
                "model in C++, where its features cannot be kept"
            )
        for name in ("record_interval", "trajectory_interval", "log_interval", "checkpoint_interval"):
            if getattr(self, name) < 1:
                raise InputError(f"{flag(name)} must be at least 1 step")
        if self.records:
            interval_fs = self.record_interval * self.timestep_fs
            limit = nyquist_limit_fs()
            if interval_fs > limit:
                raise InputError(
                    f"recording every {self.record_interval} steps ({interval_fs:g} fs) cannot resolve vibrations up to "
                    f"{MAX_WAVENUMBER_CM1:g} cm^-1 (sampling theorem: at most {limit:.2f} fs); lower --record-interval"
                )

    @property
    def empty_outputs(self) -> list[str]:
        """What a run of ``steps`` leaves empty, with the fix (the runner warns once the run is set up)."""
        return [
            f"--steps {self.steps} is fewer than {flag(name)} {getattr(self, name)}: {output}; lower {flag(name)}"
            for name, output in (
                ("trajectory_interval", "the trajectory will hold no frame"),
                ("log_interval", "log.csv will hold no row"),
            )
            if 0 < self.steps < getattr(self, name)
        ]

    @property
    def records(self) -> bool:
        return self.record_dipole or self.record_polarizability

    @property
    def temperature_limit_K(self) -> float:
        return self.max_temperature_K or max(10.0 * self.temperature_K, 2000.0)

    @property
    def margin(self) -> Tuple[float, bool]:
        """The envelope margin: (Angstrom, False) or (fraction, True)."""
        return parse_margin(self.envelope_margin)
