"""The batched ring-polymer integrator against OpenMM's ``RPMDIntegrator``: same model, same ensemble.

Ethanol, the bundled model (float32), P = 8 beads, 300 K, 0.5 fs, PILE thermostat (centroid friction
1/ps, internal modes 2 omega_k in both), ``--runs`` independent runs of ``--ps`` picoseconds each after
1 ps of equilibration, sampled every 10 steps.  Observables: the bead-averaged potential energy, the
centroid temperature (from the centroid velocities) and the ring-polymer radius of gyration of the
hydrogen atoms, sqrt(<(1/P) sum_k |q_k - q_c|^2>).  Each run gives one mean per observable; the
standard error is that of the run means.  The two integrators agree when their difference is within
3 combined standard errors.

    python benchmarks/rpmd_validation.py [--runs 3] [--ps 10]
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import numpy as np  # noqa: E402

P, TEMPERATURE_K, TIMESTEP_FS, SAMPLE_EVERY = 8, 300.0, 0.5, 10


def one_run(integrator_kind: str, seed: int, ps: float) -> dict:
    import torch

    torch.set_num_threads(1)
    import openmm
    from openmm import app, unit

    from painn_deploy import units
    from painn_deploy.md.rpmd import Layout, ring_polymer_integrator
    from painn_deploy.openmm import create_system
    from painn_deploy.resources import BUNDLED_MODEL

    pdb = app.PDBFile(str(common.RESOURCES / "ethanol.pdb"))
    masses = np.array([a.element.mass.value_in_unit(unit.dalton) for a in pdb.topology.atoms()])
    hydrogens = np.array([a.element.symbol == "H" for a in pdb.topology.atoms()])
    x0 = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    layout = Layout(len(masses), 1, P)
    platform = openmm.Platform.getPlatformByName("CPU")
    if integrator_kind == "openmm":
        system, _ = create_system(BUNDLED_MODEL, pdb.topology, "torch", remove_cm_motion=False)
        integrator = openmm.RPMDIntegrator(P, TEMPERATURE_K, 1.0, TIMESTEP_FS * 1e-3)
        integrator.setRandomNumberSeed(seed + 1)
        context = openmm.Context(system, integrator, platform, {"Threads": "1"})
        context.setPositions(x0 * unit.nanometer)
        context.setVelocitiesToTemperature(TEMPERATURE_K * P, seed + 1)
        rng = np.random.default_rng(seed)
        sigma = np.sqrt(units.BOLTZMANN_KJ_PER_MOL_K * TEMPERATURE_K * P / masses)[:, None]
        for k in range(P):
            integrator.setPositions(k, x0 * unit.nanometer)
            integrator.setVelocities(k, rng.normal(size=x0.shape) * sigma * unit.nanometer / unit.picosecond)

        def sample():
            states = [integrator.getState(k, getPositions=True, getVelocities=True, getEnergy=True) for k in range(P)]
            beads = np.stack([s.getPositions(asNumpy=True)._value for s in states])
            velocities = np.stack([s.getVelocities(asNumpy=True)._value for s in states])
            energy = sum(s.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) for s in states)
            return beads, velocities, energy
    else:
        system, _ = create_system(BUNDLED_MODEL, pdb.topology, "torch", n_frames=P, modes=layout.modes())
        integrator = ring_polymer_integrator(layout, TEMPERATURE_K, 1.0, TIMESTEP_FS)
        integrator.setRandomNumberSeed(seed + 1)
        context = openmm.Context(system, integrator, platform, {"Threads": "1"})
        context.setPositions(layout.particles_nm(np.broadcast_to(x0, (1, P) + x0.shape)))
        context.setVelocitiesToTemperature(TEMPERATURE_K * P, seed + 1)

        def sample():
            s = context.getState(getPositions=True, getVelocities=True, getEnergy=True)
            beads = layout.beads_nm(s.getPositions(asNumpy=True)._value)[0]
            velocities = layout.beads_nm(s.getVelocities(asNumpy=True)._value)[0]
            return beads, velocities, s.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)

    steps_per_ps = int(round(1000 / TIMESTEP_FS))
    integrator.step(steps_per_ps)  # equilibration
    potential, centroid_t, gyration = [], [], []
    start = time.perf_counter()
    for _ in range(int(ps * steps_per_ps) // SAMPLE_EVERY):
        integrator.step(SAMPLE_EVERY)
        beads, velocities, energy = sample()
        potential.append(energy / P)
        centroid_v = velocities.mean(axis=0)
        centroid_t.append(np.sum(masses[:, None] * centroid_v**2) / (3 * len(masses) * units.BOLTZMANN_KJ_PER_MOL_K))
        deviation = beads - beads.mean(axis=0)
        gyration.append(np.mean(np.sum(deviation[:, hydrogens] ** 2, axis=-1)))
    wall = time.perf_counter() - start
    return {"potential_kj_per_mol": float(np.mean(potential)), "centroid_temperature_K": float(np.mean(centroid_t)),
            "gyration_radius_H_nm": float(np.sqrt(np.mean(gyration))), "wall_s": wall,
            "ms_per_step": wall / (ps * steps_per_ps) * 1e3}  # fmt: skip


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", nargs=2, metavar=("INTEGRATOR", "SEED"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--ps", type=float, default=10.0)
    p.add_argument("--out")
    args = p.parse_args()
    if args.worker:
        Path(args.out).write_text(json.dumps(one_run(args.worker[0], int(args.worker[1]), args.ps)))
        return
    runs = {"batched": [], "openmm": []}
    for seed in range(args.runs):
        for kind in runs:
            runs[kind].append(common.run_worker(Path(__file__), [kind, seed, "--ps", args.ps], 1, timeout=7200))
            print(kind, seed, runs[kind][-1], flush=True)
    rows = []
    for name in ("potential_kj_per_mol", "centroid_temperature_K", "gyration_radius_H_nm"):
        stats = {}
        for kind, values in runs.items():
            x = np.array([r[name] for r in values])
            stats[kind] = (x.mean(), x.std(ddof=1) / np.sqrt(len(x)))
        diff = stats["batched"][0] - stats["openmm"][0]
        combined = float(np.hypot(stats["batched"][1], stats["openmm"][1]))
        rows.append({"observable": name, "batched": float(stats["batched"][0]), "batched_se": float(stats["batched"][1]),
                     "openmm": float(stats["openmm"][0]), "openmm_se": float(stats["openmm"][1]), "difference": float(diff),
                     "difference_in_se": float(diff / combined), "agree_within_3_se": bool(abs(diff) <= 3 * combined)})  # fmt: skip
    ms = {kind: float(np.median([r["ms_per_step"] for r in values])) for kind, values in runs.items()}
    notes = (
        f"Ethanol, bundled model (float32), P = {P}, {TEMPERATURE_K:g} K, {TIMESTEP_FS} fs, PILE (centroid 1/ps), "
        f"{args.runs} runs x {args.ps:g} ps each after 1 ps of equilibration, sampled every {SAMPLE_EVERY} steps; SE = "
        f"standard error of the run means. Wall time per step with sampling: batched {ms['batched']:.2f} ms, "
        f"OpenMM RPMDIntegrator {ms['openmm']:.2f} ms (1 thread; see md_throughput.md for the step cost alone)."
    )
    common.write_table("rpmd_validation", rows, ["observable", "batched", "batched_se", "openmm", "openmm_se",
                                                  "difference", "difference_in_se", "agree_within_3_se"], notes)  # fmt: skip


if __name__ == "__main__":
    main()
