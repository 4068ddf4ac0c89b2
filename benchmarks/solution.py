"""Ethanol in water (ML ethanol, MM TIP3P water with PME, mechanical embedding through OpenMM-ML) against
ethanol in vacuum and against the MM-only system, on the OpenMM CPU platform, 1 pinned thread.

1. ms per MD step (openmmtools BAOAB, 0.5 fs, rigid water), in turn in one process, ``--rounds`` rounds:
   ML/MM through painn-simulate's PythonForce backend (the one that records) and its TorchForce backend;
   ethanol in vacuum with the same two backends; the same solvated system with ethanol from the bundled
   OPLS-AA force field (MM only).
2. Where the time goes: one force evaluation of the ML force group alone, of the MM force group alone
   (``getState(getForces=True, groups=...)``) and of the model alone (its module called from Python).
3. ``--spectra-ps``: IR spectra of ethanol in vacuum and in water from painn-simulate runs recording every
   step (the solute's dipole; docs/spectra.md says what that leaves out), overlaid in results/solution.png.

    python benchmarks/solution.py [--waters 340] [--rounds 3] [--spectra-ps 10]
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


def step_ms(system, topology, positions, steps: int) -> float:
    import openmm
    import openmmtools
    from openmm import unit

    integrator = openmmtools.integrators.BAOABIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 100)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    integrator.step(50)
    start = time.perf_counter()
    integrator.step(steps)
    return (time.perf_counter() - start) / steps * 1e3


def group_ms(system, positions, group: set, repeats: int = 20) -> float:
    import openmm

    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("CPU"),
                             {"Threads": "1"})  # fmt: skip
    context.setPositions(positions)
    for _ in range(3):
        context.getState(getForces=True, groups=group)
    samples = []
    for _ in range(repeats):
        context.setPositions(positions)  # forces are computed again after setPositions
        start = time.perf_counter()
        context.getState(getForces=True, groups=group)
        samples.append(time.perf_counter() - start)
    return float(np.median(samples) * 1e3)


def worker(waters: int, steps: int, rounds: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from openmm import app, unit

    from painn_deploy.md.solution import mixed_system, ml_atoms_by_residue
    from painn_deploy.openmm import create_system
    from painn_deploy.resources import BUNDLED_MODEL
    from painn_deploy.solvation import forcefield, solvate

    tmp = Path(tempfile.mkdtemp())
    topology, positions = solvate(common.RESOURCES / "ethanol.pdb", tmp / "solvated.pdb", n_waters=waters)
    ml = ml_atoms_by_residue(topology, ["EOH"], "solvated")
    vacuum = app.PDBFile(str(common.RESOURCES / "ethanol.pdb"))

    def mixed(backend):
        return mixed_system(topology, str(BUNDLED_MODEL), ml, "amber14/tip3p", [], backend, 0, "cpu", False, 0.9,
                            "solvated").system  # fmt: skip

    mm_only = forcefield().createSystem(topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer,
                                        constraints=app.HBonds)  # fmt: skip
    cases = {
        "ML/MM, python": lambda: (mixed("python"), topology, positions, steps),
        "ML/MM, torch": lambda: (mixed("torch"), topology, positions, steps),
        "vacuum, python": lambda: (
            create_system(BUNDLED_MODEL, vacuum.topology, "python")[0],
            vacuum.topology,
            vacuum.positions,
            4 * steps,
        ),  # fmt: skip
        "vacuum, torch": lambda: (
            create_system(BUNDLED_MODEL, vacuum.topology, "torch")[0],
            vacuum.topology,
            vacuum.positions,
            4 * steps,
        ),  # fmt: skip
        "MM only (OPLS-AA ethanol)": lambda: (mm_only, topology, positions, steps),
    }
    runs = {label: [] for label in cases}
    for _ in range(rounds):
        for label, make in cases.items():
            system, top, pos, n = make()
            runs[label].append(step_ms(system, top, pos, n))
    system = mixed("python")
    where = {"ML force group (PythonForce)": group_ms(system, positions, {1}),
             "MM force groups (PME, bonded)": group_ms(system, positions, {0})}  # fmt: skip
    torch_system = mixed("torch")
    where["ML force group (TorchForce)"] = group_ms(torch_system, positions, {1})
    from painn_deploy.deploy import load

    model = load(BUNDLED_MODEL)
    x = torch.tensor(np.asarray(positions.value_in_unit(unit.nanometer))[ml], dtype=torch.float32)
    for _ in range(5):
        model.energy_and_forces(x)
    start = time.perf_counter()
    for _ in range(50):
        model.energy_and_forces(x)
    where["model alone (energy_and_forces from Python)"] = (time.perf_counter() - start) / 50 * 1e3
    return {"runs": runs, "where": where, "atoms": topology.getNumAtoms()}


def spectra_runs(waters: int, ps: float, folder: Path) -> dict:
    import torch

    torch.set_num_threads(1)
    from painn_deploy.md import SimulationConfig, run_simulation
    from painn_deploy.solvation import solvate

    solvate(common.RESOURCES / "ethanol.pdb", folder / "solvated.pdb", n_waters=waters)
    steps = int(ps * 2000)
    common_options = dict(steps=steps, equilibration_steps=2000, record_dipole=True, record_polarizability=True,
                          trajectory_interval=1000, log_interval=1000, checkpoint_interval=10**9, platform="CPU",
                          progress="none", threads=1, overwrite=True)  # fmt: skip
    wall = {}
    for name, extra in (("vacuum", dict(structure=str(common.RESOURCES / "ethanol.pdb"))),
                        ("water", dict(structure=str(folder / "solvated.pdb"), ml_residues="EOH"))):  # fmt: skip
        start = time.perf_counter()
        run_simulation(SimulationConfig(output=str(folder / name), **extra, **common_options))
        wall[name] = time.perf_counter() - start
    return wall


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", nargs=1, metavar="KIND")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--waters", type=int, default=340)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--spectra-ps", type=float, default=0.0)
    p.add_argument("--folder", default=str(common.RESULTS / ".solution"))
    p.add_argument("--out")
    args = p.parse_args()
    if args.worker:
        if args.worker[0] == "timing":
            result = worker(args.waters, args.steps, args.rounds)
        else:
            result = spectra_runs(args.waters, args.spectra_ps, Path(args.folder))
        Path(args.out).write_text(json.dumps(result))
        return
    out = common.run_worker(Path(__file__), ["timing", "--waters", args.waters, "--steps", args.steps,
                                             "--rounds", args.rounds], 1, timeout=7200)  # fmt: skip
    rows = []
    mm = np.asarray(out["runs"]["MM only (OPLS-AA ethanol)"])
    for label, values in out["runs"].items():
        values = np.asarray(values)
        rows.append({"run": label, "ms_per_step": float(np.median(values)),
                     "ratio_to_mm_only": float(np.median(values / mm))})  # fmt: skip
    for label, ms in out["where"].items():
        rows.append({"run": f"one evaluation: {label}", "ms_per_step": ms})
    notes = (
        f"Ethanol in {args.waters} TIP3P waters ({out['atoms']} atoms, PME 0.9 nm, rigid water, the ethanol ML with the "
        "bundled model, mechanical embedding), openmmtools BAOAB 0.5 fs, OpenMM CPU platform with 1 thread, 1 pinned "
        "core; medians over rounds. ML part of a step = ML/MM minus MM only; compare it with the vacuum step of the "
        "same backend."
    )
    common.write_table("solution", rows, ["run", "ms_per_step", "ratio_to_mm_only"], notes)
    if args.spectra_ps > 0:
        folder = Path(args.folder)
        common.run_worker(Path(__file__), ["spectra", "--waters", args.waters, "--spectra-ps", args.spectra_ps,
                                           "--folder", folder], 1, timeout=4 * 3600)  # fmt: skip
        overlay(folder, common.RESULTS / "solution.png")


def overlay(folder: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from painn_deploy.spectra import SpectrumConfig, compute_spectra

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, label in (("vacuum", "ethanol in vacuum"), ("water", "ethanol in TIP3P water (ML/MM)")):
        result = compute_spectra(SpectrumConfig(files=(str(folder / name / "properties.h5"),), output=str(folder / f"{name}_spectra"),
                                                ir=True, resolution_cm1=15.0, overwrite=True))  # fmt: skip
        ax.plot(result.ir.wavenumber_cm1, result.ir.intensity, label=label)
    ax.set_xlim(0, 4000)
    ax.set_xlabel("wavenumber (cm⁻¹)")
    ax.set_ylabel("IR (km mol⁻¹ (cm⁻¹)⁻¹)")
    ax.set_title("Ethanol IR at 300 K: vacuum against water (solute dipole only)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
