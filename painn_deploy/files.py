"""Files written atomically and identified by hash; output folders that are not overwritten by accident."""

import hashlib
import json
import os
import tempfile
import zipfile
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


def what_file(path) -> str:
    """What a file holds, judged from its first bytes (and a zip archive's member names), for a message about a
    file given in the wrong place: "a PDB structure", "a NumPy .npz archive", ...; "" when not recognised."""
    from .deploy.metadata import METADATA_FILE

    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return ""
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file (such as the properties.h5 of painn-simulate)"
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy array (.npy)"
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return "an incomplete or damaged zip archive"
        if any(n.endswith(f"/extra/{METADATA_FILE}") for n in names):
            return "a model exported by painn-export"
        if any("/code/" in n for n in names):
            return "a TorchScript model"
        if names and all(n.endswith(".npy") for n in names):
            return "a NumPy .npz archive (data, not a model)"
        if any(n.endswith("data.pkl") for n in names):
            return "a PyTorch file written by torch.save (such as a painn-train checkpoint)"
        return "a zip archive"
    lines = head.decode("latin-1").splitlines()
    if any(line.startswith(("ATOM  ", "HETATM", "CRYST1", "MODEL ")) for line in lines):
        return "a PDB structure"
    if lines and lines[0].strip().isdigit():
        return "an XYZ structure file"
    if any("<ForceField" in line for line in lines):
        return "an OpenMM force field (XML)"
    return ""


def write_json(path, record, **dumps) -> Path:
    """Write ``record`` as JSON (``json.dumps`` options in ``dumps``) atomically (:func:`atomic_write`): a run's
    record file is its "finished" marker, so no half-written one is ever left."""
    text = json.dumps(record, **dumps) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return Path(path)


def is_checkpoint(path) -> bool:
    """Whether a model file is a painn-train checkpoint (a torch.save file) rather than an exported model, judged
    from its content whatever its name; a damaged or unrecognised file named .ckpt counts as one, so that the
    checkpoint reader names what is wrong with it."""
    kind = what_file(path)
    if kind.startswith("a PyTorch file"):
        return True
    return Path(path).suffix == ".ckpt" and kind not in ("a model exported by painn-export", "a TorchScript model")


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


def check_writable(folder, option: str = "-o/--output") -> None:
    """Refuse a folder that cannot be written (or made, in the nearest folder above it that exists), before any
    work whose results would then be lost."""
    folder = Path(folder).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "not a directory")
        with tempfile.NamedTemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise InputError(f"cannot write to {folder} ({existing}: {exc.strerror}); choose another {option}") from None


def check_output_folder(folder, record: str, overwrite: bool) -> Path:
    """``folder`` as a Path, once it is known to be usable as the output folder of a command whose runs end by
    writing the JSON file ``record`` (with the names of their files under "written").  A folder holding an
    earlier run's ``record`` is refused unless ``overwrite`` is set: call this before any long computation."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(
            f"the output {folder} exists and is a file; -o/--output names a folder: give a new or existing one"
        )
    if (folder / record).exists() and not overwrite:
        raise InputError(
            f"{folder} already holds the results of an earlier run ({record}); give another -o/--output, or "
            "--overwrite to replace them"
        )
    check_writable(folder)
    return folder


def earlier_outputs(folder, record: str) -> set[str]:
    """Names of the files the run that wrote ``folder/record`` listed under "written" (none when unreadable)."""
    try:
        return {Path(p).name for p in json.loads((Path(folder) / record).read_text()).get("written", [])}
    except (OSError, ValueError, AttributeError, TypeError):
        return set()


def remove_stale_outputs(folder, earlier: set[str], written) -> None:
    """Delete the files of an earlier run (``earlier``, from :func:`earlier_outputs`) that this run, which wrote
    ``written``, did not replace: a folder then never mixes the results of two runs.  Nothing else is touched."""
    for name in earlier - {Path(p).name for p in written}:
        (Path(folder) / name).unlink(missing_ok=True)
