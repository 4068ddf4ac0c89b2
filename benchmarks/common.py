"""Helpers shared by the benchmark scripts: paper-size models, pinned worker processes, tables."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RESOURCES = ROOT / "painn_deploy" / "resources"
SHARED_DATA = ROOT.parent / "shared" / "data"
PEER_PYTHON = ROOT / "benchmarks" / ".venv-schnetpack" / "bin" / "python"
PEER_SCRIPT = ROOT / "benchmarks" / "peers" / "schnetpack_painn.py"
CORES = {1: os.environ.get("BENCH_CORE", "1"), 2: "0,1"}  # 1 thread: core 1 by default (BENCH_CORE overrides)


def paper_forcefield(atomic_numbers, dtype="float32", periodic=False, neighbor_mode="all_pairs", targets=None, seed=0):
    """The deployable module of a paper-size PaiNN (F=128, 3 blocks, 20 RBF, 5 A) with random
    weights: the cost of an evaluation does not depend on the weights."""
    import torch

    from painn_deploy.deploy import PaiNNForceField
    from painn_deploy.model import PaiNNConfig, PaiNNPotential

    torch.manual_seed(seed)
    config = PaiNNConfig(
        elements=tuple(sorted(set(atomic_numbers))),
        targets=targets or ("energy", "forces", "dipole", "polarizability"),
    )
    potential = PaiNNPotential(config)
    dt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    return PaiNNForceField(potential, atomic_numbers, periodic, neighbor_mode, dt)


def run_worker(script: Path, args: list, threads: int, timeout: int = 1800) -> dict:
    """Run ``script --worker ...`` pinned to ``threads`` cores with that many threads; returns its JSON."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    out = RESULTS / ".worker.json"
    cmd = ["taskset", "-c", CORES[threads], sys.executable, str(script), "--worker", *map(str, args), "--threads",
           str(threads), "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def run_peer(args: list, threads: int, timeout: int = 3600) -> dict:
    """Run the SchNetPack peer script in its own venv, pinned; returns its JSON (None if not installed)."""
    if not PEER_PYTHON.is_file():
        return None
    out = RESULTS / ".peer.json"
    # the peer gets the C allocator settings our package sets for itself (painn_deploy/allocator.py)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               MALLOC_MMAP_THRESHOLD_=str(32 * 2**20), MALLOC_TRIM_THRESHOLD_=str(2**30))  # fmt: skip
    cmd = ["taskset", "-c", CORES[threads], str(PEER_PYTHON), str(PEER_SCRIPT), *map(str, args), "--threads",
           str(threads), "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"peer {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def median_ms(samples) -> float:
    return float(np.median(samples) * 1e3)


def write_table(name: str, rows: list, columns: list, notes: str = "") -> str:
    """Print a markdown table and write results/NAME.md and results/NAME.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    text = "\n".join(lines)
    if notes:
        text += "\n\n" + notes
    print(text)
    (RESULTS / f"{name}.md").write_text(text + "\n")
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=1))
    return text


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)
