"""One exception hierarchy.  Messages say what failed, where, and what to do."""


class PainnDeployError(Exception):
    """Base class of every error raised on purpose by painn-deploy."""


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


class SimulationInstabilityError(PainnDeployError, RuntimeError):
    """A trajectory produced NaN energies, exploding forces or temperatures."""


class RecordingError(PainnDeployError, RuntimeError):
    """Recorded properties could not be matched to the MD steps they belong to."""
