"""Relaxations: ASE-optimizer `relax` and the batched FIRE `relax_many` reach the same minima."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.constraints import FixAtoms, FixBondLength
from ase.filters import UnitCellFilter
from ase.optimize import LBFGS

from eqv2_calc.calculator import EquiformerV2Calculator
from eqv2_calc.potential import Potential
from eqv2_calc.relax import relax, relax_many
from test_predict import demo_like_potential, slab_with_co


@pytest.fixture(scope="module")
def potential() -> Potential:
    return demo_like_potential()


def fixed_slab(height: float):
    slab = slab_with_co(height)
    slab.set_constraint(FixAtoms(indices=[a.index for a in slab if a.tag == 3]))
    return slab


@pytest.mark.parametrize("optimizer, steps", [("FIRE", 150), ("LBFGS", 10)])
def test_relax_many_follows_ase_and_keeps_fixed_atoms(potential: Potential, optimizer: str, steps: int) -> None:
    """Batched and refilled, each structure takes the steps ASE's optimizer takes alone (FIRE to convergence;
    LBFGS, which does not converge on the random-weight model's rough surface, over its first 10 steps)."""
    slabs = [fixed_slab(1.8 + 0.15 * i) for i in range(3)]
    # both in float64: LBFGS's curvature pairs turn float32 round-off into different steps within a few steps
    calc = EquiformerV2Calculator(potential, device="cpu", dtype=torch.float64)
    ase_runs = [relax(s, calc, optimizer=optimizer, fmax=0.03, steps=steps) for s in slabs]
    batched = relax_many(slabs, potential, fmax=0.03, steps=steps, optimizer=optimizer, batch_size=2, device="cpu",
                         dtype=torch.float64, progress=False)
    for slab, single, many in zip(slabs, ase_runs, batched):
        assert many.steps == single.steps and many.converged == single.converged
        assert np.allclose(many.energies, single.energies, atol=1e-6)
        assert np.allclose(many.atoms.positions, single.atoms.positions, atol=1e-6)
        fixed = slab.constraints[0].index
        assert np.array_equal(many.atoms.positions[fixed], slab.positions[fixed])
        assert np.array_equal(single.atoms.positions[fixed], slab.positions[fixed])
        assert len(many.energies) == many.steps + 1
    assert all(r.converged and r.fmax < 0.03 for r in batched) or optimizer == "LBFGS"


def test_relax_accepts_optimizer_classes_and_reports(potential: Potential, tmp_path) -> None:
    result = relax(fixed_slab(1.9), potential, optimizer=LBFGS, fmax=0.05, steps=200, device="cpu",
                   trajectory=tmp_path / "relax.traj")
    assert result.converged == (result.fmax < 0.05) and result.fmax == result.fmaxes[-1]
    assert len(result.energies) == result.steps + 1 and (tmp_path / "relax.traj").exists()
    assert result.atoms.get_potential_energy() == result.energy
    with pytest.raises(ValueError, match="unknown optimizer"):
        relax(fixed_slab(1.9), potential, optimizer="NoSuch")


def test_cell_relaxation_batched_and_ase() -> None:
    """Both reach zero stress and the same minimum (demo model, float64: a random-weight surface can collapse the
    cell under ASE's BFGS, which says nothing about the relaxation code)."""
    calc = EquiformerV2Calculator("demo", device="cpu", dtype=torch.float64)
    crystals = [bulk("Cu", "fcc", a=a, cubic=True) for a in (3.5, 3.7)]
    for atoms in crystals:
        atoms.rattle(0.02, seed=1)
    batched = relax_many(crystals, calc.potential, fmax=0.01, steps=300, relax_cell=True, device="cpu",
                         dtype=torch.float64, progress=False)
    single = [relax(a, calc, relax_cell=True, fmax=0.01, steps=300) for a in crystals]
    for many, one in zip(batched, single):
        assert many.converged and one.converged
        assert many.energy < many.energies[0] and one.energy < one.energies[0]
        assert many.energy == pytest.approx(one.energy, abs=1e-3)
        # converged cell force = V * |stress| / natoms (ASE's cell_factor) below fmax
        assert np.abs(many.atoms.get_stress()).max() * many.atoms.get_volume() < 0.01 * len(many.atoms)


