"""Does painn-demo's model survive its own MD?  painn-demo trains a small model (F = 64) for a few minutes on the
bundled 1500-frame ethanol subset, then runs 20 ps of NVT MD at 300 K; the run stops when a configuration leaves
the training data beyond the envelope margin (painn-simulate's check).  This trains the demo's model with and
without the weights' exponential moving average (``ema_decay``) and runs the demo's MD from each with several
seeds, counting the runs that stop.

    taskset -c 1 python benchmarks/demo_stability.py [--minutes 6] [--seeds 12]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def train_demo_model(output: Path, minutes: float, ema_decay: float) -> dict:
    from painn_deploy.deploy import export
    from painn_deploy.resources import ETHANOL_SUBSET
    from painn_deploy.training import TrainConfig, train

    summary = train(
        TrainConfig(data=str(ETHANOL_SUBSET), output=str(output / "train"),
                    targets=("energy", "forces", "dipole", "polarizability"), n_train=1000, n_val=100, n_features=64,
                    max_time_s=minutes * 60.0, ema_decay=ema_decay, progress_bar=False)
    )  # fmt: skip
    export(summary["best_checkpoint"], output / "model.pt")
    return summary


def demo_md(model: Path, output: Path, seed: int) -> str:
    """The demo's MD (20 ps at 300 K, 0.5 fs, 2000 equilibration steps, recording): "ok" or why it stopped."""
    from painn_deploy.errors import PainnDeployError
    from painn_deploy.md import SimulationConfig, run_simulation
    from painn_deploy.resources import STRUCTURES

    try:
        run_simulation(
            SimulationConfig(structure=str(STRUCTURES["ethanol"]), model=str(model), output=str(output), steps=40000,
                             temperature_K=300.0, timestep_fs=0.5, equilibration_steps=2000, record_dipole=True,
                             record_polarizability=True, log_interval=2000, progress="none", seed=seed)
        )  # fmt: skip
        return "ok"
    except PainnDeployError as exc:
        return str(exc).split(". ")[0]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=6.0, help="training budget of each model (painn-demo's: 6)")
    p.add_argument("--seeds", type=int, default=12, help="MD runs per model")
    args = p.parse_args()
    import warnings

    import painn_deploy.deploy  # noqa: F401  (imported before the minutes of training: later edits do not reach the run)
    import painn_deploy.md  # noqa: F401
    import painn_deploy.training  # noqa: F401
    from painn_deploy.errors import SimulationWarning

    warnings.simplefilter("ignore", SimulationWarning)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ema_decay in (0.0, 0.999):
            out = Path(tmp) / f"ema{ema_decay}"
            summary = train_demo_model(out, args.minutes, ema_decay)
            outcomes = []
            for seed in range(args.seeds):
                start = time.perf_counter()
                outcomes.append(demo_md(out / "model.pt", out / f"md{seed}", seed))
                print(f"ema_decay {ema_decay}: seed {seed}: {outcomes[-1]} ({time.perf_counter() - start:.0f} s)",
                      flush=True)  # fmt: skip
            stopped = [o for o in outcomes if o != "ok"]
            rows.append({
                "ema_decay": ema_decay, "epochs": summary["epochs"],
                "test_forces_mae_eV_per_A": summary["test_errors"]["forces"]["mae"],
                "test_energy_mae_eV": summary["test_errors"]["energy"]["mae"],
                "runs": len(outcomes), "stopped": len(stopped), "first_stop": stopped[0] if stopped else "",
            })  # fmt: skip
    common.write_table(
        "demo_stability", rows, list(rows[0]),
        f"painn-demo's model (F = 64, 1000 training frames of the bundled subset, {args.minutes:g} min of training on "
        f"one thread) and its MD (20 ps NVT at 300 K, 0.5 fs, after 2000 equilibration steps; seeds 0-{args.seeds - 1}); "
        "a run stops when a configuration leaves the training data by more than 0.3 Angstrom.",
    )  # fmt: skip


if __name__ == "__main__":
    main()
