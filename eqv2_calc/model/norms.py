"""Equivariant normalizations of node features `(N, (lmax+1)**2, C)` (fairchem's three variants, and
the DeNS repository's "none")."""

from __future__ import annotations

import torch
from torch import nn

from .so3 import degree_of_coefficient

EPS = 1e-5  # fairchem get_normalization_layer default


class EquivariantLayerNorm(nn.Module):
    """`layer_norm`: each degree l normalized on its own (l = 0 also centred), per-degree scale."""

    def __init__(self, lmax: int, num_channels: int) -> None:
        super().__init__()
        self.lmax = lmax
        self.affine_weight = nn.Parameter(torch.ones(lmax + 1, num_channels))
        self.affine_bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        for l in range(self.lmax + 1):
            feature = x.narrow(1, l * l, 2 * l + 1)
            if l == 0:
                feature = feature - feature.mean(dim=2, keepdim=True)
            norm = feature.pow(2).mean(dim=1, keepdim=True).mean(dim=2, keepdim=True)
            feature = feature * ((norm + EPS).pow(-0.5) * self.affine_weight[l].view(1, 1, -1))
            if l == 0:
                feature = feature + self.affine_bias.view(1, 1, -1)
            out.append(feature)
        return torch.cat(out, dim=1)


class EquivariantLayerNormSH(nn.Module):
    """`layer_norm_sh`: LayerNorm on l = 0; one degree-balanced RMS over all l > 0 coefficients."""

    def __init__(self, lmax: int, num_channels: int) -> None:
        super().__init__()
        self.lmax = lmax
        self.norm_l0 = nn.LayerNorm(num_channels, eps=EPS)
        self.affine_weight = nn.Parameter(torch.ones(lmax, num_channels))
        degree = degree_of_coefficient(lmax)[1:]
        self.register_buffer(
            "balance_degree_weight", (1.0 / (2 * degree + 1) / max(lmax, 1)).unsqueeze(1).float(), persistent=False
        )
        self.register_buffer("expand_index", degree - 1, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scalars = self.norm_l0(x.narrow(1, 0, 1))
        if self.lmax == 0:
            return scalars
        vectors = x.narrow(1, 1, x.shape[1] - 1)
        norm = torch.einsum("nic,ia->nac", vectors.pow(2), self.balance_degree_weight)
        norm = (norm.mean(dim=2, keepdim=True) + EPS).pow(-0.5)
        vectors = vectors * (norm * self.affine_weight[self.expand_index].unsqueeze(0))
        return torch.cat((scalars, vectors), dim=1)


class EquivariantRMSNormSH(nn.Module):
    """`rms_norm_sh`: centre l = 0, one degree-balanced RMS over all coefficients, per-degree scale."""

    def __init__(self, lmax: int, num_channels: int) -> None:
        super().__init__()
        self.affine_weight = nn.Parameter(torch.ones(lmax + 1, num_channels))
        self.affine_bias = nn.Parameter(torch.zeros(num_channels))
        degree = degree_of_coefficient(lmax)
        self.register_buffer("expand_index", degree, persistent=False)
        self.register_buffer(
            "balance_degree_weight", (1.0 / (2 * degree + 1) / (lmax + 1)).unsqueeze(1).float(), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scalars = x.narrow(1, 0, 1)
        x = torch.cat((scalars - scalars.mean(dim=2, keepdim=True), x.narrow(1, 1, x.shape[1] - 1)), dim=1)
        norm = torch.einsum("nic,ia->nac", x.pow(2), self.balance_degree_weight)
        norm = (norm.mean(dim=2, keepdim=True) + EPS).pow(-0.5)
        out = x * (norm * self.affine_weight[self.expand_index].unsqueeze(0))
        bias = torch.zeros_like(out[:1])
        bias[:, 0] = self.affine_bias
        return out + bias


def make_norm(norm_type: str, lmax: int, num_channels: int) -> nn.Module:
    """The normalization named by a config's `norm_type` ("none": the identity, no parameters)."""
    if norm_type == "none":
        return nn.Identity()
    return {
        "layer_norm": EquivariantLayerNorm,
        "layer_norm_sh": EquivariantLayerNormSH,
        "rms_norm_sh": EquivariantRMSNormSH,
    }[norm_type](lmax, num_channels)
