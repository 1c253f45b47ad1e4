"""Write tests/data/graph_golden.npz: fairchem-core 1.10 radius graphs of varied structures.

Runs ONLY in the reference venv (it imports fairchem; build it with ``tools/reference/make_ref_venv.sh``), from the
repository root:

    PYTHONPATH=tools/reference/shims .venv-ref/bin/python tools/make_graph_golden.py

Each structure is converted exactly as OCPCalculator does (``AtomsToGraphs(r_pbc=True, r_edges=False)`` ->
``data_list_collater([data], otf_graph=True)``), then the graph is built as ``GraphModelMixin.generate_graph`` does
(``radius_graph_pbc(batch, r, max_neighbors, strict)`` -> ``get_pbc_distances``), for r in (6, 12) Angstrom and
max_neighbors 20 in strict and non-strict mode. Saved: structures (numbers, float64 positions, the cell as given,
pbc) and per graph the edges (source, target, integer image offset) with their float32 distances.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from fairchem.core.common.utils import get_pbc_distances, radius_graph_pbc
from fairchem.core.datasets import data_list_collater
from fairchem.core.preprocessing import AtomsToGraphs

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "graph_golden.npz"
SETTINGS = [(6.0, 20, True), (6.0, 20, False), (12.0, 20, True), (12.0, 20, False)]


def structures() -> dict[str, Atoms]:
    rng = np.random.default_rng(20241105)
    out: dict[str, Atoms] = {}
    out["cu_fcc_conventional"] = bulk("Cu", "fcc", a=3.61, cubic=True)
    out["cu_fcc_primitive"] = bulk("Cu", "fcc", a=3.61)
    nacl = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    nacl.positions += np.array([-0.3, 0.2, 6.0])  # unwrapped positions: exercises wrapping
    out["nacl_rocksalt_shifted"] = nacl
    out["si_diamond_primitive"] = bulk("Si", "diamond", a=5.43)
    out["mg_hcp"] = bulk("Mg", "hcp", a=3.21, c=5.21)
    out["triclinic_3atom"] = Atoms(
        "OHH",
        positions=[[0.1, 0.2, 0.3], [1.0, 0.4, 0.1], [0.2, 1.3, 0.9]],
        cell=[[3.1, 0.2, 0.1], [0.9, 2.8, -0.3], [0.6, -0.7, 3.4]],
        pbc=True,
    )
    out["one_atom_tiny_triclinic"] = Atoms(
        "H", positions=[[0.3, 0.1, 0.2]], cell=[[1.9, 0.0, 0.0], [0.7, 1.6, 0.0], [0.4, 0.5, 1.7]], pbc=True
    )
    slab = fcc111("Cu", size=(3, 3, 4), vacuum=8.0)
    top = slab.positions[slab.positions[:, 2].argmax()]
    co = Atoms("CO", positions=[top + [0.0, 0.0, 1.85], top + [0.0, 0.0, 1.85 + 1.15]])  # CO on top site
    slab_co = slab + co
    slab_co.rattle(0.02, seed=3)
    out["cu111_co_pbc_TTT"] = slab_co.copy()
    slab_ttf = slab_co.copy()
    slab_ttf.pbc = (True, True, False)
    out["cu111_co_pbc_TTF"] = slab_ttf
    out["h2o_molecule"] = molecule("H2O")  # zero cell, pbc False
    out["two_far_atoms_molecule"] = Atoms("HeAr", positions=[[0, 0, 0], [0.5, 20.0, 0.3]])
    wire = Atoms(
        "CCN",
        positions=[[0.1, 0.0, 0.0], [1.3, 0.6, 0.0], [-2.2, 0.1, 1.1]],
        cell=[[2.5, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
        pbc=(True, False, False),
    )
    out["wire_TFF"] = wire
    big = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 3))
    numbers = big.numbers.copy()
    numbers[rng.choice(len(big), 30, replace=False)] = 28  # CuNi alloy
    big.numbers = numbers
    big.positions += rng.normal(scale=0.08, size=big.positions.shape)
    big.cell = big.cell.array @ np.array([[1.0, 0.02, 0.0], [0.0, 1.0, -0.03], [0.01, 0.0, 1.0]])
    out["cuni_bulk_108_rattled"] = big
    return out


def fairchem_graph(atoms: Atoms, radius: float, max_neighbors: int, strict: bool):
    a2g = AtomsToGraphs(r_energy=False, r_forces=False, r_distances=False, r_pbc=True, r_edges=False)
    batch = data_list_collater([a2g.convert(atoms)], otf_graph=True)
    edge_index, cell_offsets, neighbors = radius_graph_pbc(batch, radius, max_neighbors, strict)
    out = get_pbc_distances(
        batch.pos, edge_index, batch.cell, cell_offsets, neighbors, return_offsets=True, return_distance_vec=True
    )
    kept = out["distances"].numel()
    assert kept == edge_index.shape[1], "get_pbc_distances removed a zero-length edge"
    return out["edge_index"].numpy(), cell_offsets.numpy(), out["distances"].numpy()


def main() -> None:
    structs = structures()
    names = list(structs)
    arrays: dict[str, np.ndarray] = {"names": np.array(names)}
    atom_ptr = [0]
    numbers, positions, cells, pbcs = [], [], [], []
    for atoms in structs.values():
        numbers.append(atoms.numbers)
        positions.append(atoms.positions)
        cells.append(atoms.cell.array)
        pbcs.append(atoms.pbc)
        atom_ptr.append(atom_ptr[-1] + len(atoms))
    arrays.update(
        numbers=np.concatenate(numbers).astype(np.int16),
        positions=np.concatenate(positions).astype(np.float64),
        cells=np.stack(cells).astype(np.float64),
        pbcs=np.stack(pbcs).astype(bool),
        atom_ptr=np.array(atom_ptr, dtype=np.int64),
    )
    graph_struct, graph_radius, graph_maxn, graph_strict, edge_ptr = [], [], [], [], [0]
    sources, targets, offsets, distances = [], [], [], []
    for s, name in enumerate(names):
        for radius, max_neighbors, strict in SETTINGS:
            edge_index, cell_offsets, dist = fairchem_graph(structs[name], radius, max_neighbors, strict)
            assert np.all(cell_offsets == np.round(cell_offsets)) and np.abs(cell_offsets).max(initial=0) < 128
            graph_struct.append(s)
            graph_radius.append(radius)
            graph_maxn.append(max_neighbors)
            graph_strict.append(strict)
            sources.append(edge_index[0])
            targets.append(edge_index[1])
            offsets.append(cell_offsets.astype(np.int8))
            distances.append(dist.astype(np.float32))
            edge_ptr.append(edge_ptr[-1] + edge_index.shape[1])
            print(f"{name:28s} r={radius:4.1f} k={max_neighbors} strict={strict!s:5s} edges={edge_index.shape[1]}")
    arrays.update(
        graph_struct=np.array(graph_struct, dtype=np.int64),
        graph_radius=np.array(graph_radius, dtype=np.float64),
        graph_max_neighbors=np.array(graph_maxn, dtype=np.int64),
        graph_strict=np.array(graph_strict, dtype=bool),
        edge_ptr=np.array(edge_ptr, dtype=np.int64),
        source=np.concatenate(sources).astype(np.int16),
        target=np.concatenate(targets).astype(np.int16),
        offsets=np.concatenate(offsets),
        distances=np.concatenate(distances),
        torch_version=np.array(torch.__version__),
        cpu_capability=np.array(torch.backends.cpu.get_cpu_capability()),
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
