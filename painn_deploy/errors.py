"""One exception hierarchy.  Messages say what failed, where, and what to do."""

import re
from contextlib import contextmanager


class PainnDeployError(Exception):
    """Base class of every error raised on purpose by painn-deploy.  ``exit_status``: the commands' exit status
    for it, 2 for input that cannot be used (nothing was run) and 1 for a run that failed on its way."""

    exit_status = 2


class InputError(PainnDeployError, ValueError):
    """A file, structure or option given by the user cannot be used as it is."""


class UnknownElementError(InputError):
    """A structure contains elements the model was not trained on."""


class TopologyMismatchError(InputError):
    """A structure does not match the particles the exported model was built for."""


class UnitsError(InputError):
    """A quantity looks like it is in the wrong unit (e.g. Angstrom read as nm)."""


class BoxTooSmallError(InputError):
    """A periodic box is narrower than twice the model's cutoff."""


class CheckpointError(PainnDeployError):
    """A checkpoint or exported model is missing, truncated or incompatible."""


class NeighborListOverflowError(PainnDeployError, RuntimeError):
    """A static-capacity neighbour list received more pairs than it can hold."""

    exit_status = 1


class SimulationInstabilityError(PainnDeployError, RuntimeError):
    """A trajectory produced NaN energies, exploding forces or temperatures."""

    exit_status = 1


class MinimizationError(PainnDeployError, RuntimeError):
    """A minimisation left the starting molecule (its covalent bonds changed)."""

    exit_status = 1


class TrainingDivergedError(PainnDeployError, RuntimeError):
    """The training loss became NaN or infinite."""

    exit_status = 1


class RecordingError(PainnDeployError, RuntimeError):
    """Recorded properties could not be matched to the MD steps they belong to."""

    exit_status = 1


class RunInterrupted(PainnDeployError):
    """A run stopped on request (Ctrl-C, or SIGTERM from a batch scheduler) after writing a checkpoint.
    ``exit_status``: 128 + the signal's number, as the shell reports a process the signal stopped."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_status = 128 + int(signum)


class DataWarning(UserWarning):
    """Training data that can be read but look implausible (units, ranges)."""


class SimulationWarning(UserWarning):
    """Something the user should know about a run that goes on (painn-simulate prints it as a warning)."""


_TYPED = {
    cls.__name__: cls
    for cls in (
        CheckpointError,
        InputError,
        UnknownElementError,
        TopologyMismatchError,
        UnitsError,
        BoxTooSmallError,
        NeighborListOverflowError,
    )
}


def from_torchscript(exc: BaseException):
    """The typed exception named by an error raised inside an exported (TorchScript) model, whose
    messages start with the class name ("BoxTooSmallError: ..."), or None for any other error."""
    lines = str(exc).strip().splitlines()
    for match in re.finditer(r"(\w+Error): ", lines[-1] if lines else ""):
        if match.group(1) in _TYPED:
            return _TYPED[match.group(1)](lines[-1][match.end() :])
    return None


@contextmanager
def typed_errors():
    """Re-raise errors of exported models as the package's typed exceptions."""
    try:
        yield
    except Exception as exc:
        typed = from_torchscript(exc)
        if typed is None:
            raise
        raise typed from None
