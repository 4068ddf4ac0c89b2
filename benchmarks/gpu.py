"""Energy and forces of exported artefacts on a GPU (or the CPU): eager calls and CUDA graphs, peak memory,
and their error against a float64 CPU reference.

Needs only torch and the files that ``benchmarks/gpu_artefacts.py`` writes (no OpenMM, no
painn_deploy: GPU machines may carry another torch).  For each artefact it times
``energy_and_forces`` called eagerly and, for fixed-shape artefacts (all pairs, static list) on CUDA,
replayed from a CUDA graph captured on static input buffers; median of timed calls after warm-up.
Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA, the growth of the process's maximum
resident set on the CPU.  Cases: ethanol and aspirin, each alone and as a batch of 64 configurations
(a 64-bead ring polymer's evaluation), and the periodic boxes found in the inputs (cell list and static
list).  On CUDA it also checks issue 12's and 13's GPU targets.  Writes ``results/gpu.md`` (or
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
    """Median milliseconds per call of ``fn`` after ``warmup`` calls.  On CUDA the calls run back to back, as in
    MD, each between two CUDA events (a host synchronisation around each call would add its own ~10 us)."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
        torch.cuda.synchronize(device)
        for start, end in events:
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize(device)
        return float(np.median([start.elapsed_time(end) for start, end in events]))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return float(np.median(samples) * 1e3)


def measure(
    path: Path, positions: torch.Tensor, box, device: torch.device, graphs: bool, repeats: int, expected: dict
) -> dict:
    module = torch.jit.freeze(
        torch.jit.load(str(path), map_location=device).eval(), preserved_attrs=["energy_and_forces"]
    )
    base = reset_peak(device)
    row = {"eager_ms": timed(lambda: module.energy_and_forces(positions, box), device, 3, repeats)}
    row["peak_mb"] = (peak_bytes(device) - base) / 2**20
    eager_energy, eager_forces = module.energy_and_forces(positions, box)
    if expected:  # against the float64 CPU reference: the largest deviation of any energy and force component
        row["energy_err_kj_mol"] = float(np.abs(eager_energy.double().cpu().numpy() - expected["energy"]).max())
        row["force_err_kj_mol_nm"] = float(np.abs(eager_forces.double().cpu().numpy() - expected["forces"]).max())
    if graphs:
        try:  # a failed capture costs the graph columns, not the eager ones
            row.update(graph_replay(module, positions, box, device, repeats))
        except Exception as error:  # noqa: BLE001
            row["error"] = f"graph: {type(error).__name__}: {first_line(error)}"[:300]
    return row


def graph_replay(module, positions, box, device: torch.device, repeats: int) -> dict:
    """``energy_and_forces`` captured in a CUDA graph on static input buffers: ms per replay, and the largest
    energy and force differences from eager calls at positions other than the captured ones (every atom moved by
    up to 0.002 nm; a graph that ignored its input, or froze a pair list, would differ)."""
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
    generator = torch.Generator(device="cpu").manual_seed(0)
    energy_diff, force_diff = 0.0, 0.0
    for _ in range(2):
        moved = positions + (0.004 * torch.rand(positions.shape, generator=generator) - 0.002).to(positions)
        static_positions.copy_(moved)
        graph.replay()
        eager_energy, eager_forces = module.energy_and_forces(moved, box)
        energy_diff = max(energy_diff, float((energy - eager_energy).abs().max()))
        force_diff = max(force_diff, float((forces - eager_forces).abs().max()))
    return {
        "graph_vs_eager_energy_diff": energy_diff,
        "graph_vs_eager_max_force_diff": force_diff,
        "graph_ms": timed(graph.replay, device, 3, repeats),
    }


