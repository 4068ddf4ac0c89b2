"""Simulation configuration: one frozen dataclass shared by the CLI and the Python API."""

from dataclasses import asdict, dataclass
from typing import Optional

from .. import units
from ..errors import InputError

TRAJECTORY_FORMATS = ("dcd", "xtc")

INTEGRATORS = ("langevin", "nose-hoover", "verlet")
BACKENDS = ("auto", "torch", "python")
SWITCHES = ("auto", "on", "off")
RPMD_INTEGRATORS = ("batched", "openmm")
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
    beads: int = 1  # > 1: ring-polymer MD (PILE thermostat), all beads in one evaluation
    rpmd_integrator: str = "batched"  # batched (normal modes, one evaluation) or openmm (RPMDIntegrator)
    replicas: int = 1  # independent copies of the molecule in one System, one batched evaluation per step
    bead_trajectory: bool = False  # also write every bead's positions (beads.dcd / beads.xtc)
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
    # torch: openmm-torch's TorchForce; python: openmm.PythonForce, which also keeps each evaluation's features
    # for recording; auto: python when recording, else torch
    backend: str = "auto"
    cuda_graphs: str = "auto"  # auto: on for fixed-shape models on the CUDA platform
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
        if self.replicas < 1:
            raise InputError("--replicas must be at least 1")
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
