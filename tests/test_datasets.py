"""Released-dataset formats (fairchem LMDB of PyG Data, old and new; .aselmdb), `evaluate` metrics against a
hand computation, IS2RE, training from these formats, and every bad input of `eqv2 evaluate`."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import add_adsorbate, bulk, fcc111
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms
from ase.io import write
from ase.optimize import BFGS

from eqv2_calc.cli import main
from eqv2_calc.data import DatasetError
from eqv2_calc.data.dataset import load_datasets
from eqv2_calc.data.formats import open_dataset
from eqv2_calc.data.safe_pickle import UnsafePickleError, loads
from eqv2_calc.errors import EnergyReferenceError
from eqv2_calc.evaluation import evaluate
from eqv2_calc.metrics import free_mask
from eqv2_calc.predict import predict
from lmdb_files import data_fields, write_aselmdb, write_lmdb, write_s2ef_lmdb
from test_train import TINY_MODEL


def _labelled(atoms):
    atoms.calc = EMT()
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(apply_constraint=False)}
    if atoms.pbc.all() and atoms.cell.volume > 0 and atoms.info.get("bulk"):
        results["stress"] = atoms.get_stress()
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def _slab(seed: int):
    """O on Cu(111), OC20 tags (0 subsurface, 1 surface, 2 adsorbate), subsurface fixed."""
    slab = fcc111("Cu", (2, 2, 2), vacuum=5.0)
    slab.set_tags(np.where(slab.get_tags() == 1, 1, 0))
    add_adsorbate(slab, "O", 1.8, "fcc")
    slab.set_tags([*slab.get_tags()[:-1], 2])
    slab.set_constraint(FixAtoms(indices=np.flatnonzero(slab.get_tags() == 0)))
    slab.rattle(0.08, seed=seed)
    return _labelled(slab)


def _bulk(seed: int):
    crystal = bulk("Cu", "fcc", a=3.62, cubic=True)
    crystal.info["bulk"] = True
    crystal.rattle(0.05, seed=seed)
    return _labelled(crystal)


def side_effect(path: str) -> None:
    """Called only if an unpickler executes what a pickle asks for: it must never run."""
    Path(path).write_text("executed")


class Malicious:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return side_effect, (self.marker,)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    slabs = [_slab(i) for i in range(3)]
    bulks = [_bulk(i) for i in range(2)]
    initial = _slab(7)
    relaxed = initial.copy()
    relaxed.calc = EMT()
    BFGS(relaxed, logfile=None).run(fmax=0.05, steps=30)
    is2re = dict(y_init=float(initial.calc.results["energy"]), y_relaxed=float(relaxed.get_potential_energy()),
                 pos_relaxed=relaxed.positions.astype(np.float32))
    from torch_geometric.data import Data

    folder = root / "split"
    folder.mkdir()
    write_s2ef_lmdb(folder / "data.0000.lmdb", slabs[:2])
    write_lmdb(folder / "data.0001.lmdb", [Data(**data_fields(slabs[2], sid=2))], length=False)
    write(root / "extra.extxyz", [_bulk(5)])
    return {"slabs": slabs, "bulks": bulks, "root": root, "folder": folder, "extxyz": root / "extra.extxyz",
            "new": write_s2ef_lmdb(root / "s2ef.lmdb", slabs),
            "old": write_s2ef_lmdb(root / "old_pyg.lmdb", slabs, old_pyg=True),
            "aselmdb": write_aselmdb(root / "bulk.aselmdb", bulks),
            "is2re": write_lmdb(root / "is2re.lmdb", [Data(**data_fields(initial, is2re=is2re))]),
            "is2re_ref": is2re}


def _check_same(atoms, reference) -> None:
    np.testing.assert_allclose(atoms.positions, reference.positions, atol=1e-5)  # float32 in the file
    np.testing.assert_allclose(np.array(atoms.cell), np.array(reference.cell), atol=1e-5)
    np.testing.assert_array_equal(atoms.numbers, reference.numbers)
    np.testing.assert_array_equal(atoms.get_tags(), reference.get_tags())
    assert atoms.pbc.all()
    np.testing.assert_array_equal(atoms.constraints[0].get_indices(), reference.constraints[0].get_indices())
    assert atoms.calc.results["energy"] == pytest.approx(reference.calc.results["energy"], abs=1e-9)
    np.testing.assert_allclose(atoms.calc.results["forces"], reference.calc.results["forces"], atol=1e-5)


def test_lmdb_of_new_and_old_pyg_data_and_folder(files) -> None:
    for name in ("new", "old"):
        source = open_dataset(files[name])
        assert (len(source), source.task, source.format) == (3, "s2ef", "fairchem-lmdb")
        assert source.energy_kind == "adsorption"  # an OC20-style file, no oc22 flag or name
        for i, reference in enumerate(files["slabs"]):
            atoms = source[i]
            _check_same(atoms, reference)
            assert atoms.info["sid"] == i and atoms.info["energy_kind"] == "adsorption"
        source.close()
    folder = open_dataset(files["folder"], energy_kind="total")
    assert len(folder) == 3 and folder.key(2).endswith("data.0001.lmdb key b'0'")
    _check_same(folder[2], files["slabs"][2])
    folder.close()


def test_lmdb_in_lmdbs_default_folder_layout(files, tmp_path, capsys) -> None:
    """An LMDB written with lmdb's default subdir=True (a folder holding data.mdb), alone or as the *.lmdb
    entries of a folder, reads like the file layout: through open_dataset, training's loader and the CLI."""
    from torch_geometric.data import Data

    single = write_lmdb(tmp_path / "s2ef_val", [Data(**data_fields(a, sid=i)) for i, a in enumerate(files["slabs"])],
                        subdir=True)
    assert sorted(p.name for p in single.iterdir()) == ["data.mdb", "lock.mdb"]
    source = open_dataset(single, energy_kind="total")
    assert source.format == "fairchem-lmdb" and len(source) == len(files["slabs"])
    assert source.key(1) == f"{single} key b'1'"
    _check_same(source[2], files["slabs"][2])
    source.close()
    folder = tmp_path / "shards"
    folder.mkdir()
    for i, slab in enumerate(files["slabs"][:2]):
        write_lmdb(folder / f"data.{i:04d}.lmdb", [Data(**data_fields(slab, sid=i))], subdir=True)
    assert [a.info["sid"] for a in load_datasets(str(folder))] == [0, 1]
    assert main(["evaluate", "--data", str(single), "--energy-kind", "total", "--limit", "2"]) == 0
    assert f"s2ef on {single} (2 structures, total energies)" in capsys.readouterr().out


