"""Molecular dynamics with an exported PaiNN model: runner, outputs, restart, safety net.

``run_simulation`` and ``SimulationResult`` are imported on first use (they bring torch and OpenMM), so that
``painn-simulate --help`` and the configuration load fast.
"""

from .config import SimulationConfig, nyquist_limit_fs

__all__ = ["SimulationConfig", "SimulationResult", "nyquist_limit_fs", "run_simulation"]


def __getattr__(name):
    if name in ("SimulationResult", "run_simulation"):
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
