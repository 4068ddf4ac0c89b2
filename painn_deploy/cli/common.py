"""What every ``painn-*`` command shares: the parser built from a configuration dataclass, and the exit codes.

Exit status of every command: 0 on success; 2 for bad input (an argparse error, or a
:class:`~painn_deploy.errors.PainnDeployError` about a file, option or structure that cannot be used: nothing
was run); 1 for a run that failed on its way (an unstable trajectory, an overflowing neighbour list: errors
whose ``exit_status`` is 1).  Both are reported as one line ``PROG: error: ...``, never with a traceback.  An
unexpected exception (a bug, a full disk) also exits with 1, after its traceback and one line
``PROG: error: the run failed: ...``.  Ctrl-C exits with 130, as the shell reports it; painn-simulate first
writes a checkpoint, and does so on SIGTERM too (exit 143).
"""

import argparse
import sys
import traceback
import warnings
from typing import Callable

from ..configuration import add_arguments
from ..errors import PainnDeployError, from_torchscript

BAD_INPUT = 2
FAILED_RUN = 1
INTERRUPTED = 130  # the shell's status for Ctrl-C
# what each command can be asked for less of, when it runs out of memory
#: What a second Ctrl-C leaves to go on from.
AFTER_INTERRUPT = {
    "painn-simulate": "the last checkpoint is kept: painn-simulate --resume -o OUTPUT continues from it",
    "painn-train": "the checkpoints of the last validation are kept: painn-train --resume -o OUTPUT continues",
}

LESS_MEMORY = {
    "painn-simulate": "fewer beads or replicas, fewer atoms",
    "painn-spectrum": "fewer or shorter files, a smaller --zero-pad or --max-corr-time-ps",
    "painn-train": "a smaller --batch-size or model, fewer frames",
    "painn-harmonic": "fewer atoms",
    "painn-export": "fewer atoms",
    "painn-demo": "a shorter --md-ps",
}


def build_parser(prog: str, description: str, config_cls, config_help: str | None = None) -> argparse.ArgumentParser:
    """``--config`` and one argument per field of ``config_cls`` (see :mod:`painn_deploy.configuration`)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    return add_arguments(parser, config_cls, config_help)


def _print_warnings(prog: str, caught) -> None:
    for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)):
        print(f"{prog}: warning: {message}", file=sys.stderr)


def _show_as_they_happen(prog: str):
    """``warnings.showwarning`` for long runs: the package's warnings as ``PROG: warning: ...`` lines when they are
    issued, any other as Python shows it."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__module__.split(".")[0] == "painn_deploy":
            print(f"{prog}: warning: {message}", file=sys.stderr, flush=True)
        else:
            default(message, category, filename, lineno, file, line)

    return show


def run_command(
    prog: str,
    parser: argparse.ArgumentParser,
    argv,
    execute: Callable,
    report: Callable | None = None,
    capture_warnings: bool = True,
) -> int:
    """Parse ``argv``, call ``execute(args)`` and ``report(result)``; return the exit status (above).

    With ``capture_warnings`` the warnings issued on the way are printed once each, as ``PROG: warning: ...``
    lines before the report or the error; without (long runs), the package's warnings are printed so as they happen.
    """
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return exc.code if isinstance(exc.code, int) else BAD_INPUT
    caught: list = []
    try:
        if capture_warnings:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = execute(args)
        else:
            with warnings.catch_warnings():
                warnings.showwarning = _show_as_they_happen(prog)
                result = execute(args)
    except Exception as raised:
        exc = raised if isinstance(raised, PainnDeployError) else from_torchscript(raised)
        out_of_memory = isinstance(raised, MemoryError) or type(raised).__name__ == "OutOfMemoryError"
        if exc is None and (out_of_memory or "can't allocate memory" in str(raised)):  # (numpy's, torch's, CUDA's)
            _print_warnings(prog, caught)
            less = LESS_MEMORY.get(prog, "a smaller system")
            print(f"{prog}: error: not enough memory ({raised}); ask for less ({less})", file=sys.stderr)
            return FAILED_RUN
        if exc is None:  # a failed run (I/O, a bug): the traceback for the report, then one line
            _print_warnings(prog, caught)
            traceback.print_exc()
            print(f"{prog}: error: the run failed: {type(raised).__name__}: {raised}", file=sys.stderr)
            return FAILED_RUN
        _print_warnings(prog, caught)
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:  # Ctrl-C where nothing finishes the work first (painn-simulate checkpoints)
        _print_warnings(prog, caught)
        after = f" ({AFTER_INTERRUPT[prog]})" if prog in AFTER_INTERRUPT else ""
        print(f"{prog}: interrupted{after}", file=sys.stderr)
        return INTERRUPTED
    _print_warnings(prog, caught)
    if report is not None:
        report(result)
    return 0
