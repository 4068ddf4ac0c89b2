"""The whole pipeline on the bundled ethanol data, on a laptop CPU: train a small model -> export -> NVT MD
recording dipole and polarizability -> IR and Raman plots, each step one library call
(:func:`~painn_deploy.training.train`, :func:`~painn_deploy.deploy.export`,
:func:`~painn_deploy.md.run_simulation`, :func:`~painn_deploy.spectra.compute_spectra`)."""

import time
from dataclasses import dataclass
from pathlib import Path

from .configuration import Config, option
from .errors import InputError
from .resources import ETHANOL_SUBSET, STRUCTURES

TIMESTEP_FS = 0.5


@dataclass(frozen=True)
class DemoConfig(Config):
    """The demo's options; field names are the keys of a YAML configuration file."""

    output: str = option("painn_demo", "--output", "output directory", "DIR", "path", short="-o")
    train_minutes: float = option(6.0, "--train-minutes", "wall-clock training budget (minutes)", "MIN")
    md_ps: float = option(20.0, "--md-ps", "length of the NVT simulation (ps)", "PS")
    features: int = option(64, "--features", "feature size F of the demo model (the paper uses 128)", "F", "int")
    temperature_K: float = option(300.0, "--temperature", "MD temperature (K)", "K")

    def __post_init__(self):
        super().__post_init__()
        if self.train_minutes <= 0 or self.md_ps <= 0 or self.features < 1 or self.temperature_K <= 0:
            raise InputError("--train-minutes, --md-ps, --features and --temperature must be positive")


def run_demo(config: DemoConfig) -> dict:
    """Train, export, simulate and compute spectra in ``config.output``; returns each step's result."""
    from .deploy import export
    from .md import SimulationConfig, run_simulation
    from .spectra import SpectrumConfig, compute_spectra
    from .training import TrainConfig, train

    output = Path(config.output)
    if output.is_file() or (output.is_dir() and any(output.iterdir())):
        raise InputError(
            f"{output} is not an empty folder (an earlier demo?); give another -o/--output, or move it away first"
        )
    output.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"[1/4] training a PaiNN model (F={config.features}) for {config.train_minutes:g} min on bundled ethanol data", flush=True)  # fmt: skip
    summary = train(
        TrainConfig(
            data=str(ETHANOL_SUBSET),
            output=str(output / "train"),
            targets=("energy", "forces", "dipole", "polarizability"),
            n_train=1000,
            n_val=100,
            n_features=config.features,
            max_time_s=config.train_minutes * 60.0,
            # the weights' moving average: without it the short training's model lets hydrogens meet in some MD
            # runs, which then stop at the training envelope (benchmarks/results/demo_stability.md)
            ema_decay=0.999,
            progress_bar=False,
        )
    )
    print("[2/4] exporting to TorchScript", flush=True)
    model = output / "model.pt"
    export(summary["best_checkpoint"], model)
    steps = int(round(config.md_ps * 1000 / TIMESTEP_FS))
    print(f"[3/4] NVT molecular dynamics at {config.temperature_K:g} K: {steps} steps of {TIMESTEP_FS:g} fs, recording "
          "dipole and polarizability", flush=True)  # fmt: skip
    md = run_simulation(
        SimulationConfig(
            structure=str(STRUCTURES["ethanol"]),
            model=str(model),
            output=str(output / "md"),
            steps=steps,
            temperature_K=config.temperature_K,
            timestep_fs=TIMESTEP_FS,
            equilibration_steps=2000,
            record_dipole=True,
            record_polarizability=True,
            log_interval=2000,
            progress="lines",
        )
    )
    print("[4/4] IR and Raman spectra", flush=True)
    spectra = compute_spectra(
        SpectrumConfig(
            files=(str(output / "md" / "properties.h5"),),
            output=str(output / "spectra"),
            ir=True,
            raman=True,
            temperature_K=config.temperature_K,
        )
    )
    print(spectra.summary())
    minutes = (time.perf_counter() - t0) / 60
    print(f"done in {minutes:.1f} min: plots in {output / 'spectra'}, learning curve in {output / 'train'}")
    return {"train": summary, "md": md, "spectra": spectra, "minutes": minutes}
