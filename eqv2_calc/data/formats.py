"""Streaming readers of the released datasets in their own formats: one structure read per access.

`open_dataset(path)` recognises:

- ``fairchem-lmdb``: a ``*.lmdb`` file or a folder of them (OC20 S2EF/IS2RE, OC22, ODAC), or an LMDB in lmdb's
  default layout (a folder holding ``data.mdb``; so may be each ``*.lmdb`` of a folder), keys
  ``b"0"``, ``b"1"``, ... and an optional ``b"length"``; each value a pickled torch_geometric ``Data``
  (read by the restricted unpickler of `safe_pickle`: no other class is ever created or called);
- ``aselmdb``: an ASE database in LMDB, a file or a folder of ``*.aselmdb`` (OMat24, sAlex, OC20++;
  through ase-db-backends);
- ``ase-db``: an ASE SQLite database (``.db``);
- ``ase-io``: any other file ase.io reads (read whole, not streamed).

Every structure is an `Atoms` with labels in a `SinglePointCalculator` as in `eqv2_calc.data.labels`,
OC20 ``tags``, a `FixAtoms` constraint for ``fixed`` atoms, and ``atoms.info``: ``origin`` ("file.lmdb@key
b'3'"), ``energy_kind`` ("adsorption" or "total"), and the file's ``sid`` / ``fid`` where it has them.
IS2RE records carry ``y_init`` as the energy at ``pos``, ``info["relaxed_energy"]`` (``y_relaxed``, eV) and
``arrays["relaxed_positions"]`` (``pos_relaxed``, Angstrom). Precomputed ``edge_index`` / ``cell_offsets``
are ignored: the model builds its own graph.

Energy kind: OC20 S2EF/IS2RE energies are adsorption energies (DFT total minus the clean slab and the gas
references), OC22, ODAC and the ASE-database datasets hold total energies. Without ``energy_kind`` a
fairchem LMDB counts as "total" when its records have OC22's ``oc22`` flag or its path names oc22 or odac,
else as "adsorption" (OC20); ASE databases and files count as "total".
"""

from __future__ import annotations

import bisect
import os
import pickle
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms

from .labels import LABELS, DatasetError, attach_labels, connect_ase_sqlite, read_labelled_file, row_to_atoms
from .safe_pickle import UnsafePickleError, data_fields, loads

ENERGY_KINDS = ("adsorption", "total")
_DATASETS_EXTRA = "pip install 'eqv2-calc[datasets]'"
LMDB_DATA_FILE = "data.mdb"  # the data file of an LMDB opened with subdir=True (lmdb's default)


class DatasetSource(Sequence[Atoms]):
    """A dataset read lazily: `source[i]` reads and converts structure `i` only.

    Attributes:
        path: the file or folder; format: one of "fairchem-lmdb", "aselmdb", "ase-db", "ase-io";
        task: "s2ef" (energy, forces, maybe stress per structure) or "is2re" (initial structure,
            relaxed energy); energy_kind: "adsorption" or "total" (see the module docstring).
    """

    format = ""

    def __init__(self, path: Path, require: tuple[str, ...]) -> None:
        self.path = path
        self.require = require
        self.task = "s2ef"
        self.energy_kind = "total"

    def _files(self, suffix: str) -> list[Path]:
        """`path` itself, or the ``*{suffix}`` files of the folder `path` sorted by name."""
        files = sorted(self.path.glob(f"*{suffix}")) if self.path.is_dir() else [self.path]
        if not files:
            raise DatasetError(f"{self.path} is a folder without *{suffix} files")
        return files

    def _index(self, lengths: list[int]) -> None:
        """Structures of several files one after another: `lengths` structures in each."""
        self._starts = np.cumsum([0, *lengths]).tolist()
        if self._starts[-1] == 0:
            raise DatasetError(f"{self.path} holds no structures (empty)")

    def _locate(self, index: int) -> tuple[int, int]:
        """(file number, index inside that file) of structure `index`."""
        file = bisect.bisect_right(self._starts, index) - 1
        return file, index - self._starts[file]

    def __len__(self) -> int:
        return self._starts[-1]

    def read(self, index: int) -> Atoms:
        """Structure `index` (0-based), labelled; raises `DatasetError` naming the file and key."""
        raise NotImplementedError

    def key(self, index: int) -> str:
        """Where structure `index` sits, for messages ("file.lmdb key b'3'")."""
        raise NotImplementedError

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.path} has {len(self)} structures; index {index} is out of range")
        atoms = self.read(index % len(self))
        atoms.info["energy_kind"] = self.energy_kind
        return atoms

    def close(self) -> None:
        """Release open files (also done when the source is garbage-collected)."""


