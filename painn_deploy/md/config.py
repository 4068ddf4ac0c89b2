"""Simulation configuration: one frozen dataclass shared by the CLI and the Python API."""

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Optional, Tuple

from .. import units
from ..errors import InputError

TRAJECTORY_FORMATS = ("dcd", "xtc")

INTEGRATORS = ("langevin", "nose-hoover", "verlet")
BACKENDS = ("auto", "torch", "python")
SWITCHES = ("auto", "on", "off")
RPMD_INTEGRATORS = ("batched", "openmm")
MAX_WAVENUMBER_CM1 = 4000.0  # highest frequency the recorded series must resolve
MAX_SEED = 2**31 - 2  # OpenMM takes int seeds, and the driver uses seed + 1
# command-line flags of the fields whose names differ from them (the others: --field-name)
FLAGS = {
    "temperature_K": "--temperature", "timestep_fs": "--timestep", "friction_per_ps": "--friction",
    "pressure_bar": "--pressure", "mm_cutoff_nm": "--mm-cutoff", "max_temperature_K": "--max-temperature",
    "max_force_kj_per_mol_nm": "--max-force", "structure": "STRUCTURE",
}  # fmt: skip


def flag(field: str) -> str:
    """The command-line flag of a configuration field (``timestep_fs`` -> ``--timestep``)."""
    return FLAGS.get(field, "--" + field.replace("_", "-"))


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
class SimulationConfig:
    structure: str  # PDB file
    model: Optional[str] = None  # exported .pt or a painn-train checkpoint; None: the bundled model
    output: str = "md_run"
    steps: int = 10000
    temperature_K: float = 300.0
    timestep_fs: float = 0.5
    integrator: str = "langevin"  # langevin (openmmtools BAOAB), nose-hoover, verlet (NVE)
    friction_per_ps: float = 1.0
    beads: int = 1  # > 1: ring-polymer MD (PILE thermostat), all beads in one evaluation
    rpmd_integrator: str = "batched"  # batched (normal modes, one evaluation) or openmm (RPMDIntegrator)
    replicas: int = 1  # independent copies of the molecule in one System, one batched evaluation per step
    bead_trajectory: bool = False  # also write every bead's positions (beads.dcd / beads.xtc)
    # a solute in solvent (ML/MM, mechanical embedding through OpenMM-ML): the residues the model describes
    ml_residues: str = ""  # comma-separated residue names; the other atoms come from the MM force field
    mm_forcefield: str = "amber14/tip3p"  # amber14 with its water model (tip3p, tip3pfb, spce)
    forcefield_file: str = ""  # more OpenMM force-field XML files (templates of other molecules), comma-separated
    pressure_bar: float = 0.0  # > 0: NPT with a Monte Carlo barostat (periodic systems)
    mm_cutoff_nm: float = 0.9  # direct-space cutoff of the MM nonbonded forces (PME)
    record_dipole: bool = False
    record_polarizability: bool = False
    record_interval: int = 1  # steps
    trajectory_interval: int = 100  # steps
    trajectory_format: str = "dcd"  # dcd or xtc (compressed to 0.001 nm)
    log_interval: int = 100  # steps
    checkpoint_interval: int = 10000  # steps
    equilibration_steps: int = 0
    platform: str = "auto"
    seed: int = 0
    resume: bool = False
    resume_from: str = ""  # a checkpoint file (in the output directory, or a path) to resume from; implies resume
    overwrite: bool = False  # delete a previous run's files in the output directory before starting
    # torch: openmm-torch's TorchForce; python: openmm.PythonForce, which also keeps each evaluation's features
    # for recording; auto: python when recording, else torch
    backend: str = "auto"
    cuda_graphs: str = "auto"  # auto: on for fixed-shape models on the CUDA platform
    max_temperature_K: float = 0.0  # 0: 10 x target (and at least 2000 K)
    max_force_kj_per_mol_nm: float = 1e5
    # how far (Angstrom, or "20%" of the distance) beyond the training data's interatomic distances a run may go
    # before it stops; it warns as soon as it leaves them (the artefact's training envelope)
    envelope_margin: str = "0.3"
    progress: str = "auto"  # bar, lines, none
    threads: int = 0  # torch intra-op threads; 0: 1 below 1000 atoms, else all cores

    def __post_init__(self):
        for name in ("steps", "equilibration_steps", "seed", "threads", "beads", "replicas"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != int(value) or value < 0:
                raise InputError(f"{flag(name)} must be a non-negative whole number, not {value!r}")
            object.__setattr__(self, name, int(value))
        for name in ("temperature_K", "timestep_fs", "friction_per_ps", "pressure_bar", "mm_cutoff_nm",
                     "max_temperature_K", "max_force_kj_per_mol_nm"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
                raise InputError(f"{flag(name)} must be a number, not {value!r}")
            if math.isinf(value) and name not in ("max_temperature_K", "max_force_kj_per_mol_nm"):
                raise InputError(f"{flag(name)} must be finite, not {value}")
        if self.integrator not in INTEGRATORS:
            raise InputError(f"--integrator must be one of {', '.join(INTEGRATORS)}, not {self.integrator!r}")
        if self.temperature_K <= 0:
            raise InputError(f"--temperature must be positive (K), not {self.temperature_K:g}")
        if self.timestep_fs <= 0 or self.timestep_fs > 4:
            raise InputError(f"--timestep {self.timestep_fs:g} is outside (0, 4] fs; without constraints use 0.25-1 fs")
        if self.friction_per_ps <= 0:
            raise InputError(
                f"--friction must be positive (1/ps), not {self.friction_per_ps:g}; for dynamics without a "
                f"thermostat use --integrator verlet"
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
        if self.beads < 1:
            raise InputError("--beads must be at least 1")
        if self.replicas < 1:
            raise InputError("--replicas must be at least 1")
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
        if self.pressure_bar > 0 and not self.ml_residues:
            raise InputError("--pressure (NPT) is for solvated systems: give --ml-residues")
        if self.rpmd_integrator not in RPMD_INTEGRATORS:
            raise InputError(
                f"--rpmd-integrator must be one of {', '.join(RPMD_INTEGRATORS)}, not {self.rpmd_integrator!r}"
            )
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
                "ring-polymer MD (--beads > 1) uses the PILE thermostat (--integrator langevin) or none (verlet: "
                "the ring-polymer Hamiltonian is conserved); Nose-Hoover is not available for it"
            )
        if self.beads > 1 and self.integrator == "verlet" and self.rpmd_integrator == "openmm":
            raise InputError("OpenMM's RPMDIntegrator always thermostats; use the batched integrator for NVE")
        if self.trajectory_format not in TRAJECTORY_FORMATS:
            raise InputError(
                f"--trajectory-format must be one of {', '.join(TRAJECTORY_FORMATS)}, not {self.trajectory_format!r}"
            )
        if self.backend not in BACKENDS:
            raise InputError(f"--backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if self.backend == "torch" and self.records:
            raise InputError(
                "recording the dipole or polarizability needs --backend python (or auto): TorchForce runs the "
                "model in C++, where its features cannot be kept"
            )
        if self.cuda_graphs not in SWITCHES:
            raise InputError(f"--cuda-graphs must be one of {', '.join(SWITCHES)}, not {self.cuda_graphs!r}")
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
    def records(self) -> bool:
        return self.record_dipole or self.record_polarizability

    @property
    def temperature_limit_K(self) -> float:
        return self.max_temperature_K or max(10.0 * self.temperature_K, 2000.0)

    @property
    def margin(self) -> Tuple[float, bool]:
        """The envelope margin: (Angstrom, False) or (fraction, True)."""
        return parse_margin(self.envelope_margin)

    def to_dict(self) -> dict:
        return asdict(self)
