"""Reading the trained model out of a painn-train checkpoint (no Lightning needed)."""

import torch

from ..errors import CheckpointError
from ..files import require_file, what_file
from .potential import PaiNNConfig, PaiNNPotential

FORMAT_VERSION = 1  # of the checkpoint's "painn" record


def load_checkpoint(path) -> dict:
    """Read the ``"painn"`` entry of a checkpoint, or raise :class:`CheckpointError`."""
    path = require_file(path, "checkpoint", "give a checkpoint that painn-train wrote (.ckpt)", CheckpointError)
    kind = what_file(path)
    if kind and not kind.startswith(("a PyTorch file", "an incomplete")):
        hint = " (already exported: use it as it is)" if kind == "a model exported by painn-export" else ""
        raise CheckpointError(
            f"{path} is {kind}, not a painn-train checkpoint{hint}; give a checkpoint that painn-train wrote "
            f"(best.ckpt or last.ckpt in its --output folder)"
        )
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
