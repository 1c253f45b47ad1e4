"""Training: a tiny model on a tiny EMT database (loss falls, reload, resume, DDP, bad input)."""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from ase.build import bulk
from ase.io import write

from eqv2_calc.checkpoint import load_potential, read_checkpoint
from eqv2_calc.data.dataset import DatasetError, SplitNotFoundError, load_datasets, load_structures
from eqv2_calc.data.emt import make_emt_dataset
from eqv2_calc.errors import ConfigError
from eqv2_calc.train import TrainConfig, Trainer
from eqv2_calc.train.grow import add_identity_blocks, regrid
from eqv2_calc.train.loop import ExponentialMovingAverage, _labels, learning_rate, loss_terms
from test_predict import demo_like_potential, slab_with_co

TINY_MODEL = dict(
    num_layers=1, sphere_channels=8, attn_hidden_channels=8, num_heads=2, attn_alpha_channels=4,
    attn_value_channels=4, ffn_hidden_channels=8, edge_channels=8, lmax_list=[2], mmax_list=[1],
    grid_resolution=8, max_radius=4.0, max_neighbors=100, norm_type="rms_norm_sh",
    direct_forces=False, use_cutoff_envelope=True,
)


@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "emt.db"
    make_emt_dataset(path, n_systems=10, seed=3, progress=False, n_relax=2, n_md=2)
    return path


def tiny_config(db: Path, out: Path, **overrides) -> TrainConfig:
    options = dict(data=str(db), output_dir=str(out), model=TINY_MODEL, epochs=2, batch_size=4, lr=5e-3,
                   ema_decay=0.0, max_train_structures=16, device="cpu")
    return TrainConfig(**{**options, **overrides})


def force_mae(potential, structures) -> float:
    with torch.no_grad():
        pred = potential(potential.make_graph(structures))
    return float((pred["forces"] - torch.tensor(np.concatenate([a.get_forces() for a in structures]))).abs().mean())


def test_loss_falls_checkpoint_reloads_and_resume_continues(tiny_db: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_db, tmp_path / "run", epochs=1)
    trainer = Trainer(config)
    before = force_mae(trainer.potential, trainer.train_set)
    path = trainer.fit()
    assert force_mae(trainer.potential, trainer.train_set) < before
    assert (tmp_path / "run" / "loss_curve.png").stat().st_size > 0

    reloaded = load_potential(path)
    atoms = trainer.train_set[:3]
    with torch.no_grad():
        a, b = trainer.potential(trainer.potential.make_graph(atoms)), reloaded(reloaded.make_graph(atoms))
    assert torch.allclose(a["energy"], b["energy"]) and torch.allclose(a["forces"], b["forces"])

    resumed = Trainer(dataclasses.replace(config, epochs=2, resume=str(path)))
    assert resumed.step == trainer.steps_per_epoch
    resumed.fit()
    assert resumed.step == 2 * trainer.steps_per_epoch
    state = read_checkpoint(tmp_path / "run" / "checkpoint.pt")["trainer"]
    assert len(state["val"]) == 2 and len(state["train_loss"]) == 2 * trainer.steps_per_epoch


def test_checkpoint_keeps_raw_and_ema_weights_apart(tiny_db: Path, tmp_path: Path) -> None:
    trainer = Trainer(tiny_config(tiny_db, tmp_path / "ema", epochs=1, ema_decay=0.9))
    path = trainer.fit()
    saved = read_checkpoint(path)
    raw = trainer.potential.model.state_dict()
    name = next(k for k, v in saved["trainer"]["raw_state_dict"].items() if v.is_floating_point() and v.numel() > 1)
    assert torch.equal(saved["trainer"]["raw_state_dict"][name], raw[name])  # what resume continues from
    assert not torch.equal(saved["state_dict"][name], raw[name])  # inference weights: the EMA


