"""Labelled structures, one at a time: the labels' checks (`attach_labels`), ASE database rows
(`row_to_atoms`) and whole files that ase.io or ASE's SQLite database reads (`read_labelled_file`).

The shared ground of `eqv2_calc.data.dataset` (training data) and `eqv2_calc.data.formats` (streamed
datasets); it imports neither. Labels sit in a `SinglePointCalculator`: ``energy`` (and ``free_energy``) eV,
``forces`` ``(natoms, 3)`` eV/Angstrom as stored (not zeroed by a `FixAtoms`), ``stress`` ``(6,)`` Voigt
eV/Angstrom^3 (ASE sign).
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import full_3x3_to_voigt_6_stress

from ..errors import EquiformerV2Error

LABELS = ("energy", "forces", "stress")
_SQLITE_MAGIC = b"SQLite format 3\x00"


class DatasetError(EquiformerV2Error, ValueError):
    """A training/evaluation file is empty, unreadable, or holds a structure with missing or bad labels."""


class SplitNotFoundError(DatasetError):
    """A dataset file has structures, but none in the requested split."""


def read_labelled_file(path: Path, split: str | None, require: tuple[str, ...]) -> list[Atoms]:
    """Every labelled structure of an ASE SQLite database or an ase.io file (the file's first bytes decide),
    in `split` (None: all).

    Raises:
        DatasetError, SplitNotFoundError: as `eqv2_calc.data.dataset.load_structures`.
    """
    if path.stat().st_size == 0:
        raise DatasetError(f"{path} is empty (0 bytes): no structures to read")
    with path.open("rb") as fh:
        is_sqlite = fh.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    if path.suffix == ".db" and not is_sqlite:
        raise DatasetError(f"{path} has a .db suffix but is not an SQLite file (ASE database)")
    return _read_db(path, split, require) if is_sqlite else _read_ase_io(path, split, require)


def connect_ase_sqlite(path: Path):
    """An ASE SQLite database opened after checking (read-only) that it is one and has rows."""
    import ase.db

    # Open read-only first: ase.db.connect would silently add its tables to a foreign SQLite file.
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise DatasetError(f"{path}: cannot read the SQLite file ({exc})") from exc
    if "systems" not in tables:
        raise DatasetError(f"{path} is an SQLite file but not an ASE database (no 'systems' table)")

    db = ase.db.connect(path, type="db")
    if db.count() == 0:
        raise DatasetError(f"{path} is an ASE database with no rows: no structures to read")
    return db


def _read_db(path: Path, split: str | None, require: tuple[str, ...]) -> list[Atoms]:
    db = connect_ase_sqlite(path)
    rows = list(db.select(split=split) if split is not None else db.select())
    if not rows:
        available = sorted({str(r.get("split")) for r in db.select(columns=["key_value_pairs"])})
        raise SplitNotFoundError(f"{path}: no row has split={split!r}; the rows' split values are {available}")

    return [row_to_atoms(row, path, require) for row in rows]


def row_to_atoms(row, path: Path, require: tuple[str, ...]) -> Atoms:
    """An ASE database row (SQLite or aselmdb) as labelled `Atoms` (see the module docstring)."""
    where = f"{path} row id={row.id}"
    results = {}
    for name in ("energy", "free_energy", "forces", "stress"):
        value = row.get(name)
        if value is not None:
            results[name] = value
    atoms = row.toatoms()
    atoms.calc = None
    atoms.info.update(row.key_value_pairs)
    atoms.info.setdefault("system_id", f"{path.name}@row {row.id}")
    atoms.info["origin"] = f"{path.name}@row {row.id}"
    if "energy" in require and "energy" not in results:
        where += " (an ASE database stores a NaN energy as missing)"
    return attach_labels(atoms, results, require, where)


def _read_ase_io(path: Path, split: str | None, require: tuple[str, ...]) -> list[Atoms]:
    from ase.io import read

    try:
        images = read(path, index=":")
    except Exception as exc:  # ase raises many types (StopIteration, UnknownFileTypeError, ValueError...)
        raise DatasetError(f"{path}: ase.io cannot read it ({type(exc).__name__}: {exc})") from exc
    if not isinstance(images, list):
        images = [images]
    if not images:
        raise DatasetError(f"{path} holds no structures")

    out = []
    for i, atoms in enumerate(images):
        if split is not None and atoms.info.get("split") != split:
            continue
        where = f"{path} structure index {i}"
        results = dict(atoms.calc.results) if atoms.calc is not None else {}
        for name in ("energy", "free_energy", "stress"):
            if name not in results and name in atoms.info:
                results[name] = atoms.info.pop(name)
        if "forces" not in results and "forces" in atoms.arrays:
            results["forces"] = atoms.arrays.pop("forces")
        atoms.calc = None
        atoms.info.setdefault("system_id", f"{path.name}@{i}")
        atoms.info["origin"] = f"{path.name}@{i}"
        out.append(attach_labels(atoms, results, require, where))
    if not out:
        available = sorted({str(a.info.get("split")) for a in images})
        raise SplitNotFoundError(f"{path}: no structure has split={split!r}; the structures' split values are "
                           f"{available}")
    return out


def attach_labels(atoms: Atoms, results: dict, require: tuple[str, ...], where: str) -> Atoms:
    """Validate `results` (units: eV, eV/Angstrom, eV/Angstrom^3) and attach them as a SinglePointCalculator."""
    natoms = len(atoms)
    if natoms == 0:
        raise DatasetError(f"{where}: the structure has no atoms")
    missing = [r for r in require if r not in results]
    if missing:
        have = [k for k in LABELS if k in results] or ["none"]
        raise DatasetError(f"{where} ({atoms.get_chemical_formula()}) has no {' and no '.join(missing)} "
                           f"(labels present: {', '.join(have)}); every structure needs {', '.join(require)}")
    labels: dict = {}
    for name in ("energy", "free_energy"):
        if name in results:
            try:
                value = float(np.asarray(results[name]).reshape(()))
            except (TypeError, ValueError) as exc:
                raise DatasetError(f"{where}: {name} must be one number in eV, got {results[name]!r}") from exc
            if not math.isfinite(value):
                raise DatasetError(f"{where} ({atoms.get_chemical_formula()}): {name} is {value} eV")
            labels[name] = value
    if "energy" not in labels and "free_energy" in labels:
        labels["energy"] = labels["free_energy"]
    if "energy" in labels:
        labels.setdefault("free_energy", labels["energy"])
    if "forces" in results:
        forces = np.array(results["forces"], dtype=float)
        if forces.shape != (natoms, 3):
            raise DatasetError(f"{where}: forces have shape {forces.shape}, expected ({natoms}, 3) for "
                               f"{natoms} atoms")
        bad = ~np.isfinite(forces).all(axis=1)
        if bad.any():
            raise DatasetError(f"{where} ({atoms.get_chemical_formula()}): forces are NaN/inf on "
                               f"{int(bad.sum())} atom(s), first atom index {int(np.argmax(bad))}")
        labels["forces"] = forces
    if "stress" in results:
        stress = np.array(results["stress"], dtype=float)
        if stress.shape == (3, 3):
            stress = full_3x3_to_voigt_6_stress(stress)
        if stress.shape != (6,):
            raise DatasetError(f"{where}: stress has shape {stress.shape}, expected (6,) Voigt or (3, 3)")
        if not np.isfinite(stress).all():
            raise DatasetError(f"{where} ({atoms.get_chemical_formula()}): stress holds NaN/inf: {stress}")
        labels["stress"] = stress
    atoms.calc = SinglePointCalculator(atoms, **labels)
    return atoms
