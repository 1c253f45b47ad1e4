"""eqv2_calc.data: the EMT dataset generator and the db/extxyz reader with its bad-input errors."""

from __future__ import annotations

import math
import sqlite3
from collections import defaultdict

import ase.db
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from eqv2_calc.data import DatasetError, check_elements, load_structures
from eqv2_calc.data.dataset import attach_labels
from eqv2_calc.data.emt import ADSORBATES, METALS, generate_system, make_emt_dataset, system_specs

TINY = dict(n_systems=10, seed=3, progress=False, n_relax=3, n_md=2, md_interval=5)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 10-system EMT database (a few seconds) and its summary."""
    path = tmp_path_factory.mktemp("emt") / "tiny.db"
    summary = make_emt_dataset(path, **TINY)
    return path, summary


def test_tiny_generation_summary(tiny):
    path, summary = tiny
    structures = load_structures(path)
    assert summary["n_frames"] == len(structures) == ase.db.connect(path).count()
    assert summary["n_systems"] == len({a.info["system_id"] for a in structures}) == 10
    assert set(summary["kind"]["systems"]) == {"bulk", "slab", "adsorbate"}
    assert max(len(a) for a in structures) <= 40
    for atoms in structures:
        assert atoms.pbc.all()
        if atoms.info["kind"] == "bulk":
            assert atoms.calc.results["stress"].shape == (6,)
        else:
            assert "stress" not in atoms.calc.results
            tags = atoms.get_tags()
            assert set(tags) <= {0, 1, 2} and (tags == 1).any() and (tags == 0).any()
            fixed = atoms.constraints[0].get_indices()
            np.testing.assert_array_equal(np.sort(fixed), np.flatnonzero(tags == 0))
            assert ((tags == 2).sum() > 0) == (atoms.info["kind"] == "adsorbate")
    assert not list(path.parent.glob(".*tmp*")), "temporary file left behind"


def test_split_is_by_system(tiny):
    path, _ = tiny
    splits = defaultdict(set)
    for atoms in load_structures(path):
        splits[atoms.info["system_id"]].add(atoms.info["split"])
    assert all(len(s) == 1 for s in splits.values())
    assert {s for v in splits.values() for s in v} == {"train", "val", "test"}
    by_split = {name: load_structures(path, split=name) for name in ("train", "val", "test")}
    ids = {name: {a.info["system_id"] for a in frames} for name, frames in by_split.items()}
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    assert sum(map(len, by_split.values())) == len(load_structures(path))


def test_default_specs_cover_everything_and_split_80_10_10():
    specs = system_specs(500, seed=0)
    assert [s.system_id for s in specs] == [s.system_id for s in system_specs(500, seed=0)]
    assert len({s.system_id for s in specs}) == 500
    kinds = {k: [s for s in specs if s.kind == k] for k in ("bulk", "slab", "adsorbate")}
    assert {s.metal for s in kinds["slab"]} == set(METALS)
    assert {s.adsorbate for s in kinds["adsorbate"]} == set(ADSORBATES)
    assert {s.facet for s in kinds["adsorbate"]} == {"fcc111", "fcc100", "fcc110"}
    for members in kinds.values():
        fraction = {name: sum(s.split == name for s in members) / len(members) for name in ("train", "val", "test")}
        assert fraction["train"] == pytest.approx(0.8, abs=0.02)
        assert fraction["val"] == pytest.approx(0.1, abs=0.02)


def test_generation_is_reproducible():
    spec = next(s for s in system_specs(20, seed=5) if s.kind == "adsorbate")
    a = generate_system(spec, seed=5, n_relax=2, n_md=1, md_interval=3)
    b = generate_system(spec, seed=5, n_relax=2, n_md=1, md_interval=3)
    c = generate_system(spec, seed=6, n_relax=2, n_md=1, md_interval=3)
    assert len(a) == len(b)
    for (fa, ka), (fb, kb) in zip(a, b):
        assert ka == kb
        np.testing.assert_array_equal(fa.positions, fb.positions)
        np.testing.assert_array_equal(fa.calc.results["forces"], fb.calc.results["forces"])
    assert not np.array_equal(a[0][0].positions, c[0][0].positions)


def test_labels_equal_emt_recomputed(tiny):
    path, _ = tiny
    structures = load_structures(path)
    picks = [structures[i] for i in np.linspace(0, len(structures) - 1, 6).astype(int)]
    for atoms in picks:
        ref = atoms.copy()
        ref.calc = EMT()
        assert atoms.calc.results["energy"] == pytest.approx(ref.get_potential_energy(), abs=1e-8)
        # Stored forces are raw EMT forces, not zeroed on FixAtoms atoms.
        np.testing.assert_allclose(atoms.calc.results["forces"], ref.get_forces(apply_constraint=False), atol=1e-8)
        if "stress" in atoms.calc.results:
            np.testing.assert_allclose(atoms.calc.results["stress"], ref.get_stress(), atol=1e-10)


def test_read_back_from_extxyz(tiny, tmp_path):
    path, _ = tiny
    from_db = load_structures(path)
    out = tmp_path / "copy.extxyz"
    write(out, from_db)
    from_xyz = load_structures(out)
    assert len(from_xyz) == len(from_db)
    for a, b in zip(from_db, from_xyz):
        assert b.info["system_id"] == a.info["system_id"] and b.info["split"] == a.info["split"]
        np.testing.assert_allclose(b.positions, a.positions, atol=1e-6)
        assert b.calc.results["energy"] == pytest.approx(a.calc.results["energy"], abs=1e-6)
        np.testing.assert_allclose(b.calc.results["forces"], a.calc.results["forces"], atol=1e-6)
        assert ("stress" in b.calc.results) == ("stress" in a.calc.results)
    assert len(load_structures(out, split="val")) == len(load_structures(path, split="val"))


def test_generator_writes_extxyz_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "d.extxyz"
    summary = make_emt_dataset(out, n_systems=2, seed=0, progress=False, n_relax=2, n_md=1, md_interval=2)
    structures = load_structures(out)
    assert len(structures) == summary["n_frames"]
    assert all("system_id" in a.info and "kind" in a.info for a in structures)
    with pytest.raises(FileExistsError, match="overwrite"):
        make_emt_dataset(out, n_systems=2, progress=False)


def _copper(**results) -> Atoms:
    atoms = bulk("Cu", cubic=True)
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def test_db_row_without_forces_is_a_clear_error(tmp_path):
    path = tmp_path / "noforces.db"
    with ase.db.connect(path) as db:
        db.write(_copper(energy=-1.0, forces=np.zeros((4, 3))), system_id="ok")
        db.write(_copper(energy=-2.0), system_id="bad")
    with pytest.raises(DatasetError, match=r"noforces\.db row id=2 .*has no forces"):
        load_structures(path)
    assert len(load_structures(path, require=("energy",))) == 2


def test_nan_labels_are_clear_errors(tmp_path):
    path = tmp_path / "nan.db"
    with ase.db.connect(path) as db:
        db.write(_copper(energy=math.nan, forces=np.zeros((4, 3))))
    with pytest.raises(DatasetError, match=r"nan\.db row id=1 .*stores a NaN energy as missing.* has no energy"):
        load_structures(path)
    xyz = tmp_path / "nanenergy.extxyz"
    write(xyz, [_copper(energy=math.nan, forces=np.zeros((4, 3)))])
    with pytest.raises(DatasetError, match=r"nanenergy\.extxyz structure index 0 \(Cu4\): energy is nan eV"):
        load_structures(xyz)
    xyz = tmp_path / "nanforces.extxyz"
    forces = np.zeros((4, 3))
    forces[2, 1] = np.nan
    write(xyz, [_copper(energy=0.0, forces=np.zeros((4, 3))), _copper(energy=0.0, forces=forces)])
    with pytest.raises(DatasetError, match=r"structure index 1 .*NaN/inf on 1 atom\(s\), first atom index 2"):
        load_structures(xyz)


def test_shape_and_missing_stress_errors():
    with pytest.raises(DatasetError, match=r"forces have shape \(3, 3\), expected \(4, 3\)"):
        attach_labels(bulk("Cu", cubic=True), {"energy": 0.0, "forces": np.zeros((3, 3))}, ("energy",), "x")
    with pytest.raises(DatasetError, match="has no stress"):
        attach_labels(bulk("Cu", cubic=True), {"energy": 0.0, "forces": np.zeros((4, 3))},
                       ("energy", "forces", "stress"), "x")
    atoms = attach_labels(bulk("Cu", cubic=True), {"energy": 1.0, "stress": np.eye(3)}, ("energy",), "x")
    np.testing.assert_array_equal(atoms.calc.results["stress"], [1, 1, 1, 0, 0, 0])


def test_empty_and_foreign_files_are_clear_errors(tmp_path):
    for name in ("empty.db", "empty.extxyz"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(DatasetError, match=f"{name} is empty"):
            load_structures(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_structures(tmp_path / "missing.db")
    with sqlite3.connect(tmp_path / "foreign.db") as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(DatasetError, match="not an ASE database"):
        load_structures(tmp_path / "foreign.db")
    (tmp_path / "text.db").write_text("hello")
    with pytest.raises(DatasetError, match="not an SQLite file"):
        load_structures(tmp_path / "text.db")
    empty_db = tmp_path / "norows.db"
    with ase.db.connect(empty_db) as db:
        db.delete([db.write(_copper(energy=0.0, forces=np.zeros((4, 3))))])
    with pytest.raises(DatasetError, match="no rows"):
        load_structures(empty_db)


def test_unknown_split_lists_the_available_ones(tiny):
    path, _ = tiny
    with pytest.raises(DatasetError, match=r"no row has split='validation'.*'test', 'train', 'val'"):
        load_structures(path, split="validation")


def test_check_elements(tiny):
    path, _ = tiny
    structures = load_structures(path)
    seen = check_elements(structures, 90)
    assert seen and set(seen) <= {1, 6, 7, 8, 13, 28, 29, 46, 47, 78, 79}
    gold = bulk("Au", cubic=True)
    gold.info["system_id"] = "gold-cell"
    with pytest.raises(DatasetError, match=r"Au \(Z=79\) in 1 structure\(s\), first structure 1 .*gold-cell"):
        check_elements([bulk("Cu"), gold], {"Cu", "O"})
    with pytest.raises(DatasetError, match=r"(?s)max_num_elements=10.*Cu \(Z=29\) in 2 structure"):
        check_elements([bulk("Cu"), bulk("Cu", cubic=True)], 10)
    assert check_elements([bulk("Cu")], [29, 8]) == [29]


ACTIVE = dict(n_systems=5, seed=1, n_keep=3, n_relax=2, n_md=1, steps=6, progress=False)


def test_active_frames_are_the_models_relaxations_labelled_by_emt(tmp_path):
    """`eqv2 data active`: EMT labels on the model's own BFGS path, beside the usual EMT frames."""
    from eqv2_calc.data.active import make_active_dataset
    from eqv2_calc.predict import DEMO_MODEL

    path = tmp_path / "active.db"
    summary = make_active_dataset(path, DEMO_MODEL, **ACTIVE)
    structures = load_structures(path)
    assert summary["n_frames"] == len(structures) and summary["sampling"]["model_relax"] > 0
    assert {a.info["kind"] for a in structures} == {"adsorbate"}
    assert {a.info["split"] for a in structures} <= {"train", "val"}
    assert all(a.info["system_id"].startswith("seed1-") for a in structures)
    model_frames = [a for a in structures if a.info["sampling"] == "model_relax"]
    by_system = defaultdict(list)
    for atoms in model_frames:
        by_system[atoms.info["system_id"]].append(atoms.info["step"])
    assert all(steps[0] == 0 and len(steps) <= 3 and max(steps) <= 6 for steps in by_system.values())
    for atoms in model_frames[:3]:
        stored = atoms.calc.results
        atoms.calc = EMT()
        assert stored["energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-9)
        np.testing.assert_allclose(stored["forces"], atoms.get_forces(apply_constraint=False), atol=1e-9)
    assert 0.0 < summary["model_force_mae_on_own_relaxations_eV_per_A"] < 5.0
    with pytest.raises(FileExistsError):
        make_active_dataset(path, DEMO_MODEL, **ACTIVE)

    parallel = tmp_path / "parallel.db"
    make_active_dataset(parallel, DEMO_MODEL, **ACTIVE, workers=2)
    again = load_structures(parallel)
    assert [a.info["system_id"] for a in again] == [a.info["system_id"] for a in structures]
    np.testing.assert_allclose([a.calc.results["energy"] for a in again],  # workers run the model on one
                               [a.calc.results["energy"] for a in structures], atol=1e-4)  # thread: round-off


def test_neb_paths_are_emt_bands_of_hops_read_back_through_the_cli(tmp_path):
    """`eqv2 data neb`: per hop its relaxed ends and three bands of EMT's own NEB, EMT labels, split per hop;
    the file the command writes reads back as training data."""
    from eqv2_calc.cli import main
    from eqv2_calc.data.neb_paths import hop_specs

    specs = hop_specs(12, seed=0)
    assert [s.split for s in specs[:3]] == ["test", "val", "train"]
    assert {s.kind for s in specs} == {"surface_hop", "vacancy_hop"}
    path = tmp_path / "neb.db"
    assert main(["data", "neb", str(path), "--n-hops", "3", "--images", "3", "--no-progress"]) == 0
    with ase.db.connect(path) as db:
        rows = list(db.select())
    by_hop = defaultdict(list)
    for row in rows:
        by_hop[row.system_id].append(row)
    assert len(by_hop) == 3
    for hop_rows in by_hop.values():
        assert sorted(r.sampling for r in hop_rows) == ["neb_end"] * 2 + ["neb_final"] * 3 + ["neb_idpp"] * 3 + ["neb_mid"] * 3
        assert len({r.split for r in hop_rows}) == 1
        final = [r for r in hop_rows if r.sampling == "neb_final"]
        assert max(r.energy for r in final) > min(r.energy for r in hop_rows if r.sampling == "neb_end")
    atoms = rows[-1].toatoms()
    atoms.calc = EMT()
    assert atoms.get_potential_energy() == pytest.approx(rows[-1].energy, abs=1e-9)
    assert len(load_structures(path)) == len(rows)
    with pytest.raises(SystemExit) as refused:  # the file exists
        main(["data", "neb", str(path), "--n-hops", "1", "--no-progress"])
    assert refused.value.code == 2
