"""Shared fixtures: golden data made by tools/make_golden.py from fairchem-core 1.10.0."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from ase.io import read

from eqv2_calc.checkpoint import potential_from_checkpoint
from eqv2_calc.potential import Potential
from seeded_weights import seeded_state_dict

DATA = Path(__file__).parent / "data"
GOLDEN_CONFIGS = sorted(p.stem.removeprefix("golden_") for p in DATA.glob("golden_*.json"))


@lru_cache(maxsize=None)
def golden(config_name: str) -> dict:
    return json.loads((DATA / f"golden_{config_name}.json").read_text())


@lru_cache(maxsize=None)
def _structures() -> dict:
    return {atoms.info["name"]: atoms for atoms in read(DATA / "structures.traj", index=":")}


def structure(name: str):
    """A fresh copy of a golden structure (tests may modify it)."""
    return _structures()[name].copy()


def seeded_checkpoint(manifest_name: str) -> dict:
    """A real-size golden checkpoint rebuilt from its parameter manifest `params_<config>.json` (no stored weights)."""
    manifest = json.loads((DATA / manifest_name).read_text())
    prefix = manifest.get("state_dict_prefix", "")
    state_dict = {prefix + k: torch.from_numpy(v) for k, v in seeded_state_dict(manifest["params"]).items()}
    return {"config": manifest["config"], "state_dict": state_dict, "normalizers": manifest.get("normalizers", {}),
            "elementrefs": manifest.get("elementrefs")}


def is_real_size_upstream(config_name: str) -> bool:
    """A full-size golden of the research code (`params_upstream_*.json`, 89M-153M parameters)."""
    return golden(config_name)["checkpoint"].startswith("params_upstream_")


@lru_cache(maxsize=None)
def golden_potential(config_name: str) -> Potential:
    return load_golden_potential(config_name)


def load_golden_potential(config_name: str) -> Potential:
    """The golden's checkpoint, or its seeded weights for a real-size manifest (not cached)."""
    source = golden(config_name)["checkpoint"]
    if source.endswith(".json"):
        return potential_from_checkpoint(seeded_checkpoint(source), source=source)
    from eqv2_calc.checkpoint import load_potential

    return load_potential(DATA / source)


@pytest.fixture
def small_potential() -> Potential:
    return golden_potential("small")
