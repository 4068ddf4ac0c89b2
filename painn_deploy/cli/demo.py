"""``painn-demo``: the whole pipeline on the bundled ethanol data, on a laptop CPU.

Parses the command line (and ``--config``) into a :class:`~painn_deploy.demo.DemoConfig` and runs
:func:`~painn_deploy.demo.run_demo`: train a small model, export it, NVT MD recording dipole and polarizability,
IR and Raman plots.  Exit status: :mod:`painn_deploy.cli.common`.
"""

import sys

from ..configuration import config_from_arguments
from ..demo import DemoConfig, run_demo
from .common import build_parser as _build_parser
from .common import run_command

PROG = "painn-demo"
DESCRIPTION = (
    "The whole pipeline on the bundled ethanol data, on a laptop CPU: train a small model, export it, run NVT MD "
    "recording dipole and polarizability, and plot IR and Raman spectra. Options can also come from --config "
    "FILE.yaml (keys: option names with underscores, or the --config key an option names, e.g. md_ps); flags "
    "override the file."
)


def main(argv=None) -> int:
    """Entry point of ``painn-demo``; returns the exit status (:mod:`painn_deploy.cli.common`)."""
    parser = _build_parser(PROG, DESCRIPTION, DemoConfig)
    execute = lambda args: run_demo(config_from_arguments(DemoConfig, args))  # noqa: E731
    return run_command(PROG, parser, argv, execute, capture_warnings=False)


if __name__ == "__main__":
    sys.exit(main())
