"""SO(3) geometry: coefficient layouts, per-edge Wigner-D matrices and S2 grid transforms.

Conventions (e3nn's): real spherical harmonics with y as the polar axis; an irreps feature of
degree l has 2l+1 coefficients ordered m = -l..l at offset l**2, so a node feature with
maximum degree lmax is `(..., (lmax+1)**2, C)` ("l-primary").

In the edge frame the SO(2) convolution uses only coefficients with |m| <= mmax, grouped by
order ("m-primary"): all m=0 coefficients (l = 0..lmax), then for m = 1..mmax the +m
coefficients (l = m..lmax) followed by the -m coefficients (l = m..lmax). Our rotations write
straight into and read straight from that layout, so no permutation is ever applied to features.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import torch
from e3nn import o3
from torch import nn


def m_primary_lm(lmax: int, mmax: int) -> list[tuple[int, int]]:
    """(l, m) of each coefficient in the m-primary edge-frame layout."""
    out = [(l, 0) for l in range(lmax + 1)]
    for m in range(1, mmax + 1):
        out += [(l, m) for l in range(m, lmax + 1)]
        out += [(l, -m) for l in range(m, lmax + 1)]
    return out


def m_block_sizes(lmax: int, mmax: int) -> list[int]:
    """Number of degrees l carrying order m, for m = 0..mmax (each m > 0 block has twice as many rows)."""
    return [lmax - m + 1 for m in range(mmax + 1)]


def degree_of_coefficient(lmax: int) -> torch.Tensor:
    """`(lmax+1)**2` long tensor: degree l of each l-primary coefficient."""
    return torch.tensor([l for l in range(lmax + 1) for _ in range(2 * l + 1)], dtype=torch.long)


def rescale_factor(l: int, mmax: int) -> float:
    """fairchem's compensation for dropped orders: sqrt((2l+1)/(2mmax+1)) for l > mmax, else 1."""
    return math.sqrt((2 * l + 1) / (2 * mmax + 1)) if l > mmax else 1.0


# The edge frame has a pole: for edges along its polar axis the roll is undefined and derivatives
# of the frame diverge. Edges are first turned by this fixed, arbitrary rotation (e3nn Y-X-Y
# angles in radians) so the pole points along no lattice direction a structure is likely to have;
# the network is invariant to the frame choice up to its S2-grid quadrature error.
FRAME_ROTATION_ANGLES = (0.5128, 1.1734, 2.3901)
# 180 degree rotation about (1, 1, 0)/sqrt(2): swaps the x and y axes.
_SWAP_XY = ((0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, -1.0))


@lru_cache(maxsize=None)
def frame_rotation() -> tuple[tuple[float, ...], ...]:
    """The 3x3 matrix of FRAME_ROTATION_ANGLES (float64 values, as nested tuples)."""
    matrix = o3.angles_to_matrix(*torch.tensor(FRAME_ROTATION_ANGLES, dtype=torch.float64))
    return tuple(tuple(row) for row in matrix.tolist())


@lru_cache(maxsize=None)
def _wigner_of(l: int, matrix: tuple[tuple[float, ...], ...]) -> torch.Tensor:
    """D^l of a fixed rotation matrix, float64 (cached)."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn builds its so(3) generators in the default dtype
    try:
        return o3.wigner_D(l, *o3.matrix_to_angles(torch.tensor(matrix)))
    finally:
        torch.set_default_dtype(default)


def _rotation_about_y(cos_k: torch.Tensor, sin_k: torch.Tensor, l: int) -> torch.Tensor:
    """D^l of rotations about the y axis, `(E, 2l+1, 2l+1)`, from cos(k t), sin(k t) for k = 0..lmax.

    Coefficient i (m = i - l) mixes with its mirror 2l - i with frequency l - i: cos(|l-i| t) on the
    diagonal, sign(l-i) sin(|l-i| t) on the anti-diagonal (built from slices, so nothing is indexed
    by a host tensor).
    """
    cos = torch.cat((cos_k[:, 1 : l + 1].flip(1), cos_k[:, : l + 1]), dim=1)
    sin = torch.cat((sin_k[:, 1 : l + 1].flip(1), sin_k[:, :1], -sin_k[:, 1 : l + 1]), dim=1)
    return torch.diag_embed(cos) + torch.diag_embed(sin).flip(-1)


def _harmonics_of_angle(cos: torch.Tensor, sin: torch.Tensor, kmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos(k t), sin(k t) for k = 0..kmax, `(E, kmax+1)` each, by complex multiplication (no trig calls)."""
    cos_k = [torch.ones_like(cos)]
    sin_k = [torch.zeros_like(sin)]
    for _ in range(kmax):
        c, s = cos_k[-1], sin_k[-1]
        cos_k.append(c * cos - s * sin)
        sin_k.append(s * cos + c * sin)
    return torch.stack(cos_k, dim=1), torch.stack(sin_k, dim=1)


