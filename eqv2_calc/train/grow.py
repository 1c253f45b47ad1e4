"""Reshape a trained network without losing its weights: deepen it with transformer blocks that start as the
identity (fine-tuning starts from the same predictions with more layers, a cheap way to add capacity without
training from scratch), or move its S2 activations to other grids (grids hold no weights)."""

from __future__ import annotations

import dataclasses

from torch import nn

from ..errors import ConfigError
from ..model import EquiformerV2
from ..potential import Potential


def add_identity_blocks(potential: Potential, count: int) -> Potential:
    """Return a copy of `potential` with `count` more blocks after its last one (same dtype, device).

    Each new block starts as a copy of the last block with its two residual output maps (the attention's
    `proj` and the feed-forward's `so3_linear_2`) set to zero, so it adds nothing to the node features: the
    deeper network predicts what `potential` does (to float round-off), and its gradients flow into the zeroed
    maps first. Normalizers and element references are kept.
    """
    if count < 1:
        raise ConfigError(f"add_layers={count} must be >= 1")
    depth = potential.model.config.num_layers
    grown = _rebuilt(potential, num_layers=depth + count)
    blocks = grown.model.backbone.blocks
    for block in blocks[depth:]:
        block.load_state_dict(blocks[depth - 1].state_dict())
        for output_map in (block.ga.proj, block.ffn.so3_linear_2):
            for weight in output_map.parameters():
                nn.init.zeros_(weight)
    return grown


# EquiformerV2Config options that only set S2 grids: a trained network runs on any of their values
GRID_OPTIONS = ("grid_resolution", "edge_grid_resolution", "node_grid_resolution")


def regrid(potential: Potential, options: dict) -> Potential:
    """A copy of `potential` whose S2 grids follow `options` (keys of `GRID_OPTIONS`), every weight kept.

    The network's function changes by the grids' quadrature (aliasing) error only; a finer grid makes it
    closer to rotation-equivariant.
    """
    unknown = sorted(set(options) - set(GRID_OPTIONS))
    if unknown:
        raise ConfigError(f"grid option(s) {', '.join(unknown)}: only {', '.join(GRID_OPTIONS)} change a trained "
                          "network without changing its weights")
    return _rebuilt(potential, **options)


def grid_options(text: str) -> dict[str, list[int]]:
    """`"8x24/16x24"` (EDGE/NODE grids, LATxLONG each) -> the `regrid` options."""
    try:
        edge, node = ([int(v) for v in part.split("x")] for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"grids {text!r}: expected EDGE/NODE, LATxLONG each, e.g. 8x24/16x24") from None
    return {"edge_grid_resolution": edge, "node_grid_resolution": node}


def _rebuilt(potential: Potential, **changes) -> Potential:
    """`potential` with its config changed by `changes`, the old weights loaded (missing: new blocks only)."""
    old = potential.model
    config = dataclasses.replace(old.config, **changes)
    parameter = next(old.parameters())
    model = EquiformerV2(config).to(device=parameter.device, dtype=parameter.dtype)
    result = model.load_state_dict(old.state_dict(), strict=False)
    assert not result.unexpected_keys and all(".blocks." in k for k in result.missing_keys), result
    rebuilt = Potential(model, potential.normalizers, potential.element_references)
    rebuilt.precision = potential.precision
    return rebuilt.train(potential.training)
