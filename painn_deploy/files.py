"""Files written atomically and identified by hash."""

import hashlib
import os
import tempfile
from pathlib import Path

from .errors import InputError

MODEL_FILE_FIX = "give an exported model (.pt, from painn-export) or a painn-train checkpoint (.ckpt)"


def require_file(path, what: str, fix: str, error: type = InputError) -> Path:
    """``path`` as a Path if it is a file; otherwise ``error`` naming the ``what``, where it was looked for, and
    the ``fix``."""
    path = Path(path)
    if not path.is_file():
        problem = "is a directory, not a file" if path.is_dir() else "does not exist"
        where = "" if path.is_absolute() else f" (in {Path.cwd()})"
        raise error(f"{what} {path} {problem}{where}; {fix}")
    return path


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


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
