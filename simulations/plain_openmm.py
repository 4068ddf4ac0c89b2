"""NVT molecular dynamics of ethanol with an exported model, written the way OpenMM users write it:
plain OpenMM, openmm-torch's TorchForce and an openmmtools integrator (no painn_deploy import).

    python simulations/plain_openmm.py model.pt simulations/ethanol.pdb [steps]

For larger molecules and boxes, start Python with glibc's allocator settings (painn_deploy sets them
itself when it builds the force; see painn_deploy/allocator.py), a few percent faster for aspirin
(benchmarks/results/md_speed.md):

    MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 python simulations/plain_openmm.py ...
"""

import sys

import torch  # noqa: F401  (import torch before openmm/openmmtorch: libnvrtc.so.12)

import openmm  # isort: skip
import openmm.app as app  # isort: skip
import openmm.unit as unit  # isort: skip
import openmmtools  # isort: skip
from openmmtorch import TorchForce  # isort: skip

model, pdb_path = sys.argv[1], sys.argv[2]
steps = int(float(sys.argv[3])) if len(sys.argv) > 3 else 10000
torch.set_num_threads(1)  # a 9-atom molecule gains nothing from more threads
pdb = app.PDBFile(pdb_path)
system = openmm.System()
for atom in pdb.topology.atoms():
    system.addParticle(atom.element.mass)
system.addForce(TorchForce(model))
integrator = openmmtools.integrators.BAOABIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond)
simulation = app.Simulation(pdb.topology, system, integrator, openmm.Platform.getPlatformByName("CPU"))
simulation.context.setPositions(pdb.positions)
simulation.context.setVelocitiesToTemperature(300 * unit.kelvin)
simulation.reporters.append(app.DCDReporter("plain_openmm.dcd", 100))
simulation.reporters.append(
    app.StateDataReporter(
        sys.stdout, max(1, steps // 10), step=True, potentialEnergy=True, temperature=True, speed=True
    )
)
simulation.step(steps)