def test_reading_needs_no_torch_geometric(files, monkeypatch) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == "torch_geometric"]:
        monkeypatch.setitem(sys.modules, name, None)  # `import torch_geometric...` now raises ImportError
    source = open_dataset(files["new"])
    _check_same(source[1], files["slabs"][1])
    source.close()


def test_restricted_unpickler_never_executes(tmp_path) -> None:
    marker = tmp_path / "marker"
    with pytest.raises(UnsafePickleError, match="test_datasets.side_effect"):
        loads(pickle.dumps(Malicious(marker)))
    with pytest.raises(UnsafePickleError, match="posix.system|os.system"):
        loads(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    assert not marker.exists()


def test_aselmdb_reads_labels_stress_and_constraints(files) -> None:
    source = open_dataset(files["aselmdb"])
    assert (len(source), source.format, source.energy_kind) == (2, "aselmdb", "total")
    atoms = source[1]
    np.testing.assert_allclose(atoms.calc.results["stress"], files["bulks"][1].calc.results["stress"])
    np.testing.assert_allclose(atoms.positions, files["bulks"][1].positions)
    source.close()
    folder = files["root"] / "omat"
    folder.mkdir()
    for i, crystal in enumerate(files["bulks"]):
        write_aselmdb(folder / f"data.{i:04d}.aselmdb", [crystal])
    source = open_dataset(folder)
    assert len(source) == 2 and source.key(1).endswith("data.0001.aselmdb row id=1")
    np.testing.assert_allclose(source[1].positions, files["bulks"][1].positions)
    source.close()


def test_evaluate_metrics_match_a_hand_computation(files, tmp_path) -> None:
    out = tmp_path / "out"
    report = evaluate(files["new"], energy_kind="total", output_dir=out, batch_size=2, progress=False)
    m = report.metrics
    slabs = files["slabs"]
    pred = predict(slabs, progress=False)
    de = np.array([abs(p.energy - a.calc.results["energy"]) for p, a in zip(pred, slabs)])
    masks = [free_mask(a) for a in slabs]
    errors = [p.forces[k] - a.calc.results["forces"][k] for p, a, k in zip(pred, slabs, masks)]
    assert m["energy_mae_eV"] == pytest.approx(de.mean(), abs=1e-6)
    assert m["energy_mae_meV_per_atom"] == pytest.approx(1000 * np.mean(de / 9), abs=1e-4)
    assert m["forces_mae_eV_per_A"] == pytest.approx(np.abs(np.concatenate(errors)).mean(), abs=1e-6)
    cos = [np.sum(p.forces[k] * a.calc.results["forces"][k], 1)
           / (np.linalg.norm(p.forces[k], axis=1) * np.linalg.norm(a.calc.results["forces"][k], axis=1))
           for p, a, k in zip(pred, slabs, masks)]
    assert m["forces_cos"] == pytest.approx(np.concatenate(cos).mean(), abs=1e-6)
    efwt = np.mean([d < 0.02 and np.abs(e).max() < 0.03 for d, e in zip(de, errors)])
    assert m["efwt"] == efwt
    oxygen = np.concatenate([e[a.numbers[k] == 8] for e, a, k in zip(errors, slabs, masks)])
    assert m["per_element"]["O"]["forces_mae_eV_per_A"] == pytest.approx(np.abs(oxygen).mean(), abs=1e-6)
    assert set(m["per_tag"]) == {"1", "2"} and m["free_atoms"] == sum(k.sum() for k in masks)
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "parity.png", "structures.csv"]
    assert json.loads((out / "metrics.json").read_text())["efwt"] == efwt

    bulks = files["bulks"]
    report = evaluate(files["aselmdb"], progress=False)
    stress = [np.abs(p.stress - a.calc.results["stress"]) for p, a in zip(predict(bulks, progress=False), bulks)]
    # 3x3 mean: diagonal once, off-diagonal twice, over 9
    expected = np.mean([(s[:3].sum() + 2 * s[3:].sum()) / 9 for s in stress])
    assert report.metrics["stress_mae_eV_per_A3"] == pytest.approx(expected, abs=1e-7)


