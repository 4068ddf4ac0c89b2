"""Cost and memory per atom per step for periodic boxes of ethanol at liquid density (0.789 g/cm^3),
from ~300 to ~30,000 atoms, with the cell list; all pairs for the smaller boxes (crossover).

Each point runs in a fresh pinned process (1 thread): forward + backward of the float32 TorchScript
model (what TorchForce runs each step), median of a few evaluations; peak memory = the process's
maximum resident set size minus its size before the first evaluation.

    python benchmarks/scaling.py
"""

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

BOXES = [36, 125, 343, 1000, 3375]  # molecules: 324 ... 30375 atoms
ALL_PAIRS_UP_TO = 343


def worker(n_molecules: int, mode: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from painn_deploy.deploy import read_pdb
    from painn_deploy.structures import molecular_box

    z1, pos1, _ = read_pdb(common.ROOT / "painn_deploy" / "resources" / "ethanol.pdb")
    z, pos, box = molecular_box(z1, pos1, n_molecules, density_g_per_cm3=0.789)
    module = torch.jit.script(
        common.paper_forcefield(z, periodic=True, neighbor_mode=mode, targets=("energy", "forces"))
    )
    positions = torch.tensor(pos, dtype=torch.float32)
    boxvectors = torch.tensor(box, dtype=torch.float32)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n_eval = 5 if len(z) < 5000 else 3
    samples = []
    for i in range(n_eval + 2):
        p = positions.clone().requires_grad_(True)
        t = time.perf_counter()
        module(p, boxvectors).backward()
        if i >= 2:
            samples.append(time.perf_counter() - t)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ms = common.median_ms(samples)
    return {
        "atoms": len(z),
        "box_nm": float(box[0, 0]),
        "mode": mode,
        "ms_per_step": ms,
        "us_per_atom_step": ms * 1e3 / len(z),
        "peak_mem_mb": (rss1 - rss0) / 1024.0,
        "kb_per_atom": (rss1 - rss0) / len(z),
        "ms_samples": [s * 1e3 for s in samples],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--worker", nargs=2, metavar=("N_MOLECULES", "MODE"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out")
    args = p.parse_args()
    if args.worker:
        Path(args.out).write_text(json.dumps(worker(int(args.worker[0]), args.worker[1], args.threads)))
        return
    rows = []
    for n in BOXES:
        for mode in ("cell_list", "all_pairs"):
            if mode == "all_pairs" and n > ALL_PAIRS_UP_TO:
                continue
            row = common.run_worker(Path(__file__), [n, mode], 1)
            row.pop("ms_samples")
            rows.append(row)
            print(row, flush=True)
    cell = [r for r in rows if r["mode"] == "cell_list"]
    growth_time = cell[-1]["us_per_atom_step"] / cell[0]["us_per_atom_step"]
    growth_mem = cell[-1]["kb_per_atom"] / cell[0]["kb_per_atom"]
    notes = (
        f"Cell list, {cell[0]['atoms']} -> {cell[-1]['atoms']} atoms: time per atom x{growth_time:.2f}, "
        f"peak memory per atom x{growth_mem:.2f} (target: within 1.5x). "
        "Paper-size PaiNN (F=128, 3 blocks), float32, energy + forces (forward + backward), 1 thread."
    )
    common.write_table(
        "scaling",
        rows,
        ["atoms", "box_nm", "mode", "ms_per_step", "us_per_atom_step", "peak_mem_mb", "kb_per_atom"],
        notes,
    )


if __name__ == "__main__":
    main()
