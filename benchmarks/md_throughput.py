"""ns/day of painn-simulate runs (the real driver: logging, checks, outputs) for ethanol and aspirin:
without recording, recording dipole and polarizability every step (TorchForce with the feature tap, the
fused PythonForce evaluation, and TorchForce plus a second evaluation), and ring-polymer MD with P = 8 and 32 beads; side by side with
SchNetPack's MD driver on the same molecule (same model size).  1 thread, pinned, fresh process per row.

    python benchmarks/md_throughput.py [--steps 2000]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import numpy as np  # noqa: E402

ROUNDS = 3
MOLECULES = {"ethanol": "ethanol.pdb", "aspirin": "aspirin.pdb"}
CASES = [
    ("classical", "none", 1),
    ("classical", "tap", 1),
    ("classical", "fused", 1),
    ("classical", "second", 1),
    ("rpmd", "none", 8),
    ("rpmd", "second", 8),
    ("rpmd", "none", 32),
]


def worker(molecule: str, recording: str, beads: int, steps: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from painn_deploy.md import SimulationConfig, run_simulation

    pdb = common.ROOT / "painn_deploy" / "resources" / MOLECULES[molecule]
    tmp = Path(tempfile.mkdtemp())
    model = tmp / "model.pt"
    # the bundled paper-size model (it knows H, C, O, so it can be exported for aspirin too): MD with
    # random weights flies apart, and the cost of a step does not depend on the weights
    from painn_deploy.deploy import export

    export(common.ROOT / "painn_deploy" / "resources" / "ethanol_painn.ckpt", model, pdb=str(pdb))
    record = recording != "none"
    cfg = dict(structure=str(pdb), model=str(model), steps=steps, beads=beads, record_dipole=record,
               record_polarizability=record, recording=recording if record else "auto", log_interval=500,
               trajectory_interval=500, checkpoint_interval=10**9, progress="none", platform="CPU",
               threads=threads)  # fmt: skip
    # steady state: the difference of a run of 3N steps and one of N steps removes start-up costs
    # (loading, warm-up, TorchScript optimising the graph on its first calls)
    seconds = {}
    for n in (steps, 3 * steps):
        t = time.perf_counter()
        result = run_simulation(SimulationConfig(output=str(tmp / f"run{n}"), **dict(cfg, steps=n)))
        seconds[n] = time.perf_counter() - t
    ms_per_step = (seconds[3 * steps] - seconds[steps]) / (2 * steps) * 1e3
    startup_s = seconds[steps] - steps * ms_per_step * 1e-3
    return {"ns_per_day": 0.5e-6 * 86400 / (ms_per_step * 1e-3), "ms_per_step": ms_per_step, "startup_s": startup_s,
            "recording": result.recording}  # fmt: skip


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--worker", nargs=3, metavar=("MOLECULE", "RECORDING", "BEADS"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--out")
    args = p.parse_args()
    if args.worker:
        m, rec, beads = args.worker
        Path(args.out).write_text(json.dumps(worker(m, rec, int(beads), args.steps, args.threads)))
        return
    rows = []
    for molecule, pdb in MOLECULES.items():
        peer = common.run_peer(["md", "--model", "untrained", "--pdb", common.ROOT / "painn_deploy" / "resources" / pdb,
                                "--steps", args.steps], 1)  # fmt: skip
        # classical rows: ROUNDS interleaved repetitions, median; the ratios between them are what matter
        results = {}
        for _ in range(ROUNDS):
            for case in CASES:
                if case[2] == 1:
                    r = common.run_worker(Path(__file__), [molecule, case[1], 1, "--steps", args.steps], 1)
                    results.setdefault(case, []).append(r)
        for case in CASES:
            if case[2] > 1:
                steps = max(args.steps // case[2], 50)
                results[case] = [common.run_worker(Path(__file__), [molecule, case[1], case[2], "--steps", steps], 1)]
        base = float(np.median([r["ms_per_step"] for r in results[("classical", "none", 1)]]))
        for (kind, recording, beads), runs in results.items():
            ms = float(np.median([r["ms_per_step"] for r in runs]))
            row = {"molecule": molecule, "md": kind, "beads": beads, "recording": recording, "ms_per_step": ms,
                   "ns_per_day": 0.5e-6 * 86400 / (ms * 1e-3), "runs": len(runs),
                   "ms_per_step_runs": [round(r["ms_per_step"], 3) for r in runs],
                   "startup_s": float(np.median([r["startup_s"] for r in runs])), "cost_vs_no_recording": ms / base}  # fmt: skip
            if peer:
                row["schnetpack_ms_per_step"] = peer["ms_per_step_median"]
                row["ratio_vs_schnetpack"] = ms / (peer["ms_per_step_median"] * beads)
            rows.append(row)
            print(row, flush=True)
    common.write_table(
        "md_throughput",
        rows,
        [
            "molecule",
            "md",
            "beads",
            "recording",
            "ns_per_day",
            "ms_per_step",
            "runs",
            "cost_vs_no_recording",
            "schnetpack_ms_per_step",
            "ratio_vs_schnetpack",
        ],  # fmt: skip
        notes="painn-simulate on the OpenMM CPU platform (openmmtools BAOAB, 0.5 fs; RPMD: OpenMM RPMDIntegrator with "
        "the PILE thermostat), paper-size PaiNN, float32, 1 thread. "
        "ms_per_step: steady state, (time of 3N steps - time of N steps) / 2N, median of `runs` runs (classical rows: "
        "interleaved, so drifts of this shared machine hit all alike); startup_s: the rest of the N-step run "
        "(model loading, warm-up, TorchScript's first optimising calls). cost_vs_no_recording: ms/step over the "
        "classical run without recording of the same molecule. "
        "ratio_vs_schnetpack: ours / (SchNetPack's MD driver ms/step x beads). Recording: tap (the default) = "
        "TorchForce, the model leaves each step's features in shared memory and the dipole and polarizability heads "
        "run on 100 steps' features at once, while the dynamics runs in 100-step integrator calls; fused = one PythonForce "
        "evaluation per step (energy, forces, features), the dipole and polarizability heads on 100 frames at once; "
        "second = TorchForce, the recorded frames evaluated again forward only, 10 per call.",
    )


if __name__ == "__main__":
    main()
