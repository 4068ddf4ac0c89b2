"""``painn-simulate``: molecular dynamics in OpenMM with an exported PaiNN model."""

import argparse
import sys

from ..errors import PainnDeployError
from ..md import SimulationConfig, run_simulation
from ..md.config import INTEGRATORS, RECORDINGS, TRAJECTORY_FORMATS, nyquist_limit_fs


def steps_type(text: str) -> int:
    """Accept 1000, 1e6 or 1_000_000 for a number of steps."""
    value = float(text.replace("_", ""))
    if value != int(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a whole, non-negative number of steps")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="painn-simulate", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("structure", help="starting structure (PDB with element columns; a CRYST1 box makes it periodic)")
    p.add_argument("--model", help="exported model (.pt from painn-export) or a painn-train checkpoint (.ckpt, exported "
                   "on the fly); default: the bundled ethanol model when the structure is ethanol")  # fmt: skip
    p.add_argument("--output", "-o", default="md_run", help="output directory")
    p.add_argument("--steps", type=steps_type, default=10000, help="number of MD steps (1e6 accepted)")
    p.add_argument("--temperature", dest="temperature_K", type=float, default=300.0, help="temperature (K)")
    p.add_argument("--timestep", dest="timestep_fs", type=float, default=0.5, help="time step (fs)")
    p.add_argument("--integrator", choices=INTEGRATORS, default="langevin",
                   help="langevin: openmmtools BAOAB (NVT); nose-hoover: Nose-Hoover chain (NVT); verlet: velocity Verlet (NVE)")  # fmt: skip
    p.add_argument(
        "--friction", dest="friction_per_ps", type=float, default=1.0, help="Langevin friction / collision rate (1/ps)"
    )
    p.add_argument("--beads", type=int, default=1, help="ring-polymer beads P (> 1: RPMD with the PILE thermostat)")
    p.add_argument("--record-dipole", action="store_true", help="record the dipole moment (e*nm) in properties.h5")
    p.add_argument(
        "--record-polarizability", action="store_true", help="record the polarizability (nm^3) in properties.h5"
    )
    p.add_argument("--record-interval", type=int, default=1,
                   help=f"steps between recorded properties (at most {nyquist_limit_fs():.2f} fs to resolve 4000 cm^-1)")  # fmt: skip
    p.add_argument("--recording", choices=RECORDINGS, default="auto",
                   help="how the dipole/polarizability are recorded. fused: openmm.PythonForce evaluates energy, forces "
                   "and the network's features once per step, and the dipole and polarizability heads run on 100 "
                   "steps' features at a time; tap: the same with TorchForce, the model leaving each step's features "
                   "in shared memory; second: TorchForce plus a batched forward-only evaluation of the recorded "
                   "frames; auto: fused (tap for models exported in format 3), or second for RPMD (measured: "
                   "benchmarks/results/md_throughput.md)")  # fmt: skip
    p.add_argument("--trajectory-interval", type=int, default=100, help="steps between trajectory frames")
    p.add_argument("--trajectory-format", choices=TRAJECTORY_FORMATS, default="dcd",
                   help="trajectory.dcd (single precision) or trajectory.xtc (compressed to 0.001 nm)")  # fmt: skip
    p.add_argument(
        "--log-interval", type=int, default=100, help="steps between log lines (log.csv) and stability checks"
    )
    p.add_argument("--checkpoint-interval", type=int, default=10000, help="steps between checkpoints")
    p.add_argument(
        "--equilibration-steps", type=steps_type, default=0, help="steps run before production, not recorded"
    )
    p.add_argument(
        "--platform", default="auto", help="OpenMM platform: Reference, CPU, CUDA, OpenCL, or auto (fastest available)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (velocities and thermostat)")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint.chk")
    p.add_argument("--max-temperature", dest="max_temperature_K", type=float, default=0.0,
                   help="stop when the temperature exceeds this (K); 0: 10 x target, at least 2000 K")  # fmt: skip
    p.add_argument(
        "--max-force",
        dest="max_force_kj_per_mol_nm",
        type=float,
        default=1e5,
        help="stop when a force exceeds this (kJ/mol/nm)",
    )
    p.add_argument("--threads", type=int, default=0,
                   help="PyTorch threads; 0: one below 1000 atoms (more only adds contention), else all cores")  # fmt: skip
    p.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto", help="progress display")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = SimulationConfig(**vars(args))
        result = run_simulation(cfg)
    except PainnDeployError as exc:
        print(f"painn-simulate: error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
