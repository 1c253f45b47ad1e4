"""`load_model`: a ready-to-run `Potential` from any name, address or path, checked against the registry."""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING

from .card import ModelCard
from .download import fetch, resolve_checkpoint
from .notices import show_notice_once
from .registry import ModelEntry

if TYPE_CHECKING:
    import torch

    from ..model import EquiformerV2Config
    from ..potential import Potential


def config_mismatches(entry: ModelEntry, config: EquiformerV2Config) -> list[str]:
    """`model_config` values of `entry` that the loaded `config` does not have (as "key: expected x, file y")."""
    out = []
    for key, expected in entry.model_config.items():
        actual = getattr(config, key)
        same = abs(actual - expected) <= 1e-6 * max(1.0, abs(expected)) if isinstance(expected, float) else actual == expected
        if not same:
            out.append(f"{key}: registry {expected!r}, file {actual!r}")
    return out


def load_model(model: str | os.PathLike | ModelCard, device: str | torch.device = "cpu",
               dtype: torch.dtype | None = None, *, progress: bool = True) -> Potential:
    """A ready-to-run `Potential` from a registered name/alias, `hf://` address, URL or file path (or the
    `ModelCard` of one), carrying that card (`Potential.card`), so workflows never look the model up again.

    Downloads and caches the file when needed, shows the model's license and domain once per
    process (`ModelNotice`), and warns when the file's architecture differs from the registry's.
    `device`: "cpu", "cuda" or a `torch.device`; `dtype`: torch.float32 (default) or torch.float64.
    """
    import torch

    from ..checkpoint import load_potential

    card = model if isinstance(model, ModelCard) else ModelCard.of(model)
    entry = card.entry
    if entry is not None:
        path = fetch(entry, progress=progress)
        show_notice_once(entry)
    else:
        path = resolve_checkpoint(card.source, progress=progress)
    potential = load_potential(path, device=device, dtype=dtype or torch.float32)
    potential.card = card
    mismatches = config_mismatches(entry, potential.config) if entry is not None else []
    if mismatches:
        warnings.warn(f"{entry.name}: {path} does not have the architecture the registry lists "
                      f"({'; '.join(mismatches)}); it may be a different or replaced file", stacklevel=2)
    return potential
