"""ms per step of painn-simulate runs (the real driver: logging, checks, outputs), 1 pinned thread.

1. Classical ethanol and aspirin, in turn in one process, ``--rounds`` times (interleaved, so the shared
   machine's drifts cancel): TorchForce without recording (painn-simulate's default), PythonForce without
   recording, and PythonForce recording dipole and polarizability every step (the feature ring).  The cost
   of recording is the median over rounds of each round's ratio; SchNetPack's MD driver (same model size)
   in the same run.  In each round the same process also times the two pieces that recording adds to a
   step on their own: the output heads per evaluation (on a full ring, as painn-simulate runs them) and
   keeping one evaluation in the ring.
2. Ring polymers: the batched integrator (every bead in one evaluation) against OpenMM's
   ``RPMDIntegrator`` (one evaluation per bead) with the same model, P = 32 and 64 for ethanol, 64 for
   aspirin, alternating in one process; and the batched integrator recording every step.
3. Replicas: ``--replicas 16`` ethanol per replica-step against a single run, alternating in one process.

Every speed is the step loop's (painn-simulate's ns/day, measured after its warm-up).

    python benchmarks/md_throughput.py [--steps 2000] [--rounds 5]
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

MOLECULES = {"ethanol": "ethanol.pdb", "aspirin": "aspirin.pdb"}
CLASSICAL = {  # label: options
    "torch, no recording": dict(backend="torch"),
    "python, no recording": dict(backend="python"),
    "python, recording": dict(record_dipole=True, record_polarizability=True),
}
RPMD = [("ethanol", 32), ("ethanol", 64), ("aspirin", 64)]
REPLICAS = 16


def model_for(molecule: str, tmp: Path) -> str:
    """The bundled paper-size model exported for the molecule (it knows H, C and O; the cost of a step does
    not depend on the weights, and MD with random weights flies apart).  Aspirin lies outside the ethanol
    model's training envelope, so its runs switch the safety net's envelope check off (timing only)."""
    from painn_deploy.deploy import export

    path = tmp / f"{molecule}.pt"
    if not path.exists():
        pdb = common.RESOURCES / MOLECULES[molecule]
        export(common.RESOURCES / "ethanol_painn.ckpt", path, pdb=str(pdb))
    return str(path)


def ms_per_step(molecule: str, steps: int, tmp: Path, name: str, **options) -> float:
    from painn_deploy.md import SimulationConfig, run_simulation

    cfg = SimulationConfig(
        structure=str(common.RESOURCES / MOLECULES[molecule]), model=model_for(molecule, tmp),
        output=str(tmp / name), steps=steps, log_interval=max(steps // 4, 1), trajectory_interval=max(steps // 4, 1),
        checkpoint_interval=10**9, progress="none", platform="CPU", threads=1,
        envelope_margin="0.3" if molecule == "ethanol" else "inf", **options,
    )  # fmt: skip
    result = run_simulation(cfg)
    return 0.5e-6 * 86400 / result.ns_per_day * 1e3


def recording_parts(molecule: str, tmp: Path) -> dict:
    """ms of the output heads per evaluation, run on a full feature ring at once, and of keeping one evaluation
    in the ring: the pieces painn-simulate's recording adds to a PythonForce step."""
    import torch

    from painn_deploy.deploy import Artefact
    from painn_deploy.md.runner import FEATURE_CAPACITY
    from painn_deploy.openmm.forces import ModelForce
    from painn_deploy.structures import read_pdb

    adapter = ModelForce(Artefact(model_for(molecule, tmp)).load().module, False, ring_capacity=FEATURE_CAPACITY)
    _, positions_nm, _ = read_pdb(common.RESOURCES / MOLECULES[molecule])
    with torch.inference_mode():  # (as the adapter evaluates and appends)
        _, _, frames, s, v = adapter.module.evaluate(torch.tensor(positions_nm, dtype=torch.float32), None)
    ring = adapter.ring

    def ms(call, n: int) -> float:
        call()
        start = time.perf_counter()
        for _ in range(n):
            call()
        return (time.perf_counter() - start) / n * 1e3

    with torch.inference_mode():
        append = ms(lambda: ring.append(frames, s, v), 2000)  # (and the ring is full)
    indices = list(range(ring.count - ring.capacity, ring.count))
    return {"heads per evaluation": ms(lambda: ring.responses(indices), 20) / ring.capacity, "ring append": append}


