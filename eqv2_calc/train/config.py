"""Training configuration (`eqv2 train config.yaml`): one typed dataclass, unknown keys rejected."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data.dataset import DatasetError, dataset_entry
from ..errors import ConfigError

LOSSES = ("mse", "huber")


@dataclass(frozen=True)
class TrainConfig:
    """What to train on, which network, and how.

    Units: learning rates per step; loss weights multiply the per-term losses of energy per atom
    (eV/atom), force components (eV/Angstrom) and stress components (eV/Angstrom^3): their mean squared
    errors (`loss: mse`) or their Huber losses with threshold `huber_delta` in those units (`loss: huber`,
    quadratic below the threshold, linear above, so a few far-from-equilibrium frames do not dominate).
    """

    # ASE db, ase.io, fairchem LMDB or .aselmdb file(s), concatenated; rows carry a `split` key (train/val/test),
    # or an entry {path, split, limit} puts a whole file in one split (see data.dataset.load_datasets)
    data: str | list[str | dict]
    output_dir: str = "runs/eqv2"
    overwrite: bool = False  # replace output_dir/checkpoint.pt of an earlier run (else refused)
    model: dict[str, Any] = field(default_factory=dict)  # EquiformerV2Config options (new model)
    finetune_from: str | None = None  # registry name or checkpoint path (replaces `model`)
    add_layers: int = 0  # with finetune_from: append blocks that start as the identity (train.grow)
    grid: dict[str, Any] = field(default_factory=dict)  # with finetune_from: other S2 grids (train.grow.regrid)
    refit_references: bool = False  # with finetune_from: refit per-element energies to the data first
    val_fraction: float = 0.1  # data without a `split` key: this share of the structures validates
    resume: str | None = None  # checkpoint written by a previous run of this trainer
    train_split: str = "train"
    val_split: str = "val"
    epochs: int = 10
    batch_size: int = 8
    lr: float = 5e-4
    min_lr_factor: float = 0.01
    warmup_fraction: float = 0.05
    weight_decay: float = 1e-3
    ema_decay: float = 0.999
    ema_warmup: bool = True  # decay min(ema_decay, (1 + n) / (10 + n)) at step n
    grad_clip: float = 100.0
    energy_weight: float = 1.0
    force_weight: float = 10.0
    stress_weight: float = 0.0
    loss: str = "mse"  # "mse" or "huber"
    huber_delta: float = 0.01
    max_train_structures: int | None = None  # train on a seeded random sample of this many structures
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        paths = [self.data] if isinstance(self.data, str) else self.data
        if not isinstance(paths, list) or not paths or not all(isinstance(p, (str, dict)) and p for p in paths):
            raise ConfigError(f"data={self.data!r} must be a dataset path or a non-empty list of paths "
                              "or {path, split, limit} entries")
        for entry in paths:
            try:
                dataset_entry(entry)
            except DatasetError as exc:
                raise ConfigError(str(exc)) from exc
        if self.model and self.finetune_from:
            raise ConfigError("give either `model` (a new network) or `finetune_from` (a checkpoint), not both")
        if self.add_layers < 0 or (self.add_layers and not self.finetune_from):
            raise ConfigError(f"add_layers={self.add_layers} must be >= 0 and needs `finetune_from` (blocks are "
                              f"added to a trained network; a new one takes `model: {{num_layers: ...}}`)")
        if self.grid and not self.finetune_from:
            raise ConfigError("grid needs `finetune_from` (a new network takes its grids in `model`)")
        if self.refit_references and not self.finetune_from:
            raise ConfigError("refit_references needs `finetune_from` (a new model fits its references anyway)")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction={self.val_fraction} must be between 0 and 1")
        if self.stress_weight < 0:
            raise ConfigError(f"stress_weight={self.stress_weight} must be >= 0")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss={self.loss!r} is not one of {', '.join(LOSSES)}")
        if self.huber_delta <= 0:
            raise ConfigError(f"huber_delta={self.huber_delta} must be > 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay={self.ema_decay} must be in [0, 1)")

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        options = yaml.safe_load(Path(path).read_text()) or {}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise ConfigError(f"{path}: unknown training option(s): {', '.join(unknown)}")
        if "data" not in options:
            raise ConfigError(f"{path}: `data` (the training database) is required")
        return cls(**options)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
