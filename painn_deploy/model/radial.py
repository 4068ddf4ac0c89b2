"""Radial basis and cutoff of PaiNN (Schütt et al. 2021, Sec. 4).  Lengths in Angstrom."""

import math

import torch
from torch import nn


class SineRBF(nn.Module):
    """Sine radial basis ``sin(n pi r / r_cut) / r`` for n = 1..n_rbf; input [P], output [P, n_rbf].

    At r -> 0 the basis tends to n pi / r_cut; the input distance is never exactly 0 because
    :func:`safe_norm` adds a tiny epsilon, so coincident atoms give finite values.
    """

    def __init__(self, n_rbf: int, cutoff: float):
        super().__init__()
        self.register_buffer(
            "frequencies",
            torch.arange(
                1,
                n_rbf + 1,
            )
            * math.pi
            / cutoff,
        )

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        r = r.unsqueeze(-1)
        return torch.sin(self.frequencies * r) / r

    def value_and_derivative(self, r: torch.Tensor):
        """The basis [P, n_rbf] and its derivative with respect to r [P, n_rbf] (per Angstrom)."""
        r = r.unsqueeze(-1)
        x = self.frequencies * r
        rbf = torch.sin(x) / r
        return rbf, (self.frequencies * torch.cos(x) - rbf) / r


def cosine_cutoff(r: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Cosine cutoff 0.5 (cos(pi r / r_cut) + 1) for r < r_cut, exactly 0 beyond; shape as ``r``."""
    return 0.5 * (torch.cos(r * (math.pi / cutoff)) + 1.0) * (r < cutoff).to(r.dtype)


def cosine_cutoff_derivative(r: torch.Tensor, cutoff: float) -> torch.Tensor:
    """d/dr of :func:`cosine_cutoff` (per Angstrom); shape as ``r``."""
    return (-0.5 * math.pi / cutoff) * torch.sin(r * (math.pi / cutoff)) * (r < cutoff).to(r.dtype)


def silu_backward(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``grad`` times the derivative of SiLU (x sigmoid(x)) at x, in one ATen kernel (the one autograd
    uses), where the formula sigmoid(x) (1 + x (1 - sigmoid(x))) takes six; ``grad`` broadcasts to x."""
    return torch.ops.aten.silu_backward(grad, x)


def safe_norm(x: torch.Tensor, dim: int, eps_squared: float = 1e-18) -> torch.Tensor:
    """Euclidean norm with a finite gradient at x = 0 (adds ``eps_squared`` under the root)."""
    return torch.sqrt(torch.sum(x * x, dim=dim) + eps_squared)
