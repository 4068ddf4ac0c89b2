"""B configurations in one call against one call per configuration: energy and forces of the float32
artefact of a paper-size PaiNN (F=128, 3 blocks, all pairs), module frozen as openmm-torch freezes it,
1 pinned thread.  Per batch size: ms per call and per frame, and the per-frame cost as a fraction of
one single-configuration call measured in the same process (median of interleaved rounds); the
floating-point work of the matrix products per frame (PyTorch's profiler count), the rate it runs at,
and that rate against a large single-precision matrix product on the same core (the core's usable peak).

At the largest batch it also times every operation of one batched call again on its own, on the same
(hot) inputs, and sums them: the time the same operations would take with nothing lost between them.
As long as the model is this sequence of unfused operations, the batched call cannot beat that sum.
What fusing them buys is measured with the same code compiled by TorchInductor (``torch.compile``, one
graph per chunk of frames; it needs a C++ compiler): one call and the largest batch.

    python benchmarks/batch.py [--rounds 5]
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import numpy as np  # noqa: E402

from painn_deploy.model.strategy import DENSE_CHUNK_ELEMENTS as DEFAULT_CHUNK  # noqa: E402

MOLECULES = {"ethanol": "ethanol.pdb", "aspirin": "aspirin.pdb"}
BATCHES = [1, 4, 16, 64]
TARGETS = {"ethanol": 0.25, "aspirin": 0.35}  # issue 12: ms per frame at B = 64 against one single call
MATRIX_PRODUCTS = {"matmul", "mm", "bmm", "linear", "addmm"}
VIEWS = {"unsqueeze", "reshape", "view", "split", "t", "transpose", "narrow", "__getitem__", "expand", "squeeze"}
COMPARED_CHUNKS = (DEFAULT_CHUNK // 2, 2 * DEFAULT_CHUNK)  # timed at the largest batch beside the default


def operations_alone(model, x) -> dict:
    """ms of one call of the eager ``model`` (the code the artefact scripts) on ``x``, summed over its
    operations, each run again alone on the same inputs right after the call made it (best of 3): the matrix
    products, the other operations and their number, and the dispatch cost of one operation (the median time of
    the views, which do no arithmetic).  In-place operations are counted at their time in the call."""
    import torch

    sums = {"matrix products": 0.0, "other": 0.0, "operations": 0}
    views = []

    class Replay(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = getattr(func, "__name__", "")
            if name == "__get__":  # a property read (shape, dtype), not an operation
                return func(*args, **kwargs)
            start = time.perf_counter()
            out = func(*args, **kwargs)
            best = time.perf_counter() - start
            in_place = (name.endswith("_") and not name.endswith("__")) or name.startswith("__i") or "out" in kwargs
            if not in_place:
                with torch._C.DisableTorchFunction():
                    for _ in range(3):
                        start = time.perf_counter()
                        func(*args, **kwargs)
                        best = min(best, time.perf_counter() - start)
            sums["matrix products" if name in MATRIX_PRODUCTS else "other"] += best * 1e3
            sums["operations"] += 1
            if name in VIEWS:
                views.append(best * 1e3)
            return out

    with torch.no_grad():
        model.energy_and_forces(x)
        with Replay():
            model.energy_and_forces(x)
    return {**sums, "dispatch": float(np.median(views))}


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
    eager = common.paper_forcefield(z).eval()
    fused = None
    if shutil.which("g++"):  # TorchInductor's CPU code is C++
        fused = common.paper_forcefield(z).eval()
        # one graph per chunk of frames: compiled whole, the call's loop over chunks would be unrolled
        fused.evaluator.dense = torch.compile(fused.evaluator.dense, dynamic=False)
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

    def per_call(x, calls, chunk=DEFAULT_CHUNK, module=None) -> float:
        module = chunks[chunk] if module is None else module
        for _ in range(3):
            module.energy_and_forces(x)
        t = time.perf_counter()
        for _ in range(calls):
            module.energy_and_forces(x)
        return (time.perf_counter() - t) / calls * 1e3

    out = {"single": [], "gemm_gflops": [], "alone": [], "inductor single": [], "inductor batch": [],
           **{str(b): [] for b in BATCHES},
           **{f"chunk {c}": [] for c in chunks}}  # fmt: skip
    out["flops"] = {str(b): matmul_flops(batches[b]) for b in BATCHES}
    out["cpu_fuser"] = bool(torch._C._llvm_enabled())  # TorchScript's CPU fuser needs the LLVM backend
    for _ in range(rounds):
        out["gemm_gflops"].append(gemm_gflops())
        out["single"].append(per_call(single, 100))
        for b in BATCHES:
            out[str(b)].append(per_call(batches[b], max(3, 200 // b)))
        for c in chunks:
            out[f"chunk {c}"].append(per_call(batches[BATCHES[-1]], 3, c))
        out["alone"].append(operations_alone(eager, batches[BATCHES[-1]]))
        if fused is not None:
            with torch.no_grad():
                out["inductor single"].append(per_call(single, 100, module=fused))
                out["inductor batch"].append(per_call(batches[BATCHES[-1]], 3, module=fused))
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
    rows, bounds, fuser = [], [], True
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
        b = BATCHES[-1]
        alone = {k: np.asarray([r[k] for r in runs["alone"]]) / b for k in ("matrix products", "other", "operations")}
        dispatch = np.asarray([r["dispatch"] for r in runs["alone"]])
        total = alone["matrix products"] + alone["other"] - alone["operations"] * dispatch
        fused_single = np.asarray(runs["inductor single"] or [np.nan])  # (nan: no C++ compiler for TorchInductor)
        fused_batch = np.asarray(runs["inductor batch"] or [np.nan]) / b
        bounds.append({"molecule": molecule, "frames": b, "operations_per_frame": float(np.median(alone["operations"])),
                       "dispatch_us": float(np.median(dispatch)) * 1e3,
                       "matrix_products_ms_per_frame": float(np.median(alone["matrix products"])),
                       "matrix_products_vs_single": float(np.median(alone["matrix products"] / single)),
                       "all_operations_ms_per_frame": float(np.median(total)),
                       "all_operations_vs_single": float(np.median(total / single)),
                       "per_round": sorted(np.round(total / single, 3).tolist()),
                       "batched_call_vs_single": float(np.median(np.asarray(runs[str(b)]) / b / single)),
                       "target_vs_single": TARGETS[molecule],
                       "inductor_single_vs_single": float(np.median(fused_single / single)),
                       "inductor_batch_vs_single": float(np.median(fused_batch / single)),
                       "inductor_batch_vs_inductor_single": float(np.median(fused_batch / fused_single))})  # fmt: skip
        print(bounds[-1], flush=True)
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
    bound_notes = (
        "Every operation of one batched call of the eager model (the code the artefact scripts, same chunks), run "
        "again alone on the same inputs right after the call made it (best of 3, hot in cache), and summed: "
        "the time these operations take with nothing lost between them, a floor for the batched call as long as "
        "the model is this sequence of unfused operations. all_operations: that sum less each operation's dispatch "
        "cost (dispatch_us: the median time of the views, which do no arithmetic); matrix_products: the matrix "
        "products alone, dispatch included. _vs_single: against the single call of the same round (median of "
        "per-round ratios); target_vs_single: issue 12's target for the batched call. inductor_: the same eager code "
        "compiled by TorchInductor (torch.compile, one graph per chunk of frames, fusing the element-wise work), one "
        "call and the batch per frame, against the TorchScript single call and against its own single call."
    )
    common.write_table("batch", rows, columns, notes)
    bound_columns = ["molecule", "frames", "operations_per_frame", "dispatch_us", "matrix_products_ms_per_frame",
                     "matrix_products_vs_single", "all_operations_ms_per_frame", "all_operations_vs_single",
                     "per_round", "batched_call_vs_single", "target_vs_single", "inductor_single_vs_single",
                     "inductor_batch_vs_single", "inductor_batch_vs_inductor_single"]  # fmt: skip
    common.write_table("batch_bound", bounds, bound_columns, bound_notes)


if __name__ == "__main__":
    main()
