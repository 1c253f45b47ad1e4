"""Equivariant graph attention built on SO(2) convolutions (paper Sec. 4, Fig. 1b)."""

from __future__ import annotations

import torch
from torch import nn

from .activations import GateActivation, SmoothLeakyReLU, SphereGrid, separable_s2_act
from .linear import SO3Linear
from .radial import RadialMLP
from .so2 import SO2Convolution
from .so3 import degree_of_coefficient, m_primary_lm

# Edges per chunk in the attention blocks, by device type. On a CPU the per-edge tensors of a chunk (S2 grid
# samples: 324 x 64 floats per edge for the 31M model) then stay cache-sized: 1.5x faster at 200 atoms than one
# chunk (128 measured best of 64...1024 on 2 cores) and a bounded peak memory. Other devices: one chunk.
# Only without autograd: a slice's backward writes into a zero tensor of the full size, so chunks that are
# differentiated (training, conservative forces) cost O(E * chunks); there one chunk is 1.7x faster.
# Not under torch.compile either: the chunk count would be a compiled constant, and every new count a recompile.
EDGE_CHUNK = {"cpu": 128}


def segment_softmax(
    logits: torch.Tensor, index: torch.Tensor, num_segments: int, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Softmax of `logits` `(E, H)` over the edges sharing a target `index` `(E,)`.

    With `weights` `(E,)` each term is exp(logit) * weight, so an edge of weight 0 (at the cutoff)
    takes no share and does not change the others'.
    """
    shape = (num_segments, logits.shape[1])
    seg_max = logits.new_full(shape, float("-inf")).scatter_reduce(
        0, index.unsqueeze(1).expand_as(logits), logits, reduce="amax", include_self=True
    )
    exp = (logits - seg_max[index]).exp()
    if weights is not None:
        exp = exp * weights.unsqueeze(1)
    seg_sum = logits.new_zeros(shape).index_add_(0, index, exp) + 1e-16
    return exp / seg_sum[index]


class EdgeGeometry:
    """Per-forward edge data shared by every block: rotations, radial input, endpoints."""

    def __init__(
        self,
        edge_index: torch.Tensor,
        to_edge: torch.Tensor,
        from_edge: torch.Tensor,
        x_edge: torch.Tensor,
        atomic_numbers: torch.Tensor,
        num_nodes: int,
        envelope: torch.Tensor | None = None,
    ) -> None:
        self.edge_index = edge_index  # (2, E) [source; target]
        self.source, self.target = edge_index[0], edge_index[1]
        self.to_edge = to_edge  # (E, n_m, (lmax+1)**2)
        self.from_edge = from_edge  # (E, (lmax+1)**2, n_m)
        self.x_edge = x_edge  # (E, F) radial basis (+ shared element embeddings)
        self.atomic_numbers = atomic_numbers
        self.num_nodes = num_nodes
        self.envelope = envelope  # (E,) smooth cutoff weights, or None (fairchem: hard cutoff)

    @property
    def num_edges(self) -> int:
        return self.source.shape[0]

    def chunks(self) -> list[slice]:
        """Consecutive, near-equal edge slices of at most `EDGE_CHUNK[device type]` edges (400 edges: 4 x 100,
        not 3 x 128 + 16, whose last GEMMs would run on a few rows); one slice on other devices and whenever
        autograd records or torch.compile traces (see `EDGE_CHUNK`)."""
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            return [slice(None)]
        limit = EDGE_CHUNK.get(self.source.device.type, self.num_edges)
        count = max(-(-self.num_edges // max(limit, 1)), 1)
        bounds = [self.num_edges * i // count for i in range(count + 1)]
        return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]

    def narrow(self, edges: slice) -> EdgeGeometry:
        """The same geometry restricted to a slice of edges (views, no copies)."""
        envelope = None if self.envelope is None else self.envelope[edges]
        return EdgeGeometry(self.edge_index[:, edges], self.to_edge[edges],
                            self.from_edge[edges], self.x_edge[edges], self.atomic_numbers, self.num_nodes, envelope)


class EdgeFeatureBlock(nn.Module):
    """Base of the blocks that read edge features: the distance embedding `(E, edge_channels)`, widened
    by this block's own source/target element embeddings when the config asks for per-block ones
    (fairchem keys `source_embedding`, `target_embedding`)."""

    def _init_atom_edge_embedding(self, config, edge_channels_list: list[int]) -> list[int]:
        """Create the element embeddings if used; returns the radial-MLP channel list widened for them."""
        edge_channels_list = list(edge_channels_list)
        self.use_atom_edge_embedding = config.block_use_atom_edge_embedding
        if self.use_atom_edge_embedding:
            self.source_embedding = nn.Embedding(config.max_num_elements, edge_channels_list[-1])
            self.target_embedding = nn.Embedding(config.max_num_elements, edge_channels_list[-1])
            edge_channels_list[0] += 2 * edge_channels_list[-1]
        return edge_channels_list

    def edge_features(self, edges: EdgeGeometry) -> torch.Tensor:
        """`(E, edge_channels_list[0])`: distance embedding [+ source, target element embeddings]."""
        if not self.use_atom_edge_embedding:
            return edges.x_edge
        z = edges.atomic_numbers
        return torch.cat((edges.x_edge, self.source_embedding(z[edges.source]), self.target_embedding(z[edges.target])),
                         dim=1)


class SO2EquivariantGraphAttention(EdgeFeatureBlock):
    """Messages from concatenated source/target features, rotated to the edge frame, passed through
    SO(2) conv -> (separable) S2 activation -> SO(2) conv, weighted by re-normalized multi-head
    attention, rotated back and summed on the target atom, then a per-degree linear projection.

    Input/output: node features `(N, (lmax+1)**2, sphere_channels)` -> `(N, (lmax+1)**2, output_channels)`.
    """

    def __init__(
        self,
        config,
        output_channels: int,
        edge_channels_list: list[int],
        edge_grid: SphereGrid,
    ) -> None:
        super().__init__()
        c = config
        lmax, mmax = c.lmax, c.mmax
        self.num_heads = c.num_heads
        self.attn_alpha_channels = c.attn_alpha_channels
        self.attn_value_channels = c.attn_value_channels
        self.use_gate_act = c.use_gate_act
        self.use_sep_s2_act = c.use_sep_s2_act
        self.use_m_share_rad = c.use_m_share_rad
        self.num_degrees = lmax + 1
        self.edge_grid = edge_grid
        edge_channels_list = self._init_atom_edge_embedding(c, edge_channels_list)

        extra = c.num_heads * c.attn_alpha_channels
        if c.use_gate_act:
            extra += lmax * c.attn_hidden_channels
        elif c.use_sep_s2_act:
            extra += c.attn_hidden_channels

        if c.use_m_share_rad:
            self.rad_func = RadialMLP([*edge_channels_list, 2 * c.sphere_channels * (lmax + 1)])
            self.register_buffer("expand_index", degree_of_coefficient(lmax), persistent=False)
        self.so2_conv_1 = SO2Convolution(
            2 * c.sphere_channels,
            c.attn_hidden_channels,
            lmax,
            mmax,
            edge_channels_list=None if c.use_m_share_rad else edge_channels_list,
            extra_m0_output_channels=extra,
        )
        self.alpha_norm = nn.LayerNorm(c.attn_alpha_channels) if c.use_attn_renorm else nn.Identity()
        self.alpha_act = SmoothLeakyReLU()
        self.alpha_dot = nn.Parameter(torch.empty(c.num_heads, c.attn_alpha_channels).uniform_(-1, 1))
        if c.use_gate_act:
            degrees = torch.tensor([l for l, _ in m_primary_lm(lmax, mmax)[1:]]) - 1
            self.gate_act = GateActivation(degrees, lmax, c.attn_hidden_channels)
        self.so2_conv_2 = SO2Convolution(
            c.attn_hidden_channels, c.num_heads * c.attn_value_channels, lmax, mmax
        )
        self.proj = SO3Linear(c.num_heads * c.attn_value_channels, output_channels, lmax)

    def forward(self, x: torch.Tensor, edges: EdgeGeometry) -> torch.Tensor:
        """`x` `(N, (lmax+1)**2, C)` -> `(N, (lmax+1)**2, output_channels)`, edges processed in chunks."""
        chunks = edges.chunks()
        values, logits = zip(*(self._values_and_logits(x, edges.narrow(c)) for c in chunks))
        alpha = segment_softmax(torch.cat(logits), edges.target, edges.num_nodes, edges.envelope)  # (E, H)
        out = None
        for chunk, value in zip(chunks, values):
            num_edges, num_coefficients = value.shape[0], value.shape[1]
            value = value.reshape(num_edges, num_coefficients, self.num_heads, self.attn_value_channels)
            value = (value * alpha[chunk].reshape(num_edges, 1, self.num_heads, 1)).reshape(
                num_edges, num_coefficients, self.num_heads * self.attn_value_channels)
            message = torch.bmm(edges.from_edge[chunk], value)  # (e, (lmax+1)**2, H*V), back in the global frame
            if out is None:
                out = message.new_zeros(edges.num_nodes, message.shape[1], message.shape[2])
            out.index_add_(0, edges.target[chunk], message)
        return self.proj(out)

    def _values_and_logits(self, x: torch.Tensor, edges: EdgeGeometry) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-edge values `(e, n_m, H*V)` in the edge frame and attention logits `(e, H)` of a chunk of edges."""
        x_edge = self.edge_features(edges)
        # (e, (lmax+1)**2, 2C); index_select: its backward is a scatter-add, faster than indexing's index_put
        message = torch.cat((x.index_select(0, edges.source), x.index_select(0, edges.target)), dim=2)
        if self.use_m_share_rad:
            weight = self.rad_func(x_edge).reshape(message.shape[0], self.num_degrees, message.shape[2])
            message = message * weight[:, self.expand_index]
        message = torch.bmm(edges.to_edge, message)  # (e, n_m, 2C), edge frame, m-primary
        message, extra = self.so2_conv_1(message, x_edge)

        num_alpha = self.num_heads * self.attn_alpha_channels
        alpha_in = extra.narrow(1, 0, num_alpha)
        if self.use_gate_act:
            message = self.gate_act(extra.narrow(1, num_alpha, extra.shape[1] - num_alpha), message)
        elif self.use_sep_s2_act:
            message = separable_s2_act(self.edge_grid, extra.narrow(1, num_alpha, extra.shape[1] - num_alpha), message)
        else:
            message = self.edge_grid.silu(message)
        message, _ = self.so2_conv_2(message)

        alpha = self.alpha_act(self.alpha_norm(alpha_in.reshape(-1, self.num_heads, self.attn_alpha_channels)))
        return message, torch.einsum("bik,ik->bi", alpha, self.alpha_dot)
