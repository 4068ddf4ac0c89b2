"""Training configuration: one frozen dataclass, from CLI options and/or a YAML file.

Each field carries its ``painn-train`` flag and help (:func:`painn_deploy.configuration.option`); a YAML
file uses the field names as keys, and ``config.yaml`` of a run is such a file.
"""

import math
from dataclasses import dataclass

from .. import units
from ..configuration import Config, option
from ..errors import InputError
from ..model.potential import TARGETS

PRECISIONS = ("32", "64", "32-true", "64-true")  # (half precisions: the model's segment sums need one dtype)


@dataclass(frozen=True)
class TrainConfig(Config):
    data: str = option(
        "", "--data", "training data: rMD17-style .npz, or anything ASE reads (extxyz, ASE db)", "FILE", "path"
    )
    output: str = option(
        "runs/painn",
        "--output",
        "output folder (best.ckpt, last.ckpt, history.csv, learning_curve.png, config.yaml, split.npz, summary.json, "
        "Lightning's logs/)",
        "DIR",
        "path",
        short="-o",
    )
    targets: tuple = option(
        ("energy", "forces"),
        "--targets",
        f"comma-separated heads, from {','.join(TARGETS)}",
        "LIST",
        "list",
    )
    # file units of the data (converted to Angstrom, eV, e*A, A^3 on reading)
    length_unit: str = option(
        "Angstrom", "--length-unit", "length unit of the data file", kind=tuple(units.LENGTH_TO_ANGSTROM)
    )
    energy_unit: str | None = option(
        None,
        "--energy-unit",
        "energy unit of the data file; forces are energy/length unless --force-unit (default: kcal/mol for an "
        "rMD17-style .npz, eV for the files ASE reads)",
        kind=tuple(units.ENERGY_TO_EV),
    )
    force_unit: str | None = option(
        None,
        "--force-unit",
        "force unit of the data file, when it is not the energy unit per length unit (Hartree/Bohr beside "
        "coordinates in Angstrom, as many quantum-chemistry programs write)",
        kind=tuple(units.FORCE_TO_EV_PER_ANGSTROM),
    )
    dipole_unit: str = option(
        "e*Angstrom", "--dipole-unit", "dipole unit of the data file", kind=tuple(units.DIPOLE_TO_E_ANGSTROM)
    )
    polarizability_unit: str = option(
        "Angstrom^3",
        "--polarizability-unit",
        "polarizability unit of the data file",
        kind=tuple(units.POLARIZABILITY_TO_ANGSTROM3),
    )
    # split
    n_train: int = option(1000, "--n-train", "number of training frames", "N", "int")
    n_val: int = option(100, "--n-val", "number of validation frames (the rest is the test set)", "N", "int")
    split: str = option(
        "contiguous",
        "--split",
        "contiguous (consecutive blocks; for correlated MD frames) or random",
        kind=("contiguous", "random"),
    )
    seed: int = option(0, "--seed", "random seed (split, initial weights, shuffling)", "N", "int")
    # model (the paper's)
    n_features: int = option(128, "--n-features", "feature size F", "F", "int")
    n_interactions: int = option(3, "--n-interactions", "number of message/update blocks", "N", "int")
    n_rbf: int = option(20, "--n-rbf", "number of sine radial basis functions", "N", "int")
    cutoff_angstrom: float = option(5.0, "--cutoff-angstrom", "cutoff radius (Angstrom)", "A")
    dipole_model: str = option(
        "eq13",
        "--dipole-model",
        "eq13: latent charges + atomic dipoles (paper Eq. 13); eq12: charges only",
        kind=("eq13", "eq12"),
    )
    # optimisation (the paper's recipe)
    max_epochs: int = option(500, "--max-epochs", "maximum number of epochs", "N", "int")
    max_time_s: float = option(0.0, "--max-time-s", "wall-clock training budget in seconds (0: none)", "S")
    batch_size: int = option(10, "--batch-size", "molecules per batch", "N", "int")
    lr: float = option(5e-4, "--lr", "learning rate of AdamW", "LR")
    weight_decay: float = option(0.01, "--weight-decay", "decoupled weight decay of AdamW", "W")
    rho: float = option(0.95, "--rho", "energy/force trade-off: loss = (1-rho) MSE_E + rho MSE_F + ...", "RHO")
    dipole_weight: float = option(1.0, "--dipole-weight", "loss weight of the dipole MSE ((e*Angstrom)^2)", "W")
    polarizability_weight: float = option(
        1.0, "--polarizability-weight", "loss weight of the polarizability MSE (Angstrom^6)", "W"
    )
    lr_factor: float = option(0.5, "--lr-factor", "learning-rate factor on plateau", "F")
    lr_patience: int = option(
        10,
        "--lr-patience",
        "epochs without improvement of the smoothed validation loss before the LR decays",
        "N",
        "int",
    )
    smoothing: float = option(0.9, "--smoothing", "exponential smoothing factor of the validation loss", "S")
    early_stopping_patience: int = option(
        50, "--early-stopping-patience", "epochs without improvement before training stops", "N", "int"
    )
    ema_decay: float = option(0.0, "--ema-decay", "exponential moving average of the weights (0: off, e.g. 0.999)", "D")
    # hardware
    accelerator: str = option("auto", "--accelerator", "Lightning accelerator (auto, cpu, gpu)", "NAME", "str")
    devices: str = option(
        "auto", "--devices", "Lightning devices (auto, 1, 4, ...); several devices train with DDP", "N", "str"
    )
    num_nodes: int = option(1, "--num-nodes", "number of nodes for multi-node DDP", "N", "int")
    strategy: str = option("auto", "--strategy", "Lightning strategy (auto, ddp, ...)", "NAME", "str")
    precision: str = option("32", "--precision", "Lightning precision: 32 or 64 bits", "P", "str")
    num_workers: int = option(0, "--num-workers", "data-loader worker processes", "N", "int")
    resume: bool = option(
        False, "--resume", "continue an interrupted run from OUTPUT/last.ckpt, with the options of its config.yaml "
        "(flags override them, e.g. a larger --max-epochs)", kind="switch",
    )  # fmt: skip
    progress_bar: bool | None = option(
        None, "--progress-bar", "show a progress bar (default: when the output is a terminal)", kind="switch"
    )

    def __post_init__(self):
        super().__post_init__()
        if not self.data:
            raise InputError("no training data: give --data FILE (rMD17-style .npz, extxyz or ASE db)")
        unknown = [t for t in self.targets if t not in TARGETS]
        if unknown:
            raise InputError(
                f"unknown target(s) {', '.join(map(repr, unknown))} in --targets; the valid targets are "
                f"{', '.join(TARGETS)}"
            )
        if not self.targets:
            raise InputError(f"--targets is empty; choose from {', '.join(TARGETS)}")
        if "forces" in self.targets and "energy" not in self.targets:
            raise InputError("target 'forces' needs 'energy' (forces are -dE/dr); add energy to --targets")
        if not 0.0 <= self.rho <= 1.0:
            raise InputError(f"rho (force weight) must be in [0, 1], got {self.rho}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise InputError(f"--ema-decay must be in [0, 1) (0: off; 0.999 is usual), got {self.ema_decay}")
        for name in (
            "n_train",
            "n_val",
            "n_features",
            "n_interactions",
            "n_rbf",
            "max_epochs",
            "batch_size",
            "num_nodes",
        ):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        ranges = {  # (option, value, lowest, highest, what the range means)
            "--cutoff-angstrom": (self.cutoff_angstrom, 0.0, math.inf, "positive"),
            "--lr": (self.lr, 0.0, math.inf, "positive"),
            "--weight-decay": (self.weight_decay, 0.0, math.inf, "at least 0"),
            "--dipole-weight": (self.dipole_weight, 0.0, math.inf, "at least 0"),
            "--polarizability-weight": (self.polarizability_weight, 0.0, math.inf, "at least 0"),
            "--lr-factor": (self.lr_factor, 0.0, 1.0, "between 0 and 1 (the LR is multiplied by it)"),
            "--smoothing": (self.smoothing, 0.0, 1.0, "in [0, 1) (0: none)"),
            "--max-time-s": (self.max_time_s, 0.0, math.inf, "at least 0 (0: no budget)"),
            "--lr-patience": (self.lr_patience, 0, math.inf, "at least 0"),
            "--early-stopping-patience": (self.early_stopping_patience, 0, math.inf, "at least 0"),
            "--num-workers": (self.num_workers, 0, math.inf, "at least 0"),
        }
        for flag, (value, low, high, what) in ranges.items():
            inside = low < value < high if flag in ("--cutoff-angstrom", "--lr", "--lr-factor") else low <= value < high
            if not (math.isfinite(value) and inside):
                raise InputError(f"{flag} must be {what}, got {value}")
        if str(self.precision) not in PRECISIONS:
            raise InputError(
                f"--precision must be one of {', '.join(PRECISIONS)} (the model's float dtype), got {self.precision}"
            )

    @classmethod
    def from_sources(cls, yaml_path=None, **overrides) -> "TrainConfig":
        """Defaults < YAML file < explicit overrides (None: not given); unknown keys are errors."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if yaml_path:
            return cls.from_file(yaml_path, **overrides)
        return cls.from_mapping(overrides)
