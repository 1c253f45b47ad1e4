"""Checkpoint I/O: fairchem layouts, prefixes, normalizers, corrupt/mismatched files, saving."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk

from conftest import DATA
from eqv2_calc.checkpoint import FAIRCHEM_BUFFER_NAMES, load_potential, potential_from_checkpoint, read_checkpoint, save_checkpoint
from eqv2_calc.errors import CheckpointError
from test_model import evaluate, seeded_potential

SMALL = DATA / "ckpt_small.pt"


@pytest.fixture(scope="module")
def small_checkpoint() -> dict:
    return read_checkpoint(SMALL)


def energy_of(potential) -> float:
    atoms = bulk("Cu", "fcc", a=3.6) * (2, 1, 1)
    atoms.rattle(0.05, seed=0)
    return float(evaluate(potential, atoms)["energy"][0])


@pytest.mark.parametrize("num_prefixes", [0, 1, 3])
def test_any_number_of_module_prefixes(small_checkpoint: dict, num_prefixes: int) -> None:
    ckpt = dict(small_checkpoint)
    stripped = {}
    for key, value in ckpt["state_dict"].items():
        while key.startswith("module."):
            key = key[len("module."):]
        stripped["module." * num_prefixes + key] = value
    ckpt["state_dict"] = stripped
    assert energy_of(potential_from_checkpoint(ckpt)) == pytest.approx(energy_of(load_potential(SMALL)), abs=1e-6)


def test_old_normalizers_are_applied(small_checkpoint: dict) -> None:
    assert "target" in small_checkpoint["normalizers"]
    potential = potential_from_checkpoint(small_checkpoint)
    std = float(small_checkpoint["normalizers"]["target"]["std"])
    assert potential.normalizers["energy"].rmsd == pytest.approx(std)


def test_missing_file_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_potential(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_potential(garbage)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(SMALL.read_bytes()[: SMALL.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_potential(truncated)
    not_fairchem = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, not_fairchem)
    with pytest.raises(CheckpointError, match="not a fairchem checkpoint"):
        load_potential(not_fairchem)


def test_checkpoint_of_another_model(small_checkpoint: dict) -> None:
    ckpt = copy.deepcopy(small_checkpoint)
    ckpt["config"] = {"model": {"name": "gemnet_oc", "num_blocks": 4}}
    with pytest.raises(CheckpointError, match="gemnet_oc"):
        potential_from_checkpoint(ckpt)


def test_mismatched_state_dict(small_checkpoint: dict) -> None:
    missing = dict(small_checkpoint)
    missing["state_dict"] = {k: v for k, v in small_checkpoint["state_dict"].items() if "blocks.1.ffn" not in k}
    with pytest.raises(CheckpointError, match="missing"):
        potential_from_checkpoint(missing)
    extra = dict(small_checkpoint)
    extra["state_dict"] = {**small_checkpoint["state_dict"], "module.module.blocks.9.ga.alpha_dot": torch.zeros(2, 8)}
    with pytest.raises(CheckpointError, match="unexpected"):
        potential_from_checkpoint(extra)
    wrong_config = copy.deepcopy(small_checkpoint)
    wrong_config["config"]["model_attributes"]["sphere_channels"] = 32
    with pytest.raises((CheckpointError, RuntimeError)):
        potential_from_checkpoint(wrong_config)


def test_unknown_config_option_is_named(small_checkpoint: dict) -> None:
    ckpt = copy.deepcopy(small_checkpoint)
    ckpt["config"]["model_attributes"]["use_turbo_mode"] = True
    with pytest.raises(CheckpointError, match="use_turbo_mode"):
        potential_from_checkpoint(ckpt)


def test_save_round_trip(tmp_path: Path) -> None:
    potential = seeded_potential()
    path = save_checkpoint(potential, tmp_path / "model.pt", extra={"epoch": 3})
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left behind
    loaded = load_potential(path, dtype=torch.float64)
    assert loaded.config == potential.config
    assert read_checkpoint(path)["epoch"] == 3
    assert energy_of(loaded) == pytest.approx(energy_of(potential), abs=1e-10)
    atoms = bulk("NaCl", "rocksalt", a=5.0)
    np.testing.assert_allclose(evaluate(loaded, atoms)["stress"], evaluate(potential, atoms)["stress"], atol=1e-12)


def test_ema_weights(small_checkpoint: dict) -> None:
    ckpt = dict(small_checkpoint)
    with pytest.raises(CheckpointError, match="no EMA"):
        potential_from_checkpoint(ckpt, use_ema=True)
    trainable = [k for k in ckpt["state_dict"] if k.split(".")[-1] not in FAIRCHEM_BUFFER_NAMES]
    shadow = [ckpt["state_dict"][k] * 1.01 for k in trainable]
    ckpt["ema"] = {"decay": 0.999, "num_updates": 10, "shadow_params": shadow, "collected_params": None}
    scaled = dict(ckpt)
    scaled["state_dict"] = {**ckpt["state_dict"], **dict(zip(trainable, shadow))}
    assert energy_of(potential_from_checkpoint(ckpt, use_ema=True)) == pytest.approx(
        energy_of(potential_from_checkpoint(scaled)), abs=1e-7)
    ckpt["ema"] = {**ckpt["ema"], "shadow_params": shadow[:-1]}
    with pytest.raises(CheckpointError, match="do not line up"):
        potential_from_checkpoint(ckpt, use_ema=True)
