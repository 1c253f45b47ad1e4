"""Training and fine-tuning: AdamW, warmup + cosine schedule, EMA, gradient clipping, energy +
force (+ stress) loss, validation each epoch, resume, loss-curve plot, DDP under torchrun.

Checkpoints are fairchem-format files (`eqv2_calc.checkpoint.save_checkpoint`) whose `state_dict`
holds the EMA weights (what inference uses, as in fairchem's released files); the raw weights,
optimizer state and EMA shadow are stored beside them for `resume`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from tqdm import tqdm

from ..calculator import resolve_device
from ..checkpoint import load_potential, read_checkpoint, save_checkpoint
from ..data.dataset import SplitNotFoundError, check_elements, label_forces, label_stress, load_datasets
from ..errors import ConfigError
from ..model import EquiformerV2, EquiformerV2Config
from ..potential import Normalizer, Potential, require_forces
from .config import TrainConfig
from .grow import add_identity_blocks, regrid
from .split import split_by_structure

log = logging.getLogger(__name__)

NUM_ELEMENT_REFS = 119  # element references indexed by Z (fairchem's length)


def fit_element_references(structures: list[Atoms]) -> torch.Tensor:
    """Least-squares per-element energies (eV) so that E ~ sum_i ref[Z_i]; `(119,)` float64."""
    elements = sorted({int(z) for atoms in structures for z in atoms.numbers})
    counts = np.array([[np.count_nonzero(atoms.numbers == z) for z in elements] for atoms in structures], float)
    energies = np.array([atoms.get_potential_energy() for atoms in structures])
    solution, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    refs = torch.zeros(NUM_ELEMENT_REFS, dtype=torch.float64)
    refs[elements] = torch.as_tensor(solution)
    return refs


def refit_element_references(potential: Potential, structures: list[Atoms], batch_size: int = 8) -> dict[str, float]:
    """Shift `potential`'s per-element energies (eV) by the least-squares fit of label - prediction over
    `structures`: a total-energy model moved to another level of theory (another DFT code, functional or
    pseudopotentials) starts from the new data's energy zero. Elements absent from `structures` keep theirs.
    Returns the shift per element symbol, eV."""
    from ase.data import chemical_symbols

    from ..predict import evaluate

    predicted = np.concatenate([[p.energy for p in evaluate(potential, structures[i : i + batch_size])]
                                for i in range(0, len(structures), batch_size)])
    residuals = np.array([a.get_potential_energy() for a in structures]) - predicted
    elements = sorted({int(z) for atoms in structures for z in atoms.numbers})
    counts = np.array([[np.count_nonzero(atoms.numbers == z) for z in elements] for atoms in structures], float)
    shift, *_ = np.linalg.lstsq(counts, residuals, rcond=None)
    refs = potential.element_references
    refs[elements] += torch.as_tensor(shift, dtype=refs.dtype, device=refs.device)
    return {chemical_symbols[z]: float(s) for z, s in zip(elements, shift)}


def energy_normalizer(structures: list[Atoms]) -> Normalizer:
    """The energy normalizer of a new model: mean 0 (element references carry the offset), rmsd the RMS
    force component (eV/Angstrom), so the raw network output and its position derivative are O(1)."""
    forces = np.concatenate([label_forces(atoms) for atoms in structures])
    return Normalizer(0.0, float(np.sqrt(np.mean(forces**2))) or 1.0)


def learning_rate(step: int, total: int, config: TrainConfig) -> float:
    """Linear warmup over `warmup_fraction` of the steps, then cosine decay to `min_lr_factor * lr`."""
    warmup = max(1, int(config.warmup_fraction * total))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    floor = config.min_lr_factor
    return config.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def _labels(structures: list[Atoms], device, dtype) -> dict[str, torch.Tensor]:
    out = {
        "energy": torch.tensor([a.get_potential_energy() for a in structures], dtype=dtype, device=device),
        "forces": torch.tensor(np.concatenate([label_forces(a) for a in structures]), dtype=dtype, device=device),
        "natoms": torch.tensor([len(a) for a in structures], dtype=dtype, device=device),
    }
    if all("stress" in a.calc.results for a in structures):
        stress = np.array([label_stress(a) for a in structures])  # (B, 3, 3)
        out["stress"] = torch.tensor(stress, dtype=dtype, device=device)
    return out


@torch.no_grad()
def mean_absolute_errors(potential: Potential, structures: list[Atoms], batch_size: int = 8) -> dict[str, float]:
    """Energy MAE (meV/atom) and force MAE (meV/Angstrom, over every atom's components) of `potential` against
    the stored labels of `structures` (see `_labels`)."""
    e_err, f_err, n_force = 0.0, 0.0, 0
    for i in range(0, len(structures), batch_size):
        batch = structures[i : i + batch_size]
        pred = potential(potential.make_graph(batch))
        labels = _labels(batch, pred["energy"].device, pred["energy"].dtype)
        e_err += float(((pred["energy"] - labels["energy"]).abs() / labels["natoms"]).sum())
        f_err += float((pred["forces"] - labels["forces"]).abs().sum())
        n_force += labels["forces"].numel()
    return {"energy_mae_meV_per_atom": 1000 * e_err / len(structures), "force_mae_meV_per_A": 1000 * f_err / n_force}


def loss_terms(pred: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], loss: str = "mse",
               huber_delta: float = 0.01) -> dict[str, torch.Tensor]:
    """Mean squared errors (`loss="mse"`) or mean Huber losses (`loss="huber"`, threshold `huber_delta`) of
    energy per atom (eV/atom), force components (eV/Angstrom), stress components (eV/Angstrom^3, when labelled)."""
    def term(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if loss == "huber":
            return torch.nn.functional.huber_loss(prediction, target, delta=huber_delta)
        return torch.nn.functional.mse_loss(prediction, target)

    terms = {
        "energy": term(pred["energy"] / labels["natoms"], labels["energy"] / labels["natoms"]),
        "forces": term(pred["forces"], labels["forces"]),
    }
    if "stress" in labels and "stress" in pred:
        terms["stress"] = term(pred["stress"], labels["stress"])
    return terms


@dataclass
class History:
    """Per-step training loss and per-epoch validation metrics (for the plot and the log)."""

    train_loss: list[float] = field(default_factory=list)
    val: list[dict[str, float]] = field(default_factory=list)


class ExponentialMovingAverage:
    """Shadow copy of the trainable weights: shadow = d * shadow + (1 - d) * weight after each step.

    d = `decay`, or with `warmup` min(decay, (1 + n) / (10 + n)) at training step n (as fairchem's EMA with
    num_updates), so the starting weights fade out within the first steps instead of 1 / (1 - decay).
    """

    def __init__(self, params: list[torch.nn.Parameter], decay: float, warmup: bool = True) -> None:
        self.params = params
        self.decay = decay
        self.warmup = warmup
        self.shadow = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold the live weights into the shadow after training step `step` (counted from 0)."""
        decay = min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay
        for s, p in zip(self.shadow, self.params):
            s.lerp_(p.detach(), 1 - decay)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange live and shadow weights (call twice to undo)."""
        for s, p in zip(self.shadow, self.params):
            tmp = p.detach().clone()
            p.copy_(s)
            s.copy_(tmp)


class Trainer:
    """Runs one training job described by a `TrainConfig`."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.rank, self.world = _init_distributed()
        self.device = resolve_device(config.device) if self.world == 1 else _distributed_device(config.device)
        torch.manual_seed(config.seed)
        self.rng = random.Random(config.seed)
        self.out_dir = Path(config.output_dir)
        final = self.out_dir / "checkpoint.pt"
        if final.exists() and not (config.resume or config.overwrite):
            raise ConfigError(f"{final} exists (an earlier run): give a new output_dir, `resume: {final}` to "
                              "continue that run, or `overwrite: true` to replace it")
        self.train_set, self.val_set = self._load_splits()
        if config.max_train_structures and len(self.train_set) > config.max_train_structures:
            # a seeded random sample: the first N of concatenated files would be one file's (often one kind's) rows
            picked = random.Random(config.seed).sample(range(len(self.train_set)), config.max_train_structures)
            self.train_set = [self.train_set[i] for i in sorted(picked)]
        if not self.train_set:
            raise ConfigError(f"{config.data}: no structures in split '{config.train_split}'")
        self.potential = self._build_potential().to(self.device)
        check_elements(self.train_set + self.val_set, self.potential.config.max_num_elements)
        self._check_stress_settings()
        if config.refit_references and not config.resume:
            shifts = refit_element_references(self.potential.eval(), self.train_set, config.batch_size)
            log.info("refit per-element references to %s (eV, added): %s", config.data,
                     ", ".join(f"{el} {value:+.4f}" for el, value in shifts.items()))
        self.params = [p for p in self.potential.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=config.weight_decay)
        self.ema = ExponentialMovingAverage(self.params, config.ema_decay, config.ema_warmup)
        self.steps_per_epoch = math.ceil(len(self.train_set) / (config.batch_size * self.world))
        self.total_steps = self.steps_per_epoch * config.epochs
        self.step = 0
        self.history = History()
        if config.resume:
            self._resume(config.resume)
        self.module = self.potential
        if self.world > 1:
            self.module = torch.nn.parallel.DistributedDataParallel(self.potential, find_unused_parameters=True)

    def _build_potential(self) -> Potential:
        cfg = self.config
        if cfg.finetune_from:
            from ..hub import resolve_checkpoint

            potential = load_potential(resolve_checkpoint(cfg.finetune_from))
            require_forces(potential.implemented_properties, "fine-tuning (the loss fits forces)")
            if cfg.grid:
                potential = regrid(potential, cfg.grid)
            return add_identity_blocks(potential, cfg.add_layers) if cfg.add_layers else potential
        refs = fit_element_references(self.train_set)
        energy_norm = energy_normalizer(self.train_set)
        # avg_num_nodes = 1: each atom's head output is its energy in units of the normalizer's rmsd. Dividing
        # by the mean atom count (fairchem's convention) asks ~20x larger outputs and stalled energy learning.
        options = {"avg_num_nodes": 1.0, "layout": "hydra", **cfg.model}
        model = EquiformerV2(EquiformerV2Config.from_dict(options))
        normalizers = {"energy": energy_norm}
        if model.config.direct_forces:
            normalizers["forces"] = Normalizer(0.0, energy_norm.rmsd)
        return Potential(model, normalizers, refs.float())

    def _load_splits(self) -> tuple[list[Atoms], list[Atoms]]:
        """The `train_split` / `val_split` structures; data without any `split` key are split by structure."""
        cfg = self.config
        try:
            return load_datasets(cfg.data, split=cfg.train_split), load_datasets(cfg.data, split=cfg.val_split)
        except SplitNotFoundError:
            everything = load_datasets(cfg.data)
            if any("split" in atoms.info for atoms in everything):
                raise
        train, val = split_by_structure(everything, cfg.val_fraction, cfg.seed)
        log.info("%s has no `split` key: split automatically by structure (seed %d, val_fraction %g): %d train, "
                 "%d validation structures", cfg.data, cfg.seed, cfg.val_fraction, len(train), len(val))
        return train, val

    def _check_stress_settings(self) -> None:
        cfg = self.config
        if cfg.stress_weight <= 0:
            return
        if not self.potential.config.predicts_stress:
            raise ConfigError(f"stress_weight={cfg.stress_weight}, but this model has no stress head (direct forces "
                              "without a stress output): set stress_weight: 0, or fine-tune a stress-predicting model")
        if not any("stress" in atoms.calc.results for atoms in self.train_set):
            raise ConfigError(f"stress_weight={cfg.stress_weight}, but no training structure has a stress label "
                              "(the stress term would never be used): set stress_weight: 0, or add stresses")

    def _resume(self, path: str) -> None:
        checkpoint = read_checkpoint(path)
        state = checkpoint.get("trainer")
        if not state:
            raise ConfigError(f"{path} was not written by this trainer (no 'trainer' state to resume from)")
        self.potential.model.load_state_dict(state["raw_state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.ema.shadow = [t.to(self.device) for t in state["ema_shadow"]]
        self.step = int(state["step"])
        self.history = History(state["train_loss"], state["val"])

    def _batches(self, epoch: int) -> list[list[Atoms]]:
        order = list(range(len(self.train_set)))
        random.Random(self.config.seed + epoch).shuffle(order)
        size = self.config.batch_size
        global_batches = [order[i : i + size * self.world] for i in range(0, len(order), size * self.world)]
        return [[self.train_set[j] for j in batch[self.rank :: self.world]] for batch in global_batches]

    def train_step(self, batch: list[Atoms]) -> float:
        cfg = self.config
        dtype = next(self.potential.parameters()).dtype
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, self.total_steps, cfg)
        graph = self.potential.make_graph(batch)
        labels = _labels(batch, self.device, dtype)
        pred = self.module(graph, create_graph=True)
        terms = loss_terms(pred, labels, cfg.loss, cfg.huber_delta)
        loss = cfg.energy_weight * terms["energy"] + cfg.force_weight * terms["forces"]
        if "stress" in terms:
            loss = loss + cfg.stress_weight * terms["stress"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        self.optimizer.step()
        self.ema.update(self.step)
        self.step += 1
        return float(loss.detach())

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Energy MAE (meV/atom) and force MAE (meV/Angstrom) of the EMA weights on the val split."""
        if not self.val_set:
            return {}
        self.ema.swap()
        try:
            return mean_absolute_errors(self.potential, self.val_set, self.config.batch_size)
        finally:
            self.ema.swap()

    def fit(self) -> Path:
        """Train for `epochs` (continuing after a resume); returns the final checkpoint path."""
        start_epoch = self.step // self.steps_per_epoch
        final = self.out_dir / "checkpoint.pt"
        for epoch in range(start_epoch, self.config.epochs):
            self.potential.train()
            bar = tqdm(self._batches(epoch), desc=f"epoch {epoch + 1}/{self.config.epochs}", disable=self.rank != 0)
            for batch in bar:
                loss = self.train_step(batch)
                self.history.train_loss.append(loss)
                bar.set_postfix(loss=f"{loss:.4g}", lr=f"{self.optimizer.param_groups[0]['lr']:.2e}")
            self.potential.eval()
            if self.rank == 0:
                metrics = {"epoch": epoch + 1, "step": self.step, **self.validate()}
                self.history.val.append(metrics)
                log.info("validation %s", json.dumps(metrics))
                self.save(final)
                plot_history(self.history, self.out_dir / "loss_curve.png")
        if self.world > 1:
            torch.distributed.barrier()
        return final

    def save(self, path: Path) -> Path:
        trainer_state = {
            # copies: the EMA swap below overwrites the live tensors while the file is written
            "raw_state_dict": {k: v.detach().cpu().clone() for k, v in self.potential.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "ema_shadow": [t.detach().cpu().clone() for t in self.ema.shadow],
            "step": self.step,
            "train_loss": list(self.history.train_loss),
            "val": list(self.history.val),
        }
        extra = {"step": self.step, "epoch": self.step // self.steps_per_epoch, "trainer": trainer_state,
                 "train_config": self.config.to_dict(),
                 "val_metrics": self.history.val[-1] if self.history.val else {}}
        self.ema.swap()
        try:
            return save_checkpoint(self.potential, path, extra=extra)
        finally:
            self.ema.swap()


def plot_history(history: History, path: Path) -> None:
    """Loss per step and validation MAEs per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.semilogy(history.train_loss, lw=0.8)
    ax_loss.set(xlabel="step", ylabel="training loss", title="loss")
    if history.val and "force_mae_meV_per_A" in history.val[0]:
        epochs = [v["epoch"] for v in history.val]
        ax_val.plot(epochs, [v["energy_mae_meV_per_atom"] for v in history.val], "o-", label="energy (meV/atom)")
        ax_val.plot(epochs, [v["force_mae_meV_per_A"] for v in history.val], "s-", label="forces (meV/Å)")
        ax_val.set_yscale("log")
        ax_val.legend()
    ax_val.set(xlabel="epoch", title="validation MAE (EMA weights)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _init_distributed() -> tuple[int, int]:
    """(rank, world size); initializes torch.distributed when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return torch.distributed.get_rank(), world


def _distributed_device(device: str) -> torch.device:
    if torch.cuda.is_available() and device in ("auto", "cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def train(config: TrainConfig | str | Path) -> Path:
    """Train from a `TrainConfig` or a YAML file; returns the checkpoint path."""
    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_yaml(config)
    return Trainer(config).fit()
