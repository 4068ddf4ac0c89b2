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

ROUNDS = 5
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


def _config(molecule: str, beads: int, threads: int, tmp: Path) -> dict:
    from painn_deploy.deploy import export

    pdb = common.ROOT / "painn_deploy" / "resources" / MOLECULES[molecule]
    model = tmp / "model.pt"
    # the bundled paper-size model (it knows H, C, O, so it can be exported for aspirin too): MD with
    # random weights flies apart, and the cost of a step does not depend on the weights
    export(common.ROOT / "painn_deploy" / "resources" / "ethanol_painn.ckpt", model, pdb=str(pdb))
    return dict(structure=str(pdb), model=str(model), beads=beads, log_interval=500, trajectory_interval=500,
                checkpoint_interval=10**9, progress="none", platform="CPU", threads=threads)  # fmt: skip


def _run(cfg: dict, recording: str, steps: int, output: Path):
    from painn_deploy.md import SimulationConfig, run_simulation

    record = recording != "none"
    return run_simulation(SimulationConfig(output=str(output), steps=steps, record_dipole=record,
                                           record_polarizability=record, recording=recording if record else "auto",
                                           **cfg))  # fmt: skip


def worker(molecule: str, recording: str, beads: int, steps: int, threads: int) -> dict:
    """One recording mode: steady state from the difference of a run of 3N steps and one of N steps,
    which removes start-up costs (loading, warm-up, TorchScript optimising the graph on its first calls)."""
    import torch

    torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp())
    cfg = _config(molecule, beads, threads, tmp)
    seconds = {}
    for n in (steps, 3 * steps):
        t = time.perf_counter()
        result = _run(cfg, recording, n, tmp / f"run{n}")
        seconds[n] = time.perf_counter() - t
    ms_per_step = (seconds[3 * steps] - seconds[steps]) / (2 * steps) * 1e3
    startup_s = seconds[steps] - steps * ms_per_step * 1e-3
    return {"ns_per_day": 0.5e-6 * 86400 / (ms_per_step * 1e-3), "ms_per_step": ms_per_step, "startup_s": startup_s,
            "recording": result.recording}  # fmt: skip


def interleaved_worker(molecule: str, steps: int, threads: int, rounds: int) -> dict:
    """The classical recording modes run in turn in one process, ``rounds`` times: each run's speed is its
    step loop's (painn-simulate's ns/day, measured after the warm-up), and each round's costs are ratios to
    that round's run without recording, so the shared machine's drifts cancel."""
    import torch

    torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp())
    cfg = _config(molecule, 1, threads, tmp)
    modes = [c[1] for c in CASES if c[2] == 1]
    _run(cfg, "tap", 200, tmp / "warm")  # the first run in a process pays one-off costs
    ms = {m: [] for m in modes}
    for r in range(rounds):
        for m in modes:
            result = _run(cfg, m, steps, tmp / f"{m}{r}")
            ms[m].append(0.5e-6 * 86400 / result.ns_per_day * 1e3)
    return {m: {"ms_per_step_runs": v, "ratios": [a / b for a, b in zip(v, ms["none"])]} for m, v in ms.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--worker", nargs=3, metavar=("MOLECULE", "RECORDING", "BEADS"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--out")
    args = p.parse_args()
    if args.worker:
        m, rec, beads = args.worker
        if rec == "interleaved":
            result = interleaved_worker(m, args.steps, args.threads, ROUNDS)
        else:
            result = worker(m, rec, int(beads), args.steps, args.threads)
        Path(args.out).write_text(json.dumps(result))
        return
    rows = []
    for molecule, pdb in MOLECULES.items():
        peer = common.run_peer(["md", "--model", "untrained", "--pdb", common.ROOT / "painn_deploy" / "resources" / pdb,
                                "--steps", args.steps], 1)  # fmt: skip
        # classical rows: the modes in turn in one process, ROUNDS times (interleaved_worker)
        inter = common.run_worker(Path(__file__), [molecule, "interleaved", 1, "--steps", args.steps], 1)
        results = {}
        for case in CASES:
            if case[2] > 1:
                steps = max(args.steps // case[2], 50)
                results[case] = [common.run_worker(Path(__file__), [molecule, case[1], case[2], "--steps", steps], 1)]
        base = float(np.median(inter["none"]["ms_per_step_runs"]))
        for kind, recording, beads in CASES:
            if beads == 1:
                runs = inter[recording]["ms_per_step_runs"]
                ms = float(np.median(runs))
                cost = float(np.median(inter[recording]["ratios"]))
                spread = [round(x, 3) for x in sorted(inter[recording]["ratios"])]
                startup = float("nan")
            else:
                r = results[(kind, recording, beads)][0]
                runs, ms, cost, spread, startup = (
                    [r["ms_per_step"]],
                    r["ms_per_step"],
                    r["ms_per_step"] / base,
                    [],
                    r["startup_s"],
                )
            row = {"molecule": molecule, "md": kind, "beads": beads, "recording": recording, "ms_per_step": ms,
                   "ns_per_day": 0.5e-6 * 86400 / (ms * 1e-3), "runs": len(runs),
                   "ms_per_step_runs": [round(x, 3) for x in runs], "startup_s": startup,
                   "cost_vs_no_recording": cost, "cost_per_round": spread}  # fmt: skip
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
            "cost_per_round",
            "schnetpack_ms_per_step",
            "ratio_vs_schnetpack",
        ],  # fmt: skip
        notes="painn-simulate on the OpenMM CPU platform (openmmtools BAOAB, 0.5 fs; RPMD: OpenMM RPMDIntegrator with "
        "the PILE thermostat), paper-size PaiNN, float32, 1 thread. "
        "Classical rows: the four recording modes run in turn in one process, `runs` rounds of N steps each; ms_per_step "
        "is the median of the runs' step-loop speeds (painn-simulate's ns/day, after loading and warm-up), "
        "cost_vs_no_recording the median over rounds of each round's ratio to its run without recording (cost_per_round: "
        "all of them, sorted), so drifts of this shared machine cancel. RPMD rows: steady state from (time of 3N steps - "
        "time of N steps) / 2N in a fresh process; startup_s: the rest of the N-step run (loading, warm-up, TorchScript's "
        "first optimising calls); their cost_vs_no_recording is against the classical median. "
        "ratio_vs_schnetpack: ours / (SchNetPack's MD driver ms/step x beads). Recording: none = TorchForce with "
        "setOutputsForces (painn_deploy.openmm.torch_force); fused (the default) = one PythonForce evaluation per step "
        "(energy, forces, features kept for 100 steps), the dipole and polarizability heads on 100 steps' features at "
        "once, while the dynamics runs in 100-step integrator calls; tap = the same with TorchForce, the model leaving "
        "each step's features in shared memory; second = TorchForce, the recorded frames evaluated again forward only, "
        "10 per call.",
    )


if __name__ == "__main__":
    main()
