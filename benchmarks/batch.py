"""B configurations in one call against one call per configuration: energy and forces of the float32
artefact of a paper-size PaiNN (F=128, 3 blocks, all pairs), module frozen as openmm-torch freezes it,
1 pinned thread.  Per batch size: ms per call and per frame, and the per-frame cost as a fraction of
one single-configuration call measured in the same process (median of interleaved rounds).

    python benchmarks/batch.py [--rounds 5]
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import numpy as np  # noqa: E402

MOLECULES = {"ethanol": "ethanol.pdb", "aspirin": "aspirin.pdb"}
BATCHES = [1, 4, 16, 64]


def worker(molecule: str, rounds: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from painn_deploy.allocator import tune_malloc
    from painn_deploy.structures import read_pdb

    tune_malloc()
    z, pos, _ = read_pdb(common.RESOURCES / MOLECULES[molecule])
    module = torch.jit.freeze(
        torch.jit.script(common.paper_forcefield(z)).eval(), preserved_attrs=["energy_and_forces"]
    )
    single = torch.tensor(pos, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    batches = {b: single + 0.002 * torch.randn((b,) + single.shape, generator=g) for b in BATCHES}

    def per_call(x, calls) -> float:
        for _ in range(3):
            module.energy_and_forces(x)
        t = time.perf_counter()
        for _ in range(calls):
            module.energy_and_forces(x)
        return (time.perf_counter() - t) / calls * 1e3

    out = {"single": [], **{str(b): [] for b in BATCHES}}
    for _ in range(rounds):
        out["single"].append(per_call(single, 100))
        for b in BATCHES:
            out[str(b)].append(per_call(batches[b], max(3, 200 // b)))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", nargs=1, metavar="MOLECULE")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out")
    args = p.parse_args()
    if args.worker:
        Path(args.out).write_text(json.dumps(worker(args.worker[0], args.rounds)))
        return
    rows = []
    for molecule in MOLECULES:
        runs = common.run_worker(Path(__file__), [molecule, "--rounds", args.rounds], 1)
        single = np.asarray(runs["single"])
        for b in BATCHES:
            ms = np.asarray(runs[str(b)])
            rows.append({"molecule": molecule, "frames": b, "ms_per_call": float(np.median(ms)),
                         "ms_per_frame": float(np.median(ms / b)), "single_call_ms": float(np.median(single)),
                         "per_frame_vs_single": float(np.median(ms / b / single)),
                         "per_round": sorted(np.round(ms / b / single, 3).tolist())})  # fmt: skip
            print(rows[-1], flush=True)
    notes = (
        "per_frame_vs_single: ms per frame of a batch of B configurations divided by ms of one unbatched call, median "
        "over rounds of the per-round ratio (same process). The frames of a molecule go through the network together "
        "as [B, N, N] arrays (the dense strategy); on the CPU in chunks of about 4 MB per [B, N, N, 3F] tensor, which "
        "a core's cache holds."
    )
    common.write_table("batch", rows, ["molecule", "frames", "ms_per_call", "ms_per_frame", "single_call_ms",
                                       "per_frame_vs_single", "per_round"], notes)  # fmt: skip


if __name__ == "__main__":
    main()
