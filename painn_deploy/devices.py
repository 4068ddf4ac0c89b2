"""The torch device a user names, checked against the machine: one message for every command and API."""

import torch

from .errors import InputError


def torch_device(name, option: str) -> torch.device:
    """``name`` (a string such as "cpu", "cuda", "cuda:1", or a torch.device) as a device torch can use here;
    ``option``: how the user gave it, for the message (``"--device "``, ``"device="``)."""
    try:
        device = name if isinstance(name, torch.device) else torch.device(name if isinstance(name, int) else str(name))
    except (RuntimeError, TypeError):
        raise InputError(f"{option}{name} is not a torch device; give {option}cpu or {option}cuda") from None
    count = torch.cuda.device_count()
    if device.type == "cuda" and not (device.index or 0) < count:
        other = f", or {option}cuda:N below that" if count else ""
        raise InputError(f"{option}{name}: torch finds {count} CUDA device(s) here; give {option}cpu{other}")
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"{option}{name}: painn-deploy runs on cpu or cuda devices; give {option}cpu or {option}cuda")
    return device
