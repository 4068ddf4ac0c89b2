"""Output files of a simulation, each resumable without gaps or duplicated frames.

- ``log.csv``: step, time, energies, temperature and speed; ring polymers add the quantum kinetic energy,
  periodic systems the volume and density;
- ``properties.h5``: ``time`` (ps), ``dipole`` (e*nm), ``polarizability`` (nm^3), units as attributes,
  flushed at every checkpoint;
- ``trajectory.dcd`` or ``trajectory.xtc``: OpenMM's DCD or XTC writer (mdtraj, MDAnalysis and VMD
  read both; XTC is compressed to 0.001 nm).
On resume each file is cut back to the frames written up to the checkpoint, then appended to.
"""

import csv
import io
import os
import struct
import warnings
from pathlib import Path

import h5py
import numpy as np

from ..errors import SimulationWarning
from .config import TRAJECTORY_FORMATS

LOG_COLUMNS = (
    "step",
    "time_ps",
    "potential_kj_per_mol",
    "kinetic_kj_per_mol",
    "total_kj_per_mol",
    "temperature_K",
    "speed_ns_per_day",
)
# the centroid-virial estimator, and H_P (kinetic, springs and every bead's potential): conserved without a thermostat
RING_POLYMER_LOG_COLUMNS = ("quantum_kinetic_kj_per_mol", "ring_polymer_hamiltonian_kj_per_mol")
PERIODIC_LOG_COLUMNS = ("volume_nm3", "density_g_per_cm3")


def log_columns(ring_polymer: bool, periodic: bool) -> tuple:
    """log.csv's columns: :data:`LOG_COLUMNS`, with the quantum kinetic energy of ring polymers and the box of
    periodic systems before the speed."""
    extra = (RING_POLYMER_LOG_COLUMNS if ring_polymer else ()) + (PERIODIC_LOG_COLUMNS if periodic else ())
    return LOG_COLUMNS[:-1] + extra + LOG_COLUMNS[-1:]


class CsvLog:
    """log.csv.  ``resume_step``: keep the rows up to that step and append; ``expected_rows``: how many rows the
    checkpoint counted up to that step (None: not known), to warn when some are missing (the file was cut short,
    replaced or removed).  ``rows``: the rows the file holds."""

    def __init__(self, path: Path, columns: tuple = LOG_COLUMNS, resume_step: int = -1, expected_rows=None):
        self.path = path
        self.columns = columns
        rows = []
        if resume_step >= 0 and path.exists():
            text = path.read_text()
            text = text[: text.rfind("\n") + 1]  # (a row cut short by a killed process has no line end)
            # (a log of an earlier version may have other columns)
            rows = [{k: r.get(k, "") for k in columns} for r in csv.DictReader(io.StringIO(text, newline=""))
                    if int(r["step"]) <= resume_step]  # fmt: skip
        if resume_step >= 0 and expected_rows is not None and len(rows) < expected_rows:
            last = int(rows[-1]["step"]) if rows else 0
            holds = (f"holds rows up to step {last}" if rows else "holds no rows") if path.exists() else "is missing"
            warnings.warn(
                f"{path.name} {holds}, but the checkpoint at step {resume_step} counted {expected_rows} rows: the rows "
                f"in between are lost (the file was cut short, replaced or removed); the run goes on from the "
                f"checkpoint and adds its rows after step {last}",
                SimulationWarning, stacklevel=2,
            )  # fmt: skip
        self._open("w")
        self.writer.writerows(rows)
        self.rows = len(rows)
        self.file.flush()

    def _open(self, mode):
        self.file = open(self.path, mode, newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=self.columns, lineterminator="\n")
        self.writer.writeheader()

    def write(self, row: dict) -> None:
        self.writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
        self.rows += 1
        self.file.flush()

    def close(self):
        self.file.close()


class PropertiesFile:
    """Recorded dipoles/polarizabilities in HDF5, appended in blocks."""

    def __init__(self, path: Path, names, attrs: dict, resume_frames: int = -1, replicas: int = 1):
        """``replicas`` > 1 adds a replica axis after the time axis: dipole [T, R, 3]."""
        self.path = path
        self.names = tuple(names)
        lead = (replicas,) if replicas > 1 else ()
        shapes = {"dipole": lead + (3,), "polarizability": lead + (3, 3)}
        unit_of = {"time": "ps", "dipole": "e*nm", "polarizability": "nm^3"}
        if resume_frames >= 0 and path.exists():
            self.h5 = h5py.File(path, "a")
            for name in ("time",) + self.names:
                self.h5[name].resize(resume_frames, axis=0)
        else:
            self.h5 = h5py.File(path, "w")
            for name in ("time",) + self.names:
                shape = shapes.get(name, ())
                ds = self.h5.create_dataset(
                    name, shape=(0,) + shape, maxshape=(None,) + shape, dtype="f8", chunks=(1024,) + shape
                )
                ds.attrs["units"] = unit_of[name]
                ds.attrs["axes"] = ", ".join(["time"] + (["replica"] if lead and name != "time" else []) + {
                    "time": [], "dipole": ["xyz"], "polarizability": ["xyz", "xyz"]}[name])  # fmt: skip
            for k, v in attrs.items():
                self.h5.attrs[k] = v
        self.h5.flush()
        self.buffer: dict = {name: [] for name in ("time",) + self.names}

    def append(self, time_ps: float, values: dict) -> None:
        self.buffer["time"].append(time_ps)
        for name in self.names:
            self.buffer[name].append(values[name])

    @property
    def n_frames(self) -> int:
        return self.h5["time"].shape[0] + len(self.buffer["time"])

    def flush(self) -> None:
        n_new = len(self.buffer["time"])
        if n_new:
            for name, values in self.buffer.items():
                ds = self.h5[name]
                n = ds.shape[0]
                ds.resize(n + n_new, axis=0)
                ds[n:] = np.asarray(values)
                values.clear()
        self.h5.flush()

    def close(self):
        self.flush()
        self.h5.close()


