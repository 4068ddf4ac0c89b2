"""Ethanol in water, ML/MM: ethanol with the PaiNN model through OpenMM-ML, TIP3P water with amber14,
mechanical embedding (ethanol-water interactions from the OPLS-AA charges and LJ of the bundled template).
A few hundred steps at 300 K and 1 bar (Langevin thermostat + Monte Carlo barostat), energies printed.

    python simulations/ethanol_in_water.py                      # the bundled model, 1 nm of water around
    python simulations/ethanol_in_water.py --model best.ckpt --steps 1000 --platform CUDA

``--model`` takes an exported model (painn-export) or a painn-train checkpoint (exported on the fly,
periodic for the water box).
"""

import argparse
import sys
from pathlib import Path

import torch  # noqa: F401  (import torch before openmm/openmmtorch: libnvrtc.so.12)

import openmm  # isort: skip
from openmm import app, unit  # isort: skip
from openmmml import MLPotential  # isort: skip

from painn_deploy.solvation import forcefield, solvate

RESOURCES = Path(__file__).resolve().parents[1] / "painn_deploy" / "resources"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(RESOURCES / "ethanol_painn.pt"), help="exported model or checkpoint")
    p.add_argument("--pdb", default=str(RESOURCES / "ethanol.pdb"), help="the solute (residue EOH)")
    p.add_argument("--padding", type=float, default=1.0, help="water around the solute (nm)")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--platform", default="CPU")
    p.add_argument("--backend", choices=("python", "torch"), default="python")
    p.add_argument("--output", default="ethanol_in_water.pdb", help="the solvated structure")
    args = p.parse_args(argv)

    topology, positions = solvate(args.pdb, args.output, padding_nm=args.padding)
    mm_system = forcefield().createSystem(
        topology, nonbondedMethod=app.PME, nonbondedCutoff=0.8 * unit.nanometer, constraints=app.HBonds
    )
    ml_atoms = [atom.index for atom in topology.atoms() if atom.residue.name == "EOH"]
    potential = MLPotential("painn", model=args.model, backend=args.backend)
    # the ML force in group 1; constraints inside the ethanol are removed (its X-H bonds vibrate: 0.5 fs)
    system = potential.createMixedSystem(topology, mm_system, ml_atoms, forceGroup=1)
    system.addForce(openmm.MonteCarloBarostat(1 * unit.bar, 300 * unit.kelvin, 25))
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond)
    simulation = app.Simulation(topology, system, integrator, openmm.Platform.getPlatformByName(args.platform))
    simulation.context.setPositions(positions)
    print(f"{len(ml_atoms)} ML atoms, {topology.getNumAtoms()} atoms, box {topology.getUnitCellDimensions()}")
    simulation.minimizeEnergy(maxIterations=100)
    simulation.context.setVelocitiesToTemperature(300 * unit.kelvin)
    simulation.reporters.append(
        app.StateDataReporter(sys.stdout, max(1, args.steps // 10), step=True, potentialEnergy=True,
                              temperature=True, volume=True, density=True, speed=True)
    )  # fmt: skip
    simulation.step(args.steps)

    kj = unit.kilojoule_per_mole
    state = simulation.context.getState(getEnergy=True)
    ml = simulation.context.getState(getEnergy=True, groups={1}).getPotentialEnergy().value_in_unit(kj)
    total = state.getPotentialEnergy().value_in_unit(kj)
    print(f"potential energy {total:.2f} kJ/mol = ML (ethanol) {ml:.2f} + MM {total - ml:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
