"""Deepen a trained network: new transformer blocks that start as the identity, so fine-tuning starts from
the same predictions with more layers (a cheap way to add capacity without training from scratch)."""

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
    old = potential.model
    depth = old.config.num_layers
    config = dataclasses.replace(old.config, num_layers=depth + count)
    parameter = next(old.parameters())
    model = EquiformerV2(config).to(device=parameter.device, dtype=parameter.dtype)
    result = model.load_state_dict(old.state_dict(), strict=False)
    assert not result.unexpected_keys and all(".blocks." in k for k in result.missing_keys), result
    blocks = model.backbone.blocks
    for block in blocks[depth:]:
        block.load_state_dict(blocks[depth - 1].state_dict())
        for output_map in (block.ga.proj, block.ffn.so3_linear_2):
            for weight in output_map.parameters():
                nn.init.zeros_(weight)
    grown = Potential(model, potential.normalizers, potential.element_references)
    grown.precision = potential.precision
    return grown.train(potential.training)
