"""Relaxations: ASE-optimizer `relax` and the batched FIRE `relax_many` reach the same minima."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.constraints import FixAtoms, FixBondLength
from ase.optimize import LBFGS

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


def test_relax_many_follows_ase_fire_and_keeps_fixed_atoms(potential: Potential) -> None:
    slabs = [fixed_slab(1.8 + 0.15 * i) for i in range(3)]
    ase_fire = [relax(s, potential, optimizer="FIRE", fmax=0.03, steps=150, device="cpu") for s in slabs]
    batched = relax_many(slabs, potential, fmax=0.03, steps=150, batch_size=2, device="cpu", dtype=torch.float64,
                         progress=False)
    for slab, single, many in zip(slabs, ase_fire, batched):
        assert single.converged and many.converged
        assert many.steps == single.steps  # the same FIRE, one structure at a time or batched and refilled
        assert abs(many.energy - single.energy) < 1e-6
        fixed = slab.constraints[0].index
        assert np.array_equal(many.atoms.positions[fixed], slab.positions[fixed])
        assert np.array_equal(single.atoms.positions[fixed], slab.positions[fixed])
        assert len(many.energies) == many.steps + 1 and many.fmaxes[-1] < 0.03


def test_relax_accepts_optimizer_classes_and_reports(potential: Potential, tmp_path) -> None:
    result = relax(fixed_slab(1.9), potential, optimizer=LBFGS, fmax=0.05, steps=200, device="cpu",
                   trajectory=tmp_path / "relax.traj")
    assert result.converged == (result.fmax < 0.05) and result.fmax == result.fmaxes[-1]
    assert len(result.energies) == result.steps + 1 and (tmp_path / "relax.traj").exists()
    assert result.atoms.get_potential_energy() == result.energy
    with pytest.raises(ValueError, match="unknown optimizer"):
        relax(fixed_slab(1.9), potential, optimizer="NoSuch")


def test_cell_relaxation_batched_and_ase(potential: Potential) -> None:
    """Both reach zero stress; with random weights the minima may differ, so energies are compared in
    test_examples (demo model) rather than here."""
    crystals = [bulk("Cu", "fcc", a=a, cubic=True) for a in (3.5, 3.7)]
    for atoms in crystals:
        atoms.rattle(0.02, seed=1)
    batched = relax_many(crystals, potential, fmax=0.01, steps=300, relax_cell=True, device="cpu",
                         dtype=torch.float64, progress=False)
    single = [relax(a, potential, relax_cell=True, fmax=0.01, steps=300, device="cpu") for a in crystals]
    for many, one in zip(batched, single):
        assert many.converged and one.converged
        assert many.energy < many.energies[0] and one.energy < one.energies[0]
        # converged cell force = V * |stress| / natoms (ASE's cell_factor) below fmax
        assert np.abs(many.atoms.get_stress()).max() * many.atoms.get_volume() < 0.01 * len(many.atoms)


def test_relax_many_refuses_other_constraints_and_bad_cells(potential: Potential) -> None:
    slab = fixed_slab(1.9)
    slab.set_constraint(FixBondLength(len(slab) - 2, len(slab) - 1))
    with pytest.raises(ValueError, match="FixAtoms constraints only"):
        relax_many([slab], potential, device="cpu", progress=False)
    with pytest.raises(ValueError, match="periodic along all three axes"):
        relax_many([fixed_slab(1.9)], potential, relax_cell=True, device="cpu", progress=False)


def test_relax_many_caps_atoms_per_call_and_sizes_it_from_memory(potential: Potential, monkeypatch) -> None:
    import sys

    from eqv2_calc import batching

    relax_module = sys.modules["eqv2_calc.relax"]

    slabs = [fixed_slab(1.8 + 0.15 * i) for i in range(3)]
    sizes = []
    evaluate = relax_module.evaluate

    def counting(potential, structures, *args):
        sizes.append(sum(len(s) for s in structures))
        return evaluate(potential, structures, *args)

    monkeypatch.setattr(relax_module, "evaluate", counting)
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
