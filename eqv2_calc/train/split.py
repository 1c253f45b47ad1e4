"""Automatic train/validation split of a dataset without a `split` key: by structure, seeded."""

from __future__ import annotations

import math
import random

from ase import Atoms


def split_by_structure(structures: list[Atoms], val_fraction: float, seed: int) -> tuple[list[Atoms], list[Atoms]]:
    """(train, val): whole structures go to one side, so frames of one system (the same `system_id` in
    their info, e.g. the steps of one relaxation) never straddle the split.

    About `val_fraction` of the systems (at least one, when there are two or more) validate; the choice
    depends on `seed` only, not on the order of the systems.
    """
    groups: dict[str, list[Atoms]] = {}
    for i, atoms in enumerate(structures):
        groups.setdefault(str(atoms.info.get("system_id", i)), []).append(atoms)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    n_val = min(len(keys) - 1, max(1, math.ceil(val_fraction * len(keys)))) if len(keys) > 1 else 0
    val_keys = set(keys[:n_val])
    train = [a for key in sorted(groups) if key not in val_keys for a in groups[key]]
    val = [a for key in sorted(groups) if key in val_keys for a in groups[key]]
    return train, val
