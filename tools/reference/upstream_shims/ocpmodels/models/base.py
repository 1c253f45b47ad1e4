"""OCP's `BaseModel`: an `nn.Module` with `generate_graph` (fairchem-core 1.10's `GraphModelMixin`)."""

from __future__ import annotations

from fairchem.core.models.base import GraphModelMixin
from torch import nn


class BaseModel(nn.Module, GraphModelMixin):
    """The upstream classes call `super().__init__()` and unpack `self.generate_graph(data, ...)`."""

    use_pbc_single = False  # OCP's generate_graph had no per-system PBC graph option

    def __init__(self, num_atoms=None, bond_feat_dim=None, num_targets=None) -> None:
        super().__init__()
        self.num_atoms = num_atoms
        self.bond_feat_dim = bond_feat_dim
        self.num_targets = num_targets

    def generate_graph(self, data, **kwargs):
        """OCP's 6-tuple (edge_index, edge_distance, edge_distance_vec, cell_offsets, offset_distances,
        neighbors) from fairchem's `GraphData`."""
        graph = GraphModelMixin.generate_graph(self, data, **kwargs)
        return (graph.edge_index, graph.edge_distance, graph.edge_distance_vec, graph.cell_offsets,
                graph.offset_distances, graph.neighbors)
