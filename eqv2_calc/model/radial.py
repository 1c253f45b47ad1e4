"""Distance features: Gaussian smearing of edge lengths and the radial MLPs that read them."""

from __future__ import annotations

import torch
from torch import nn

# fairchem 1.10 always expands distances into 600 Gaussians on [0, max_radius] with width factor 2
# (GaussianSmearing(0.0, cutoff, 600, 2.0)); the config's num_distance_basis is ignored there.
NUM_GAUSSIANS = 600
BASIS_WIDTH_SCALAR = 2.0


class GaussianSmearing(nn.Module):
    """exp(-0.5 (d - mu_k)^2 / (2 delta)^2) for 600 centres mu_k on [0, cutoff]; `(E,) -> (E, 600)`."""

    def __init__(self, cutoff: float) -> None:
        super().__init__()
        offset = torch.linspace(0.0, cutoff, NUM_GAUSSIANS)
        self.coeff = -0.5 / (BASIS_WIDTH_SCALAR * (offset[1] - offset[0])).item() ** 2
        self.register_buffer("offset", offset, persistent=False)

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.coeff * (distance.view(-1, 1) - self.offset.view(1, -1)).pow(2))


class RadialMLP(nn.Module):
    """Linear -> LayerNorm -> SiLU for each hidden size, then a last Linear (fairchem RadialFunction)."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(1, len(channels)):
            layers.append(nn.Linear(channels[i - 1], channels[i]))
            if i < len(channels) - 1:
                layers += [nn.LayerNorm(channels[i]), nn.SiLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PolynomialEnvelope(nn.Module):
    """Smooth cutoff u(r) = 1 - (p+1)(p+2)/2 d^p + p(p+2) d^(p+1) - p(p+1)/2 d^(p+2), d = r / cutoff
    (DimeNet, arXiv 2003.03123); u and its first two derivatives vanish at the cutoff. `(E,) -> (E,)`."""

    def __init__(self, cutoff: float, exponent: int = 5) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.p = exponent

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        d = (distance / self.cutoff).clamp(max=1.0)
        p = self.p
        return 1 - (p + 1) * (p + 2) / 2 * d**p + p * (p + 2) * d ** (p + 1) - p * (p + 1) / 2 * d ** (p + 2)