#: Largest deviations passed (float32 against the float64 reference, and a graph against eager calls): energy
#: per atom (kJ/mol) and force component (kJ/mol/nm).  A wrong unit, dtype, frame order or stale graph input is
#: off by far more.
TOLERANCE = {"energy_err_kj_mol": 1e-3, "force_err_kj_mol_nm": 0.5, "graph_vs_eager_energy_diff": 1e-3,
             "graph_vs_eager_max_force_diff": 0.5}  # fmt: skip


def failures(rows) -> list:
    """What went wrong in each case: an error, or a deviation beyond TOLERANCE (energies per atom)."""
    found = []
    for row in rows:
        if "error" in row:
            found.append(f"{row['case']}: {row['error']}")
        for column, limit in TOLERANCE.items():
            value = row.get(column)
            if value is None:
                continue
            scale = row["atoms"] if "energy" in column else 1  # (energies: the largest over the frames)
            if not value / scale <= limit:  # (NaN fails)
                found.append(f"{row['case']}: {column} {value:.3g} exceeds {limit * scale:.3g}")
    return found


def first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else ""


def expected(data, prefix: str = "") -> dict:
    """The reference energy and forces of an input file (empty if it has none)."""
    if f"{prefix}forces_kj_mol_nm" not in data:
        return {}
    return {"energy": data[f"{prefix}energy_kj_mol"], "forces": data[f"{prefix}forces_kj_mol_nm"],
            "torch": str(data[f"{prefix}reference_torch"])}  # fmt: skip


def reference_version(cases) -> str:
    return next((c[4]["torch"] for c in cases if c[4]), "none")


# issue 12: ethanol energy and forces, one call and a 64-frame batch, with CUDA graphs; issue 13: the model time of a
# 64-bead ring-polymer step (the 64-configuration batch, eager or graph), against the paper's 14-15 ms on a V100
TARGETS = (
    ("ethanol", "graph_ms", 0.1, "ethanol energy and forces with a CUDA graph"),
    ("ethanol x 64 configurations", "graph_ms", 0.3, "64 ethanol configurations with a CUDA graph"),
    ("ethanol x 64 configurations", "best_ms", 2.0, "ethanol ring polymer, P = 64, model time per step"),
    ("aspirin x 64 configurations", "best_ms", 2.0, "aspirin ring polymer, P = 64, model time per step"),
)


