"""NVT MD recording dipole and polarizability every step, then IR and Raman spectra, from Python.

    python simulations/record_properties.py [model.pt]

Without a model argument the pre-trained ethanol model shipped with painn-deploy is used.
"""

import sys

from painn_deploy.cli import spectrum
from painn_deploy.md import SimulationConfig, run_simulation
from painn_deploy.resources import RESOURCES

config = SimulationConfig(
    structure=str(RESOURCES / "ethanol.pdb"),
    model=sys.argv[1] if len(sys.argv) > 1 else None,
    output="ethanol_nvt",
    steps=40_000,  # 20 ps at 0.5 fs
    equilibration_steps=2_000,
    temperature_K=300.0,
    record_dipole=True,
    record_polarizability=True,
)
print(run_simulation(config).summary())
spectrum.main(["ethanol_nvt/properties.h5", "--ir", "--raman", "-o", "ethanol_nvt/spectra"])
