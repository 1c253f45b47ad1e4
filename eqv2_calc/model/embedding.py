"""Initial node features: element embedding plus the edge-degree embedding (paper Sec. 4)."""

from __future__ import annotations

import torch

from .attention import EdgeFeatureBlock, EdgeGeometry
from .radial import RadialMLP


class EdgeDegreeEmbedding(EdgeFeatureBlock):
    """Sum over incoming edges of radial-MLP m = 0 coefficients rotated back to the global frame.

    Output `(N, (lmax+1)**2, sphere_channels)`, divided by `rescale_factor` (the average degree).
    """

    def __init__(self, config, edge_channels_list: list[int], rescale_factor: float) -> None:
        super().__init__()
        c = config
        self.lmax = c.lmax
        self.sphere_channels = c.sphere_channels
        self.rescale_factor = rescale_factor
        edge_channels_list = self._init_atom_edge_embedding(c, edge_channels_list)
        self.rad_func = RadialMLP([*edge_channels_list, (c.lmax + 1) * c.sphere_channels])

    def forward(self, edges: EdgeGeometry) -> torch.Tensor:
        x_edge = self.edge_features(edges)
        m0 = self.rad_func(x_edge).reshape(-1, self.lmax + 1, self.sphere_channels)
        # the first lmax+1 edge-frame coefficients are the m = 0 ones (l = 0..lmax)
        if edges.envelope is not None:
            m0 = m0 * edges.envelope.view(-1, 1, 1)
        contribution = torch.bmm(edges.from_edge.narrow(2, 0, self.lmax + 1), m0)
        out = contribution.new_zeros(edges.num_nodes, contribution.shape[1], contribution.shape[2])
        return out.index_add_(0, edges.target, contribution) / self.rescale_factor
