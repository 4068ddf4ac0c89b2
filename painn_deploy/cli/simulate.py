"""``painn-simulate``: molecular dynamics in OpenMM with an exported PaiNN model.

Parses the command line (and ``--config``) into a :class:`~painn_deploy.md.SimulationConfig` and runs
:func:`~painn_deploy.md.run_simulation`.  Exit status: :mod:`painn_deploy.cli.common`.
"""

import sys

# light imports only: --help must not wait for torch and OpenMM (the run imports them)
from ..configuration import config_from_arguments
from ..md.config import SimulationConfig
from .common import build_parser as _build_parser
from .common import run_command

PROG = "painn-simulate"
DESCRIPTION = (
    "Molecular dynamics in OpenMM with an exported PaiNN model (or a painn-train checkpoint): NVT/NVE, "
    "ring-polymer MD, replicas, a solute in solvent; records the dipole and polarizability for painn-spectrum, "
    "writes checkpoints that --resume continues, and stops a run that goes bad or leaves the model's training "
    "data. Options can also come from --config FILE.yaml (keys: option names with underscores, or the "
    "--config key an option names, e.g. temperature_K, friction_per_ps); flags override the file."
)


def build_parser():
    return _build_parser(PROG, DESCRIPTION, SimulationConfig)


def _execute(args):
    given = vars(args)
    if (given.get("resume") or given.get("resume_from")) and given.get("config") is None:
        from ..md.rundir import resume_config  # (the run's own options, from its run.json)

        cfg = resume_config({k: v for k, v in given.items() if k != "config" and v is not None})
    else:
        cfg = config_from_arguments(SimulationConfig, args)
    from ..md.runner import run_simulation  # torch, OpenMM

    return run_simulation(cfg)


def main(argv=None) -> int:
    """Entry point of ``painn-simulate``; returns the exit status (:mod:`painn_deploy.cli.common`)."""
    return run_command(PROG, build_parser(), argv, _execute, lambda result: print(result.summary()),
                       capture_warnings=False)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
