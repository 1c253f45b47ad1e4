"""Tests of eqv2_calc.graph: exact parity with fairchem 1.10 graphs (golden file) and graph invariants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.neighborlist import neighbor_list

from eqv2_calc.errors import InvalidStructureError
from eqv2_calc.graph import AtomicGraph, build_graph, radius_graph_pbc

GOLDEN = Path(__file__).parent / "data" / "graph_golden.npz"


def _golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return {key: data[key] for key in data.files}


def _golden_atoms(golden: dict[str, np.ndarray], s: int) -> Atoms:
    a0, a1 = golden["atom_ptr"][s], golden["atom_ptr"][s + 1]
    return Atoms(
        numbers=golden["numbers"][a0:a1],
        positions=golden["positions"][a0:a1],
        cell=golden["cells"][s],
        pbc=golden["pbcs"][s],
    )


def _edge_rows(graph: AtomicGraph) -> np.ndarray:
    """(E, 5) int64 rows (source, target, n1, n2, n3)."""
    offsets = graph.cell_offsets.numpy()
    assert np.array_equal(offsets, np.round(offsets))
    return np.concatenate([graph.edge_index.T.numpy(), offsets.astype(np.int64)], axis=1)


def _golden_cases() -> list[tuple[int, str]]:
    golden = _golden()
    names = golden["names"]
    return [
        (
            k,
            f"{names[golden['graph_struct'][k]]}-r{golden['graph_radius'][k]:g}-"
            f"{'strict' if golden['graph_strict'][k] else 'nonstrict'}",
        )
        for k in range(len(golden["graph_struct"]))
    ]


GOLDEN_CASES = _golden_cases()


@pytest.mark.parametrize("k", [k for k, _ in GOLDEN_CASES], ids=[name for _, name in GOLDEN_CASES])
def test_matches_fairchem_golden(k: int) -> None:
    golden = _golden()
    atoms = _golden_atoms(golden, golden["graph_struct"][k])
    graph = build_graph(
        atoms,
        float(golden["graph_radius"][k]),
        int(golden["graph_max_neighbors"][k]),
        bool(golden["graph_strict"][k]),
    )
    e0, e1 = golden["edge_ptr"][k], golden["edge_ptr"][k + 1]
    expected = np.concatenate(
        [golden["source"][e0:e1, None], golden["target"][e0:e1, None], golden["offsets"][e0:e1]], axis=1
    ).astype(np.int64)
    mine = _edge_rows(graph)
    assert set(map(tuple, mine)) == set(map(tuple, expected))
    assert len(mine) == len(expected)
    # Same edge order as fairchem (target, source, image), which keeps later scatter sums bit-compatible.
    np.testing.assert_array_equal(mine, expected)
    distances = graph.edge_vectors().norm(dim=-1).numpy()
    np.testing.assert_allclose(distances, golden["distances"][e0:e1], rtol=0, atol=1e-5)


def test_golden_exercises_exact_ties() -> None:
    """Unrattled fcc Cu at 20 strict neighbours: the 20th neighbour lies inside the 24-atom third shell."""
    golden = _golden()
    names = list(golden["names"])
    atoms = _golden_atoms(golden, names.index("cu_fcc_primitive"))
    strict = build_graph(atoms, 6.0, 20, True)
    nonstrict = build_graph(atoms, 6.0, 20, False)
    d_strict = np.sort(strict.edge_vectors().norm(dim=-1).numpy())
    d_all = np.sort(nonstrict.edge_vectors().norm(dim=-1).numpy())
    assert len(d_strict) == 20 and len(d_all) == 12 + 6 + 24
    assert np.isclose(d_all[19], d_all[20], atol=1e-5)  # a tie straddles the cut


def _mixed_structures() -> list[Atoms]:
    slab = fcc111("Pt", size=(2, 2, 3), vacuum=6.0)
    slab.pbc = (True, True, False)
    wire = Atoms("C2", positions=[[0.0, 0.0, 0.0], [1.3, 0.4, 0.0]], cell=[2.6, 0.0, 0.0], pbc=(True, False, False))
    cu = bulk("Cu", "fcc", a=3.61, cubic=True)
    cu.rattle(0.05, seed=1)
    return [cu, molecule("CH4"), slab, wire, bulk("NaCl", "rocksalt", a=5.64)]


@pytest.mark.parametrize("strict", [True, False])
def test_batch_equals_concatenated_singles(strict: bool) -> None:
    structures = _mixed_structures()
    batch = build_graph(structures, 6.0, 12, strict)
    singles = [build_graph(atoms, 6.0, 12, strict) for atoms in structures]
    offset = 0
    rows = []
    for single in singles:
        single_rows = _edge_rows(single)
        single_rows[:, :2] += offset
        rows.append(single_rows)
        offset += single.pos.shape[0]
    np.testing.assert_array_equal(_edge_rows(batch), np.concatenate(rows))
    assert batch.num_graphs == len(structures)
    assert batch.natoms.tolist() == [len(a) for a in structures]
    assert batch.batch.tolist() == sum(([b] * len(a) for b, a in enumerate(structures)), [])
    assert batch.pbc.tolist() == [list(map(bool, a.pbc)) for a in structures]
    torch.testing.assert_close(batch.pos, torch.cat([s.pos for s in singles]))
    torch.testing.assert_close(batch.edge_vectors(), torch.cat([s.edge_vectors() for s in singles]))


def _edge_table(graph: AtomicGraph) -> np.ndarray:
    """Edges as (target, source, vector) rows sorted canonically, to compare graphs of moved structures."""
    vectors = graph.edge_vectors().double().numpy()
    table = np.concatenate([graph.edge_index.T.numpy()[:, ::-1].astype(np.float64), vectors], axis=1)
    order = np.lexsort((np.round(vectors[:, 2], 3), np.round(vectors[:, 1], 3), np.round(vectors[:, 0], 3),
                        table[:, 1], table[:, 0]))
    return table[order]


@pytest.mark.parametrize("pbc", [True, (True, True, False), False])
def test_translation_invariance(pbc: bool | tuple[bool, bool, bool]) -> None:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    atoms.numbers[::3] = 28
    atoms.rattle(0.1, seed=7)
    atoms.pbc = pbc
    moved = atoms.copy()
    moved.translate([3.3, -7.1, 12.4])
    reference = _edge_table(build_graph(atoms, 5.0, 16))
    shifted = _edge_table(build_graph(moved, 5.0, 16))
    np.testing.assert_array_equal(reference[:, :2], shifted[:, :2])
    np.testing.assert_allclose(reference[:, 2:], shifted[:, 2:], atol=2e-5)


def test_positions_are_wrapped_along_periodic_axes_only() -> None:
    atoms = Atoms("H2", positions=[[-1.0, 5.5, -3.0], [11.0, 0.5, 0.5]], cell=[4.0, 4.0, 4.0], pbc=(True, False, True))
    graph = build_graph(atoms, 3.0, 10)
    np.testing.assert_allclose(graph.pos.numpy(), [[3.0, 5.5, 1.0], [3.0, 0.5, 0.5]], atol=1e-6)


def test_unlimited_neighbors_match_ase_neighbor_list() -> None:
    rng = np.random.default_rng(5)
    cell = np.diag([4.1, 3.3, 5.2]) + rng.uniform(-1.0, 1.0, (3, 3))
    numbers, positions = rng.integers(1, 30, 9), rng.uniform(0, 4, (9, 3))
    atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=(True, False, True))
    graph = build_graph(atoms, 7.5, 0, dtype=torch.float64)
    i, j, shift = neighbor_list("ijS", atoms, 7.5, self_interaction=False)
    expected = {(int(b), int(a), *map(int, s)) for a, b, s in zip(i, j, shift)}
    assert set(map(tuple, _edge_rows(graph))) == expected


def test_isolated_atoms_get_no_edges() -> None:
    lonely = build_graph(Atoms("Xe", positions=[[1.0, 2.0, 3.0]]), 6.0, 20)
    assert lonely.edge_index.shape == (2, 0) and lonely.cell_offsets.shape == (0, 3)
    assert lonely.edge_vectors().shape == (0, 3)
    cluster = molecule("H2O")
    cluster += Atoms("He", positions=[[30.0, 0.0, 0.0]])
    graph = build_graph(cluster, 6.0, 20)
    assert set(graph.edge_index.flatten().tolist()) == {0, 1, 2}
    assert graph.edge_index.shape[1] == 6


@pytest.mark.parametrize("strict", [True, False])
def test_fcc_supercell_has_primitive_neighbour_shells(strict: bool) -> None:
    primitive = bulk("Cu", "fcc", a=3.61)
    supercell = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    prim_graph = build_graph(primitive, 6.0, 20, strict)
    super_graph = build_graph(supercell, 6.0, 20, strict)
    prim_d = np.sort(prim_graph.edge_vectors().norm(dim=-1).numpy())
    super_d = super_graph.edge_vectors().norm(dim=-1).numpy()
    target = super_graph.edge_index[1].numpy()
    counts = np.bincount(target, minlength=len(supercell))
    assert np.all(counts == (20 if strict else 42))
    for atom in range(len(supercell)):
        np.testing.assert_allclose(np.sort(super_d[target == atom]), prim_d, atol=1e-5)


def test_edge_vectors_formula_and_gradients() -> None:
    atoms = bulk("NaCl", "rocksalt", a=5.64)
    atoms.rattle(0.05, seed=2)
    graph = build_graph(atoms, 5.0, 12, dtype=torch.float64)
    source, target = graph.edge_index
    expected = graph.pos[source] + graph.cell_offsets @ graph.cell[0] - graph.pos[target]
    torch.testing.assert_close(graph.edge_vectors(), expected)

    pos = graph.pos.clone().requires_grad_(True)
    cell = graph.cell.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, c: graph.edge_vectors(p, c).norm(dim=-1), (pos, cell))


def test_to_changes_dtype_of_float_tensors_only() -> None:
    graph = build_graph(bulk("Si", "diamond", a=5.43), 4.0, 8)
    assert graph.pos.dtype == graph.cell.dtype == graph.cell_offsets.dtype == torch.float32
    double = graph.to(dtype=torch.float64)
    assert double.pos.dtype == double.cell.dtype == double.cell_offsets.dtype == torch.float64
    assert double.edge_index.dtype == double.natoms.dtype == double.batch.dtype == torch.long
    assert double.pbc.dtype == torch.bool
    torch.testing.assert_close(double.edge_vectors().float(), graph.edge_vectors())


def test_float64_graph_equals_float32_graph_without_ties() -> None:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=4)
    single = build_graph(atoms, 6.0, 20)
    double = build_graph(atoms, 6.0, 20, dtype=torch.float64)
    np.testing.assert_array_equal(_edge_rows(single), _edge_rows(double))


def test_radius_graph_pbc_direct_call() -> None:
    atoms = bulk("Cu", "fcc", a=3.61)
    graph = build_graph(atoms, 6.0, 20)
    edge_index, cell_offsets = radius_graph_pbc(graph.pos, graph.cell, graph.pbc, graph.natoms, 6.0, 20)
    torch.testing.assert_close(edge_index, graph.edge_index)
    torch.testing.assert_close(cell_offsets, graph.cell_offsets)


@pytest.mark.parametrize(
    ("atoms", "message"),
    [
        (Atoms(), "no atoms"),
        (Atoms("H2", positions=[[0, 0, 0], [np.nan, 0, 0]]), "atom 1"),
        (Atoms("H2", positions=[[0, 0, 0], [0, np.inf, 0]]), "atom 1"),
        (Atoms("H", positions=[[0, 0, 0]], pbc=True), "lattice vector 0 is zero"),
        (Atoms("H", positions=[[0, 0, 0]], cell=[[2, 0, 0], [0, 2, 0], [0, 0, 0]], pbc=True), "lattice vector 2"),
        (Atoms("H", positions=[[0, 0, 0]], cell=[[2, 0, 0], [0, 2, 0], [1, 1, 0]], pbc=True), "degenerate"),
    ],
    ids=["empty", "nan", "inf", "pbc-zero-cell", "pbc-missing-vector", "coplanar"],
)
def test_bad_structures_raise(atoms: Atoms, message: str) -> None:
    with pytest.raises(InvalidStructureError, match=message):
        build_graph(atoms, 6.0, 20)


@pytest.mark.parametrize("radius", [0.0, -1.0, float("nan")])
def test_bad_radius_raises(radius: float) -> None:
    with pytest.raises(InvalidStructureError, match="max_radius"):
        build_graph(molecule("H2O"), radius, 20)


def test_bad_structure_in_batch_is_named() -> None:
    with pytest.raises(InvalidStructureError, match="structure 1.*atom 0"):
        build_graph([molecule("H2O"), Atoms("H", positions=[[np.nan, 0, 0]])], 6.0, 20)


def test_radius_graph_pbc_rejects_nan_positions() -> None:
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.0, float("nan"), 0.0]])
    with pytest.raises(InvalidStructureError, match="atom 1"):
        radius_graph_pbc(pos, torch.eye(3).view(1, 3, 3), torch.tensor([[False] * 3]), torch.tensor([2]), 5.0, 8)


def test_slab_without_c_vector_is_fine_when_not_periodic_along_c() -> None:
    slab = fcc111("Cu", size=(2, 2, 2))
    slab.cell[2] = 0.0  # no third lattice vector: completed by get_cell(complete=True)
    slab.pbc = (True, True, False)
    graph = build_graph(slab, 5.0, 12)
    assert graph.edge_index.shape[1] > 0
    assert torch.linalg.det(graph.cell[0].double()) != 0
