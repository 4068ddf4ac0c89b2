"""``painn-demo``: the whole pipeline on the bundled ethanol data, on a laptop CPU.

train a small model -> export -> NVT MD recording dipole and polarizability -> IR and Raman plots.
"""

import argparse
import sys
import time
from pathlib import Path

from ..errors import PainnDeployError

RESOURCES = Path(__file__).resolve().parents[1] / "resources"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="painn-demo", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("-o", "--output", default="painn_demo", help="output directory")
    p.add_argument("--train-minutes", type=float, default=6.0, help="wall-clock training budget (minutes)")
    p.add_argument("--md-ps", type=float, default=20.0, help="length of the NVT simulation (ps)")
    p.add_argument("--features", type=int, default=64, help="feature size F of the demo model (the paper uses 128)")
    p.add_argument("--temperature", dest="temperature_K", type=float, default=300.0, help="MD temperature (K)")
    return p


def run_demo(output: Path, train_minutes: float, md_ps: float, features: int, temperature_K: float = 300.0) -> dict:
    from ..deploy import export
    from ..md import SimulationConfig, run_simulation
    from ..training import TrainConfig, train
    from . import spectrum

    output.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"[1/4] training a PaiNN model (F={features}) for {train_minutes:g} min on bundled ethanol data", flush=True)
    summary = train(
        TrainConfig(
            data=str(RESOURCES / "ethanol_gfn2xtb_subset.npz"),
            output=str(output / "train"),
            targets=("energy", "forces", "dipole", "polarizability"),
            n_train=1000,
            n_val=100,
            n_features=features,
            max_time_s=train_minutes * 60.0,
            progress_bar=False,
        )
    )
    print("[2/4] exporting to TorchScript", flush=True)
    model = output / "model.pt"
    export(summary["best_checkpoint"], model)
    steps = int(round(md_ps * 1000 / 0.5))
    print(
        f"[3/4] NVT molecular dynamics at {temperature_K:g} K: {steps} steps of 0.5 fs, recording dipole and polarizability",
        flush=True,
    )
    md = run_simulation(
        SimulationConfig(
            structure=str(RESOURCES / "ethanol.pdb"),
            model=str(model),
            output=str(output / "md"),
            steps=steps,
            temperature_K=temperature_K,
            equilibration_steps=2000,
            record_dipole=True,
            record_polarizability=True,
            log_interval=2000,
            progress="lines",
        )
    )
    print("[4/4] IR and Raman spectra", flush=True)
    spectrum.main([str(output / "md" / "properties.h5"), "--ir", "--raman", "-o", str(output / "spectra"),
                   "--temperature-K", str(temperature_K)])  # fmt: skip
    minutes = (time.perf_counter() - t0) / 60
    print(f"done in {minutes:.1f} min: plots in {output / 'spectra'}, learning curve in {output / 'train'}")
    return {"train": summary, "md": md, "minutes": minutes}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run_demo(Path(args.output), args.train_minutes, args.md_ps, args.features, args.temperature_K)
    except PainnDeployError as exc:
        print(f"painn-demo: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
