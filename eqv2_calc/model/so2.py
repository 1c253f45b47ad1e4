"""eSCN SO(2) convolution: in the edge frame, a linear map per order m (paper Sec. 3.1).

Features enter and leave in the m-primary layout of `so3.m_primary_lm`: `(E, n_m, C)`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .radial import RadialMLP
from .so3 import m_block_sizes


class SO2mLinear(nn.Module):
    """Order m > 0: complex-style linear map mixing the +m and -m coefficients of all degrees l >= m.

    With x = x_+ + i x_- and W = W_r + i W_i (the two halves of `fc`'s output rows), the output is x W:
    (x_+ W_r - x_- W_i, x_- W_r + x_+ W_i). It runs as Gauss's three products instead of four,
    k1 = (x_+ + x_-) W_r, k2 = x_+ (W_i - W_r), k3 = x_- (W_r + W_i): out = (k1 - k3, k1 + k2),
    which is a quarter fewer multiply-adds on the largest matmuls of the model.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, 2 * out_features, bias=False)
        self.fc.weight.data.mul_(1 / math.sqrt(2))

    def forward(self, x_m: torch.Tensor) -> torch.Tensor:
        """`x_m`: `(E, 2, n_l * C_in)` (rows: +m, -m) -> `(E, 2, n_l * C_out)`."""
        w_r, w_i = self.fc.weight.chunk(2, dim=0)
        x_plus, x_minus = x_m.unbind(1)
        k1 = torch.mm(x_plus + x_minus, w_r.t())
        k2 = torch.mm(x_plus, (w_i - w_r).t())
        k3 = torch.mm(x_minus, (w_r + w_i).t())
        return torch.stack((k1 - k3, k1 + k2), dim=1)


class SO2Convolution(nn.Module):
    """SO(2) convolution over orders m = 0..mmax, optionally modulated by a radial MLP.

    Args:
        sphere_channels: input channels C_in per coefficient.
        m_output_channels: output channels C_out per coefficient.
        edge_channels_list: sizes of the radial MLP (input, hidden...); None for internal weights only.
        extra_m0_output_channels: extra invariant outputs of the m = 0 linear (attention logits, gates).
    """

    def __init__(
        self,
        sphere_channels: int,
        m_output_channels: int,
        lmax: int,
        mmax: int,
        edge_channels_list: list[int] | None = None,
        extra_m0_output_channels: int = 0,
    ) -> None:
        super().__init__()
        self.m_output_channels = m_output_channels
        self.extra_m0_output_channels = extra_m0_output_channels
        self.sizes = m_block_sizes(lmax, mmax)
        self.fc_m0 = nn.Linear(
            self.sizes[0] * sphere_channels, self.sizes[0] * m_output_channels + extra_m0_output_channels
        )
        self.so2_m_conv = nn.ModuleList(
            SO2mLinear(n * sphere_channels, n * m_output_channels) for n in self.sizes[1:]
        )
        self.rad_in_features = [self.fc_m0.in_features] + [conv.fc.in_features for conv in self.so2_m_conv]
        self.rad_func = (
            RadialMLP([*edge_channels_list, sum(self.rad_in_features)]) if edge_channels_list is not None else None
        )

    def forward(self, x: torch.Tensor, x_edge: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`x`: `(E, n_m, C_in)`; `x_edge`: `(E, edge_channels)` radial input.

        Returns `(E, n_m, C_out)` and the extra m = 0 outputs `(E, extra)` (None if there are none).
        """
        num_edges, channels = x.shape[0], x.shape[2]
        radial = None
        if self.rad_func is not None:
            radial = self.rad_func(x_edge).split(self.rad_in_features, dim=1)
        x_0 = x.narrow(1, 0, self.sizes[0]).reshape(num_edges, self.sizes[0] * channels)
        if radial is not None:
            x_0 = x_0 * radial[0]
        x_0 = self.fc_m0(x_0)
        extra = None
        if self.extra_m0_output_channels:
            extra = x_0.narrow(1, 0, self.extra_m0_output_channels)
            x_0 = x_0.narrow(1, self.extra_m0_output_channels, x_0.shape[1] - self.extra_m0_output_channels)
        out = [x_0.reshape(num_edges, self.sizes[0], self.m_output_channels)]
        offset = self.sizes[0]
        for m, conv in enumerate(self.so2_m_conv, start=1):
            n = self.sizes[m]
            x_m = x.narrow(1, offset, 2 * n).reshape(num_edges, 2, n * channels)
            if radial is not None:
                x_m = x_m * radial[m].unsqueeze(1)
            out.append(conv(x_m).reshape(num_edges, 2 * n, self.m_output_channels))
            offset += 2 * n
        return torch.cat(out, dim=1), extra
