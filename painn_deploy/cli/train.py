"""``painn-train``: train a PaiNN potential (energy, forces, dipole, polarizability).

    painn-train --data ethanol.npz --targets energy,forces,dipole,polarizability -o runs/ethanol
    painn-train --config train.yaml [--max-epochs 100]      # flags override the file
    painn-train --resume -o runs/ethanol --max-epochs 200    # continue a run, with its config.yaml
    painn-train --test-only runs/ethanol/best.ckpt          # test errors of a checkpoint

Parses the command line (and ``--config``) into a :class:`~painn_deploy.training.TrainConfig` and runs
:func:`~painn_deploy.training.train`.  Exit status: :mod:`painn_deploy.cli.common`.
"""

import sys
from argparse import Namespace
from pathlib import Path

from ..configuration import config_from_arguments
from ..errors import InputError
from ..training import TrainConfig, checkpoint_test_errors, train
from .common import build_parser as _build_parser
from .common import run_command

PROG = "painn-train"
DESCRIPTION = (
    "Train a PaiNN potential on energies, forces, dipoles and polarizabilities. Options can also come from "
    "--config FILE.yaml (keys: option names with underscores, or the --config key an option names, e.g. "
    "n_features; a run's config.yaml is such a file); flags override the file."
)


def build_parser():
    parser = _build_parser(PROG, DESCRIPTION, TrainConfig)
    parser.add_argument(
        "--test-only",
        metavar="CKPT",
        help="report test errors of a checkpoint on its saved test split and exit (the data from where it was "
        "trained, or --data FILE if moved; other data are refused)",
    )
    return parser


def _execute(args: Namespace):
    given = vars(args)
    checkpoint = given.pop("test_only", None)
    if checkpoint is not None:
        return {"test_errors": checkpoint_test_errors(checkpoint, given.get("data")), "test_only": True}
    if given.get("resume") and given.get("config") is None:  # the run's own options, unless flags change them
        run_config = Path(given.get("output") or TrainConfig.output) / "config.yaml"
        if run_config.is_file():
            given["config"] = str(run_config)
        elif given.get("data") is None:
            raise InputError(
                f"--resume reads the run's options from {run_config}, which does not exist: give the run's folder "
                "with -o/--output, or its options as they were (--data FILE ...)"
            )
    return train(config_from_arguments(TrainConfig, Namespace(**given)))


def _report(summary: dict) -> None:
    if summary.get("global_rank", 0) != 0:  # other DDP processes: rank 0 reports
        return
    print(f"errors on the test split (frames held out from training and validation){_frames(summary)}:")
    print(format_errors(summary["test_errors"]))
    if not summary.get("test_only"):
        print(f"best checkpoint: {summary['best_checkpoint']}")


def _frames(summary: dict) -> str:
    return f", {summary['n_test']} frames" if summary.get("n_test") else ""


def main(argv=None) -> int:
    """Entry point of ``painn-train``; returns the exit status (:mod:`painn_deploy.cli.common`)."""
    return run_command(PROG, build_parser(), argv, _execute, _report, capture_warnings=False)


def format_errors(errors: dict) -> str:
    lines = [f"{'target':<16}{'MAE':>12}{'RMSE':>12}  unit"]
    for t, e in errors.items():
        lines.append(f"{t:<16}{e['mae']:>12.5f}{e['rmse']:>12.5f}  {e['unit']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
