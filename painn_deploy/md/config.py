"""Simulation configuration: one frozen dataclass shared by the CLI and the Python API."""

from dataclasses import asdict, dataclass
from typing import Optional

from .. import units
from ..errors import InputError

TRAJECTORY_FORMATS = ("dcd", "xtc")

INTEGRATORS = ("langevin", "nose-hoover", "verlet")
RECORDINGS = ("auto", "tap", "fused", "second")
MAX_WAVENUMBER_CM1 = 4000.0  # highest frequency the recorded series must resolve


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
    beads: int = 1  # > 1: ring-polymer MD (RPMDIntegrator, PILE thermostat)
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
    # auto: fused (PythonForce keeps each step's features; default), tap (TorchForce keeps them in shared
    # memory; models of format 3) or second (TorchForce + batched forward-only evaluation; RPMD)
    recording: str = "auto"
    max_temperature_K: float = 0.0  # 0: 10 x target (and at least 2000 K)
    max_force_kj_per_mol_nm: float = 1e5
    progress: str = "auto"  # bar, lines, none
    threads: int = 0  # torch intra-op threads; 0: 1 below 1000 atoms, else all cores

    def __post_init__(self):
        if self.steps < 0 or self.steps != int(self.steps):
            raise InputError(f"--steps must be a non-negative whole number, got {self.steps}")
        object.__setattr__(self, "steps", int(self.steps))
        if self.integrator not in INTEGRATORS:
            raise InputError(f"--integrator must be one of {', '.join(INTEGRATORS)}, not {self.integrator!r}")
        if self.timestep_fs <= 0 or self.timestep_fs > 4:
            raise InputError(
                f"--timestep-fs {self.timestep_fs} is outside (0, 4] fs; without constraints use 0.25-1 fs"
            )
        if self.beads < 1:
            raise InputError("--beads must be at least 1")
        if self.beads > 1 and self.integrator != "langevin":
            raise InputError(
                "ring-polymer MD (--beads > 1) uses the PILE thermostat; do not combine it with --integrator"
            )
        if self.trajectory_format not in TRAJECTORY_FORMATS:
            raise InputError(
                f"--trajectory-format must be one of {', '.join(TRAJECTORY_FORMATS)}, not {self.trajectory_format!r}"
            )
        if self.recording not in RECORDINGS:
            raise InputError(f"--recording must be one of {', '.join(RECORDINGS)}, not {self.recording!r}")
        for name in ("record_interval", "trajectory_interval", "log_interval", "checkpoint_interval"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1 step")
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

    def to_dict(self) -> dict:
        return asdict(self)
