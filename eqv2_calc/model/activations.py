"""Nonlinearities on irreps features: S2 (grid) activation, its separable variant, gates, alpha act."""

from __future__ import annotations

import torch
from torch import nn

from .so3 import GridFactors


class SmoothLeakyReLU(nn.Module):
    """0.5(1+a) x + 0.5(1-a) x (2 sigmoid(x) - 1) with a = 0.2 (used on attention logits)."""

    def __init__(self, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.alpha = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((1 + self.alpha) / 2) * x + ((1 - self.alpha) / 2) * x * (2 * torch.sigmoid(x) - 1)


# The separable (two-GEMM) projections replace the dense (G, n) matrix when they need at most this fraction
# of its multiply-adds: measured on 2 CPU cores, the edge grids of the 31M model (n = 19 of lmax 4, mmax 2,
# 18 x 18 points; 54 %) gain 20 % per S2 activation, while full node grids (n = 25; 86 %) lose 25 %.
SEPARABLE_COST_FRACTION = 0.6


class SphereGrid(nn.Module):
    """Fixed projections between coefficients `(B, n, C)` and sphere samples `(G, B, C)`, G = long * lat.

    Grid values are laid out `(G, B, C)` so every projection is a GEMM over all B*C columns (a broadcast
    batched matmul of (G, n) against every row is far slower on CPU). The projections are either one dense
    (G, n) matrix or, when few orders m are kept (edge grids), the separable pair of `GridFactors`:
    coefficients -> (m, lat) Legendre sums -> (long, lat) Fourier sums, and back (see
    `SEPARABLE_COST_FRACTION`). Both give the same values up to float32 round-off.
    """

    def __init__(self, factors: GridFactors) -> None:
        super().__init__()
        orders, lat, n = factors.to_lat.shape
        long = factors.to_long.shape[0]
        self.separable = orders * lat * n + long * orders * lat <= SEPARABLE_COST_FRACTION * long * lat * n
        self.num_points = long * lat
        if self.separable:
            self.register_buffer("to_lat", factors.to_lat.reshape(orders * lat, n), persistent=False)
            self.register_buffer("to_long", factors.to_long, persistent=False)
            self.register_buffer("from_lat", factors.from_lat.reshape(orders * lat, n).T.contiguous(), persistent=False)
            self.register_buffer("from_long", factors.from_long, persistent=False)
        else:
            to_grid = torch.einsum("gm,mbn->gbn", factors.to_long, factors.to_lat).reshape(long * lat, n)
            from_grid = torch.einsum("mg,mbn->ngb", factors.from_long, factors.from_lat).reshape(n, long * lat)
            self.register_buffer("to_grid_mat", to_grid.contiguous(), persistent=False)
            self.register_buffer("from_grid_mat", from_grid.contiguous(), persistent=False)

    def to_grid(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, n, C) -> (G, B, C)`."""
        return self._grid_product(x).reshape(self.num_points, x.shape[0], x.shape[2])

    def _grid_product(self, x: torch.Tensor) -> torch.Tensor:
        """The grid values of `(B, n, C)` coefficients as the GEMM produced them: `(long, lat * B * C)` or
        `(G, B * C)`, a tensor of its own (not a view), so that an in-place op on it needs no autograd copy."""
        batch, n, channels = x.shape
        columns = x.transpose(0, 1).reshape(n, batch * channels)
        if self.separable:
            legendre = self.to_lat @ columns  # (M * lat, B * C)
            return self.to_long @ legendre.reshape(self.to_long.shape[1], -1)
        return self.to_grid_mat @ columns

    def from_grid(self, grid: torch.Tensor) -> torch.Tensor:
        """`(G, B, C) -> (B, n, C)`."""
        points, batch, channels = grid.shape
        if self.separable:
            legendre = self.from_long @ grid.reshape(self.from_long.shape[1], -1)  # (M, lat * B * C)
            out = self.from_lat @ legendre.reshape(self.from_lat.shape[1], batch * channels)
        else:
            out = self.from_grid_mat @ grid.reshape(points, batch * channels)
        return out.reshape(out.shape[0], batch, channels).transpose(0, 1)

    def silu(self, x: torch.Tensor) -> torch.Tensor:
        """S2 activation: SiLU applied pointwise on the sphere, `(B, n, C) -> (B, n, C)`.

        In place on the fresh GEMM output: PyTorch's out-of-place SiLU is ~3x slower on these large tensors
        (2 CPU threads). On the output itself, not on a reshaped view of it: in place on a view, autograd
        copies the whole base in the forward and again in the backward (~20 % of a demo-model forces call)."""
        grid = nn.functional.silu(self._grid_product(x), inplace=True)
        return self.from_grid(grid.reshape(self.num_points, x.shape[0], x.shape[2]))


def separable_s2_act(grid: SphereGrid, scalars: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Separable S2 activation: SiLU(scalars) replaces the l = 0 output of the S2 activation.

    `scalars`: `(B, C)` or `(B, 1, C)`; `x`: `(B, n, C)` with the l = 0 coefficient first.
    """
    out = grid.silu(x)
    return torch.cat((nn.functional.silu(scalars).reshape(x.shape[0], 1, x.shape[2]), out.narrow(1, 1, out.shape[1] - 1)), dim=1)


class GateActivation(nn.Module):
    """SiLU on the l = 0 coefficient; every l > 0 coefficient times sigmoid of its degree's gate."""

    def __init__(self, degree_minus_one: torch.Tensor, lmax: int, num_channels: int) -> None:
        """`degree_minus_one`: `(n-1,)` long, l - 1 of each coefficient after the first."""
        super().__init__()
        self.lmax = lmax
        self.num_channels = num_channels
        self.register_buffer("expand_index", degree_minus_one, persistent=False)

    def forward(self, gates: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """`gates`: `(B, lmax*C)` (or `(B, 1, lmax*C)`); `x`: `(B, n, C)`."""
        gates = torch.sigmoid(gates).reshape(gates.shape[0], self.lmax, self.num_channels)[:, self.expand_index]
        scalars = nn.functional.silu(x.narrow(1, 0, 1))
        return torch.cat((scalars, x.narrow(1, 1, x.shape[1] - 1) * gates), dim=1)
