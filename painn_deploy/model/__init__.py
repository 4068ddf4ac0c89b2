"""The PaiNN model: representation, heads and the potential."""

from .potential import TARGETS, PaiNNConfig, PaiNNPotential, all_pairs, energy_and_forces

__all__ = ["TARGETS", "PaiNNConfig", "PaiNNPotential", "all_pairs", "energy_and_forces"]
