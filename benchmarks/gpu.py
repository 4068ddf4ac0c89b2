"""Energy and forces of exported artefacts on a GPU (or the CPU): eager calls and CUDA graphs, peak memory.

Needs only torch and the files that ``benchmarks/gpu_artefacts.py`` writes (no OpenMM, no
painn_deploy: GPU machines may carry another torch).  For each artefact it times
``energy_and_forces`` called eagerly and, for fixed-shape artefacts (all pairs, static list) on CUDA,
replayed from a CUDA graph captured on static input buffers; median of timed calls after warm-up.
Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA, the growth of the process's maximum
resident set on the CPU.  Cases: ethanol and aspirin, a batch of 64 ethanol configurations, and the
periodic boxes found in the inputs (cell list and static list).  Writes ``results/gpu.md`` (or
``results/gpu_cpu.md`` with ``--device cpu``) and the JSON beside it.

    python benchmarks/gpu.py --inputs benchmarks/gpu_inputs [--device cuda] [--max-atoms 120000]
"""

import argparse
import json
import platform
import re
import resource
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def metadata(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/extra/metadata.json"))
        return json.loads(archive.read(name))


def peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak(device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timed(fn, device: torch.device, warmup: int, repeats: int) -> float:
    """Median milliseconds per call of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        samples.append(time.perf_counter() - start)
    return float(np.median(samples) * 1e3)


def measure(path: Path, positions: torch.Tensor, box, device: torch.device, graphs: bool, repeats: int) -> dict:
    module = torch.jit.freeze(
        torch.jit.load(str(path), map_location=device).eval(), preserved_attrs=["energy_and_forces"]
    )
    base = reset_peak(device)
    row = {"eager_ms": timed(lambda: module.energy_and_forces(positions, box), device, 3, repeats)}
    row["peak_mb"] = (peak_bytes(device) - base) / 2**20
    if graphs:
        static_positions = positions.clone()
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for _ in range(3):
                module.energy_and_forces(static_positions, box)
        torch.cuda.current_stream(device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            energy, forces = module.energy_and_forces(static_positions, box)
        graph.replay()
        eager_energy, eager_forces = module.energy_and_forces(positions, box)
        row["graph_vs_eager_max_force_diff"] = float((forces - eager_forces).abs().max())
        row["graph_ms"] = timed(graph.replay, device, 3, repeats)
    return row


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inputs", default=str(HERE / "gpu_inputs"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--max-atoms", type=int, default=120_000, help="skip boxes larger than this")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (--device cpu)")
    p.add_argument("--out", default=None, help="results file stem (default results/gpu or results/gpu_cpu)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    inputs = Path(args.inputs)
    cases = []
    for name in ("ethanol", "aspirin"):
        if (inputs / f"{name}.pt").is_file():
            pos = np.load(inputs / f"{name}.npz")["positions_nm"]
            cases.append((name, inputs / f"{name}.pt", pos, None))
            if name == "ethanol":
                rng = np.random.default_rng(0)
                batch = pos[None] + 0.002 * rng.normal(size=(64,) + pos.shape)
                cases.append(("ethanol x 64 configurations", inputs / f"{name}.pt", batch, None))
    boxes = sorted(inputs.glob("box_*.npz"), key=lambda f: int(re.findall(r"\d+", f.stem)[0]))
    for data in boxes:
        atoms = int(re.findall(r"\d+", data.stem)[0])
        if atoms > args.max_atoms:
            continue
        d = np.load(data)
        for mode in ("cell_list", "static"):
            artefact = inputs / f"{data.stem}_{mode}.pt"
            if artefact.is_file():
                cases.append((f"box {atoms} atoms, {mode}", artefact, d["positions_nm"], d["box_nm"]))
    rows = []
    for label, artefact, pos, box in cases:
        meta = metadata(artefact)
        dtype = {"float32": torch.float32, "float64": torch.float64}[meta["dtype"]]
        positions = torch.tensor(pos, dtype=dtype, device=device)
        boxvectors = None if box is None else torch.tensor(box, dtype=dtype, device=device)
        graphs = device.type == "cuda" and bool(meta["fixed_shapes"])
        print(f"{label} ...", flush=True)
        row = {"case": label, "atoms": int(positions.shape[-2]), "frames": 1 if positions.dim() == 2 else int(positions.shape[0]),
               "neighbor_list": meta["neighbor_list"]}  # fmt: skip
        row.update(measure(artefact, positions, boxvectors, device, graphs, args.repeats))
        if row["frames"] > 1:
            row["eager_ms_per_frame"] = row["eager_ms"] / row["frames"]
            if "graph_ms" in row:
                row["graph_ms_per_frame"] = row["graph_ms"] / row["frames"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    name = Path(args.out) if args.out else HERE / "results" / ("gpu" if device.type == "cuda" else "gpu_cpu")
    columns = ["case", "atoms", "frames", "neighbor_list", "eager_ms", "graph_ms", "eager_ms_per_frame",
               "graph_ms_per_frame", "peak_mb", "graph_vs_eager_max_force_diff"]  # fmt: skip
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}), {args.threads} thread(s)"
    )
    lines = [f"Device: {where}; torch {torch.__version__}.", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]  # fmt: skip
    for row in rows:
        cells = [f"{row[c]:.4g}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Energy and forces (`energy_and_forces`) of the float32 artefacts of the bundled model (F=128, 3 blocks), "
              "module frozen; median ms per call; graph: replay of a CUDA graph captured on static buffers (fixed-shape "
              "artefacts on CUDA); peak_mb: peak allocator memory above the inputs (CUDA) or growth of the maximum "
              "resident set (CPU)."]  # fmt: skip
    name.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{name}.md").write_text("\n".join(lines) + "\n")
    Path(f"{name}.json").write_text(json.dumps({"device": where, "torch": torch.__version__, "rows": rows}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
