"""Labelled structures from an ASE database (SQLite ``.db``) or any file `ase.io` reads (extxyz, traj, ...).

Every structure comes back as an `ase.Atoms` whose labels sit in a `SinglePointCalculator`:

- ``energy`` (and ``free_energy``, the same value when the file has none): total energy, eV;
- ``forces``: ``(natoms, 3)``, eV/Angstrom, as stored (raw: a `FixAtoms` constraint is kept on the
  Atoms, but the stored forces of fixed atoms are *not* zeroed; read them with
  ``atoms.calc.results["forces"]`` or ``atoms.get_forces(apply_constraint=False)``);
- ``stress``: ``(6,)`` Voigt xx yy zz yz xz xy, eV/Angstrom^3, ASE sign convention, when present.

``atoms.info`` holds the row's key-value pairs (ASE db) or the file's info keys, plus
``system_id`` (the stored one, else one per structure) and ``origin`` ("file.db@row 12",
"file.extxyz@3") for error messages.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols

from .formats import open_dataset
from .labels import LABELS, DatasetError, SplitNotFoundError, attach_labels, read_labelled_file

__all__ = ["DatasetEntry", "DatasetError", "SplitNotFoundError", "attach_labels", "check_elements", "dataset_entry",
           "label_forces", "label_stress", "load_datasets", "load_structures"]

def load_structures(path: str | os.PathLike, split: str | None = None,
                    require: Iterable[str] = ("energy", "forces"), limit: int | None = None) -> list[Atoms]:
    """Read every labelled structure of `path` (an ASE database, a fairchem LMDB or an ase.io file).

    Args:
        path: ``.db`` ASE SQLite database (labels from each row's stored calculator results), a
            fairchem ``*.lmdb`` file or folder of them, an ``.aselmdb`` (see `eqv2_calc.data.formats`),
            or any file `ase.io.read` understands (labels from ``atoms.calc`` as ase reads it, else
            ``atoms.info["energy"]``/``["stress"]`` and ``atoms.arrays["forces"]``).
        split: keep only structures whose ``split`` key (db key-value pair or info key) equals it,
            e.g. "train", "val", "test"; None keeps all.
        require: labels every structure must have, among "energy", "forces", "stress".
        limit: read only the first `limit` structures of the file (None: all).

    Returns:
        A list of `Atoms` with labels in a `SinglePointCalculator` (see the module docstring).

    Raises:
        FileNotFoundError: `path` does not exist.
        DatasetError: empty file, no structure in `split`, a structure missing a required label,
            NaN/inf labels, forces or stress of the wrong shape. The message names the file and
            the row id (db) or index (other files).
    """
    require = tuple(require)
    unknown = [r for r in require if r not in LABELS]
    if unknown:
        raise ValueError(f"require={require}: unknown label(s) {unknown}; choose among {LABELS}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset file {path} does not exist")
    if path.is_dir() or path.suffix in (".lmdb", ".aselmdb"):
        return _read_streamed(path, split, require, limit)
    return read_labelled_file(path, split, require)[:limit]


def _read_streamed(path: Path, split: str | None, require: tuple[str, ...], limit: int | None) -> list[Atoms]:
    """The first `limit` structures of a fairchem LMDB (file or folder) or an .aselmdb, in `split`."""
    source = open_dataset(path, require=require)
    try:
        structures = source[:limit]
    finally:
        source.close()
    if split is None:
        return structures
    kept = [atoms for atoms in structures if atoms.info.get("split") == split]
    if not kept:
        raise SplitNotFoundError(f"{path}: no structure has split={split!r}; give the whole file a split in the "
                                 f"training config: data: [{{path: {path}, split: {split}}}]")
    return kept


DatasetEntry = str | os.PathLike | dict  # a path, or {"path": ..., "split": ..., "limit": ..., "sample": ...}


def load_datasets(paths: DatasetEntry | Sequence[DatasetEntry], split: str | None = None,
                  require: Iterable[str] = ("energy", "forces")) -> list[Atoms]:
    """`load_structures` over one file or several, concatenated in order.

    An entry is a path, or a dict ``{"path": ..., "split": "train", "limit": 1000}``: ``split`` puts every
    structure of the file in that split (fairchem LMDBs and .aselmdb files are split by file, not by row),
    ``limit`` reads only the file's first structures, ``sample`` keeps a random sample of that many of the
    file's structures in `split` (seeded by the path and split, so it repeats; all of them if it has fewer), so
    one file can be weighted down against another.
    With several files, one without structures in `split` adds none (e.g. a train-only supplement);
    only a union without any raises.

    Raises:
        SplitNotFoundError: no file has a structure in `split` (the message names each file's splits).
        FileNotFoundError, DatasetError: as `load_structures`, for any of the files.
    """
    if isinstance(paths, (str, os.PathLike, dict)):
        paths = [paths]
    structures: list[Atoms] = []
    missing: list[str] = []
    for entry in paths:
        path, assigned, limit, sample = dataset_entry(entry)
        if assigned is not None and split is not None and assigned != split:
            missing.append(f"{path} is the {assigned!r} split")
            continue
        try:
            loaded = load_structures(path, split if assigned is None else None, require, limit)
        except SplitNotFoundError as exc:
            missing.append(str(exc))
            continue
        if sample is not None and sample < len(loaded):
            picked = random.Random(f"{path}:{split}").sample(range(len(loaded)), sample)
            loaded = [loaded[i] for i in sorted(picked)]
        structures += loaded
    if not structures:
        raise SplitNotFoundError("; ".join(missing) or "no dataset files given")
    return structures


def dataset_entry(entry: DatasetEntry) -> tuple[str, str | None, int | None, int | None]:
    """(path, split or None, limit or None, sample or None) of a `load_datasets` entry.

    Raises:
        DatasetError: a dict entry without a path, with unknown keys, or with a bad split or limit.
    """
    if isinstance(entry, (str, os.PathLike)):
        return str(entry), None, None, None
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
        raise DatasetError(f"data entry {entry!r} must be a path or a dict with a 'path'")
    unknown = sorted(set(entry) - {"path", "split", "limit", "sample"})
    if unknown:
        raise DatasetError(f"data entry {entry!r}: unknown key(s) {unknown}; allowed: path, split, limit, sample")
    split, limit, sample = entry.get("split"), entry.get("limit"), entry.get("sample")
    if split is not None and not (isinstance(split, str) and split):
        raise DatasetError(f"data entry {entry!r}: split must be a name such as train or val")
    for name, value in (("limit", limit), ("sample", sample)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise DatasetError(f"data entry {entry!r}: {name} must be a whole number >= 1")
    return entry["path"], split, limit, sample


def label_forces(atoms: Atoms) -> np.ndarray:
    """The stored forces `(natoms, 3)`, eV/Angstrom, of every atom: raw, a `FixAtoms` constraint does not zero
    them (`atoms.get_forces()` would, and training on those zeros distorts the potential-energy surface)."""
    return atoms.get_forces(apply_constraint=False)


def label_stress(atoms: Atoms) -> np.ndarray:
    """The stored stress `(3, 3)`, eV/Angstrom^3 (ASE sign), untouched by constraints."""
    return atoms.get_stress(voigt=False, apply_constraint=False)


def check_elements(atoms_list: Iterable[Atoms], allowed: int | Iterable[int | str]) -> list[int]:
    """Check that every structure only holds elements the model knows; return the sorted atomic numbers seen.

    Args:
        atoms_list: structures (e.g. from `load_structures`).
        allowed: the model's ``max_num_elements`` (an int: atomic numbers 1 .. max_num_elements - 1
            are embedded, as in EquiformerV2's ``nn.Embedding(max_num_elements, ...)``), or a
            collection of allowed element symbols / atomic numbers.

    Raises:
        DatasetError: naming each unknown element, how many structures hold it and the first one
            (index, formula, ``origin`` and ``system_id`` from ``atoms.info``).
    """
    if isinstance(allowed, (int, np.integer)) and not isinstance(allowed, bool):
        max_z = int(allowed)
        is_ok = lambda z: 1 <= z < max_z  # noqa: E731
        rule = f"the model embeds atomic numbers 1-{max_z - 1} (max_num_elements={max_z})"
    else:
        allowed_z = set()
        for item in allowed:
            if isinstance(item, str):
                if item not in atomic_numbers:
                    raise ValueError(f"allowed element {item!r} is not an element symbol")
                allowed_z.add(atomic_numbers[item])
            else:
                allowed_z.add(int(item))
        is_ok = allowed_z.__contains__
        rule = "the model knows " + " ".join(_symbol(z) for z in sorted(allowed_z))

    seen: set[int] = set()
    offenders: dict[int, list] = {}  # Z -> [count, first index, first atoms]
    for i, atoms in enumerate(atoms_list):
        numbers = set(int(z) for z in np.unique(atoms.numbers))
        seen |= numbers
        for z in numbers:
            if not is_ok(z):
                entry = offenders.setdefault(z, [0, i, atoms])
                entry[0] += 1
    if offenders:
        lines = []
        for z, (count, i, atoms) in sorted(offenders.items()):
            about = [atoms.get_chemical_formula()]
            about += [f"{key}={atoms.info[key]}" for key in ("origin", "system_id") if key in atoms.info]
            lines.append(f"{_symbol(z)} (Z={z}) in {count} structure(s), first structure {i} ({', '.join(about)})")
        raise DatasetError("structures hold elements the model does not know; " + rule + ":\n  "
                           + "\n  ".join(lines))
    return sorted(seen)


def _symbol(z: int) -> str:
    return chemical_symbols[z] if 0 <= z < len(chemical_symbols) else f"Z{z}"
