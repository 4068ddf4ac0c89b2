"""Training configuration: one frozen dataclass, from CLI options and/or a YAML file."""

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml

from ..errors import InputError


@dataclass(frozen=True)
class TrainConfig:
    data: str = ""
    output: str = "runs/painn"
    targets: tuple = ("energy", "forces")
    # file units of the data (converted to Angstrom, eV, e*A, A^3 on reading)
    length_unit: str = "Angstrom"
    energy_unit: str = "kcal/mol"
    dipole_unit: str = "e*Angstrom"
    polarizability_unit: str = "Angstrom^3"
    # split
    n_train: int = 1000
    n_val: int = 100
    split: str = "contiguous"
    seed: int = 0
    # model (the paper's)
    n_features: int = 128
    n_interactions: int = 3
    n_rbf: int = 20
    cutoff_angstrom: float = 5.0
    dipole_model: str = "eq13"
    # optimisation (the paper's recipe)
    max_epochs: int = 500
    max_time_s: float = 0.0  # wall-clock budget in seconds, 0 = none
    batch_size: int = 10
    lr: float = 5e-4
    weight_decay: float = 0.01
    rho: float = 0.95
    dipole_weight: float = 1.0
    polarizability_weight: float = 1.0
    lr_factor: float = 0.5
    lr_patience: int = 10
    smoothing: float = 0.9
    early_stopping_patience: int = 50
    ema_decay: float = 0.0
    # hardware
    accelerator: str = "auto"
    devices: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32"
    num_workers: int = 0
    resume: bool = False
    progress_bar: bool = True

    def __post_init__(self):
        if isinstance(self.targets, str):
            object.__setattr__(self, "targets", tuple(t.strip() for t in self.targets.split(",") if t.strip()))
        if not self.data:
            raise InputError("no training data: give --data FILE (rMD17-style .npz, extxyz or ASE db)")
        if not 0.0 <= self.rho <= 1.0:
            raise InputError(f"rho (force weight) must be in [0, 1], got {self.rho}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["targets"] = list(self.targets)
        return d

    @classmethod
    def from_sources(cls, yaml_path=None, **overrides) -> "TrainConfig":
        """Defaults < YAML file < explicit overrides; unknown keys are errors."""
        values = {}
        if yaml_path:
            try:
                values = yaml.safe_load(Path(yaml_path).read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise InputError(f"cannot read config file {yaml_path}: {exc}") from exc
            values = {k.replace("-", "_"): v for k, v in values.items()}
        values.update({k: v for k, v in overrides.items() if v is not None})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise InputError(f"unknown training option(s) {unknown}; see painn-train --help")
        return cls(**values)
