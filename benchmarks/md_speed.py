"""Milliseconds per MD step on the OpenMM CPU platform (1 and 2 threads), default float32 export.

Rows: our PaiNN through TorchForce as users write it (``TorchForce("model.pt")``, energy; openmm-torch
takes the forces by autograd), through TorchForce with ``setOutputsForces`` (``painn_deploy.openmm.torch_force``,
what painn-simulate runs), through PythonForce (fused properties), the model call alone,
a trivial TorchForce model (the OpenMM <-> TorchScript fixed cost), and SchNetPack's PaiNN of the
same size (its own MD driver, and its model call alone).  Each row runs in a fresh process pinned
with taskset; medians of blocks of steps.  Ratios are against SchNetPack's driver measured in the
same run.

    python benchmarks/md_speed.py [--steps 2000]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

MOLECULES = {"ethanol": "ethanol.pdb", "aspirin": "aspirin.pdb"}


def worker(kind: str, molecule: str, threads: int, steps: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    import numpy as np
    import openmm
    import openmmtools
    from openmm import app, unit

    from painn_deploy.allocator import tune_malloc
    from painn_deploy.openmm import PropertiesForce, import_openmmtorch, torch_force

    tune_malloc()  # as painn_deploy.openmm.create_force and painn-simulate do

    pdb = app.PDBFile(str(common.ROOT / "painn_deploy" / "resources" / MOLECULES[molecule]))
    z = [a.element.atomic_number for a in pdb.topology.atoms()]
    tmp = Path(tempfile.mkdtemp())
    if kind == "trivial_torchforce":

        class Trivial(torch.nn.Module):
            def forward(self, positions):
                return torch.sum(positions**2)

        torch.jit.script(Trivial()).save(str(tmp / "m.pt"))
    else:
        ff = common.paper_forcefield(z)
        torch.jit.script(ff).save(str(tmp / "m.pt"))
    if kind == "model_call":
        module = torch.jit.load(str(tmp / "m.pt"))
        pos = torch.tensor(
            np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer)), dtype=torch.float32
        )
        samples = []
        for i in range(steps + 50):
            p = pos.clone().requires_grad_(True)
            t = time.perf_counter()
            module(p).backward()
            if i >= 50:
                samples.append(time.perf_counter() - t)
        return {"ms_per_step": common.median_ms(samples), **matmul_floor(module, pos)}
    system = openmm.System()
    for atom in pdb.topology.atoms():
        system.addParticle(atom.element.mass)
    if kind == "painn_pythonforce":
        system.addForce(PropertiesForce(torch.jit.load(str(tmp / "m.pt")), False).force())
    elif kind == "painn_torchforce_outputs_forces":  # what painn-simulate and create_force use
        system.addForce(torch_force(str(tmp / "m.pt"), periodic=False))
    else:
        openmmtorch = import_openmmtorch()
        system.addForce(openmmtorch.TorchForce(str(tmp / "m.pt")))
    integrator = openmmtools.integrators.BAOABIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond)
    platform = openmm.Platform.getPlatformByName("CPU")
    context = openmm.Context(system, integrator, platform, {"Threads": str(threads)})
    context.setPositions(pdb.positions)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    integrator.step(200)
    block = 100
    samples = []
    for _ in range(max(steps // block, 3)):
        t = time.perf_counter()
        integrator.step(block)
        samples.append((time.perf_counter() - t) / block)
    return {"ms_per_step": common.median_ms(samples)}


def matmul_floor(module, positions, calls: int = 50) -> dict:
    """Per forward+backward call: the time spent in matrix multiplications (the arithmetic no
    framework can avoid at this model size) and the number of tensor operations (each pays a fixed
    dispatch cost), from torch.profiler's self times."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            p = positions.clone().requires_grad_(True)
            module(p).backward()
    events = prof.key_averages()
    matmul_us = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::addmm", "aten::bmm"))
    n_ops = sum(e.count for e in events if e.key.startswith("aten::") and e.self_cpu_time_total > 0)
    return {"matmul_ms": matmul_us / calls / 1e3, "aten_ops": n_ops / calls}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--worker", nargs=2, metavar=("KIND", "MOLECULE"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--out")
    args = p.parse_args()
    if args.worker:
        Path(args.out).write_text(json.dumps(worker(*args.worker, args.threads, args.steps)))
        return
    kinds = [
        "painn_torchforce",
        "painn_torchforce_outputs_forces",
        "painn_pythonforce",
        "model_call",
        "trivial_torchforce",
    ]
    rows = []
    for molecule, pdb in MOLECULES.items():
        for threads in (1, 2):
            peer = common.run_peer(["md", "--model", "untrained", "--pdb", common.ROOT / "painn_deploy" / "resources" / pdb,
                                    "--steps", args.steps], threads)  # fmt: skip
            row = {"molecule": molecule, "threads": threads}
            for kind in kinds:
                result = common.run_worker(Path(__file__), [kind, molecule, "--steps", args.steps], threads)
                row[kind] = result["ms_per_step"]
                if kind == "model_call":
                    row["model_call_matmul_ms"] = result["matmul_ms"]
                    row["model_call_aten_ops"] = result["aten_ops"]
            if peer:
                row["schnetpack_md"] = peer["ms_per_step_median"]
                row["schnetpack_model_call"] = peer["model_call_ms_median"]
                row["ratio_vs_schnetpack_md"] = row["painn_torchforce_outputs_forces"] / row["schnetpack_md"]
            rows.append(row)
            print(row, flush=True)
    common.write_table(
        "md_speed",
        rows,
        [
            "molecule",
            "threads",
            "painn_torchforce",
            "painn_torchforce_outputs_forces",
            "painn_pythonforce",
            "model_call",
            "model_call_matmul_ms",
            "model_call_aten_ops",
            "trivial_torchforce",
            "schnetpack_md",
            "schnetpack_model_call",
            "ratio_vs_schnetpack_md",
        ],  # fmt: skip
        notes="ms per MD step (median), OpenMM CPU platform, openmmtools BAOAB, 0.5 fs, float32, paper-size PaiNN "
        '(F=128, 3 blocks, 20 RBF, 5 A) with all four heads; painn_torchforce: TorchForce("model.pt") (energy '
        "contract: openmm-torch freezes the module and backpropagates); painn_torchforce_outputs_forces: "
        "painn_deploy.openmm.torch_force (the model returns energy and forces from its hand-written backward pass; "
        "painn-simulate's choice); ratio_vs_schnetpack_md uses the latter; painn_pythonforce computes energy, forces and keeps the "
        "features for the recording heads every step (the fused backend; the heads run later on 100 frames at once). "
        "model_call: forward+backward of the TorchScript model alone, called from Python; model_call_matmul_ms: the "
        "part of it spent in matrix multiplications (torch.profiler self time, a floor no per-operation saving can "
        "remove); model_call_aten_ops: tensor operations per call (each pays a fixed dispatch cost of a few us).",
    )


if __name__ == "__main__":
    main()