def classical_worker(molecule: str, steps: int, rounds: int) -> dict:
    tmp = Path(tempfile.mkdtemp())
    ms_per_step(molecule, 200, tmp, "warm", record_dipole=True)  # the first run in a process pays one-off costs
    runs = {label: [] for label in CLASSICAL}
    runs.update({"heads per evaluation": [], "ring append": []})
    for r in range(rounds):
        for label, options in CLASSICAL.items():
            runs[label].append(
                ms_per_step(molecule, steps, tmp, f"{label}{r}".replace(" ", "_").replace(",", ""), **options)
            )
        for part, value in recording_parts(molecule, tmp).items():
            runs[part].append(value)
    return runs


def rpmd_worker(molecule: str, beads: int, steps: int, rounds: int) -> dict:
    tmp = Path(tempfile.mkdtemp())
    cases = {
        "openmm RPMDIntegrator": dict(beads=beads, rpmd_integrator="openmm", backend="torch"),
        "batched": dict(beads=beads),
        "batched, recording": dict(beads=beads, record_dipole=True, record_polarizability=True),
        "batched, python": dict(beads=beads, backend="python"),
    }
    ms_per_step(molecule, 20, tmp, "warm", beads=beads)
    runs = {label: [] for label in cases}
    for r in range(rounds):
        for k, (label, options) in enumerate(cases.items()):
            n = max(steps // 4, 20) if "openmm" in label else steps
            runs[label].append(ms_per_step(molecule, n, tmp, f"round{r}_case{k}", **options))
    return runs


def replica_worker(steps: int, rounds: int) -> dict:
    tmp = Path(tempfile.mkdtemp())
    ms_per_step("ethanol", 100, tmp, "warm", replicas=REPLICAS)
    runs = {"single": [], f"{REPLICAS} replicas": []}
    for r in range(rounds):
        runs["single"].append(ms_per_step("ethanol", steps, tmp, f"s{r}"))
        runs[f"{REPLICAS} replicas"].append(ms_per_step("ethanol", steps // 4, tmp, f"r{r}", replicas=REPLICAS))
    return runs


def median_ratio(a, b) -> float:
    return float(np.median(np.asarray(a) / np.asarray(b)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", nargs=3, metavar=("KIND", "MOLECULE", "BEADS"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out")
    args = p.parse_args()
    if args.worker:
        kind, molecule, beads = args.worker
        if kind == "classical":
            result = classical_worker(molecule, args.steps, args.rounds)
        elif kind == "rpmd":
            result = rpmd_worker(molecule, int(beads), args.steps, args.rounds)
        else:
            result = replica_worker(args.steps, args.rounds)
        Path(args.out).write_text(json.dumps(result))
        return
    rows = []
    for molecule, pdb in MOLECULES.items():
        runs = common.run_worker(
            Path(__file__), ["classical", molecule, 1, "--steps", args.steps, "--rounds", args.rounds], 1
        )
        peer = common.run_peer(["md", "--model", "untrained", "--pdb", common.RESOURCES / pdb,
                                "--steps", args.steps], 1)  # fmt: skip
        spk = peer["ms_per_step_median"] if peer else float("nan")
        base = runs["torch, no recording"]
        for label in CLASSICAL:
            values = runs[label]
            rows.append({"molecule": molecule, "run": label, "ms_per_step": float(np.median(values)),
                         "ratio": median_ratio(values, base), "ratio_to": "torch, no recording",
                         "ratio_per_round": sorted(np.round(np.asarray(values) / np.asarray(base), 3).tolist()),
                         "schnetpack_ms_per_step": spk, "ratio_vs_schnetpack": float(np.median(values)) / spk})  # fmt: skip
        rows.append({"molecule": molecule, "run": "python, recording vs python, no recording",
                     "ratio": median_ratio(runs["python, recording"], runs["python, no recording"]),
                     "ratio_per_round": sorted(np.round(np.asarray(runs["python, recording"]) /
                                                        np.asarray(runs["python, no recording"]), 3).tolist())})  # fmt: skip
        for part in ("heads per evaluation", "ring append"):
            rows.append({"molecule": molecule, "run": f"recording part: {part}", "ms_per_step": float(np.median(runs[part])),
                         "ratio": median_ratio(runs[part], base), "ratio_to": "torch, no recording",
                         "ratio_per_round": sorted(np.round(np.asarray(runs[part]) / np.asarray(base), 3).tolist())})  # fmt: skip
        print(rows[-6:], flush=True)
    for molecule, beads in RPMD:
        steps = max(args.steps // beads * 4, 40)
        runs = common.run_worker(Path(__file__), ["rpmd", molecule, beads, "--steps", steps, "--rounds", 3], 1)
        base = runs["openmm RPMDIntegrator"]
        for label, values in runs.items():
            rows.append({"molecule": molecule, "run": f"RPMD P={beads}, {label}", "ms_per_step": float(np.median(values)),
                         "ratio": median_ratio(values, base), "ratio_to": "openmm RPMDIntegrator",
                         "ratio_per_round": sorted(np.round(np.asarray(values) / np.asarray(base), 3).tolist())})  # fmt: skip
        rows.append({"molecule": molecule, "run": f"RPMD P={beads}, recording vs python, no recording",
                     "ratio": median_ratio(runs["batched, recording"], runs["batched, python"])})  # fmt: skip
        rows.append({"molecule": molecule, "run": f"RPMD P={beads}, recording vs batched (the default)",
                     "ratio": median_ratio(runs["batched, recording"], runs["batched"])})  # fmt: skip
        print(rows[-6:], flush=True)
    runs = common.run_worker(Path(__file__), ["replicas", "ethanol", 1, "--steps", args.steps, "--rounds", 3], 1)
    per_replica = np.asarray(runs[f"{REPLICAS} replicas"]) / REPLICAS
    rows.append({"molecule": "ethanol", "run": f"{REPLICAS} replicas, per replica-step",
                 "ms_per_step": float(np.median(per_replica)), "ratio": median_ratio(per_replica, runs["single"]),
                 "ratio_to": "single run", "ratio_per_round": sorted(np.round(per_replica / np.asarray(runs["single"]), 3).tolist())})  # fmt: skip
    notes = (
        "painn-simulate on the OpenMM CPU platform, openmmtools BAOAB (classical, replicas) or the ring-polymer "
        "integrators with the PILE thermostat, 0.5 fs, bundled paper-size model (F=128, 3 blocks, float32), 1 pinned "
        "thread. ms_per_step: median over rounds of the step loop's speed; ratio: median over rounds of each round's "
        "ratio to ratio_to measured in the same round. torch = TorchForce with setOutputsForces (painn-simulate's "
        "default without recording); python = openmm.PythonForce (the only backend that records: the evaluation keeps "
        "its features and the heads run on 100 steps at once). 'recording part' rows: the heads per evaluation (run on "
        "100 evaluations at once) and keeping one evaluation in the ring, each timed alone in the same round, as ms per "
        "step and against the TorchForce step. RPMD 'batched': normal-mode CustomIntegrator, all beads "
        "in one evaluation (painn-simulate's default); 'openmm RPMDIntegrator': one TorchForce evaluation per bead."
    )
    columns = ["molecule", "run", "ms_per_step", "ratio", "ratio_to", "ratio_per_round", "schnetpack_ms_per_step",
               "ratio_vs_schnetpack"]  # fmt: skip
    common.write_table("md_throughput", rows, columns, notes)


if __name__ == "__main__":
    main()
