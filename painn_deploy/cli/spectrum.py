"""painn-spectrum: IR and Raman spectra from MD property files.

    painn-spectrum run/properties.h5 [more.h5 ...] --ir --raman -o spectra/
    painn-spectrum --config spectrum.yaml [--resolution-cm1 5]

Parses the command line (and ``--config``) into a :class:`~painn_deploy.spectra.SpectrumConfig`
and runs :func:`~painn_deploy.spectra.compute_spectra`, which writes one CSV per spectrum
(columns wavenumber_cm-1, intensity, stderr), PNG plots and metadata.json.  Exit status: 0 on
success, 2 for bad input, 1 for a run that failed otherwise.  Formulas and units: docs/spectra.md.
"""

import argparse
import sys
import traceback
import warnings

from ..errors import PainnDeployError
from ..spectra.config import DESCRIPTION, add_arguments, config_from_arguments
from ..spectra.pipeline import compute_spectra

PROG = "painn-spectrum"


def build_parser() -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(prog=PROG, description=DESCRIPTION))


def _print_warnings(caught) -> None:
    messages = dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning))
    for message in messages:
        print(f"warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    """Entry point of ``painn-spectrum``; returns the exit status (0 ok, 2 bad input, 1 failed run)."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = compute_spectra(config_from_arguments(args))
        except PainnDeployError as exc:
            _print_warnings(caught)
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # a failed run (I/O, a bug): traceback for the report, status 1
            _print_warnings(caught)
            traceback.print_exc()
            print(f"{PROG}: error: the run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    _print_warnings(caught)
    for notice in result.notices:
        print(f"notice: {notice}")
    print(result.summary())
    if result.written:
        print(f"wrote {len(result.written)} files to {result.config.output}/ (CSV: wavenumber_cm-1, intensity, stderr)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
