"""EquiformerV2 (arXiv 2306.12059): backbone of equivariant transformer blocks plus output heads.

The module is pure torch: it takes atomic numbers and edges (from `eqv2_calc.graph`) and returns
raw (normalized) outputs; de-normalization lives with the checkpoint (`eqv2_calc.potential`).
Parameter names follow fairchem's hydra layout (`backbone.*`, `output_heads.<name>.*`), so
fairchem state dicts load after the key renames in `eqv2_calc.checkpoint`.
"""

from __future__ import annotations

import torch
from torch import nn

from .activations import SphereGrid
from .attention import EdgeGeometry, SO2EquivariantGraphAttention
from ..precision import autocast_off
from .config import EquiformerV2Config
from .embedding import EdgeDegreeEmbedding
from .feedforward import FeedForwardNetwork
from .heads import EnergyHead, ForceHead, Rank2Head
from .linear import SO3Linear
from .norms import make_norm
from .radial import NUM_GAUSSIANS, GaussianSmearing, PolynomialEnvelope
from .so3 import EdgeRotation, l_primary_to_m_primary, s2_grid_factors


class TransBlock(nn.Module):
    """Pre-norm transformer block: x + attention(norm_1(x)), then + feed-forward(norm_2(x))."""

    def __init__(self, config: EquiformerV2Config, edge_channels_list: list[int], edge_grid: SphereGrid, node_grid: SphereGrid) -> None:
        super().__init__()
        self.norm_1 = make_norm(config.norm_type, config.lmax, config.sphere_channels)
        self.ga = SO2EquivariantGraphAttention(config, config.sphere_channels, edge_channels_list, edge_grid)
        self.norm_2 = make_norm(config.norm_type, config.lmax, config.sphere_channels)
        self.ffn = FeedForwardNetwork(config, config.sphere_channels, node_grid)

    def forward(self, x: torch.Tensor, edges: EdgeGeometry) -> torch.Tensor:
        x = x + self.ga(self.norm_1(x), edges)
        return x + self.ffn(self.norm_2(x))


class EquiformerV2Backbone(nn.Module):
    """Node features `(N, (lmax+1)**2, sphere_channels)` after `num_layers` blocks and a final norm."""

    def __init__(self, config: EquiformerV2Config) -> None:
        super().__init__()
        c = config
        self.config = c
        self.sphere_embedding = nn.Embedding(c.max_num_elements, c.sphere_channels)
        self.distance_expansion = GaussianSmearing(c.max_radius)
        self.envelope = PolynomialEnvelope(c.max_radius) if c.use_cutoff_envelope else None
        self.edge_channels_list = [NUM_GAUSSIANS, c.edge_channels, c.edge_channels]
        if c.share_atom_edge_embedding:
            self.source_embedding = nn.Embedding(c.max_num_elements, c.edge_channels)
            self.target_embedding = nn.Embedding(c.max_num_elements, c.edge_channels)
            self.edge_channels_list[0] += 2 * c.edge_channels

        edge_factors = s2_grid_factors(c.lmax, c.mmax, c.grid_shape(edges=True))
        self.edge_grid = SphereGrid(edge_factors.reorder(l_primary_to_m_primary(c.lmax, c.mmax)))
        self.node_grid = SphereGrid(s2_grid_factors(c.lmax, c.lmax, c.grid_shape(edges=False)))
        self.edge_rotation = EdgeRotation(c.lmax, c.mmax)

        self.edge_degree_embedding = EdgeDegreeEmbedding(c, self.edge_channels_list, c.avg_degree)
        self.blocks = nn.ModuleList(
            TransBlock(c, self.edge_channels_list, self.edge_grid, self.node_grid) for _ in range(c.num_layers)
        )
        self.norm = make_norm(c.norm_type, c.lmax, c.sphere_channels)
        if c.load_energy_lin_ref:
            self.energy_lin_ref = nn.Parameter(torch.zeros(c.max_num_elements), requires_grad=False)
        if c.dens:
            # Force encoding of DeNS; at inference the encoded force is zero, so only its bias acts.
            self.force_embedding = SO3Linear(1, c.sphere_channels, c.lmax)
            if c.use_noise_schedule_sigma_encoding:
                self.noise_schedule_sigma_embedding = nn.Linear(1, c.sphere_channels)

    def forward(
        self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor
    ) -> tuple[torch.Tensor, EdgeGeometry]:
        """`atomic_numbers` `(N,)`, `edge_index` `(2, E)` [source; target], `edge_vec` `(E, 3)` Angstrom."""
        c = self.config
        num_nodes = atomic_numbers.shape[0]
        with autocast_off(edge_vec.device):  # edge frames stay exact under bfloat16
            to_edge, from_edge = self.edge_rotation(edge_vec)
        distance = edge_vec.norm(dim=-1)
        x_edge = self.distance_expansion(distance)
        if c.share_atom_edge_embedding:
            x_edge = torch.cat(
                (x_edge, self.source_embedding(atomic_numbers[edge_index[0]]), self.target_embedding(atomic_numbers[edge_index[1]])),
                dim=1,
            )
        envelope = self.envelope(distance) if self.envelope is not None else None
        edges = EdgeGeometry(edge_index, to_edge, from_edge, x_edge, atomic_numbers, num_nodes, envelope)

        x = x_edge.new_zeros(num_nodes, (c.lmax + 1) ** 2, c.sphere_channels)
        scalars = self.sphere_embedding(atomic_numbers)
        if c.dens:
            scalars = scalars + self.force_embedding.bias
            if c.use_noise_schedule_sigma_encoding:
                scalars = scalars + self.noise_schedule_sigma_embedding.bias
        x[:, 0] = scalars
        x = x + self.edge_degree_embedding(edges)
        for block in self.blocks:
            x = block(x, edges)
        return self.norm(x), edges


class EquiformerV2(nn.Module):
    """Backbone plus heads. `forward` returns raw outputs: `energy` `(B,)`, `forces` `(N, 3)` (direct
    force head only; none with `energy_only`) and, with a stress head, `stress_isotropic` `(B, 1)` + `stress_anisotropic`
    `(B, 5)` (or `stress` `(B, 9)`)."""

    def __init__(self, config: EquiformerV2Config) -> None:
        super().__init__()
        self.config = config
        self.backbone = EquiformerV2Backbone(config)
        heads: dict[str, nn.Module] = {"energy": EnergyHead(config, self.backbone.node_grid)}
        if config.direct_forces and config.predicts_forces:
            heads["forces"] = ForceHead(config, self.backbone.edge_channels_list, self.backbone.edge_grid)
        if config.stress_head is not None:
            heads["stress"] = Rank2Head(config)
        self.output_heads = nn.ModuleDict(heads)

    def forward(
        self,
        atomic_numbers: torch.Tensor,
        edge_index: torch.Tensor,
        edge_vec: torch.Tensor,
        batch: torch.Tensor,
        natoms: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        x, edges = self.backbone(atomic_numbers, edge_index, edge_vec)
        energy = self.output_heads["energy"](x, batch, natoms)
        if self.config.layout == "equiformer_v2" and self.config.use_energy_lin_ref:
            energy = energy.index_add(0, batch, self.backbone.energy_lin_ref[atomic_numbers])
        out = {"energy": energy}
        if "forces" in self.output_heads:
            out["forces"] = self.output_heads["forces"](x, edges)
        if "stress" in self.output_heads:
            out.update(self.output_heads["stress"](x, edge_vec, edges, batch, natoms.shape[0]))
        return out
