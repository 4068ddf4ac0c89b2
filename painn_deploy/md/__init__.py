"""Molecular dynamics with an exported PaiNN model: runner, outputs, restart, safety net."""

from .config import SimulationConfig, nyquist_limit_fs
from .runner import SimulationResult, run_simulation

__all__ = ["SimulationConfig", "SimulationResult", "nyquist_limit_fs", "run_simulation"]
