"""A run's output directory: what a run writes there, its checkpoints, and what is verified before a resume.

A checkpoint is ``[8-byte header length][JSON header][OpenMM state][SHA-256 of everything before it]``.  It is
written atomically, the one before it kept as ``checkpoint.prev.chk``; a resume verifies the checkpoint, the
run's record (``run.json``: the options it was started with) and that the output files hold at least what the
checkpoint counts, reading everything and writing nothing, so that a refused resume leaves the run as it was.
"""

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from ..errors import CheckpointError, InputError
from ..files import atomic_write, check_writable, write_json
from .config import SimulationConfig, flag
from .outputs import dcd_frames

CHECKPOINT, PREVIOUS_CHECKPOINT = "checkpoint.chk", "checkpoint.prev.chk"
FINAL_STRUCTURE = "final.pdb"  # the last structure of the run's first copy (a ring polymer's centroid), with its box
REPLICAS_STRUCTURE = "replicas.pdb"  # with --replicas: every copy's last structure (the trajectory's topology)
BEADS_STRUCTURE = "beads.pdb"  # with --bead-trajectory: every bead's last structure (the bead trajectory's topology)
CHECKPOINT_FORMAT = 3  # 3: --integrator verlet steps with the thermostatted integrator, its thermostat off
CHECKPOINT_KEYS = {"step": int, "trajectory_frames": int, "trajectory_bytes": int, "property_frames": int,
                   "model_sha256": str, "state_bytes": int}  # fmt: skip
# what a run writes in its output directory (what --overwrite deletes; nothing else there is touched)
RUN_FILES = ("run.json", "log.csv", "properties.h5", "trajectory.dcd", "trajectory.xtc", "beads.dcd", "beads.xtc",
             CHECKPOINT, PREVIOUS_CHECKPOINT, "model.pt", "ml_region.pdb", FINAL_STRUCTURE, REPLICAS_STRUCTURE,
             BEADS_STRUCTURE)  # fmt: skip
RESUME_MUST_MATCH = (
    "structure", "temperature_K", "timestep_fs", "integrator", "friction_per_ps", "beads", "record_dipole",
    "record_polarizability", "record_interval", "trajectory_interval", "trajectory_format", "backend", "seed",
    "replicas", "rpmd_integrator", "bead_trajectory", "ml_residues", "mm_forcefield", "forcefield_file", "pressure_bar",
    "mm_cutoff_nm",
)  # fmt: skip


#: The options that name files (``forcefield_file``: comma-separated): relative to the run's working directory.
PATH_OPTIONS = ("structure", "model", "forcefield_file")


def path_entries(key: str, value) -> list:
    """The paths an option names: ``forcefield_file`` is a comma-separated list (blank entries dropped), the
    others one path each."""
    if not value:
        return []
    if key != "forcefield_file":
        return [str(value)]
    return [p.strip() for p in str(value).split(",") if p.strip()]


def run_root(recorded_output: str, output_now, working_directory: Optional[str]) -> str:
    """The directory a run's relative paths are relative to, found from where its output directory is now: the
    output as recorded (relative to the directory the run started in) stripped from the end of the output's path
    today, so that a project copied or moved, or a resume from elsewhere, finds the run's own files; else the
    recorded working directory."""
    now = os.path.realpath(output_now)
    recorded = os.path.normpath(str(recorded_output))
    if not os.path.isabs(recorded) and not recorded.startswith(".."):
        parts = Path(recorded).parts
        if Path(now).parts[-len(parts) :] == parts:
            return str(Path(*Path(now).parts[: -len(parts)]))
    return working_directory or os.getcwd()


def found_paths(config: dict, root: str) -> dict:
    """``config`` (a run's options, as in run.json) with each relative file path found from the run's ``root``
    (:func:`run_root`) joined to it.  Other entries (OpenMM's own force-field names, files found nowhere) stay as
    given."""
    out = dict(config)
    for key in PATH_OPTIONS:
        if out.get(key):
            out[key] = ",".join(
                os.path.join(root, p) if not os.path.isabs(p) and os.path.exists(os.path.join(root, p)) else p
                for p in path_entries(key, out[key])
            )  # fmt: skip
    return out


def resume_config(flags: dict) -> SimulationConfig:
    """The options of a run continued with --resume: those of its run.json, which ``flags`` (the options given
    on the command line) override; relative paths found as :func:`found_paths` finds them.  Without a run.json,
    the flags alone (which must then name the structure)."""
    record = Path(flags.get("output") or SimulationConfig.output) / "run.json"
    if not record.is_file():
        if flags.get("structure") is None:
            raise InputError(
                f"--resume reads the run's options from {record}, which does not exist: give the run's folder with "
                "-o/--output"
            )
        return SimulationConfig.from_mapping(flags, source="the command line")
    try:
        run = json.loads(record.read_text())
        root = run_root(run["config"].get("output", ""), record.parent, run.get("working_directory"))
        stored = found_paths(run["config"], root)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(
            f"{record} cannot be read ({type(exc).__name__}: {exc}); give the run's options as they were"
        ) from None
    return SimulationConfig.from_mapping({**stored, **flags}, source=str(record))


