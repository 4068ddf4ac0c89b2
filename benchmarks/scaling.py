"""Cost and memory per atom per step for periodic boxes of ethanol at liquid density (0.789 g/cm^3)
with the cell list, and the all-pairs / cell-list crossover for molecular clusters (non-periodic).

Each point runs in a fresh pinned process (1 thread): energy and forces of the float32 TorchScript
model as painn-simulate's TorchForce runs them (frozen, ``ForcesOutput``, positions that require
gradients), median of a few evaluations; peak memory = the process's maximum resident set size minus
its size before the first evaluation.  Forces: the hand-written dense pass (all pairs) and the
hand-written pair-list pass in chunks (cell list) of ``painn_deploy.model.strategy``.  At 576 and
4608 atoms two more rows in the same run: autograd through the whole network (the training path,
``PaiNNPotential`` + ``torch.autograd.grad``) and SchNetPack's PaiNN of the same size
(``peers/schnetpack_painn.py box``, energy and forces by autograd).

    python benchmarks/scaling.py
"""

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

BOXES = [36, 64, 125, 216, 512, 1000, 1728, 3375]  # molecules: 324 ... 30375 atoms (periodic, cell list)
COMPARE = [64, 512]  # molecules (576 and 4608 atoms): also autograd and SchNetPack
CLUSTERS = [1, 2, 4, 8, 16, 32]  # molecules: 9 ... 288 atoms (non-periodic, both modes)
WARM_UP, TIMED = 4, 5  # evaluations: the first ones grow the process's heap (page faults), then steady state


def system(n_molecules: int, periodic: bool):
    from painn_deploy.structures import molecular_box, read_pdb

    z1, pos1, _ = read_pdb(common.RESOURCES / "ethanol.pdb")
    if periodic:
        return molecular_box(z1, pos1, n_molecules, density_g_per_cm3=0.789, min_distance_nm=0)  # (timing only)
    return molecular_box(
        z1, pos1, n_molecules, spacing_nm=0.45, min_distance_nm=0
    )  # a cluster: molecules 0.45 nm apart, no box


def worker(n_molecules: int, mode: str, threads: int, periodic: bool, forces: str) -> dict:
    import torch

    torch.set_num_threads(threads)
    from painn_deploy.allocator import tune_malloc
    from painn_deploy.deploy import ForcesOutput
    from painn_deploy.neighbors import cell_list_pairs

    tune_malloc()  # as painn_deploy.openmm.create_force and painn-simulate do
    z, pos, box = system(n_molecules, periodic)
    ff = common.paper_forcefield(z, periodic=periodic, neighbor_mode=mode, targets=("energy", "forces"))
    positions = torch.tensor(pos, dtype=torch.float32)
    boxvectors = torch.tensor(box, dtype=torch.float32) if periodic else None
    idx_i, idx_j = cell_list_pairs(positions * 10, None if boxvectors is None else boxvectors * 10, 5.0)
    if forces == "autograd":  # the training path: autograd through PaiNNPotential on the cell list's pairs
        from painn_deploy.neighbors import pair_vectors

        potential = ff.evaluator.potential
        species, box_a = ff.species, None if boxvectors is None else boxvectors * 10

        def evaluate():
            p = (positions * 10).requires_grad_(True)
            s, _ = potential.representation(species, idx_i, idx_j, pair_vectors(p, box_a, idx_i, idx_j))
            energy = potential.energy_head(s, species, torch.zeros_like(species), 1)
            torch.autograd.grad(energy.sum(), p)

    else:  # timed as painn-simulate's TorchForce runs it: frozen, outputs-forces contract
        module = torch.jit.freeze(torch.jit.script(ForcesOutput(ff)).eval())

        def evaluate():
            module(positions.clone().requires_grad_(True), boxvectors)

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    samples = []
    for i in range(WARM_UP + TIMED):
        t = time.perf_counter()
        evaluate()
        if i >= WARM_UP:
            samples.append(time.perf_counter() - t)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ms = common.median_ms(samples)
    label = {"autograd": "autograd (training path)", "all_pairs": "hand-written, dense"}.get(
        forces if forces == "autograd" else mode, "hand-written, pair list in chunks"
    )
    return {
        "system": "periodic box" if periodic else "cluster",
        "atoms": len(z),
        "box_nm": float(box[0, 0]) if periodic else float("nan"),
        "mode": mode,
        "pairs": int(idx_i.shape[0]),
        "forces": label,
        "ms_per_step": ms,
        "us_per_atom_step": ms * 1e3 / len(z),
        "peak_mem_mb": (rss1 - rss0) / 1024.0,
        "kb_per_atom": (rss1 - rss0) / len(z),
    }


