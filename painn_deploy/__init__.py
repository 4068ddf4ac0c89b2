"""painn-deploy: PaiNN potentials from training to OpenMM molecular dynamics and IR/Raman spectra.

``torch`` must be imported before ``openmm``: OpenMM loads the openmm-torch plugin when ``openmm`` is
imported, and that plugin only finds its CUDA libraries (libnvrtc.so.12) once torch is loaded.  Importing
torch here costs a second or two, which ``painn-simulate --help`` and other light uses need not pay, so the package
imports torch just before the first import of ``openmm`` (or ``openmmtorch``) instead, wherever that happens.
"""

import importlib.abc
import sys

__version__ = "0.1.0"


class _TorchBeforeOpenMM(importlib.abc.MetaPathFinder):
    """Imports torch when ``openmm`` or ``openmmtorch`` is first imported, then does nothing.  It finds no module
    itself (the usual finders import them), and stays in ``sys.meta_path``: the import system is iterating over
    that list when it asks, so removing itself then would make it skip the next finder."""

    done = False

    def find_spec(self, fullname, path=None, target=None):
        if not self.done and fullname in ("openmm", "openmmtorch"):
            self.done = True
            import torch  # noqa: F401
        return None


if "openmm" not in sys.modules and "torch" not in sys.modules:
    sys.meta_path.insert(0, _TorchBeforeOpenMM())
