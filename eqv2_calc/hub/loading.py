"""`load_model`: a ready-to-run `Potential` from any name, address or path, checked against the registry."""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING

from .download import resolve_checkpoint
from .notices import show_notice_once
from .registry import ModelEntry, find_entry

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


def load_model(name_or_path: str | os.PathLike, device: str | torch.device = "cpu",
               dtype: torch.dtype | None = None, *, progress: bool = True) -> Potential:
    """A ready-to-run `Potential` from a registered name/alias, `hf://` address, URL or file path.

    Downloads and caches the file when needed, shows the model's license and domain once per
    process (`ModelNotice`), and warns when the file's architecture differs from the registry's.
    `device`: "cpu", "cuda" or a `torch.device`; `dtype`: torch.float32 (default) or torch.float64.
    """
    import torch

    from ..checkpoint import load_potential

    entry = find_entry(name_or_path)
    path = resolve_checkpoint(name_or_path, progress=progress)
    if entry is not None:
        show_notice_once(entry)
    potential = load_potential(path, device=device, dtype=dtype or torch.float32)
    mismatches = config_mismatches(entry, potential.config) if entry is not None else []
    if mismatches:
        warnings.warn(f"{entry.name}: {path} does not have the architecture the registry lists "
                      f"({'; '.join(mismatches)}); it may be a different or replaced file", stacklevel=2)
    return potential
