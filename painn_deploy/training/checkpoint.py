"""Checkpoints: written atomically, read with clear errors.

A painn-deploy checkpoint is a Lightning checkpoint (so ``--resume`` restores the optimiser and
schedule) with one extra entry, ``"painn"``, that holds everything export needs: model
hyperparameters, the weights to deploy (EMA weights when EMA is on), the training molecule's
atomic numbers, model units, data statistics and hash, the split, test errors and versions.
"""

import torch

from .. import units
from ..files import atomic_write
from ..model import PaiNNPotential
from ..model.checkpoint import FORMAT_VERSION


def atomic_torch_save(obj, path) -> None:
    """``torch.save`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def painn_record(potential: PaiNNPotential, **extra) -> dict:
    """The ``"painn"`` entry of a checkpoint."""
    from .. import versions

    record = {
        "format_version": FORMAT_VERSION,
        "config": potential.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in potential.state_dict().items()},
        "model_units": dict(units.MODEL_UNITS),
        "versions": versions.collect(),
    }
    record.update(extra)
    return record
