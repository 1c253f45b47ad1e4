"""Output heads: energy (scalar), direct forces (vector) and rank-2 symmetric stress."""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from .activations import SphereGrid
from .attention import EdgeGeometry, SO2EquivariantGraphAttention
from .feedforward import FeedForwardNetwork
from .norms import make_norm


def scatter_mean(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """Mean of rows of `src` grouped by `index` (empty groups give 0); counts by index_add, as
    `torch.bincount` reads its maximum back to the host on a GPU."""
    total = src.new_zeros((dim_size, *src.shape[1:])).index_add_(0, index, src)
    count = src.new_zeros(dim_size).index_add_(0, index, src.new_ones(index.shape[0])).clamp(min=1)
    return total / count.view(-1, *([1] * (src.dim() - 1)))


class EnergyHead(nn.Module):
    """Feed-forward network to one invariant per atom, summed per structure and divided by
    `avg_num_nodes` (reduce="sum") or by the number of atoms (reduce="mean"). Output `(B,)`."""

    def __init__(self, config, node_grid: SphereGrid) -> None:
        super().__init__()
        self.reduce = config.energy_reduce
        self.avg_num_nodes = config.avg_num_nodes
        self.energy_block = FeedForwardNetwork(config, 1, node_grid)

    def forward(self, x: torch.Tensor, batch: torch.Tensor, natoms: torch.Tensor) -> torch.Tensor:
        node_energy = self.energy_block(x)[:, 0, 0]
        energy = node_energy.new_zeros(natoms.shape[0]).index_add_(0, batch, node_energy)
        return energy / (self.avg_num_nodes if self.reduce == "sum" else natoms.to(energy.dtype))


class ForceHead(nn.Module):
    """One more graph attention block with a single output channel; its l = 1 part is the force `(N, 3)`.

    DeNS checkpoints also carry `denoising_pos_block`, which only denoising training uses.
    """

    def __init__(self, config, edge_channels_list: list[int], edge_grid: SphereGrid) -> None:
        super().__init__()
        self.force_block = SO2EquivariantGraphAttention(config, 1, edge_channels_list, edge_grid)
        if config.dens:
            self.denoising_pos_block = SO2EquivariantGraphAttention(config, 1, edge_channels_list, edge_grid)

    def forward(self, x: torch.Tensor, edges: EdgeGeometry) -> torch.Tensor:
        return self.force_block(x, edges).narrow(1, 1, 3).reshape(-1, 3)


def _mlp(emb_size: int, num_layers: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(num_layers - 1):
        layers += [nn.Linear(emb_size, emb_size), nn.SiLU()]
    return nn.Sequential(*layers, nn.Linear(emb_size, 1))


class Rank2Head(nn.Module):
    """Rank-2 symmetric tensor (stress) from edge features (fairchem `rank2_symmetric_head`).

    Each edge gets an invariant feature (node features contracted with normalized spherical
    harmonics of the edge); with `decompose`, an isotropic (l = 0) and an anisotropic (l = 2,
    weighted by Y_2 of the edge) part are averaged per atom and per structure.
    Outputs raw `stress_isotropic` `(B, 1)` and `stress_anisotropic` `(B, 5)`, or `stress` `(B, 9)`.
    """

    def __init__(self, config) -> None:
        super().__init__()
        h = config.stress_head
        self.lmax = config.lmax
        self.decompose = h.decompose
        self.edge_level = h.edge_level_mlp
        self.extensive = h.extensive
        self.avg_num_nodes = h.avg_num_nodes
        self.use_source_target_embedding = h.use_source_target_embedding
        emb_size = config.sphere_channels * (2 if h.use_source_target_embedding else 1)
        self.sphharm_norm = make_norm(config.norm_type, config.lmax, 1)
        self.xedge_layer_norm = nn.LayerNorm(emb_size)
        self.block = nn.Module()
        if h.decompose:
            self.block.scalar_MLP = _mlp(emb_size, h.num_mlp_layers)
            self.block.irrep2_MLP = _mlp(emb_size, h.num_mlp_layers)
        else:
            self.block.r2tensor_MLP = _mlp(emb_size, h.num_mlp_layers)

    def forward(
        self, x: torch.Tensor, edge_vec: torch.Tensor, edges: EdgeGeometry, batch: torch.Tensor, num_graphs: int
    ) -> dict[str, torch.Tensor]:
        sph = o3.spherical_harmonics(list(range(self.lmax + 1)), edge_vec, normalize=False)
        sph = self.sphharm_norm(sph.unsqueeze(2)).squeeze(2)
        if self.use_source_target_embedding:
            x_edge = torch.cat((x.index_select(0, edges.source), x.index_select(0, edges.target)), dim=2)
        else:
            x_edge = x.index_select(0, edges.target)
        x_edge = self.xedge_layer_norm(torch.einsum("abc,ab->ac", x_edge, sph))
        num_nodes = edges.num_nodes

        def per_structure(node_values: torch.Tensor) -> torch.Tensor:
            if self.extensive:
                return node_values.new_zeros((num_graphs, *node_values.shape[1:])).index_add_(0, batch, node_values)
            return scatter_mean(node_values, batch, num_graphs)

        if not self.decompose:
            outer = (edge_vec.unsqueeze(2) * edge_vec.unsqueeze(1)).reshape(-1, 1, 9)
            edge_outer = x_edge.unsqueeze(2) * outer  # (E, emb, 9)
            if self.edge_level:
                node = scatter_mean(self.block.r2tensor_MLP(edge_outer.transpose(1, 2)).squeeze(2), edges.target, num_nodes)
            else:
                node = self.block.r2tensor_MLP(scatter_mean(edge_outer, edges.target, num_nodes).transpose(1, 2)).squeeze(2)
            return {"stress": per_structure(node)}

        sph2 = o3.spherical_harmonics(2, edge_vec, normalize=True)  # (E, 5)
        edge_irrep2 = sph2.unsqueeze(2) * x_edge.unsqueeze(1)  # (E, 5, emb)
        if self.edge_level:
            node_scalar = scatter_mean(self.block.scalar_MLP(x_edge), edges.target, num_nodes)
            node_irrep2 = scatter_mean(self.block.irrep2_MLP(edge_irrep2), edges.target, num_nodes)
        else:
            node_scalar = self.block.scalar_MLP(scatter_mean(x_edge, edges.target, num_nodes))
            node_irrep2 = self.block.irrep2_MLP(scatter_mean(edge_irrep2, edges.target, num_nodes))
        isotropic = per_structure(node_scalar.reshape(-1))
        anisotropic = per_structure(node_irrep2.reshape(-1, 5))
        if self.extensive:
            isotropic, anisotropic = isotropic / self.avg_num_nodes, anisotropic / self.avg_num_nodes
        return {"stress_isotropic": isotropic.unsqueeze(1), "stress_anisotropic": anisotropic}
