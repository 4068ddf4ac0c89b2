"""Checkpoints: written atomically, read with clear errors.

A painn-deploy checkpoint is a Lightning checkpoint (so ``--resume`` restores the optimiser and
schedule) with one extra entry, ``"painn"``, that holds everything export needs: model
hyperparameters, the weights to deploy (EMA weights when EMA is on), the training molecule's
atomic numbers, model units, data statistics and hash, the split, test errors and versions.
"""

import os
import tempfile
from pathlib import Path

import torch

from .. import units
from ..errors import CheckpointError
from ..model import PaiNNConfig, PaiNNPotential

FORMAT_VERSION = 1


def atomic_write(path, write) -> None:
    """Call ``write(tmp_path)`` for a temporary file next to ``path``, then ``os.replace`` it onto
    ``path``: the previous file survives any interruption.  The file gets the usual permissions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def load_checkpoint(path) -> dict:
    """Read the ``"painn"`` entry of a checkpoint, or raise :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path} ({type(exc).__name__}: {exc}); the file is truncated or not a "
            f"checkpoint. Use the previous checkpoint (best.ckpt / last.ckpt) or train again."
        ) from exc
    if not isinstance(ckpt, dict) or "painn" not in ckpt:
        raise CheckpointError(
            f"{path} is not a painn-deploy checkpoint (no 'painn' entry); was it written by painn-train?"
        )
    record = ckpt["painn"]
    if record.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer painn-deploy (format {record['format_version']}); upgrade"
        )
    return record


def potential_from_record(record: dict) -> PaiNNPotential:
    """Rebuild the trained potential from a checkpoint record."""
    model = PaiNNPotential(PaiNNConfig.from_dict(record["config"]))
    try:
        model.load_state_dict(record["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint weights do not match its hyperparameters: {exc}") from exc
    return model.double().eval()
