"""SO(3)-equivariant linear layer: one weight matrix per degree l, bias on l = 0 only."""

from __future__ import annotations

import math

import torch
from torch import nn


class SO3Linear(nn.Module):
    """`(N, (lmax+1)**2, C_in) -> (N, (lmax+1)**2, C_out)` (fairchem SO3_LinearV2 parameters)."""

    def __init__(self, in_features: int, out_features: int, lmax: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.lmax = lmax
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(lmax + 1, out_features, in_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = [nn.functional.linear(x.narrow(1, 0, 1), self.weight[0], self.bias)]
        for l in range(1, self.lmax + 1):
            out.append(torch.matmul(x.narrow(1, l * l, 2 * l + 1), self.weight[l].T))
        return torch.cat(out, dim=1)
