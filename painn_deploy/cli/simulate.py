"""``painn-simulate``: molecular dynamics in OpenMM with an exported PaiNN model."""

import argparse
import sys
import warnings

# light imports only: --help must not wait for torch and OpenMM (the run imports them in main)
from ..md.config import BACKENDS, INTEGRATORS, RPMD_INTEGRATORS, SWITCHES, TRAJECTORY_FORMATS, nyquist_limit_fs


def steps_type(text: str) -> int:
    """Accept 1000, 1e6 or 1_000_000 for a number of steps."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        value = float("nan")
    if not value >= 0 or value != int(value):  # NaN, negative, fractional
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of steps (e.g. 1000, 1e6)")
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
    p.add_argument("--beads", type=int, default=1,
                   help="ring-polymer beads P (> 1: RPMD, PILE thermostat; all beads in one batched evaluation)")  # fmt: skip
    p.add_argument("--rpmd-integrator", choices=RPMD_INTEGRATORS, default="batched",
                   help="batched: normal-mode CustomIntegrator, every bead in one evaluation; openmm: OpenMM's "
                   "RPMDIntegrator, one evaluation per bead (for comparison; no recording)")  # fmt: skip
    p.add_argument("--replicas", type=int, default=1,
                   help="independent copies of the molecule in one System (one batched evaluation per step, "
                   "independent thermostat noise); properties.h5 gets a replica axis")  # fmt: skip
    p.add_argument("--bead-trajectory", action="store_true",
                   help="also write every bead's positions (beads.dcd); trajectory.dcd holds the centroids")  # fmt: skip
    p.add_argument("--ml-residues", default="",
                   help="a solute in solvent: residue names (comma-separated) the model describes; every other atom "
                   "comes from --mm-forcefield, and the two interact by mechanical embedding (OpenMM-ML)")  # fmt: skip
    p.add_argument("--mm-forcefield", default="amber14/tip3p",
                   help="the MM force field: amber14 with its water model (amber14/tip3p, amber14/tip3pfb, amber14/spce); "
                   "ethanol (residue EOH) is bundled")  # fmt: skip
    p.add_argument("--forcefield-file", default="",
                   help="more OpenMM force-field XML files for the MM region (templates of other molecules), comma-separated")  # fmt: skip
    p.add_argument("--pressure", dest="pressure_bar", type=float, default=0.0,
                   help="pressure (bar) of a Monte Carlo barostat (NPT, solvated systems); 0: constant volume")  # fmt: skip
    p.add_argument("--mm-cutoff", dest="mm_cutoff_nm", type=float, default=0.9,
                   help="direct-space cutoff (nm) of the MM nonbonded forces (PME)")  # fmt: skip
    p.add_argument("--record-dipole", action="store_true", help="record the dipole moment (e*nm) in properties.h5")
    p.add_argument(
        "--record-polarizability", action="store_true", help="record the polarizability (nm^3) in properties.h5"
    )
    p.add_argument("--record-interval", type=int, default=1,
                   help=f"steps between recorded properties (at most {nyquist_limit_fs():.2f} fs to resolve 4000 cm^-1)")  # fmt: skip
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="torch: openmm-torch's TorchForce (C++); python: openmm.PythonForce, which also keeps each "
                   "evaluation's features, so the dipole and polarizability heads run on 100 steps at once; auto: "
                   "python when recording, else torch")  # fmt: skip
    p.add_argument("--cuda-graphs", choices=SWITCHES, default="auto",
                   help="capture the model's evaluation in a CUDA graph (auto: on the CUDA platform, for models "
                   "with fixed shapes: all pairs, or the static neighbour list)")  # fmt: skip
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
    p.add_argument("--resume-from", default="", metavar="CHECKPOINT",
                   help="continue from another checkpoint of the run, e.g. checkpoint.prev.chk (the one before the "
                   "latest, kept in OUTPUT) when the latest is damaged")  # fmt: skip
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an OUTPUT that holds a previous run, deleting that run's files first "
                   "(without it, a non-empty OUTPUT is refused)")  # fmt: skip
    p.add_argument("--max-temperature", dest="max_temperature_K", type=float, default=0.0,
                   help="stop when the temperature exceeds this (K); 0: 10 x target, at least 2000 K")  # fmt: skip
    p.add_argument(
        "--max-force",
        dest="max_force_kj_per_mol_nm",
        type=float,
        default=1e5,
        help="stop when a force exceeds this (kJ/mol/nm)",
    )
    p.add_argument("--envelope-margin", default="0.3",
                   help="warn when a configuration leaves the interatomic distances of the model's training data, and "
                   "stop when it goes further than this beyond them: Angstrom (0.3), or a percentage of each distance "
                   "(20%%); inf: warn only")  # fmt: skip
    p.add_argument("--threads", type=int, default=0,
                   help="PyTorch threads, and OpenMM CPU platform threads when given; 0: PyTorch one below 1000 atoms "
                   "(more only adds contention), else all cores. A bit-for-bit resume of a solvated system on the "
                   "CPU platform needs 1 (its PME differs in the last bits between processes on several threads)")  # fmt: skip
    p.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto", help="progress display")
    return p


def _show_warning(message, category, filename, lineno, file=None, line=None):
    from ..md.runner import SimulationWarning

    if issubclass(category, SimulationWarning):
        print(f"painn-simulate: warning: {message}", file=sys.stderr, flush=True)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


def main(argv=None) -> int:
    """Exit status 0: done; 1: the run failed (unstable, not recordable); 2: bad input (nothing run)."""
    args = build_parser().parse_args(argv)
    from ..errors import PainnDeployError, RecordingError, SimulationInstabilityError
    from ..md.config import SimulationConfig

    try:
        cfg = SimulationConfig(**vars(args))
        from ..md.runner import run_simulation  # torch, OpenMM

        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            result = run_simulation(cfg)
    except (SimulationInstabilityError, RecordingError) as exc:
        print(f"painn-simulate: error: {exc}", file=sys.stderr)
        return 1
    except PainnDeployError as exc:
        print(f"painn-simulate: error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