class FairchemLmdb(DatasetSource):
    """A fairchem LMDB file, or a folder of ``*.lmdb`` files read one after another (sorted by name); an LMDB
    may also be a folder holding ``data.mdb`` (lmdb's default layout, ``subdir=True``)."""

    format = "fairchem-lmdb"

    def __init__(self, path: Path, require: tuple[str, ...], energy_kind: str | None) -> None:
        super().__init__(path, require)
        try:
            import lmdb
        except ImportError as exc:
            raise DatasetError(f"{path}: reading fairchem LMDBs needs the lmdb package ({_DATASETS_EXTRA})") from exc
        self.files = [path] if (path / LMDB_DATA_FILE).is_file() else self._files(".lmdb")
        self._envs = []
        lengths = []
        for file in self.files:
            try:
                env = lmdb.open(str(file), subdir=file.is_dir(), readonly=True, lock=False, readahead=False, meminit=False,
                                max_readers=1)
            except lmdb.Error as exc:
                raise DatasetError(f"{file}: not a readable LMDB file ({exc})") from exc
            self._envs.append(env)
            lengths.append(self._length(env, file))
        self._index(lengths)
        first = self._fields(0)
        if "y_relaxed" in first and "force" not in first:
            self.task = "is2re"
        if energy_kind is None:
            named = any(name in str(path).lower() for name in ("oc22", "odac"))
            energy_kind = "total" if named or _python(first.get("oc22", 0)) else "adsorption"
        self.energy_kind = energy_kind

    @staticmethod
    def _length(env: Any, file: Path) -> int:
        with env.begin() as txn:
            stored = txn.get(b"length")
        if stored is None:
            return env.stat()["entries"]
        try:
            length = loads(stored)
        except pickle.UnpicklingError as exc:
            raise DatasetError(f"{file} key b'length': {exc}") from exc
        if not isinstance(length, int) or length < 0:
            raise DatasetError(f"{file} key b'length' holds {length!r}, not a number of structures")
        return length

    def _key(self, index: int) -> tuple[int, bytes]:
        file, local = self._locate(index)
        return file, str(local).encode("ascii")

    def key(self, index: int) -> str:
        file, key = self._key(index)
        return f"{self.files[file]} key {key!r}"

    def _fields(self, index: int) -> dict[str, Any]:
        file, key = self._key(index)
        with self._envs[file].begin() as txn:
            value = txn.get(key)
        if value is None:
            raise DatasetError(f"{self.key(index)}: no such key (the file says it holds "
                               f"{self._starts[file + 1] - self._starts[file]} structures)")
        try:
            return data_fields(loads(value))
        except UnsafePickleError as exc:
            raise DatasetError(f"{self.key(index)}: {exc}") from exc
        except (pickle.UnpicklingError, TypeError) as exc:
            raise DatasetError(f"{self.key(index)}: not a pickled torch_geometric Data ({exc})") from exc

    def read(self, index: int) -> Atoms:
        where = self.key(index)
        fields = self._fields(index)
        atoms = data_to_atoms(fields, where)
        file, key = self._key(index)
        atoms.info["origin"] = f"{self.files[file].name}@key {key!r}"
        results = {"energy": fields.get("y_init" if self.task == "is2re" else "y"), "forces": fields.get("force"),
                   "stress": fields.get("stress")}
        results = {name: _array(value) for name, value in results.items() if value is not None}
        if "stress" in results:
            results["stress"] = results["stress"].reshape(3, 3)
        if self.task == "is2re":
            relaxed = fields.get("y_relaxed")
            if relaxed is None:
                raise DatasetError(f"{where}: an IS2RE record without y_relaxed (the relaxed energy)")
            atoms.info["relaxed_energy"] = float(_array(relaxed).reshape(()))
            if fields.get("pos_relaxed") is not None:
                atoms.arrays["relaxed_positions"] = _array(fields["pos_relaxed"]).reshape(len(atoms), 3)
        return attach_labels(atoms, results, self.require, where)

    def close(self) -> None:
        for env in self._envs:
            env.close()
        self._envs = []