def _dcd_layout(f, n_atoms: int, periodic: bool):
    """(frames in the header, header bytes, bytes per frame, whole frames in the file) of an open OpenMM DCD."""
    frame_bytes = (56 if periodic else 0) + 3 * (8 + 4 * n_atoms)
    f.seek(8)
    n_frames = struct.unpack("<i", f.read(4))[0]
    # header: an 84-byte block, a title block of 4 + 80 n bytes, a 4-byte atom count; each in 4-byte markers
    f.seek(92)
    header = 92 + 8 + struct.unpack("<i", f.read(4))[0] + 12
    size = os.fstat(f.fileno()).st_size
    return n_frames, header, frame_bytes, max(0, (size - header) // frame_bytes)


def dcd_frames(path: Path, n_atoms: int, periodic: bool) -> int:
    """Whole frames in an OpenMM DCD file (0 if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            n_frames, _, _, whole = _dcd_layout(f, n_atoms, periodic)
    except (OSError, struct.error):
        return 0
    return min(n_frames, whole)


def truncate_dcd(path: Path, n_atoms: int, periodic: bool, keep_frames: int) -> int:
    """Cut an OpenMM DCD file back to its first ``keep_frames`` frames (for resuming); returns the step of its
    first frame (the header's ISTART)."""
    with open(path, "r+b") as f:
        n_frames, header, frame_bytes, whole = _dcd_layout(f, n_atoms, periodic)
        keep = min(keep_frames, n_frames, whole)  # a partly written frame is dropped
        f.truncate(header + keep * frame_bytes)
        f.seek(8)
        f.write(struct.pack("<i", keep))
        f.seek(12)
        first, interval = struct.unpack("<ii", f.read(8))
        f.seek(20)
        f.write(struct.pack("<i", first + max(keep - 1, 0) * interval))
    return first


class TrajectoryFile:
    """``trajectory.dcd`` or ``trajectory.xtc`` in ``output``, written with OpenMM's writers.

    Frame k is step (k + 1) x ``interval`` (written after the steps), and the files say so; a file appended to
    keeps the numbering it was started with.
    ``sync()`` makes the frames written so far durable and returns what a checkpoint must remember
    (frames and bytes); ``resume`` (that dict) cuts the file back to it before appending.
    Positions in nm, box vectors as OpenMM Vec3s (or None).
    """

    def __init__(
        self, output: Path, fmt: str, topology, timestep_fs: float, interval: int, resume: dict = None,
        name: str = "trajectory",
    ):  # fmt: skip
        from openmm import app, unit

        if fmt not in TRAJECTORY_FORMATS:
            raise ValueError(f"trajectory format must be one of {TRAJECTORY_FORMATS}, not {fmt!r}")
        self.fmt = fmt
        self.name = name
        self.path = Path(output) / f"{name}.{fmt}"
        self.frames = 0
        dt = timestep_fs * unit.femtosecond
        append = resume is not None
        if append:
            self.frames = resume[f"{name}_frames"]
        first_step = interval
        if fmt == "dcd":
            if append:
                first_step = truncate_dcd(
                    self.path, topology.getNumAtoms(), topology.getPeriodicBoxVectors() is not None, self.frames
                )
            self.file = open(self.path, "r+b" if append else "wb")
            self.writer = app.DCDFile(self.file, topology, dt, first_step, interval, append=append)
        else:
            self.file = None
            if append and self.frames > 0:  # XTC frames have no fixed size: cut at the checkpoint's byte length
                os.truncate(self.path, resume[f"{name}_bytes"])
                with open(self.path, "rb") as f:  # a frame starts with XDR ints: magic, atoms, step
                    first_step = struct.unpack(">iii", f.read(12))[2]
            else:  # OpenMM's XTC writer creates the file at the first frame and cannot append to an empty one
                self.path.unlink(missing_ok=True)
                append = False
            self.writer = app.XTCFile(str(self.path), topology, dt, first_step, interval, append=append)

    def write(self, positions_nm: np.ndarray, box_vectors=None) -> None:
        from openmm import unit

        self.writer.writeModel(positions_nm * unit.nanometer, periodicBoxVectors=box_vectors)
        self.frames += 1

    def sync(self) -> dict:
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())
        elif self.path.exists():  # the XTC writer closes the file after each frame
            fd = os.open(self.path, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        size = self.path.stat().st_size if self.path.exists() else 0
        return {f"{self.name}_frames": self.frames, f"{self.name}_bytes": size}

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