def same_files(key: str, previous, now, root: Optional[str]) -> bool:
    """Whether two values of a path option name the same files: ``previous`` from the run's ``root``, ``now``
    from the current directory (symbolic links followed).  Entries that are files neither way (OpenMM's own
    force-field names) must be equal as given."""
    base = root or os.getcwd()
    before, after = path_entries(key, previous), path_entries(key, now)
    if len(before) != len(after):
        return False
    for old, new in zip(before, after):
        old_path = os.path.join(base, old)
        if os.path.exists(old_path) or os.path.exists(new):
            if os.path.realpath(old_path) != os.path.realpath(new):
                return False
        elif old != new:
            return False
    return True


def encode_checkpoint(meta: dict, state: bytes) -> bytes:
    """[8-byte little-endian header length][JSON header][OpenMM state][SHA-256 of all that]."""
    header = json.dumps(dict(meta, checkpoint_format=CHECKPOINT_FORMAT, state_bytes=len(state))).encode()
    body = len(header).to_bytes(8, "little") + header + state
    return body + hashlib.sha256(body).digest()


def decode_checkpoint(blob: bytes):
    """(header, OpenMM state) of a checkpoint, verified: its length, checksum and every header entry.  Raises
    CheckpointError saying what is wrong."""
    if len(blob) < 8 + 2 + 32:
        raise CheckpointError(f"it is {len(blob)} bytes long, too short for a checkpoint")
    n = int.from_bytes(blob[:8], "little")
    if n > len(blob) - 8 - 32:
        raise CheckpointError(f"its header alone should be {n} bytes, but the file has {len(blob)}: truncated")
    try:
        meta = json.loads(blob[8 : 8 + n])
    except ValueError:
        raise CheckpointError("its header is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("checkpoint_format") != CHECKPOINT_FORMAT:
        version = meta.get("checkpoint_format") if isinstance(meta, dict) else None
        raise CheckpointError(
            f"it is not a checkpoint of format {CHECKPOINT_FORMAT} (format {version}: written by another version of "
            f"painn-deploy, without a checksum to verify it)"
        )
    for key, kind in CHECKPOINT_KEYS.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool) or (kind is int and meta[key] < 0):
            raise CheckpointError(f"its header entry {key!r} is missing or invalid ({meta.get(key)!r})")
    expected = 8 + n + meta["state_bytes"] + 32
    if len(blob) != expected:
        raise CheckpointError(f"it has {len(blob)} bytes where its header says {expected}: truncated or extended")
    if hashlib.sha256(blob[:-32]).digest() != blob[-32:]:
        raise CheckpointError("its SHA-256 checksum does not match its contents: the file was changed or corrupted")
    return meta, blob[8 + n : -32]