def targets(rows) -> list:
    """Each GPU target with its measured value and whether it is met."""
    by_case = {r["case"]: r for r in rows}
    lines = []
    for case, column, limit, what in TARGETS:
        row = by_case.get(case)
        if row is None:
            lines.append(f"{what}: at most {limit} ms; not measured ({case} missing)")
            continue
        times = [row[c] for c in ("eager_ms", "graph_ms") if c in row]
        value = min(times, default=None) if column == "best_ms" else row.get(column)
        if value is None:
            lines.append(f"{what}: at most {limit} ms; not measured ({row.get('error', 'no ' + column)})")
        else:
            lines.append(f"{what}: {value:.4g} ms, target at most {limit} ms: {'met' if value <= limit else 'not met'}")
    return lines


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
            d = np.load(inputs / f"{name}.npz")
            if "batch_positions_nm" not in d:
                raise SystemExit(f"{inputs / name}.npz comes from an older gpu_artefacts.py: run it again")
            batch = d["batch_positions_nm"]
            cases.append((name, inputs / f"{name}.pt", d["positions_nm"], None, expected(d)))
            cases.append(
                (f"{name} x {len(batch)} configurations", inputs / f"{name}.pt", batch, None, expected(d, "batch_"))
            )
    boxes = sorted(inputs.glob("box_*.npz"), key=lambda f: int(re.findall(r"\d+", f.stem)[0]))
    for data in boxes:
        atoms = int(re.findall(r"\d+", data.stem)[0])
        if atoms > args.max_atoms:
            continue
        d = np.load(data)
        for mode in ("cell_list", "static"):
            artefact = inputs / f"{data.stem}_{mode}.pt"
            if artefact.is_file():
                cases.append((f"box {atoms} atoms, {mode}", artefact, d["positions_nm"], d["box_nm"], expected(d)))
    if not cases:
        raise SystemExit(f"no inputs in {inputs}: run benchmarks/gpu_artefacts.py first")
    rows = []
    name = Path(args.out) if args.out else HERE / "results" / ("gpu" if device.type == "cuda" else "gpu_cpu")
    for label, artefact, pos, box, reference in cases:
        meta = metadata(artefact)
        dtype = {"float32": torch.float32, "float64": torch.float64}[meta["dtype"]]
        positions = torch.tensor(pos, dtype=dtype, device=device)
        boxvectors = None if box is None else torch.tensor(box, dtype=dtype, device=device)
        graphs = device.type == "cuda" and bool(meta["fixed_shapes"])
        print(f"{label} ...", flush=True)
        row = {"case": label, "atoms": int(positions.shape[-2]), "frames": 1 if positions.dim() == 2 else int(positions.shape[0]),
               "neighbor_list": meta["neighbor_list"]}  # fmt: skip
        try:  # one failing case (memory, a capture) costs its row, not the run
            row.update(measure(artefact, positions, boxvectors, device, graphs, args.repeats, reference))
        except Exception as error:  # noqa: BLE001
            row["error"] = f"{type(error).__name__}: {first_line(error)}"[:300]
        if device.type == "cuda":
            try:
                torch.cuda.empty_cache()
            except Exception:  # noqa: BLE001  (a broken CUDA context: the next case reports it)
                pass
        for column in ("eager_ms", "graph_ms"):
            if row["frames"] > 1 and column in row:
                row[column.replace("_ms", "_ms_per_frame")] = row[column] / row["frames"]
        rows.append(row)
        print(json.dumps(row), flush=True)
        write(name, rows, device, args.threads, reference_version(cases))  # after every case: a crash keeps the rest
    print((Path(f"{name}.md")).read_text())
    if failures(rows):
        raise SystemExit(1)


def write(name: Path, rows: list, device: torch.device, threads: int, reference_torch: str) -> None:
    columns = ["case", "atoms", "frames", "neighbor_list", "eager_ms", "graph_ms", "eager_ms_per_frame",
               "graph_ms_per_frame", "peak_mb", "graph_vs_eager_energy_diff", "graph_vs_eager_max_force_diff",
               "energy_err_kj_mol", "force_err_kj_mol_nm", "error"]  # fmt: skip
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}), {threads} thread(s)"
    )
    lines = [f"Device: {where}; torch {torch.__version__}.", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]  # fmt: skip
    for row in rows:
        cells = [f"{row[c]:.4g}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Energy and forces (`energy_and_forces`) of the float32 artefacts of the bundled model (F=128, 3 blocks), "
              "module frozen; median ms per call; graph: replay of a CUDA graph captured on static buffers (fixed-shape "
              "artefacts on CUDA); peak_mb: peak allocator memory above the inputs (CUDA) or growth of the maximum "
              "resident set (CPU); energy_err, force_err: the largest deviation of any energy and force component of "
              "the eager call from the artefact evaluated in float64 on the CPU by gpu_artefacts.py (torch "
              f"{reference_torch}); graph_vs_eager: the graph replayed at positions other than those it was captured "
              "at, against eager calls there. Exit status 1 when a check below fails."]  # fmt: skip
    failed = failures(rows)
    lines += ["", f"Checks (tolerances: {TOLERANCE}, energies per atom): "
              + ("all passed" if not failed else f"{len(failed)} failed"), ""] + [f"- {f}" for f in failed]  # fmt: skip
    if device.type == "cuda":
        lines += ["", "GPU targets (issues 12 and 13):", ""] + [f"- {t}" for t in targets(rows)]
    name.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{name}.md").write_text("\n".join(lines) + "\n")
    Path(f"{name}.json").write_text(json.dumps({"device": where, "torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
