"""``painn-train``: train a PaiNN potential (energy, forces, dipole, polarizability)."""

import argparse
import json
import sys
from dataclasses import fields

from ..errors import PainnDeployError
from ..training import TrainConfig, evaluate, load_checkpoint, train

HELP = {
    "data": "training data: rMD17-style .npz, or anything ASE reads (extxyz, ASE db)",
    "output": "output folder (best.ckpt, last.ckpt, history.csv, learning_curve.png, config.yaml)",
    "targets": "comma-separated heads: energy,forces,dipole,polarizability",
    "length_unit": "length unit of the data file (Angstrom, nm, Bohr)",
    "energy_unit": "energy unit of the data file (kcal/mol, eV, kJ/mol, Hartree); forces are energy/length",
    "dipole_unit": "dipole unit of the data file (e*Angstrom, e*nm, e*Bohr, Debye)",
    "polarizability_unit": "polarizability unit of the data file (Angstrom^3, nm^3, Bohr^3)",
    "n_train": "number of training frames",
    "n_val": "number of validation frames (the rest is the test set)",
    "split": "contiguous (consecutive blocks; for correlated MD frames) or random",
    "seed": "random seed (split, initial weights, shuffling)",
    "n_features": "feature size F",
    "n_interactions": "number of message/update blocks",
    "n_rbf": "number of sine radial basis functions",
    "cutoff_angstrom": "cutoff radius (Angstrom)",
    "dipole_model": "eq13: latent charges + atomic dipoles (paper Eq. 13); eq12: charges only",
    "max_epochs": "maximum number of epochs",
    "max_time_s": "wall-clock training budget in seconds (0: none)",
    "batch_size": "molecules per batch",
    "lr": "learning rate of AdamW",
    "weight_decay": "decoupled weight decay of AdamW",
    "rho": "energy/force trade-off: loss = (1-rho) MSE_E + rho MSE_F + ...",
    "dipole_weight": "loss weight of the dipole MSE ((e*Angstrom)^2)",
    "polarizability_weight": "loss weight of the polarizability MSE (Angstrom^6)",
    "lr_factor": "learning-rate factor on plateau",
    "lr_patience": "epochs without improvement of the smoothed validation loss before the LR decays",
    "smoothing": "exponential smoothing factor of the validation loss",
    "early_stopping_patience": "epochs without improvement before training stops",
    "ema_decay": "exponential moving average of the weights (0: off, e.g. 0.999)",
    "accelerator": "Lightning accelerator (auto, cpu, gpu)",
    "devices": "Lightning devices (auto, 1, 4, ...); several GPUs use DDP",
    "num_nodes": "number of nodes for multi-node DDP",
    "strategy": "Lightning strategy (auto, ddp, ...)",
    "precision": "Lightning precision (32, 64)",
    "num_workers": "data-loader worker processes",
    "resume": "continue an interrupted run from OUTPUT/last.ckpt",
    "progress_bar": "show a progress bar",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="painn-train", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--config", help="YAML file with any of the options below (command-line options win)")
    p.add_argument(
        "--test-only", metavar="CKPT", help="report test errors of a checkpoint on its saved test split and exit"
    )
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    for f in fields(TrainConfig):
        if f.name == "extra":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = defaults[f.name]
        if isinstance(default, bool):
            p.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=HELP[f.name] + f" (default {default})"
            )
        else:
            kind = type(default) if not isinstance(default, tuple) else str
            shown = ",".join(default) if isinstance(default, tuple) else default
            p.add_argument(flag, type=kind, default=None, help=f"{HELP[f.name]} (default {shown})")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.test_only:
            return _test_only(args.test_only)
        options = {k: v for k, v in vars(args).items() if k not in ("config", "test_only")}
        cfg = TrainConfig.from_sources(args.config, **options)
        summary = train(cfg)
    except PainnDeployError as exc:
        print(f"painn-train: error: {exc}", file=sys.stderr)
        return 2
    print(format_errors(summary["test_errors"]))
    print(f"best checkpoint: {summary['best_checkpoint']}")
    return 0


def format_errors(errors: dict) -> str:
    lines = [f"{'target':<16}{'MAE':>12}{'RMSE':>12}  unit"]
    for t, e in errors.items():
        lines.append(f"{t:<16}{e['mae']:>12.5f}{e['rmse']:>12.5f}  {e['unit']}")
    return "\n".join(lines)


def _test_only(checkpoint) -> int:
    import numpy as np

    from ..training.trainer import load_data

    record = load_checkpoint(checkpoint)
    cfg = TrainConfig.from_sources(None, **record["train_config"])
    errors = evaluate(checkpoint, load_data(cfg), np.asarray(record["split"]["test"]))
    print(format_errors(errors))
    print(json.dumps(errors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