def peer_row(n_molecules: int) -> dict:
    from painn_deploy.structures import write_pdb

    z, pos, box = system(n_molecules, True)
    with tempfile.TemporaryDirectory() as tmp:
        pdb = Path(tmp) / "box.pdb"
        write_pdb(pdb, z, pos, box, atoms_per_residue=9)
        out = common.run_peer(["box", "--pdb", str(pdb)], 1)
    if out is None:
        return None
    return {"system": "periodic box", "atoms": out["n_atoms"], "box_nm": float(box[0, 0]), "mode": "ASE list",
            "pairs": out["n_pairs"], "forces": "SchNetPack 2.2 (autograd)", "ms_per_step": out["ms_per_call"],
            "us_per_atom_step": out["ms_per_call"] * 1e3 / out["n_atoms"], "peak_mem_mb": out["peak_mem_mb"],
            "kb_per_atom": out["peak_mem_mb"] * 1024 / out["n_atoms"]}  # fmt: skip


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--worker", nargs=4, metavar=("N_MOLECULES", "MODE", "PERIODIC", "FORCES"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--boxes", type=int, nargs="+", default=BOXES)
    p.add_argument("--clusters", type=int, nargs="+", default=CLUSTERS)
    p.add_argument("--out")
    args = p.parse_args()
    if args.worker:
        n, mode, periodic, forces = args.worker
        Path(args.out).write_text(json.dumps(worker(int(n), mode, args.threads, periodic == "periodic", forces)))
        return
    rows, compare = [], []
    for n in args.clusters:
        for mode in ("all_pairs", "cell_list"):
            rows.append(common.run_worker(Path(__file__), [n, mode, "cluster", "hand-written"], 1))
            print(rows[-1], flush=True)
    for n in args.boxes:
        row = common.run_worker(Path(__file__), [n, "cell_list", "periodic", "hand-written"], 1)
        rows.append(row)
        print(row, flush=True)
        if n in COMPARE:
            others = [common.run_worker(Path(__file__), [n, "cell_list", "periodic", "autograd"], 1), peer_row(n)]
            for other in [o for o in others if o is not None]:
                rows.append(other)
                print(other, flush=True)
                compare.append(
                    f"{row['atoms']} atoms against {other['forces']}: time x{row['ms_per_step'] / other['ms_per_step']:.2f}, "
                    f"peak memory x{row['peak_mem_mb'] / other['peak_mem_mb']:.2f} ({row['peak_mem_mb']:.0f} against "
                    f"{other['peak_mem_mb']:.0f} MB)"
                )
    cell = [r for r in rows if r["system"] == "periodic box" and r["forces"].startswith("hand-written")]
    growth_time = cell[-1]["us_per_atom_step"] / cell[0]["us_per_atom_step"]
    growth_mem = cell[-1]["kb_per_atom"] / cell[0]["kb_per_atom"]
    notes = (
        f"Periodic ethanol boxes at 0.789 g/cm^3, cell list, {cell[0]['atoms']} -> {cell[-1]['atoms']} atoms: time per "
        f"atom x{growth_time:.2f}, peak memory per atom x{growth_mem:.2f}. Same run: {'; '.join(compare)}. "
        "Clusters: molecules 0.45 nm apart, non-periodic; their all-pairs/cell-list crossover sets the export default "
        "(auto: all pairs up to 30 atoms). Paper-size PaiNN (F=128, 3 blocks), float32, energy + forces as "
        "painn-simulate's TorchForce evaluates them (module frozen, setOutputsForces), 1 pinned thread; peak memory = "
        "growth of the process's maximum resident set size."
    )
    columns = ["system", "atoms", "box_nm", "mode", "pairs", "forces", "ms_per_step", "us_per_atom_step", "peak_mem_mb",
               "kb_per_atom"]  # fmt: skip
    common.write_table("scaling", rows, columns, notes)


if __name__ == "__main__":
    main()