def test_is2re_relaxes_and_compares_relaxed_energy(files) -> None:
    report = evaluate(files["is2re"], energy_kind="total", steps=5, progress=False)
    m, row = report.metrics, report.rows[0]
    assert m["task"] == "is2re" and "no DFT single point" in m["measured"]
    assert row["relaxed_energy_ref_eV"] == pytest.approx(files["is2re_ref"]["y_relaxed"])
    assert m["relaxed_energy_mae_eV"] == pytest.approx(abs(row["relaxed_energy_pred_eV"] - row["relaxed_energy_ref_eV"]))
    assert row["initial_energy_ref_eV"] == pytest.approx(files["is2re_ref"]["y_init"])


def test_docs_state_the_is2re_step_limit_the_code_uses(files) -> None:
    """docs/datasets.md's "at most N steps" is `evaluate`'s default, and the report line says the same."""
    import inspect
    import re

    from eqv2_calc.evaluation import IS2RE_STEPS

    text = (Path(__file__).parents[1] / "docs" / "datasets.md").read_text()
    (stated,) = re.findall(r"IS2RE data: the model relaxes every initial structure \(batched FIRE, fmax 0.05 eV/Å, "
                           r"at most (\d+) steps\)", text)
    assert int(stated) == IS2RE_STEPS == inspect.signature(evaluate).parameters["steps"].default == 300
    report = evaluate(files["is2re"], energy_kind="total", progress=False)
    assert f"at most {stated} steps" in report.metrics["measured"]