def edge_frame_angles(edge_vec: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """cos/sin of the Euler angles (alpha = 0, beta, gamma) taking each direction onto +y, each `(E,)`.

    The rotation R = X(beta) Y(gamma) (e3nn's Y-X-Y convention with alpha = 0) maps the unit
    vector n onto (0, 1, 0). The roll about the edge is fixed (alpha = 0) rather than random as in
    fairchem, so outputs are deterministic. Gradients stay finite on the pole (n = +-y).
    """
    n = edge_vec / edge_vec.norm(dim=-1, keepdim=True)
    nx, ny, nz = n.unbind(-1)
    sin_beta_sq = nx * nx + nz * nz
    on_axis = sin_beta_sq < 1e-24
    sin_beta = torch.sqrt(torch.where(on_axis, torch.ones_like(sin_beta_sq), sin_beta_sq))
    cos_gamma = torch.where(on_axis, torch.ones_like(nz), -nz / sin_beta)
    sin_gamma = torch.where(on_axis, torch.zeros_like(nx), nx / sin_beta)
    return ny, torch.where(on_axis, torch.zeros_like(sin_beta), sin_beta), cos_gamma, sin_gamma


class EdgeRotation(nn.Module):
    """Rotations into and out of each edge's frame, computed once per forward pass.

    The frame of edge n is R = X(beta) Y(gamma) Q, with Q the fixed FRAME_ROTATION_ANGLES rotation
    and (beta, gamma) from `edge_frame_angles(Q n)`, so R n = +y. The fixed matrices (Q and, per
    degree l, the Wigner-D of Q and of the x-y swap) and the row maps are float64 buffers, so they
    move with the module and the forward creates nothing on the host.
    """

    def __init__(self, lmax: int, mmax: int) -> None:
        super().__init__()
        self.lmax = lmax
        rows = m_primary_lm(lmax, mmax)
        self.register_buffer("frame", torch.tensor(frame_rotation(), dtype=torch.float64), persistent=False)
        by_degree = []  # m-primary rows grouped by degree l, in degree order
        for l in range(lmax + 1):
            self.register_buffer(f"swap_{l}", _wigner_of(l, _SWAP_XY), persistent=False)
            self.register_buffer(f"fixed_{l}", _wigner_of(l, frame_rotation()), persistent=False)
            self.register_buffer(f"rows_{l}", torch.tensor([l + m for lr, m in rows if lr == l]), persistent=False)
            by_degree += [r for r, (lr, _) in enumerate(rows) if lr == l]
        # to_edge row r (m-primary) is row position[r] of the degree-ordered stack of blocks
        position = {r: i for i, r in enumerate(by_degree)}
        self.register_buffer("to_m_primary", torch.tensor([position[r] for r in range(len(rows))]), persistent=False)
        scale = [rescale_factor(l, mmax) for l in range(lmax + 1) for _ in range(2 * l + 1)]
        self.register_buffer("rescale", torch.tensor(scale, dtype=torch.float64).view(-1, 1), persistent=False)

    def forward(self, edge_vec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            edge_vec: `(E, 3)` edge vectors (source - target), Angstrom.
        Returns:
            to_edge: `(E, n_m, (lmax+1)**2)`; `to_edge @ x` gives the |m| <= mmax coefficients of the
                rotated feature x in m-primary layout.
            from_edge: `(E, (lmax+1)**2, n_m)`; the inverse rotation of an m-primary edge feature back
                to l-primary, with fairchem's sqrt((2l+1)/(2mmax+1)) rescale of degrees l > mmax.
        """
        lmax, dtype = self.lmax, edge_vec.dtype
        cos_b, sin_b, cos_g, sin_g = edge_frame_angles(edge_vec @ self.frame.to(dtype).T)
        cb_k, sb_k = _harmonics_of_angle(cos_b, sin_b, lmax)
        cg_k, sg_k = _harmonics_of_angle(cos_g, sin_g, lmax)
        width = (lmax + 1) ** 2
        blocks = []
        for l in range(lmax + 1):
            swap, fixed = getattr(self, f"swap_{l}").to(dtype), getattr(self, f"fixed_{l}").to(dtype)
            wigner = swap @ _rotation_about_y(cb_k, sb_k, l) @ swap @ (_rotation_about_y(cg_k, sg_k, l) @ fixed)
            block = wigner.index_select(1, getattr(self, f"rows_{l}"))  # (E, rows of degree l, 2l+1)
            blocks.append(nn.functional.pad(block, (l * l, width - (l + 1) ** 2)))
        to_edge = torch.cat(blocks, dim=1).index_select(1, self.to_m_primary)
        from_edge = (to_edge.transpose(1, 2) * self.rescale.to(dtype)).contiguous()
        return to_edge, from_edge


def edge_wigner(edge_vec: torch.Tensor, lmax: int, mmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`EdgeRotation(lmax, mmax)` applied to `edge_vec` `(E, 3)` (a one-off; the network keeps its own module)."""
    return EdgeRotation(lmax, mmax).to(edge_vec.device)(edge_vec)


class GridFactors(NamedTuple):
    """Separable S2 grid projections for the coefficients with |m| <= mmax (real SH: Y_lm = P_lm(lat) F_m(long)).

    M = 2 mmax + 1 orders m = -mmax..mmax; n coefficients on the last axis of the Legendre factors.
    to_lat: `(M, lat, n)`, to_long: `(long, M)`; from_lat: `(M, lat, n)` (with the quadrature weights),
    from_long: `(M, long)`. A grid value at (long, lat) is sum_m to_long[long, m] sum_n to_lat[m, lat, n] x_n.
    """

    to_lat: torch.Tensor
    to_long: torch.Tensor
    from_lat: torch.Tensor
    from_long: torch.Tensor

    def reorder(self, index: torch.Tensor) -> GridFactors:
        """The same projections with the coefficients taken in the order `index` `(n,)`."""
        return self._replace(to_lat=self.to_lat[..., index], from_lat=self.from_lat[..., index])


def s2_grid_factors(lmax: int, mmax: int, shape: tuple[int, int]) -> GridFactors:
    """Projections between coefficients with |m| <= mmax and a `shape` = (lat, long) grid on the sphere.

    Degrees l > mmax are rescaled by sqrt((2l+1)/(2mmax+1)) as in fairchem's SO3_Grid. Uses e3nn's
    ToS2Grid/FromS2Grid ("component" normalization). The coefficients are in l-primary order
    (m = -min(l, mmax)..min(l, mmax) per l); see `GridFactors.reorder`.
    """
    lat, long = shape
    to_s2 = o3.ToS2Grid(lmax, (lat, long), normalization="component")
    from_s2 = o3.FromS2Grid((lat, long), lmax, normalization="component")
    scale = torch.tensor([rescale_factor(l, mmax) for l in range(lmax + 1) for _ in range(2 * l + 1)])
    keep = torch.tensor([abs(m) <= mmax for l in range(lmax + 1) for m in range(-l, l + 1)])
    orders = slice(lmax - mmax, lmax + mmax + 1)  # e3nn's order axis runs m = -lmax..lmax
    return GridFactors(
        to_lat=(to_s2.shb * scale)[orders][:, :, keep].contiguous(),
        to_long=to_s2.sha[:, orders].contiguous(),
        from_lat=(from_s2.shb * scale)[orders][:, :, keep].contiguous(),
        from_long=from_s2.sha[:, orders].T.contiguous(),
    )


def l_primary_to_m_primary(lmax: int, mmax: int) -> torch.Tensor:
    """Index that reorders |m| <= mmax coefficients from l-primary (as in `s2_grid_factors`) to m-primary."""
    l_primary = [(l, m) for l in range(lmax + 1) for m in range(-min(l, mmax), min(l, mmax) + 1)]
    position = {lm: i for i, lm in enumerate(l_primary)}
    return torch.tensor([position[lm] for lm in m_primary_lm(lmax, mmax)], dtype=torch.long)
