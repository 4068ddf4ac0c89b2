"""Milliseconds per MD step on the OpenMM CPU platform, 1 pinned thread, float32 artefact of a
paper-size PaiNN (F=128, 3 blocks, 20 RBF, 5 A, all four heads), openmmtools BAOAB, 0.5 fs.

Rows, each in a fresh process, interleaved over ``--rounds`` rounds (ratios are medians of
per-round ratios, so the shared machine's drifts cancel):

- ``torch``: painn_deploy's TorchForce (``painn_deploy.openmm.torch_force``: outputs-forces contract),
  what painn-simulate runs without recording;
- ``python``: painn_deploy's ``openmm.PythonForce`` adapter (what records);
- ``plain``: a script that never imports painn_deploy, ``TorchForce("model.pt")`` (the energy contract);
- ``plain + allocator``: the same with the glibc settings of the README in the environment;
- ``schnetpack``: SchNetPack 2.2's own MD driver with its PaiNN of the same size.

    python benchmarks/md_speed.py [--steps 2000] [--rounds 3]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import numpy as np  # noqa: E402

MOLECULES = {"ethanol": "ethanol.pdb", "aspirin": "aspirin.pdb"}
NOTES = (
    "Milliseconds per MD step on the OpenMM CPU platform, 1 pinned thread, float32 artefact of a paper-size PaiNN "
    "(F=128, 3 blocks, 20 RBF, 5 A, all four heads), openmmtools BAOAB, 0.5 fs; each row in a fresh process, rows "
    "interleaved over the rounds; ms_per_step: median over rounds, ratios: medians of the per-round ratios. torch: "
    "painn_deploy's TorchForce (outputs-forces contract; painn-simulate without recording); python: the "
    "openmm.PythonForce adapter (what records); plain: a script that never imports painn_deploy, "
    'TorchForce("model.pt") (energy contract); plain + allocator: the same with the README\'s glibc settings; '
    "schnetpack: SchNetPack 2.2's MD driver with its PaiNN of the same size."
)
KINDS = ["torch", "python", "plain", "plain + allocator"]
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)}

PLAIN = """
import sys, time
import torch
torch.set_num_threads(1)
import openmm, openmmtools
from openmm import app, unit
from openmmtorch import TorchForce
pdb = app.PDBFile(sys.argv[1])
system = openmm.System()
for atom in pdb.topology.atoms():
    system.addParticle(atom.element.mass)
system.addForce(TorchForce(sys.argv[2]))
assert "painn_deploy" not in sys.modules
integrator = openmmtools.integrators.BAOABIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond)
context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
context.setPositions(pdb.positions)
context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
integrator.step(200)
samples = []
for _ in range(max(int(sys.argv[3]) // 100, 3)):
    t = time.perf_counter()
    integrator.step(100)
    samples.append((time.perf_counter() - t) / 100)
samples.sort()
print("MS", 1e3 * samples[len(samples) // 2])
"""


def artefact(molecule: str, folder: Path) -> Path:
    """A float32 artefact of a paper-size model with random weights for the molecule (the cost of a step
    does not depend on the weights)."""
    path = folder / f"{molecule}.pt"
    if not path.exists():
        import torch

        from painn_deploy.deploy import metadata as md
        from painn_deploy.structures import read_pdb

        z, _, _ = read_pdb(common.RESOURCES / MOLECULES[molecule])
        scripted = torch.jit.script(common.paper_forcefield(z))
        meta = {md.KEY_FORMAT: md.FORMAT, md.KEY_FORMAT_VERSION: md.FORMAT_VERSION, md.KEY_ATOMIC_NUMBERS: list(z),
                md.KEY_PARTICLE_ATOMIC_NUMBERS: list(z), md.KEY_N_MOLECULES: 1, md.KEY_MODEL_ELEMENTS: ["H", "C", "O"],
                md.KEY_PERIODIC: False,
                md.KEY_HEADS: ["energy", "forces", "dipole", "polarizability"], md.KEY_CUTOFF_NM: 0.5,
                md.KEY_FIXED_SHAPES: True, md.KEY_NEIGHBOR_LIST: "all_pairs", md.KEY_DTYPE: "float32"}  # fmt: skip
        torch.jit.save(scripted, str(path), _extra_files={md.METADATA_FILE: json.dumps(meta)})
    return path


def worker(kind: str, molecule: str, steps: int, folder: str) -> dict:
    import torch

    torch.set_num_threads(1)
    import openmm
    import openmmtools
    from openmm import app, unit

    from painn_deploy.openmm import create_system

    pdb = app.PDBFile(str(common.RESOURCES / MOLECULES[molecule]))
    system, _ = create_system(artefact(molecule, Path(folder)), pdb.topology, kind, remove_cm_motion=False)
    integrator = openmmtools.integrators.BAOABIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    context.setPositions(pdb.positions)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    integrator.step(200)
    samples = []
    for _ in range(max(steps // 100, 3)):
        t = time.perf_counter()
        integrator.step(100)
        samples.append((time.perf_counter() - t) / 100)
    return {"ms_per_step": common.median_ms(samples)}


def plain(molecule: str, steps: int, folder: Path, allocator: bool) -> float:
    script = folder / "plain.py"
    script.write_text(PLAIN)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **(ALLOCATOR_ENV if allocator else {}))
    if not allocator:
        for key in ALLOCATOR_ENV:
            env.pop(key, None)
    pdb = common.RESOURCES / MOLECULES[molecule]
    cmd = [
        "taskset",
        "-c",
        common.CORES[1],
        sys.executable,
        str(script),
        str(pdb),
        str(artefact(molecule, folder)),
        str(steps),
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, cwd=folder)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return float(out.stdout.split("MS")[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", nargs=3, metavar=("KIND", "MOLECULE", "FOLDER"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out")
    args = p.parse_args()
    if args.worker:
        Path(args.out).write_text(json.dumps(worker(args.worker[0], args.worker[1], args.steps, args.worker[2])))
        return
    folder = Path(tempfile.mkdtemp())
    rows = []
    for molecule, pdb in MOLECULES.items():
        runs = {kind: [] for kind in KINDS + ["schnetpack"]}
        for _ in range(args.rounds):
            for kind in ("torch", "python"):
                runs[kind].append(
                    common.run_worker(Path(__file__), [kind, molecule, folder, "--steps", args.steps], 1)["ms_per_step"]
                )
            runs["plain"].append(plain(molecule, args.steps, folder, False))
            runs["plain + allocator"].append(plain(molecule, args.steps, folder, True))
            peer = common.run_peer(["md", "--model", "untrained", "--pdb", common.RESOURCES / pdb,
                                    "--steps", args.steps], 1)  # fmt: skip
            runs["schnetpack"].append(peer["ms_per_step_median"] if peer else float("nan"))
        torch_runs = np.asarray(runs["torch"])
        for kind, values in runs.items():
            values = np.asarray(values)
            rows.append({"molecule": molecule, "run": kind, "ms_per_step": float(np.median(values)),
                         "ratio_to_torch": float(np.median(values / torch_runs)),
                         "ratio_to_schnetpack": float(np.median(values / np.asarray(runs["schnetpack"]))),
                         "per_round_ms": [round(float(v), 3) for v in values]})  # fmt: skip
            print(rows[-1], flush=True)
    common.write_table(
        "md_speed", rows, ["molecule", "run", "ms_per_step", "ratio_to_torch", "ratio_to_schnetpack", "per_round_ms"],
        notes=NOTES,
    )  # fmt: skip


if __name__ == "__main__":
    main()