class AseDatabase(DatasetSource):
    """ASE databases read row by row: an ``.aselmdb`` or a folder of them (through ase-db-backends), or an
    SQLite ``.db``."""

    def __init__(self, path: Path, require: tuple[str, ...], energy_kind: str | None) -> None:
        super().__init__(path, require)
        self.energy_kind = energy_kind or "total"
        self.format = "ase-db" if path.suffix == ".db" else "aselmdb"
        self.files = [path] if self.format == "ase-db" else self._files(".aselmdb")
        self._dbs = [self._connect(file) for file in self.files]
        self._ids = [list(db.ids) if self.format == "aselmdb" else [row.id for row in db.select(include_data=False)]
                     for db in self._dbs]
        self._index([len(ids) for ids in self._ids])

    def _connect(self, file: Path):
        if self.format == "ase-db":
            return connect_ase_sqlite(file)
        try:
            import ase.db
            import ase_db_backends  # noqa: F401  (ase.db.connect imports its LMDB backend by name)
        except ImportError as exc:
            raise DatasetError(f"{file}: reading .aselmdb needs ase-db-backends ({_DATASETS_EXTRA})") from exc
        try:
            return ase.db.connect(str(file), type="aselmdb", readonly=True, use_lock_file=False)
        except Exception as exc:  # lmdb.Error and friends
            raise DatasetError(f"{file}: not a readable .aselmdb file ({type(exc).__name__}: {exc})") from exc

    def key(self, index: int) -> str:
        file, local = self._locate(index)
        return f"{self.files[file]} row id={self._ids[file][local]}"

    def read(self, index: int) -> Atoms:
        file, local = self._locate(index)
        try:
            row = self._dbs[file].get(id=self._ids[file][local])
        except KeyError as exc:
            raise DatasetError(f"{self.key(index)}: no such row") from exc
        return row_to_atoms(row, self.files[file], self.require)

    def close(self) -> None:
        if self.format == "aselmdb":
            for db in self._dbs:
                db.close()
        self._dbs = []


class AseFile(DatasetSource):
    """A file ase.io reads (extxyz, traj, ...): read whole at opening (`labels.read_labelled_file`)."""

    format = "ase-io"

    def __init__(self, path: Path, require: tuple[str, ...], energy_kind: str | None) -> None:
        super().__init__(path, require)
        self.energy_kind = energy_kind or "total"
        self._structures = read_labelled_file(path, None, require)
        self._index([len(self._structures)])

    def key(self, index: int) -> str:
        return f"{self.path} structure index {index}"

    def read(self, index: int) -> Atoms:
        return self._structures[index]


