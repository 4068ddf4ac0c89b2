"""painn-spectrum: IR and Raman spectra from MD property files.

    painn-spectrum run/properties.h5 [more.h5 ...] --ir --raman -o spectra/
    painn-spectrum --config spectrum.yaml [--resolution-cm1 5]

Parses the command line (and ``--config``) into a :class:`~painn_deploy.spectra.SpectrumConfig`
and runs :func:`~painn_deploy.spectra.compute_spectra`, which writes one CSV per spectrum
(columns wavenumber_cm-1, intensity, stderr), PNG plots and metadata.json.  Exit status:
:mod:`painn_deploy.cli.common`.  Formulas and units: docs/spectra.md.
"""

import sys
from pathlib import Path

from ..configuration import config_from_arguments
from ..spectra.config import DESCRIPTION, SpectrumConfig
from ..spectra.pipeline import compute_spectra
from .common import build_parser as _build_parser
from .common import run_command

PROG = "painn-spectrum"
CONFIG_HELP = (
    "YAML file of options (keys: the field names of SpectrumConfig, e.g. files, output, resolution_cm1, "
    "correct_integrator_shift); command-line flags override it"
)


def build_parser():
    return _build_parser(PROG, DESCRIPTION, SpectrumConfig, CONFIG_HELP)


def _report(result) -> None:
    for notice in result.notices:
        print(f"notice: {notice}")
    print(result.summary())
    if result.written:
        print(
            f"wrote {len(result.written)} files to {Path(result.config.output)}/ (CSV: wavenumber_cm-1, intensity, stderr)"
        )


def main(argv=None) -> int:
    """Entry point of ``painn-spectrum``; returns the exit status (:mod:`painn_deploy.cli.common`)."""
    execute = lambda args: compute_spectra(config_from_arguments(SpectrumConfig, args))  # noqa: E731
    return run_command(PROG, build_parser(), argv, execute, _report)


if __name__ == "__main__":
    sys.exit(main())