def test_schedule_warms_up_then_decays() -> None:
    config = TrainConfig(data="unused", lr=1e-3, warmup_fraction=0.1, min_lr_factor=0.01)
    rates = [learning_rate(step, 100, config) for step in range(100)]
    assert rates[0] < rates[9] == pytest.approx(1e-3)
    assert rates[-1] == pytest.approx(1e-5, rel=0.05) and all(x >= y for x, y in zip(rates[10:], rates[11:]))


def test_huber_loss_is_quadratic_below_delta_and_linear_above() -> None:
    labels = {"energy": torch.tensor([1.0, 2.0]), "natoms": torch.tensor([1.0, 2.0]), "forces": torch.zeros(3, 3)}
    pred = {"energy": torch.tensor([1.001, 2.0]), "forces": torch.full((3, 3), 0.5)}
    mse, huber = loss_terms(pred, labels), loss_terms(pred, labels, "huber", 0.01)
    assert mse["energy"] == pytest.approx(0.5 * 0.001**2, rel=1e-3) and mse["forces"] == pytest.approx(0.25)
    assert huber["energy"] == pytest.approx(0.5 * 0.5 * 0.001**2, rel=1e-3)  # 0.5 err^2 below delta, per atom
    assert huber["forces"] == pytest.approx(0.01 * (0.5 - 0.5 * 0.01))  # delta (|err| - delta / 2) above


def test_finetune_from_checkpoint(tiny_db: Path, tmp_path: Path) -> None:
    first = Trainer(tiny_config(tiny_db, tmp_path / "a", epochs=1)).fit()
    tuned = Trainer(tiny_config(tiny_db, tmp_path / "b", epochs=1, model={}, finetune_from=str(first)))
    assert tuned.potential.config == load_potential(first).config
    tuned.fit()
    deeper = Trainer(tiny_config(tiny_db, tmp_path / "c", epochs=1, model={}, finetune_from=str(first), add_layers=1,
                                 grid={"edge_grid_resolution": [8, 12]}))
    assert deeper.potential.config.num_layers == TINY_MODEL["num_layers"] + 1
    reloaded = load_potential(deeper.fit()).config
    assert reloaded.num_layers == TINY_MODEL["num_layers"] + 1 and reloaded.edge_grid_resolution == (8, 12)


def test_regrid_keeps_every_weight_and_changes_only_the_grids() -> None:
    """Finer grids: the same weights, predictions within the old grid's quadrature error, closer to equivariant."""
    base = demo_like_potential()
    fine = regrid(base, {"edge_grid_resolution": [8, 24], "node_grid_resolution": [16, 24]})
    assert fine.model.backbone.edge_grid.num_points == 8 * 24 and fine.model.backbone.node_grid.num_points == 16 * 24
    for (name, old), new in zip(base.model.state_dict().items(), fine.model.state_dict().values()):
        assert torch.equal(old, new), name
    structures = [slab_with_co()]
    before, after = base(base.make_graph(structures)), fine(fine.make_graph(structures))
    assert 0 < float((after["forces"] - before["forces"]).abs().max()) < 0.1 * float(before["forces"].abs().max())
    with pytest.raises(ConfigError, match="num_layers"):
        regrid(base, {"num_layers": 4})


def test_added_blocks_start_as_the_identity() -> None:
    base = demo_like_potential()  # seeded random weights: every block changes the predictions
    grown = add_identity_blocks(base, 2)
    assert grown.config.num_layers == base.config.num_layers + 2 and next(grown.parameters()).dtype == torch.float64
    structures = [slab_with_co(), bulk("Cu", "fcc", a=3.7, cubic=True)]
    structures[1].rattle(0.1, seed=0)
    before, after = base(base.make_graph(structures)), grown(grown.make_graph(structures))
    for key in ("energy", "forces", "stress"):
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=1e-10)
    with pytest.raises(ConfigError, match="add_layers=0"):
        add_identity_blocks(base, 0)


