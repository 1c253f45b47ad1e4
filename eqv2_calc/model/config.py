"""Typed configuration of an EquiformerV2 network.

`EquiformerV2Config` holds every hyperparameter of fairchem 1.x's EquiformerV2 (backbone and output
heads) under fairchem's own names, so a checkpoint's `model_attributes` map onto it one to one.
Unknown names are rejected, and options that fairchem 1.10 itself cannot run are rejected by name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

# Defaults of fairchem 1.10 (models/equiformer_v2/equiformer_v2.py): statistics of OC20 IS2RE 100k.
AVG_NUM_NODES_OC20 = 77.81317
AVG_DEGREE_OC20 = 23.395238876342773

# fairchem's three; "none" (no normalization) is accepted by the DeNS repository's code
NORM_TYPES = ("layer_norm", "layer_norm_sh", "rms_norm_sh", "none")

# Options fairchem accepts but that do not change inference (dropout rates, training switches).
_INFERENCE_NEUTRAL = {
    "use_pbc", "use_pbc_single", "regress_forces", "otf_graph", "num_sphere_samples",
    "num_distance_basis", "attn_activation", "ffn_activation", "weight_init",
    "alpha_drop", "drop_path_rate", "proj_drop", "activation_checkpoint",
    # DeNS repository (atomicarchitects/DeNS): zeroes the energy of denoising (training) passes only
    "use_denoising_energy",
}

# Options of the research code (atomicarchitects/DeNS, atomicarchitects/equiformer_v2) whose other
# values we cannot compute: the value every config there uses, and why another one is refused.
_REQUIRED_VALUES = {
    "use_tp_reparam": (False, "the tensor-product re-parametrized SO(2) convolution (DeNS repository "
                              "so2_tp.py, an ablation no released checkpoint uses) is not implemented"),
}


@dataclass(frozen=True)
class StressHeadConfig:
    """Rank-2 symmetric stress head (fairchem `rank2_symmetric_head`)."""

    decompose: bool = True
    edge_level_mlp: bool = False
    num_mlp_layers: int = 2
    use_source_target_embedding: bool = True
    extensive: bool = False
    avg_num_nodes: float = 1.0


@dataclass(frozen=True)
class EquiformerV2Config:
    """All hyperparameters of an EquiformerV2 network; field names follow fairchem 1.x.

    Units: `max_radius` in Angstrom. `lmax_list`/`mmax_list` hold one entry per resolution
    (fairchem 1.10 can only run one, and so do we).
    """

    # graph
    max_neighbors: int = 500
    max_radius: float = 5.0
    enforce_max_neighbors_strictly: bool = True
    max_num_elements: int = 90
    # trunk
    num_layers: int = 12
    sphere_channels: int = 128
    attn_hidden_channels: int = 128
    num_heads: int = 8
    attn_alpha_channels: int = 32
    attn_value_channels: int = 16
    ffn_hidden_channels: int = 512
    norm_type: str = "rms_norm_sh"
    lmax_list: tuple[int, ...] = (6,)
    mmax_list: tuple[int, ...] = (2,)
    grid_resolution: int | None = None
    # our extension: (lat, long) points of the S2 grids of the edge (|m| <= mmax, edge frame) and node
    # activations, in place of grid_resolution x grid_resolution. An edge grid is rotated about its edge by the
    # frame choice, so only its longitude count sets the equivariance error; node grids need both.
    edge_grid_resolution: tuple[int, int] | None = None
    node_grid_resolution: tuple[int, int] | None = None
    edge_channels: int = 128
    use_atom_edge_embedding: bool = True
    share_atom_edge_embedding: bool = False
    use_m_share_rad: bool = False
    distance_function: str = "gaussian"
    use_s2_act_attn: bool = False
    use_attn_renorm: bool = True
    use_gate_act: bool = False
    use_grid_mlp: bool = False
    use_sep_s2_act: bool = True
    avg_num_nodes: float = AVG_NUM_NODES_OC20
    avg_degree: float = AVG_DEGREE_OC20
    use_energy_lin_ref: bool = False
    load_energy_lin_ref: bool = False
    # heads; direct_forces=False (our extension) drops the force head: forces = -dE/dx, stress = dE/d(strain)/V
    direct_forces: bool = True
    # our extension: no force output at all (fairchem's single class with regress_forces=False, e.g. an
    # IS2RE direct model whose energy is the relaxed energy of the input structure: no potential surface)
    energy_only: bool = False
    # our extension: a smooth polynomial envelope on attention weights and edge-degree terms, so the
    # energy is continuous as atoms cross max_radius (fairchem's eqV2 has a hard cutoff)
    use_cutoff_envelope: bool = False
    energy_reduce: str = "sum"
    stress_head: StressHeadConfig | None = None
    # DeNS (denoising non-equilibrium structures) backbone and heads
    dens: bool = False
    use_force_encoding: bool = True
    use_noise_schedule_sigma_encoding: bool = False
    # layout of the network in fairchem: "equiformer_v2" (single class) or "hydra" (backbone + heads)
    layout: str = "equiformer_v2"
    ignored: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lmax_list", tuple(int(v) for v in self.lmax_list))
        object.__setattr__(self, "mmax_list", tuple(int(v) for v in self.mmax_list))
        for name in ("edge_grid_resolution", "node_grid_resolution"):
            value = getattr(self, name)
            if value is not None:
                if len(value) != 2 or any(int(v) != v or v < 2 for v in value):
                    raise ConfigError(f"{name}={list(value)} must be two integers >= 2: [lat, long] grid points")
                object.__setattr__(self, name, tuple(int(v) for v in value))
        if len(self.lmax_list) != 1 or len(self.mmax_list) != 1:
            raise ConfigError(
                f"lmax_list={list(self.lmax_list)}, mmax_list={list(self.mmax_list)}: only one resolution is "
                "supported (fairchem 1.10 itself crashes with several, and no released checkpoint uses them)"
            )
        if not 0 <= self.mmax <= self.lmax:
            raise ConfigError(f"mmax_list={list(self.mmax_list)} must satisfy 0 <= mmax <= lmax={self.lmax}")
        if self.norm_type not in NORM_TYPES:
            raise ConfigError(f"norm_type={self.norm_type!r} is not one of {NORM_TYPES}")
        if self.distance_function != "gaussian":
            raise ConfigError(f"distance_function={self.distance_function!r}: only 'gaussian' exists in fairchem")
        if self.use_s2_act_attn:
            raise ConfigError("use_s2_act_attn=True is not supported (fairchem 1.10, the paper's and the DeNS "
                              "repository's classes all reject it too: no code computes it)")
        if self.share_atom_edge_embedding and not self.use_atom_edge_embedding:
            raise ConfigError("share_atom_edge_embedding=True needs use_atom_edge_embedding=True")
        if self.use_energy_lin_ref and not self.load_energy_lin_ref:
            raise ConfigError("use_energy_lin_ref=True needs load_energy_lin_ref=True")
        if self.energy_reduce not in ("sum", "mean"):
            raise ConfigError(f"energy_reduce={self.energy_reduce!r} must be 'sum' or 'mean'")
        if self.layout not in ("equiformer_v2", "hydra"):
            raise ConfigError(f"layout={self.layout!r} must be 'equiformer_v2' or 'hydra'")
        if self.energy_only and (not self.direct_forces or self.stress_head is not None):
            raise ConfigError("energy_only=True is a model without force and stress outputs: it takes neither "
                              "direct_forces=False nor a stress_head")
        if self.stress_head is not None and not self.direct_forces:
            raise ConfigError("stress_head is for direct prediction; with direct_forces=False stress comes from the energy")
        if self.max_radius <= 0 or self.max_neighbors <= 0:
            raise ConfigError(f"max_radius={self.max_radius} and max_neighbors={self.max_neighbors} must be > 0")

    @property
    def lmax(self) -> int:
        return self.lmax_list[0]

    @property
    def mmax(self) -> int:
        return self.mmax_list[0]

    def grid_shape(self, edges: bool) -> tuple[int, int]:
        """(lat, long) points of the edge (`edges`) or node S2 grid.

        fairchem's SO3_Grid rule unless set: `grid_resolution` x `grid_resolution` if given, else
        lat = 2(lmax+1) and long = 2(m+1)+1 when m == lmax, otherwise 2m+1 (m = mmax on edges, lmax on nodes).
        """
        shape = self.edge_grid_resolution if edges else self.node_grid_resolution
        if shape is not None:
            return shape
        if self.grid_resolution is not None:
            return self.grid_resolution, self.grid_resolution
        m = self.mmax if edges else self.lmax
        return 2 * (self.lmax + 1), 2 * (m + 1) + 1 if m == self.lmax else 2 * m + 1

    @property
    def block_use_atom_edge_embedding(self) -> bool:
        """Whether each block owns source/target element embeddings for its radial input."""
        return self.use_atom_edge_embedding and not self.share_atom_edge_embedding

    @property
    def predicts_stress(self) -> bool:
        return self.stress_head is not None or not self.direct_forces

    @property
    def predicts_forces(self) -> bool:
        return not self.energy_only

    @classmethod
    def from_dict(cls, options: dict[str, Any]) -> EquiformerV2Config:
        """Build from fairchem-style keyword arguments; unknown names raise `ConfigError`.

        Options that fairchem accepts but that do not change inference (dropout rates, `otf_graph`,
        ...) are recorded in `ignored`; options of the research code with one computable value
        (`use_tp_reparam=False`) too, any other value of them raises `ConfigError` with the reason.
        """
        names = {f.name for f in dataclasses.fields(cls)} - {"ignored"}
        kwargs: dict[str, Any] = {}
        ignored = []
        unknown = []
        for key, value in options.items():
            if key in names:
                kwargs[key] = value
            elif key in _INFERENCE_NEUTRAL:
                ignored.append(key)
            elif key in _REQUIRED_VALUES:
                required, reason = _REQUIRED_VALUES[key]
                if value != required:
                    raise ConfigError(f"{key}={value!r} is not supported: {reason}")
                ignored.append(key)
            else:
                unknown.append(key)
        if unknown:
            raise ConfigError(f"unknown EquiformerV2 option(s): {', '.join(sorted(unknown))}")
        if isinstance(kwargs.get("stress_head"), dict):
            kwargs["stress_head"] = _stress_head_from_dict(kwargs["stress_head"])
        for key in ("avg_num_nodes", "avg_degree"):
            if kwargs.get(key) is None:
                kwargs.pop(key, None)
        return cls(**kwargs, ignored=tuple(sorted(ignored)))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (inverse of `from_dict`)."""
        out = dataclasses.asdict(self)
        out.pop("ignored")
        out["lmax_list"] = list(self.lmax_list)
        out["mmax_list"] = list(self.mmax_list)
        for name in ("edge_grid_resolution", "node_grid_resolution"):
            if out[name] is None:
                out.pop(name)  # fairchem's own classes do not know these keys
            else:
                out[name] = list(out[name])
        return out


def _stress_head_from_dict(options: dict[str, Any]) -> StressHeadConfig:
    names = {f.name for f in dataclasses.fields(StressHeadConfig)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ConfigError(f"unknown stress head option(s): {', '.join(unknown)}")
    return StressHeadConfig(**options)
