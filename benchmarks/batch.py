"""B configurations in one call against one call per configuration: energy and forces of the float32
artefact of a paper-size PaiNN (F=128, 3 blocks, all pairs), module frozen as openmm-torch freezes it,
1 pinned thread.  Per batch size: ms per call and per frame, and the per-frame cost as a fraction of
one single-configuration call measured in the same process (median of interleaved rounds); the
floating-point work of the matrix products per frame (PyTorch's profiler count), the rate it runs at,
and that rate against a large single-precision matrix product on the same core (the core's usable peak).

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

from painn_deploy.model.strategy import DENSE_CHUNK_ELEMENTS as DEFAULT_CHUNK  # noqa: E402

MOLECULES = {"ethanol": "ethanol.pdb", "aspirin": "aspirin.pdb"}
BATCHES = [1, 4, 16, 64]
COMPARED_CHUNKS = (DEFAULT_CHUNK // 2, 2 * DEFAULT_CHUNK)  # timed at the largest batch beside the default


def worker(molecule: str, rounds: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from painn_deploy.allocator import tune_malloc
    from painn_deploy.structures import read_pdb

    tune_malloc()
    z, pos, _ = read_pdb(common.RESOURCES / MOLECULES[molecule])

    def frozen(chunk_elements: int):
        model = common.paper_forcefield(z)
        model.evaluator.dense_chunk_elements = chunk_elements
        return torch.jit.freeze(torch.jit.script(model).eval(), preserved_attrs=["energy_and_forces"])

    chunks = {c: frozen(c) for c in COMPARED_CHUNKS + (DEFAULT_CHUNK,)}
    module = chunks[DEFAULT_CHUNK]
    single = torch.tensor(pos, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    batches = {b: single + 0.002 * torch.randn((b,) + single.shape, generator=g) for b in BATCHES}

    def matmul_flops(x) -> float:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
            module.energy_and_forces(x)
        return float(sum(e.flops for e in prof.key_averages() if e.key in ("aten::mm", "aten::addmm", "aten::bmm")))

    def gemm_gflops() -> float:
        a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
        for _ in range(3):
            a @ b
        t = time.perf_counter()
        for _ in range(20):
            a @ b
        return 2 * 1024**3 * 20 / (time.perf_counter() - t) / 1e9

    def per_call(x, calls, chunk=DEFAULT_CHUNK) -> float:
        for _ in range(3):
            chunks[chunk].energy_and_forces(x)
        t = time.perf_counter()
        for _ in range(calls):
            chunks[chunk].energy_and_forces(x)
        return (time.perf_counter() - t) / calls * 1e3

    out = {"single": [], "gemm_gflops": [], **{str(b): [] for b in BATCHES}, **{f"chunk {c}": [] for c in chunks}}
    out["flops"] = {str(b): matmul_flops(batches[b]) for b in BATCHES}
    out["cpu_fuser"] = bool(torch._C._llvm_enabled())  # TorchScript's CPU fuser needs the LLVM backend
    for _ in range(rounds):
        out["gemm_gflops"].append(gemm_gflops())
        out["single"].append(per_call(single, 100))
        for b in BATCHES:
            out[str(b)].append(per_call(batches[b], max(3, 200 // b)))
        for c in chunks:
            out[f"chunk {c}"].append(per_call(batches[BATCHES[-1]], 3, c))
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
    rows, fuser = [], True
    for molecule in MOLECULES:
        runs = common.run_worker(Path(__file__), [molecule, "--rounds", args.rounds], 1)
        single, gemm = np.asarray(runs["single"]), float(np.median(runs["gemm_gflops"]))
        fuser = fuser and runs["cpu_fuser"]
        for b in BATCHES:
            ms = np.asarray(runs[str(b)])
            mflop = runs["flops"][str(b)] / b / 1e6
            gflops = mflop / float(np.median(ms / b))
            rows.append({"molecule": molecule, "frames": b, "chunk_elements": DEFAULT_CHUNK,
                         "ms_per_call": float(np.median(ms)), "ms_per_frame": float(np.median(ms / b)),
                         "single_call_ms": float(np.median(single)),
                         "per_frame_vs_single": float(np.median(ms / b / single)),
                         "per_round": sorted(np.round(ms / b / single, 3).tolist()), "matmul_mflop_per_frame": mflop,
                         "gflop_per_s": gflops, "of_gemm_rate": gflops / gemm, "gemm_gflop_per_s": gemm})  # fmt: skip
            print(rows[-1], flush=True)
        for c in COMPARED_CHUNKS:
            ms = np.asarray(runs[f"chunk {c}"]) / BATCHES[-1]
            rows.append({"molecule": molecule, "frames": BATCHES[-1], "chunk_elements": c,
                         "ms_per_frame": float(np.median(ms)), "per_frame_vs_single": float(np.median(ms / single)),
                         "per_round": sorted(np.round(ms / single, 3).tolist())})  # fmt: skip
            print(rows[-1], flush=True)
    notes = (  # (the chunk's 2 MB: float32, F = 128)
        "per_frame_vs_single: ms per frame of a batch of B configurations divided by ms of one unbatched call, median "
        "over rounds of the per-round ratio (same process). The frames of a molecule go through the network together "
        f"as [B, N, N] arrays (the dense strategy); on the CPU in chunks of chunk_elements ({DEFAULT_CHUNK}: 2 MB of "
        "float32) per [B, N, N, 3F] tensor, a core's second-level cache; the last two rows of each molecule time B = 64 "
        "in chunks of half and twice that, in the same rounds. matmul_mflop_per_frame: the matrix products' "
        "floating-point operations per frame (PyTorch's profiler count; the element-wise products are not counted); "
        "gflop_per_s: that work over the "
        "measured time per frame; of_gemm_rate: against a 1024^3 single-precision matrix product on the same core "
        "(gemm_gflop_per_s), the rate the arithmetic alone could reach. The rest of the time goes to element-wise "
        "products, sums and copies of [B, N, N, F] pair tensors and to a fixed cost per call (operator dispatch)"
        + (
            "."
            if fuser
            else ", none of which is fused: this PyTorch build has no LLVM backend for TorchScript's CPU fuser."
        )
    )
    columns = ["molecule", "frames", "chunk_elements", "ms_per_call", "ms_per_frame", "single_call_ms",
               "per_frame_vs_single", "per_round", "matmul_mflop_per_frame", "gflop_per_s", "of_gemm_rate",
               "gemm_gflop_per_s"]  # fmt: skip
    common.write_table("batch", rows, columns, notes)


if __name__ == "__main__":
    main()
