"""Batched prediction, the calculator's shared code path, Verlet-skin graph reuse and input conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import add_adsorbate, bulk, fcc111, molecule
from ase.io import write
from pymatgen.io.ase import AseAtomsAdaptor

from eqv2_calc.calculator import EquiformerV2Calculator
from eqv2_calc.errors import InvalidStructureError
from eqv2_calc.graph import build_graph, reuse_graph
from eqv2_calc.potential import Potential
from eqv2_calc.predict import DEMO_MODEL, GraphBuilder, predict
from eqv2_calc.structures import to_atoms, to_atoms_list
from test_model import seeded_potential

# The demo model's architecture (configs/demo_emt.yaml), scaled down: conservative, smooth cutoff.
DEMO_LIKE = dict(
    num_layers=2, sphere_channels=16, attn_hidden_channels=16, num_heads=2, attn_alpha_channels=8,
    attn_value_channels=8, ffn_hidden_channels=16, edge_channels=16, lmax_list=[2], mmax_list=[1],
    grid_resolution=8, max_radius=4.5, max_neighbors=500, norm_type="rms_norm_sh", direct_forces=False,
    use_cutoff_envelope=True, stress_head=None,
)


def demo_like_potential() -> Potential:
    """A seeded float64 conservative model shaped like the demo model (fast on CPU; energies, forces, stress)."""
    return seeded_potential(**DEMO_LIKE)


def slab_with_co(height: float = 1.9):
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    add_adsorbate(slab, molecule("CO")[::-1], height, "ontop")  # C-down: ase lists O first
    return slab


@pytest.fixture(scope="module")
def potential() -> Potential:
    return demo_like_potential()


def test_predict_batches_equal_single_calculator_calls(potential: Potential) -> None:
    structures = [slab_with_co(1.8 + 0.1 * i) for i in range(3)] + [bulk("Cu", "fcc", a=3.6, cubic=True)]
    batched = predict(structures, potential, batch_size=3, device="cpu", dtype=torch.float64, progress=False)
    calc = EquiformerV2Calculator(potential, device="cpu", dtype=torch.float64)
    for atoms, result in zip(structures, batched):
        atoms.calc = calc
        assert result.energy == pytest.approx(atoms.get_potential_energy(), abs=1e-9)
        assert np.allclose(result.forces, atoms.get_forces(), atol=1e-9)
    assert batched[0].stress is None  # a slab is not periodic along z: no strain derivative
    assert batched[3].stress.shape == (6,)


def test_predict_splits_each_batch_over_cpu_workers(potential: Potential, monkeypatch) -> None:
    """With 2 torch threads a batch runs on 2 CPU workers (one intra-op thread each), as relax_many's steps do;
    the numbers are the one-call numbers."""
    from eqv2_calc.cpu_workers import CpuWorkers
    from eqv2_calc.predict import evaluate

    structures = [slab_with_co(1.8 + 0.1 * i) for i in range(3)] + [bulk("Cu", "fcc", a=3.6, cubic=True)]
    calls = []
    mapped = CpuWorkers.map

    def counting(workers, run, batch):
        calls.append((workers.count, torch.get_num_threads(), len(batch)))
        return mapped(workers, run, batch)

    monkeypatch.setattr(CpuWorkers, "map", counting)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        split = predict(structures, potential, batch_size=3, device="cpu", dtype=torch.float64, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert calls == [(2, 1, 3), (2, 1, 1)]
    for one_call, result in zip(evaluate(potential, structures), split):
        assert result.energy == pytest.approx(one_call.energy, abs=1e-9)
        assert np.allclose(result.forces, one_call.forces, atol=1e-9)


@pytest.mark.parametrize("strict,max_neighbors", [(True, 12), (False, 12), (True, 0)])
def test_reuse_graph_equals_build_graph(strict: bool, max_neighbors: int) -> None:
    rng = np.random.default_rng(0)
    cutoff, skin = 4.0, 1.0
    for atoms in (bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 2, 2), slab_with_co(), molecule("CH3OH")):
        reference = build_graph(atoms, cutoff + skin, 0)
        reused = 0
        for k in range(8):
            moved = atoms.copy()
            moved.positions += rng.normal(size=moved.positions.shape) * 0.1
            moved.positions[0] += moved.cell[0] * (k % 3 - 1) * moved.pbc[0]  # re-wrapped across a face
            graph = reuse_graph(reference, moved, cutoff, max_neighbors, strict, skin / 2)
            if graph is None:
                continue
            reused += 1
            expected = build_graph(moved, cutoff, max_neighbors, strict)
            assert torch.equal(graph.edge_index, expected.edge_index)
            assert torch.equal(graph.cell_offsets, expected.cell_offsets)
            assert torch.equal(graph.pos, expected.pos)
        assert reused >= 4
    far = atoms.copy()
    far.positions[0] += 0.6
    assert reuse_graph(reference, far, cutoff, max_neighbors, strict, skin / 2) is None


def test_graph_builder_rebuilds_only_when_needed(potential: Potential) -> None:
    builder = GraphBuilder(potential, skin=1.0)
    atoms = slab_with_co()
    builder([atoms])
    atoms.positions[-1, 2] += 0.3
    builder([atoms])
    assert (builder.calls, builder.builds) == (2, 1)
    atoms.positions[-1, 2] += 0.3  # 0.6 A from the reference > skin / 2
    builder([atoms])
    other = bulk("Cu")
    builder([other])
    assert (builder.calls, builder.builds) == (4, 3)


def test_inputs_pymatgen_files_and_errors(tmp_path) -> None:
    cu = bulk("Cu", "fcc", a=3.6)
    structure = AseAtomsAdaptor.get_structure(cu)
    assert np.allclose(to_atoms(structure).cell, cu.cell)
    assert to_atoms_list(AseAtomsAdaptor.get_molecule(molecule("CO")))[0].get_chemical_formula() == "CO"
    write(tmp_path / "two.extxyz", [cu, cu * (2, 1, 1)])
    write(tmp_path / "POSCAR", cu, format="vasp")
    assert [len(a) for a in to_atoms_list([tmp_path / "two.extxyz", str(tmp_path / "POSCAR"), structure])] == [1, 2, 1, 1]
    (tmp_path / "bad.xyz").write_text("1\n\nXx 0 0 0\n")
    with pytest.raises(InvalidStructureError, match="unknown element"):
        to_atoms_list(tmp_path / "bad.xyz")
    with pytest.raises(InvalidStructureError, match="no such file"):
        to_atoms(tmp_path / "missing.cif")
    with pytest.raises(InvalidStructureError, match="cannot use a int"):
        to_atoms(3)


def test_a_loaded_potential_carries_its_card_into_every_workflow() -> None:
    """A Potential loaded by name keeps its registry card when passed on as an object: predict, relax_many and
    the calculator refuse the demo model's untrained elements just as they do for the name."""
    from ase import Atoms

    from eqv2_calc import EquiformerV2Calculator, load_model, relax_many
    from eqv2_calc.errors import UnsupportedElementError
    from eqv2_calc.hub import IN_CODE

    potential = load_model(DEMO_MODEL)
    assert potential.card.name == "eqV2-demo-EMT" and potential.card.entry.elements
    uranium = Atoms("UO", positions=[(0, 0, 0), (0, 0, 1.9)], cell=[8, 8, 8], pbc=True)
    for run in (lambda: predict(uranium, potential, device="cpu", progress=False),
                lambda: relax_many([uranium], potential, device="cpu", progress=False),
                lambda: EquiformerV2Calculator(potential, device="cpu").get_potential_energy(uranium)):
        with pytest.raises(UnsupportedElementError, match="U"):
            run()
    from eqv2_calc.checkpoint import load_potential
    from eqv2_calc.hub import resolve_checkpoint

    assert load_potential(resolve_checkpoint(DEMO_MODEL)).card.source == IN_CODE  # made in code: no registry entry