def test_adsorption_labels_with_a_total_energy_model_are_refused(files, tmp_path) -> None:
    with pytest.raises(EnergyReferenceError, match="predicts total energies but the data holds adsorption"):
        evaluate(files["new"], output_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_train_reads_lmdb_and_aselmdb_mixed_with_extxyz(files, tmp_path) -> None:
    from eqv2_calc.train import TrainConfig, Trainer

    data = [{"path": str(files["new"]), "split": "train"}, {"path": str(files["aselmdb"]), "split": "train"},
            {"path": str(files["old"]), "split": "val", "limit": 2}, str(files["extxyz"])]
    assert len(load_datasets(data, split="val")) == 2
    config = TrainConfig(data=data, output_dir=str(tmp_path / "run"), model=TINY_MODEL, epochs=1, batch_size=4,
                         device="cpu")
    trainer = Trainer(config)
    assert len(trainer.train_set) == 5 and len(trainer.val_set) == 2
    assert trainer.fit().exists()


def test_a_data_entry_can_take_a_repeatable_random_sample(tmp_path) -> None:
    """`sample: N` keeps N of a file's structures in the split asked for, the same ones every time (all of them
    when the file has fewer); a bad count is a DatasetError naming it."""
    from ase.io import write

    path = tmp_path / "slabs.extxyz"
    write(path, [_labelled(_slab(seed)) for seed in range(6)])
    whole = load_datasets([str(path)])
    entry = {"path": str(path), "sample": 4}
    first, again = load_datasets([entry]), load_datasets([entry])
    assert len(whole) == 6 and len(first) == 4 and [a.positions.tolist() for a in first] == [a.positions.tolist() for a in again]
    assert len(load_datasets([{**entry, "sample": 10 * len(whole)}])) == len(whole)
    with pytest.raises(DatasetError, match="sample must be a whole number"):
        load_datasets([{**entry, "sample": 0}])


def _bad_files(root: Path, marker: Path) -> dict[str, tuple[Path, list[str], str]]:
    """name -> (data path, extra CLI flags, text the one-line error must hold)."""
    from torch_geometric.data import Data

    slab = _slab(0)
    no_force = {k: v for k, v in data_fields(slab).items() if k != "force"}
    return {
        "missing": (root / "nothing.lmdb", [], "nothing.lmdb does not exist"),
        "empty": (write_lmdb(root / "empty.lmdb", []), [], "empty.lmdb holds no structures"),
        "not_data": (write_lmdb(root / "dict.lmdb", [{"pos": 1}]), [], "dict.lmdb key b'0': not a pickled"),
        "other_class": (write_lmdb(root / "evil.lmdb", [Malicious(marker)]), [],
                        "evil.lmdb key b'0': the pickle asks for test_datasets.side_effect"),
        "no_labels": (write_lmdb(root / "labels.lmdb", [Data(**data_fields(slab)), Data(**no_force)]), [],
                      "labels.lmdb key b'1' (Cu8O) has no forces"),
        "limit": (write_s2ef_lmdb(root / "short.lmdb", [slab]), ["--limit", "3"],
                  "short.lmdb: limit 3 is beyond the data, which holds 1 structures (the last is"),
    }


def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys) -> None:
    marker = tmp_path / "marker"
    for name, (path, flags, message) in _bad_files(tmp_path, marker).items():
        out = tmp_path / f"out_{name}"
        code = main(["evaluate", "--data", str(path), "-o", str(out), "--energy-kind", "total", "--quiet", *flags])
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("eqv2: error")]
        assert code == 2 and len(errors) == 1 and message in errors[0], (name, errors)
        assert not out.exists() or not any(out.iterdir()), name
    assert not marker.exists()
