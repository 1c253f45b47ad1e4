"""Write tiny datasets in the released formats: fairchem LMDBs of torch_geometric `Data` (new PyG `_store`
and old PyG `__dict__` layouts) and `.aselmdb` through ase-db-backends. Used by tests and benchmarks."""

from __future__ import annotations

import copyreg
import pickle
from pathlib import Path

import lmdb
import numpy as np
import torch
from ase import Atoms
from ase.constraints import FixAtoms

MAP_SIZE = 1 << 30


def data_fields(atoms: Atoms, is2re: dict | None = None, sid: int = 0) -> dict:
    """The fields fairchem's AtomsToGraphs stores (float32 tensors, cell (1, 3, 3)), labelled from atoms.calc."""
    fixed = np.zeros(len(atoms))
    for c in atoms.constraints:
        if isinstance(c, FixAtoms):
            fixed[c.get_indices()] = 1
    fields = {"pos": torch.tensor(atoms.positions, dtype=torch.float32),
              "cell": torch.tensor(np.array(atoms.cell), dtype=torch.float32).view(1, 3, 3),
              "atomic_numbers": torch.tensor(atoms.numbers, dtype=torch.float32),
              "natoms": len(atoms), "tags": torch.tensor(atoms.get_tags(), dtype=torch.long),
              "fixed": torch.tensor(fixed, dtype=torch.float32), "sid": sid, "fid": 0,
              "edge_index": torch.zeros((2, 0), dtype=torch.long), "cell_offsets": torch.zeros((0, 3))}
    if is2re is None:
        fields["y"] = float(atoms.calc.results["energy"])
        fields["force"] = torch.tensor(atoms.calc.results["forces"], dtype=torch.float32)
    else:
        fields.update(is2re)
    return fields


class OldPygData:
    """Pickles like a torch_geometric < 2.0 `Data`: class torch_geometric.data.data.Data, fields in __dict__."""

    def __init__(self, **fields) -> None:
        self.__dict__.update(fields, __num_nodes__=None)

    @property
    def __class__(self):  # what pickle names, as for an instance of the old class
        from torch_geometric.data.data import Data

        return Data

    def __reduce_ex__(self, protocol):
        return copyreg.__newobj__, (self.__class__,), dict(self.__dict__)


def write_lmdb(path: Path, values: list, length: bool = True, raw: bool = False, subdir: bool = False) -> Path:
    """An LMDB as fairchem writes it: keys b'0'.. with pickled values (`raw`: values are bytes already);
    `subdir`: in lmdb's default layout, `path` a folder holding data.mdb and lock.mdb."""
    env = lmdb.open(str(path), map_size=MAP_SIZE, subdir=subdir, meminit=False, map_async=True)
    with env.begin(write=True) as txn:
        for i, value in enumerate(values):
            txn.put(f"{i}".encode("ascii"), value if raw else pickle.dumps(value, protocol=-1))
        if length:
            txn.put(b"length", pickle.dumps(len(values), protocol=-1))
    env.sync()
    env.close()
    return path


def write_s2ef_lmdb(path: Path, structures: list[Atoms], old_pyg: bool = False) -> Path:
    """S2EF LMDB of EMT-labelled structures, Data objects of PyG 2 (`_store`) or, with `old_pyg`, of PyG 1."""
    from torch_geometric.data import Data

    cls = OldPygData if old_pyg else Data
    return write_lmdb(path, [cls(**data_fields(a, sid=i)) for i, a in enumerate(structures)])


def write_aselmdb(path: Path, structures: list[Atoms]) -> Path:
    """An .aselmdb (ase-db-backends) with the structures and their calculator results."""
    import ase.db

    with ase.db.connect(str(path), type="aselmdb") as db:
        for atoms in structures:
            db.write(atoms)
    return path
