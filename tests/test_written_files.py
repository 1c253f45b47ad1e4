"""Every structure file a command writes reads back, in ASE and in pymatgen, with the positions, cell, tags
and fixed atoms that were written (extxyz, traj, POSCAR, CIF; the CSV tables too).

The structures come from a small AdsorbML screen, so they carry what broke reading before: pymatgen's
per-site text columns (`bulk_wyckoff`) that the adsorbate atoms lack.
"""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest
from ase.build import bulk
from ase.constraints import FixAtoms
from ase.io import read

from eqv2_calc.adsorbml import SlabSettings, run_adsorbml, write_results
from eqv2_calc.predict import DEMO_MODEL

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _fixed(atoms) -> list[int]:
    return sorted(i for c in atoms.constraints if isinstance(c, FixAtoms) for i in c.get_indices())


def _same(read_back, written, *, tags: bool = True, fixed: bool = True, cell_only_lengths: bool = False) -> None:
    assert read_back.get_chemical_symbols() == written.get_chemical_symbols()
    if cell_only_lengths:  # CIF stores lengths and angles (a standard orientation) and fractional coordinates in [0, 1)
        np.testing.assert_allclose(read_back.cell.cellpar(), written.cell.cellpar(), atol=1e-4)
        shift = read_back.get_scaled_positions(wrap=False) - written.get_scaled_positions(wrap=False)
        np.testing.assert_allclose((shift - np.round(shift)) @ np.array(written.cell), 0.0, atol=1e-5)
    else:
        np.testing.assert_allclose(read_back.get_positions(), written.get_positions(), atol=1e-5)
        np.testing.assert_allclose(np.array(read_back.cell), np.array(written.cell), atol=1e-5)
    if tags:
        assert read_back.get_tags().tolist() == written.get_tags().tolist()
    if fixed:
        assert _fixed(read_back) == _fixed(written)


def _pymatgen_same(structure, written) -> None:
    assert [site.specie.symbol for site in structure] == written.get_chemical_symbols()
    np.testing.assert_allclose(structure.lattice.abc, written.cell.cellpar()[:3], atol=1e-4)
    frac = np.array([site.frac_coords for site in structure])
    delta = frac - written.get_scaled_positions(wrap=False)
    np.testing.assert_allclose(delta - np.round(delta), 0.0, atol=1e-5)


@pytest.fixture(scope="module")
def screened(tmp_path_factory):
    """A tiny *OH on Cu(111) screen and its written results."""
    root = tmp_path_factory.mktemp("written")
    systems = run_adsorbml(bulk("Cu", "fcc", a=3.6, cubic=True), "*OH", DEMO_MODEL, miller=(1, 1, 1),
                           slab_settings=SlabSettings(min_slab_size=4.0, min_ab=5.0), num_random=1, steps=3,
                           device="cpu", progress=False)
    assert any(a.dtype.kind == "U" for a in systems[0].slab.arrays.values())  # pymatgen's bulk_wyckoff
    write_results(systems, root, top_k=2, plot=False)
    return root, systems


def test_adsorb_top_structures_read_back(screened):
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    root, systems = screened
    top = systems[0].top(2)
    assert top
    for rank, candidate in enumerate(top, start=1):
        [extxyz] = root.glob(f"top/*_rank{rank}.extxyz")
        [poscar] = root.glob(f"top/*_rank{rank}.POSCAR")
        _same(read(extxyz), candidate.atoms)
        _same(read(poscar, format="vasp"), candidate.atoms, tags=False)
        _pymatgen_same(AseAtomsAdaptor.get_structure(read(extxyz)), candidate.atoms)
        _pymatgen_same(Structure.from_file(poscar), candidate.atoms)
    with open(root / "adsorbml.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(systems[0].candidates) and all(len(r) == len(rows[0]) and None not in r for r in rows)


@pytest.mark.parametrize("suffix", ["extxyz", "traj", "cif", "POSCAR", "csv"])
def test_predict_output_reads_back(screened, tmp_path, suffix, capsys):
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    from eqv2_calc.cli import main

    _, systems = screened
    written = systems[0].top(1)[0].atoms
    source = tmp_path / "in.extxyz"
    from eqv2_calc.structures import write_structures

    write_structures(source, written)
    out = tmp_path / f"out.{suffix}"
    assert main(["predict", str(source), "-o", str(out), "--device", "cpu", "--quiet"]) == 0
    capsys.readouterr()
    if suffix == "csv":
        with open(out, newline="") as handle:
            [row] = list(csv.DictReader(handle))
        assert row["natoms"] == str(len(written)) and np.isfinite(float(row["energy_eV"]))
        return
    fmt = "vasp" if suffix == "POSCAR" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = read(out, format=fmt)
        structure = (Structure.from_file(out) if suffix in ("cif", "POSCAR")
                     else AseAtomsAdaptor.get_structure(back))
    lossy = suffix in ("cif", "POSCAR")  # neither holds tags; CIF no constraints either
    _same(back, written, tags=not lossy, fixed=suffix != "cif", cell_only_lengths=suffix == "cif")
    if suffix == "cif":
        assert np.allclose(back.get_scaled_positions(), written.get_scaled_positions(), atol=1e-5)
    else:
        _pymatgen_same(structure, written)


def test_results_directory_structures_read_back(screened, tmp_path, capsys):
    from eqv2_calc.cli import main
    from eqv2_calc.structures import write_structures

    _, systems = screened
    written = [c.atoms for c in systems[0].top(2)]
    write_structures(tmp_path / "in.extxyz", written)
    assert main(["relax", str(tmp_path / "in.extxyz"), "--results", str(tmp_path / "out"), "--steps", "2",
                 "--device", "cpu", "--quiet"]) in (0, 1)
    capsys.readouterr()
    back = read(tmp_path / "out" / "structures.extxyz", index=":")
    assert len(back) == len(written)
    for b, w in zip(back, written):
        assert b.get_tags().tolist() == w.get_tags().tolist() and _fixed(b) == _fixed(w)
        np.testing.assert_allclose(np.array(b.cell), np.array(w.cell), atol=1e-6)


def test_every_structure_file_goes_through_the_one_writer():
    """Only `eqv2_calc.structures.write_structures` calls `ase.io.write` (it drops the columns that break reading)."""
    import re
    from pathlib import Path

    import eqv2_calc

    root = Path(eqv2_calc.__file__).parent
    callers = [str(p.relative_to(root)) for p in root.rglob("*.py")
               if re.search(r"from ase\.io import [^\n]*\bwrite\b|ase\.io\.write\(", p.read_text())]
    assert callers == ["structures.py"]