def open_dataset(path: str | os.PathLike, *, energy_kind: str | None = None,
                 require: Iterable[str] | None = None) -> DatasetSource:
    """Open a dataset for streaming reads (format from the path: see the module docstring).

    Args:
        path: ``*.lmdb`` file or folder of them (fairchem), ``.aselmdb`` file or folder of them, ``.db``, or an
            ase.io file.
        energy_kind: "adsorption" or "total", what the stored energies are; None guesses (module docstring).
        require: labels every structure must have among "energy", "forces", "stress"; None: energy and
            forces for S2EF data, nothing more for IS2RE (whose relaxed energy is always required).

    Raises:
        FileNotFoundError: `path` does not exist.
        DatasetError: empty or unreadable file, or a missing optional package; reading a structure raises
            it too, naming the file and key (a value that is not a ``Data``, a refused pickle, a missing label).
    """
    if energy_kind is not None and energy_kind not in ENERGY_KINDS:
        raise ValueError(f"energy_kind={energy_kind!r} must be one of {ENERGY_KINDS} or None")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset {path} does not exist")
    given = tuple(require) if require is not None else None
    unknown = [r for r in given or () if r not in LABELS]
    if unknown:
        raise ValueError(f"require={given}: unknown label(s) {unknown}; choose among {LABELS}")
    if (path.is_dir() and not any(path.glob("*.aselmdb"))) or path.suffix == ".lmdb":
        source: DatasetSource = FairchemLmdb(path, given or (), energy_kind)
        if given is None:
            source.require = ("energy", "forces") if source.task == "s2ef" else ()
        return source
    require = given if given is not None else ("energy", "forces")
    if path.is_dir() or path.suffix in (".aselmdb", ".db"):
        return AseDatabase(path, require, energy_kind)
    return AseFile(path, require, energy_kind)


def data_to_atoms(fields: dict[str, Any], where: str) -> Atoms:
    """`Atoms` of a fairchem ``Data``'s fields: pos, atomic_numbers, cell (1, 3, 3), tags, fixed, sid, fid.

    All three directions are periodic (as fairchem builds OC20 graphs) unless the record has ``pbc``.
    """
    for name in ("pos", "atomic_numbers"):
        if fields.get(name) is None:
            raise DatasetError(f"{where}: the Data has no {name} (fields: {', '.join(sorted(fields))})")
    numbers = _array(fields["atomic_numbers"]).reshape(-1)
    positions = _array(fields["pos"])
    if positions.shape != (len(numbers), 3):
        raise DatasetError(f"{where}: pos has shape {positions.shape}, expected ({len(numbers)}, 3)")
    natoms = fields.get("natoms")
    if natoms is not None and int(_array(natoms).reshape(-1)[0]) != len(numbers):
        raise DatasetError(f"{where}: natoms is {int(_array(natoms).reshape(-1)[0])} but there are "
                           f"{len(numbers)} atomic numbers")
    if not (np.all(numbers == np.round(numbers)) and np.all(numbers >= 1)):
        raise DatasetError(f"{where}: atomic_numbers are not positive whole numbers: {numbers[:10]}")
    cell = fields.get("cell")
    cell = np.zeros((3, 3)) if cell is None else _array(cell).reshape(3, 3)
    pbc = fields.get("pbc")
    pbc = bool(np.abs(cell).sum() > 0) if pbc is None else _array(pbc).reshape(3).astype(bool)
    atoms = Atoms(numbers=numbers.astype(int), positions=positions, cell=cell, pbc=pbc)
    if fields.get("tags") is not None:
        atoms.set_tags(_array(fields["tags"]).reshape(-1).astype(int))
    if fields.get("fixed") is not None:
        fixed = np.flatnonzero(_array(fields["fixed"]).reshape(-1))
        if len(fixed):
            atoms.set_constraint(FixAtoms(indices=fixed))
    for name in ("sid", "fid"):
        if fields.get(name) is not None:
            atoms.info[name] = _python(fields[name])
    return atoms


def _array(value: Any) -> np.ndarray:
    """A tensor, numpy array or number as a float64 numpy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=float)


def _python(value: Any) -> Any:
    """A one-element tensor/array as a Python number; strings and numbers as they are."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.reshape(-1)[0].item() if value.size == 1 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