class RunDirectory:
    """The output directory of one run (``cfg.output``)."""

    def __init__(self, cfg: SimulationConfig):
        self.cfg = cfg
        self.path = Path(cfg.output)
        self.created = not self.path.exists()  # made by this run: removed again if the set-up fails
        self.written_by_set_up = set()  # files the set-up wrote (kept by --overwrite)
        self.last_checkpoint = None  # the bytes of the last checkpoint written or resumed from
        self.record_checked = False  # whether run.json's options were compared with a resume's (check_record)
        self._record: Optional[dict] = None  # run.json, read once
        self._check_free()
        self._check_writable()

    def _check_writable(self) -> None:
        check_writable(self.path, "--output")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"cannot write to the output directory {self.path}: {exc.strerror}; choose another --output"
            ) from exc

    def _check_free(self) -> None:
        """A new run (neither --resume nor --overwrite) needs an empty or new output directory: a previous run's
        files would otherwise be overwritten, or left behind stale (properties.h5 of a run that recorded)."""
        cfg = self.cfg
        if cfg.resume or cfg.overwrite or not self.path.is_dir():
            return
        entries = sorted(p.name for p in self.path.iterdir())
        if entries:
            listing = ", ".join(entries[:6]) + (f" and {len(entries) - 6} more" if len(entries) > 6 else "")
            if any(name in RUN_FILES for name in entries):
                what, fix = (
                    "a previous run",
                    ", --resume to continue that run, or --overwrite to delete its files and start again",
                )
            else:
                what, fix = "other files", " or an empty folder"
            raise InputError(
                f"the output directory {self.path} already holds {what} ({listing}); give a new --output{fix}"
            )

    def discard_if_created(self) -> None:
        """After a failed set-up or a refused resume: leave no directory behind that this run made."""
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)

    def owns(self, path: Path) -> bool:
        return path.parent.resolve() == self.path.resolve()

    def write_if_changed(self, name: str, write) -> Path:
        """``write(tmp)`` into a temporary file, moved onto ``name`` only if the bytes differ (a resumed run leaves
        its files as they are); the file counts as the set-up's."""
        path = self.path / name
        self.written_by_set_up.add(name)
        with tempfile.TemporaryDirectory() as tmp:
            new = Path(tmp) / name
            write(new)
            if not (path.is_file() and path.read_bytes() == new.read_bytes()):
                atomic_write(path, lambda target: shutil.copyfile(new, target))
        return path

    def remove_previous_run(self, keep) -> None:
        """--overwrite: delete the files a previous run left (and the temporary files of its atomic writes),
        except what this run's set-up just wrote and the paths in ``keep`` (the run's own inputs)."""
        kept = {(self.path / name).resolve() for name in self.written_by_set_up} | {Path(p).resolve() for p in keep}
        for path in self.path.iterdir():
            temporary = path.name.startswith(".") and path.name.endswith(".tmp")
            if (path.name in RUN_FILES or temporary) and path.is_file() and path.resolve() not in kept:
                path.unlink()

    def write_record(self, record: dict) -> None:
        write_json(self.path / "run.json", record, indent=1)
        self._record = record

    def started_model(self) -> Optional[Path]:
        """The model the run started with, found as its other files are (:func:`run_root`); None without a record
        naming one."""
        try:
            record = self.record()
        except InputError:
            return None
        if not record.get("model"):
            return None
        return Path(run_root(record["config"].get("output", ""), self.path, record.get("working_directory")),
                    record["model"])  # fmt: skip

    def record(self) -> dict:
        """The run's record (run.json), read once: an :class:`InputError` names a missing or unreadable one."""
        if self._record is None:
            path, flag_used = self.path / "run.json", self.resume_flag
            try:
                record = json.loads(path.read_text())
                if not isinstance(record.get("config"), dict):
                    raise TypeError("'config' is not a mapping")
            except FileNotFoundError:
                raise InputError(
                    f"{flag_used}: {path} is missing; it records the options the run was started with, which a "
                    f"resumed run must repeat. Restore it, or start again with --overwrite"
                ) from None
            except (OSError, ValueError, AttributeError, TypeError) as exc:
                raise InputError(
                    f"{flag_used}: {path} cannot be read ({type(exc).__name__}: {exc}); restore it, or start again "
                    f"with --overwrite"
                ) from None
            self._record = record
        return self._record

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def save_checkpoint(self, meta: dict, state: bytes) -> None:
        """Write checkpoint.chk atomically, the one before it kept as checkpoint.prev.chk (also atomically: at
        any moment both files are whole).  The previous one is the checkpoint this process wrote or resumed from,
        never a file re-read from disk (which may be damaged)."""
        blob = encode_checkpoint(meta, state)
        if self.last_checkpoint is not None:
            previous = self.last_checkpoint
            atomic_write(self.path / PREVIOUS_CHECKPOINT, lambda tmp: Path(tmp).write_bytes(previous))
        atomic_write(self.path / CHECKPOINT, lambda tmp: Path(tmp).write_bytes(blob))
        self.last_checkpoint = blob

    @property
    def resume_flag(self) -> str:
        return f"--resume-from {self.cfg.resume_from}" if self.cfg.resume_from else "--resume"

    def _resume_source(self) -> Path:
        if not self.cfg.resume_from:
            return self.path / CHECKPOINT
        given = Path(self.cfg.resume_from)  # (a name: in the run's own directory, as every hint says)
        return given if given.is_absolute() or len(given.parts) > 1 else self.path / given

    def read_checkpoint(self, model_sha256: str, topology, recorded) -> tuple:
        """(header, OpenMM state, path) of the checkpoint to resume from, verified with the run's record and its
        output files (``topology`` as the run writes it, ``recorded`` the property names)."""
        path, flag_used = self._resume_source(), self.resume_flag
        if not path.is_file():
            if self.cfg.resume_from:
                raise InputError(f"{flag_used}: there is no checkpoint {path}")
            fresh = (
                "start without --resume"
                if self.created or not any(self.path.iterdir())
                else "start the run again with --overwrite (or in a new --output)"
            )
            raise InputError(f"--resume: no checkpoint {path}.{self._previous_hint(path, fresh)}")
        try:
            blob = path.read_bytes()
            meta, state = decode_checkpoint(blob)
        except (CheckpointError, OSError) as exc:
            raise CheckpointError(
                f"{flag_used}: {path} is damaged and cannot be resumed ({exc}); nothing in {self.path} was "
                f"changed.{self._previous_hint(path, 'start the run again with --overwrite (or in a new --output)')}"
            ) from None
        if meta["model_sha256"] != model_sha256:
            try:
                model = self.record().get("model")
            except InputError:
                model = None
            if self.cfg.model is None:  # the bundled model, replaced by a newer painn-deploy
                raise InputError(
                    f"{flag_used}: {path} was written with another version of the bundled model (sha256 "
                    f"{meta['model_sha256'][:12]}...; this painn-deploy's is {model_sha256[:12]}...): a run cannot "
                    "continue with another model. Start it again (--overwrite), or resume with a copy of the model it "
                    "started with (--model FILE)"
                )
            which = f" ({model}, sha256 {meta['model_sha256'][:12]}...)" if model else ""
            raise InputError(
                f"{flag_used}: {path} was written with another model{which} than --model {self.cfg.model} (sha256 "
                f"{model_sha256[:12]}...); resume with the run's model, or leave --model out to take the one its "
                "run.json names"
            )
        if not self.record_checked:
            self.check_record()
        self._check_outputs(meta, path, topology, recorded)
        self.last_checkpoint = blob
        return meta, state, path

    def _previous_hint(self, damaged: Path, otherwise: str) -> str:
        """What to do instead: resume from the previous checkpoint if it is intact, else ``otherwise``."""
        previous = self.path / PREVIOUS_CHECKPOINT
        if previous.is_file() and previous.resolve() != damaged.resolve():
            try:
                step = decode_checkpoint(previous.read_bytes())[0]["step"]
            except (CheckpointError, OSError):
                pass
            else:
                return (
                    f" The previous checkpoint {previous} (step {step}) is intact: resume from it with "
                    f"--resume-from {PREVIOUS_CHECKPOINT} (the steps after {step} are run again)."
                )
        return f" There is no intact earlier checkpoint: {otherwise}."

    def check_record(self) -> None:
        """Refuse a resume whose options differ from those in run.json that must not change."""
        record, flag_used = self.record(), self.resume_flag
        previous, now = record["config"], self.cfg.as_dict()
        # (files compared as the absolute paths they named: a resume may run from another directory)
        root = run_root(previous.get("output", ""), self.path, record.get("working_directory"))
        changed = [k for k in RESUME_MUST_MATCH if k in previous
                   and (not same_files(k, previous[k], now[k], root) if k in PATH_OPTIONS else previous[k] != now[k])]  # fmt: skip
        if changed:
            listing = ", ".join(f"{flag(k)} ({previous[k]} -> {now[k]})" for k in changed)
            raise InputError(f"{flag_used} with changed settings: {listing}; resume with the original options")
        self.record_checked = True

    def _check_outputs(self, meta: dict, path: Path, topology, recorded) -> None:
        """The output files hold at least what the checkpoint says was written (resuming cuts them back to it)."""
        from .build import replicated_topology

        cfg, problems = self.cfg, []
        for name, copies in (("trajectory", cfg.replicas), ("beads", cfg.replicas * cfg.beads)):
            if name == "beads" and not cfg.bead_trajectory:
                continue
            frames, size = meta.get(f"{name}_frames", 0), meta.get(f"{name}_bytes", 0)
            file = self.path / f"{name}.{cfg.trajectory_format}"
            if frames == 0:
                continue
            if not file.is_file():
                problems.append(f"{file.name} is missing (the checkpoint counts {frames} frames)")
            elif cfg.trajectory_format == "xtc" and file.stat().st_size < size:
                problems.append(f"{file.name} has {file.stat().st_size} bytes, fewer than the checkpoint's {size}")
            elif cfg.trajectory_format == "dcd":
                written = replicated_topology(topology, copies)  # as TrajectoryFile writes it
                have = dcd_frames(file, written.getNumAtoms(), written.getPeriodicBoxVectors() is not None)
                if have < frames:
                    problems.append(f"{file.name} holds {have} frames, fewer than the checkpoint's {frames}")
        if recorded and meta["property_frames"] > 0:
            import h5py

            file = self.path / "properties.h5"
            try:
                with h5py.File(file, "r") as f:
                    have = min(f[name].shape[0] for name in ("time",) + tuple(recorded))
            except (OSError, KeyError) as exc:
                problems.append(f"{file.name} cannot be read ({exc})")
            else:
                if have < meta["property_frames"]:
                    problems.append(
                        f"{file.name} holds {have} frames, fewer than the checkpoint's {meta['property_frames']}"
                    )
        if problems:
            raise InputError(
                f"{self.resume_flag}: the run's files do not match {path} (step {meta['step']}): "
                f"{'; '.join(problems)}. Restore them, or start again with --overwrite"
            )