def test_bad_training_input(tiny_db: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="learning_rate"):
        TrainConfig.from_yaml(_write(tmp_path / "bad.yaml", f"data: {tiny_db}\nlearning_rate: 0.1\n"))
    with pytest.raises(ConfigError, match="needs `finetune_from`"):
        tiny_config(tiny_db, tmp_path / "c", add_layers=1)
    with pytest.raises(ConfigError, match="grid needs `finetune_from`"):
        tiny_config(tiny_db, tmp_path / "c", grid={"grid_resolution": 12})
    with pytest.raises(ConfigError, match="loss='l1'"):
        tiny_config(tiny_db, tmp_path / "c", loss="l1")
    with pytest.raises(DatasetError, match="Cu|Ag|Au|Ni|Pd|Pt|Al"):
        Trainer(tiny_config(tiny_db, tmp_path / "c", model={**TINY_MODEL, "max_num_elements": 10}))
    with pytest.raises(DatasetError, match="split"):
        load_structures(tiny_db, split="nonexistent")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _ddp_worker(rank: int, world: int, port: int, config: TrainConfig) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        Trainer(config).fit()
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_two_cpu_processes(tiny_db: Path, tmp_path: Path) -> None:
    """torchrun-style launch (gloo, 2 ranks): both ranks train, rank 0 writes the checkpoint."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tiny_config(tiny_db, tmp_path / "ddp", epochs=1)
    mp.spawn(_ddp_worker, args=(2, port, config), nprocs=2, join=True)
    state = read_checkpoint(tmp_path / "ddp" / "checkpoint.pt")["trainer"]
    assert state["step"] == 2  # 16 structures / (batch 4 x 2 ranks)


def test_ema_warmup_follows_the_step_count() -> None:
    weight = torch.nn.Parameter(torch.zeros(2))
    ema = ExponentialMovingAverage([weight], decay=0.999, warmup=True)
    with torch.no_grad():
        weight.fill_(1.0)
    ema.update(step=0)  # decay (1 + 0) / (10 + 0) = 0.1: the start weights fade at once
    assert torch.allclose(ema.shadow[0], torch.full((2,), 0.9))
    ema.update(step=10**6)  # late in training: the configured decay
    assert torch.allclose(ema.shadow[0], torch.full((2,), 0.9 + 0.1 * 0.001))


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_training_configs_parse(path: Path) -> None:
    config = TrainConfig.from_yaml(path)
    assert bool(config.model) != bool(config.finetune_from)  # a new network or a fine-tune, never both


def test_force_labels_of_fixed_atoms_stay_raw() -> None:
    """FixAtoms zeroes `get_forces()` on fixed atoms; the training targets must be the stored EMT forces."""
    from ase.build import fcc111
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.constraints import FixAtoms

    slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    slab.rattle(0.1, seed=1)
    slab.calc = EMT()
    raw = slab.get_forces()
    slab.calc = SinglePointCalculator(slab, energy=slab.get_potential_energy(), forces=raw)
    slab.set_constraint(FixAtoms(indices=range(4)))
    assert np.abs(slab.get_forces()[:4]).max() == 0.0 < np.abs(raw[:4]).max()
    labels = _labels([slab], "cpu", torch.float64)
    assert np.allclose(labels["forces"].numpy(), raw)


def test_training_reads_several_datasets(tiny_db: Path, tmp_path: Path) -> None:
    """`data` may list files: their splits are concatenated, and a train-only supplement adds no val rows."""
    supplement = tmp_path / "supplement.extxyz"
    extra = load_structures(tiny_db, split="train")[:5]
    write(supplement, extra, format="extxyz")
    n_train, n_val = (len(load_structures(tiny_db, split=s)) for s in ("train", "val"))
    trainer = Trainer(tiny_config(tiny_db, tmp_path / "run", data=[str(tiny_db), str(supplement)],
                                  max_train_structures=None))
    assert (len(trainer.train_set), len(trainer.val_set)) == (n_train + 5, n_val)
    with pytest.raises(SplitNotFoundError, match="supplement.extxyz: no structure has split='val'"):
        load_datasets([supplement], split="val")
    for bad in ([], [""], 3):
        with pytest.raises(ConfigError, match="must be a dataset path or a non-empty list"):
            tiny_config(tiny_db, tmp_path / "bad", data=bad)


def _plain_extxyz(path: Path, energy_shift_per_atom: float = 0.0) -> Path:
    """5 systems x 2 frames of EMT-labelled Cu/Pt cells, no `split` key; `system_id` ties a system's frames."""
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = []
    for system in range(5):
        for frame in range(2):
            atoms = bulk("Cu" if system % 2 else "Pt", "fcc", a=3.7 + 0.05 * system, cubic=True)
            atoms.rattle(0.05, seed=10 * system + frame)
            atoms.calc = EMT()
            energy = atoms.get_potential_energy() + energy_shift_per_atom * len(atoms)
            atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=atoms.get_forces())
            atoms.info["system_id"] = f"system {system}"
            frames.append(atoms)
    write(path, frames, format="extxyz")
    return path


