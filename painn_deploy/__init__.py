"""painn-deploy: PaiNN potentials from training to OpenMM molecular dynamics and IR/Raman spectra.

``torch`` is imported first on purpose: OpenMM loads the openmm-torch plugin when ``openmm`` is
imported, and that plugin only finds its CUDA libraries (libnvrtc.so.12) once torch is loaded.
"""

import torch  # noqa: F401  (keep first)

__version__ = "0.1.0"
