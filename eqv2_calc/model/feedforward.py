"""Node-wise feed-forward network with S2 / separable S2 / gate activation or grid MLP (paper Sec. 4)."""

from __future__ import annotations

import torch
from torch import nn

from .activations import GateActivation, SphereGrid, separable_s2_act
from .linear import SO3Linear
from .so3 import degree_of_coefficient


class FeedForwardNetwork(nn.Module):
    """`(N, (lmax+1)**2, C_in) -> (N, (lmax+1)**2, C_out)`: SO3Linear -> activation -> SO3Linear."""

    def __init__(self, config, output_channels: int, node_grid: SphereGrid) -> None:
        super().__init__()
        c = config
        lmax, hidden = c.lmax, c.ffn_hidden_channels
        self.use_grid_mlp = c.use_grid_mlp
        self.use_gate_act = c.use_gate_act
        self.use_sep_s2_act = c.use_sep_s2_act
        self.node_grid = node_grid
        self.so3_linear_1 = SO3Linear(c.sphere_channels, hidden, lmax)
        self.gating_linear = None
        if c.use_grid_mlp:
            if c.use_sep_s2_act:
                self.scalar_mlp = nn.Sequential(nn.Linear(c.sphere_channels, hidden), nn.SiLU(inplace=True))
            # in-place SiLU on each Linear's fresh output: faster on CPU, same numbers
            self.grid_mlp = nn.Sequential(
                nn.Linear(hidden, hidden, bias=False),
                nn.SiLU(inplace=True),
                nn.Linear(hidden, hidden, bias=False),
                nn.SiLU(inplace=True),
                nn.Linear(hidden, hidden, bias=False),
            )
        elif c.use_gate_act:
            self.gating_linear = nn.Linear(c.sphere_channels, lmax * hidden)
            self.gate_act = GateActivation(degree_of_coefficient(lmax)[1:] - 1, lmax, hidden)
        elif c.use_sep_s2_act:
            self.gating_linear = nn.Linear(c.sphere_channels, hidden)
        self.so3_linear_2 = SO3Linear(hidden, output_channels, lmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scalars = x.narrow(1, 0, 1)
        hidden = self.so3_linear_1(x)
        if self.use_grid_mlp:
            hidden = self.node_grid.from_grid(self.grid_mlp(self.node_grid.to_grid(hidden)))
            if self.use_sep_s2_act:
                hidden = torch.cat((self.scalar_mlp(scalars), hidden.narrow(1, 1, hidden.shape[1] - 1)), dim=1)
        elif self.use_gate_act:
            hidden = self.gate_act(self.gating_linear(scalars), hidden)
        elif self.use_sep_s2_act:
            hidden = separable_s2_act(self.node_grid, self.gating_linear(scalars), hidden)
        else:
            hidden = self.node_grid.silu(hidden)
        return self.so3_linear_2(hidden)