def test_data_without_split_key_is_split_by_structure(tmp_path: Path, caplog) -> None:
    data = _plain_extxyz(tmp_path / "mine.extxyz")
    with caplog.at_level("INFO", logger="eqv2_calc.train.loop"):
        trainer = Trainer(tiny_config(data, tmp_path / "run", val_fraction=0.2))
    assert "no `split` key: split automatically by structure" in caplog.text
    train_ids = {a.info["system_id"] for a in trainer.train_set}
    val_ids = {a.info["system_id"] for a in trainer.val_set}
    assert len(trainer.train_set) == 8 and len(trainer.val_set) == 2 and not train_ids & val_ids
    again = Trainer(tiny_config(data, tmp_path / "run2", val_fraction=0.2))
    assert {a.info["system_id"] for a in again.val_set} == val_ids  # seeded


def test_finetuning_refits_element_references_to_another_level_of_theory(tmp_path: Path) -> None:
    from eqv2_calc.predict import evaluate

    data = _plain_extxyz(tmp_path / "shifted.extxyz", energy_shift_per_atom=3.7)  # EMT + 3.7 eV/atom
    options = dict(model={}, finetune_from="eqV2-demo-EMT", max_train_structures=None, val_fraction=0.2)

    def error_per_atom(trainer) -> float:
        predictions = evaluate(trainer.potential.eval(), trainer.train_set)
        return max(abs(p.energy - a.get_potential_energy()) / len(a) for p, a in zip(predictions, trainer.train_set))

    assert error_per_atom(Trainer(tiny_config(data, tmp_path / "a", **options))) > 3.0
    assert error_per_atom(Trainer(tiny_config(data, tmp_path / "b", refit_references=True, **options))) < 0.1


def test_stress_settings_without_a_stress_head_or_labels_are_refused(tiny_db: Path, tmp_path: Path) -> None:
    from conftest import DATA

    direct = load_potential(DATA / "ckpt_small.pt")
    assert not direct.config.predicts_stress
    with pytest.raises(ConfigError, match="no stress head"):
        Trainer(tiny_config(tiny_db, tmp_path / "a", model={}, finetune_from=str(DATA / "ckpt_small.pt"),
                            stress_weight=1.0))
    with pytest.raises(ConfigError, match="no training structure has a stress label"):
        Trainer(tiny_config(_plain_extxyz(tmp_path / "no_stress.extxyz"), tmp_path / "b", stress_weight=1.0))


def test_a_second_run_into_the_same_output_dir_is_refused(tiny_db: Path, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"an earlier run")
    with pytest.raises(ConfigError, match="exists .*new output_dir.*resume.*overwrite: true"):
        Trainer(tiny_config(tiny_db, tmp_path / "run"))
    assert Trainer(tiny_config(tiny_db, tmp_path / "run", overwrite=True)).step == 0
