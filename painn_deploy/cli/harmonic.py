"""painn-harmonic: harmonic frequencies, IR intensities and Raman activities of a model.

    painn-harmonic runs/ethanol/best.ckpt ethanol.pdb -o harmonic/     # float64 from the checkpoint
    painn-harmonic model.pt ethanol.pdb -o harmonic/                   # an exported model
    painn-harmonic --config harmonic.yaml [--fmax 1e-4]

Parses the command line (and ``--config``) into a :class:`~painn_deploy.spectra.harmonic_pipeline.HarmonicConfig`
and runs :func:`~painn_deploy.spectra.harmonic_pipeline.compute_harmonic`, which writes modes.csv, harmonic.json,
minimized.pdb and modes.png.  ``painn-spectrum --sticks harmonic/modes.csv`` overlays the harmonic spectrum on MD spectra.
Exit status: :mod:`painn_deploy.cli.common`.  Formulas and units: docs/spectra.md.
"""

import sys

import torch  # noqa: F401  (import torch before anything that may import openmmtorch)

from ..configuration import config_from_arguments
from ..spectra.harmonic_pipeline import DESCRIPTION, HarmonicConfig, compute_harmonic
from .common import build_parser as _build_parser
from .common import run_command

PROG = "painn-harmonic"


def build_parser():
    return _build_parser(PROG, DESCRIPTION, HarmonicConfig)


def main(argv=None) -> int:
    """Entry point of ``painn-harmonic``; returns the exit status (:mod:`painn_deploy.cli.common`)."""
    execute = lambda args: compute_harmonic(config_from_arguments(HarmonicConfig, args))  # noqa: E731
    return run_command(PROG, build_parser(), argv, execute, lambda run: print(run.summary()))


if __name__ == "__main__":
    sys.exit(main())