def test_batched_lbfgs_cell_relaxation_is_ases() -> None:
    """LBFGS on positions and cell: the steps of ASE's LBFGS on a UnitCellFilter (demo model, float64)."""
    calc = EquiformerV2Calculator("demo", device="cpu", dtype=torch.float64)
    atoms = bulk("Cu", "fcc", a=3.5, cubic=True)
    atoms.rattle(0.02, seed=1)
    batched = relax_many([atoms], calc.potential, optimizer="LBFGS", relax_cell=True, fmax=0.01, steps=60,
                         device="cpu", dtype=torch.float64, progress=False)[0]
    atoms.calc = calc
    energies = []
    optimizer = LBFGS(UnitCellFilter(atoms), logfile=None)
    optimizer.attach(lambda: energies.append(atoms.get_potential_energy()))
    assert optimizer.run(fmax=0.01, steps=60) and batched.converged
    assert batched.steps == optimizer.nsteps
    assert np.allclose(batched.energies, energies, atol=1e-9)
    assert np.allclose(batched.atoms.cell, atoms.cell, atol=1e-8)


def test_relax_many_refuses_other_constraints_and_bad_cells(potential: Potential) -> None:
    with pytest.raises(ValueError, match="optimizer='BFGS': relax_many runs one of FIRE, LBFGS"):
        relax_many([fixed_slab(1.9)], potential, optimizer="BFGS", device="cpu", progress=False)
    slab = fixed_slab(1.9)
    slab.set_constraint(FixBondLength(len(slab) - 2, len(slab) - 1))
    with pytest.raises(ValueError, match="FixAtoms constraints only"):
        relax_many([slab], potential, device="cpu", progress=False)
    with pytest.raises(ValueError, match="periodic along all three axes"):
        relax_many([fixed_slab(1.9)], potential, relax_cell=True, device="cpu", progress=False)


def test_relax_many_caps_atoms_per_call_and_sizes_it_from_memory(potential: Potential, monkeypatch) -> None:
    from eqv2_calc import batching
    from eqv2_calc.cpu_workers import CpuWorkers

    slabs = [fixed_slab(1.8 + 0.15 * i) for i in range(3)]
    sizes = []
    mapped = CpuWorkers.map

    def counting(workers, run, structures):
        sizes.append(sum(len(s) for s in structures))
        return mapped(workers, run, structures)

    monkeypatch.setattr(CpuWorkers, "map", counting)
    free = relax_many(slabs, potential, steps=4, device="cpu", dtype=torch.float64, progress=False)
    capped = relax_many(slabs, potential, steps=4, device="cpu", dtype=torch.float64, progress=False,
                        max_atoms=len(slabs[0]) + 1)
    n = len(slabs[0])
    assert sizes == [3 * n] * 5 + [n] * 15  # 5 evaluations each (4 steps): together, then one at a time
    assert [r.energy for r in capped] == pytest.approx([r.energy for r in free], abs=1e-8)
    # the memory estimate: a larger budget, more atoms; never fewer than one structure
    per_edge = batching.bytes_per_edge(potential)
    assert per_edge > 0 and batching.max_batch_atoms(potential, slabs[0]) >= len(slabs[0])
    monkeypatch.setattr(batching, "memory_budget", lambda device: 10 * per_edge)
    assert batching.max_batch_atoms(potential, slabs[0]) == len(slabs[0])


def test_cpu_workers_split_structures_and_restore_threads(potential: Potential) -> None:
    """Structures evaluated on two threads (one intra-op thread each) give the batched call's numbers, in order;
    PyTorch's thread count comes back afterwards."""
    from eqv2_calc.cpu_workers import CpuWorkers, split_by_atoms
    from eqv2_calc.predict import evaluate

    slabs = [fixed_slab(1.8 + 0.1 * i) for i in range(3)]
    assert [len(g) for g in split_by_atoms(slabs, 2)] == [2, 1]
    assert [len(g) for g in split_by_atoms(slabs, 5)] == [1, 1, 1]
    threads = torch.get_num_threads()
    together = evaluate(potential, slabs)
    with CpuWorkers(potential, 2) as workers:
        assert torch.get_num_threads() == 1
        apart = workers.map(partial(evaluate, potential), slabs)
    assert torch.get_num_threads() == threads
    for a, b in zip(together, apart):
        assert abs(a.energy - b.energy) < 1e-4 and np.allclose(a.forces, b.forces, atol=1e-4)
