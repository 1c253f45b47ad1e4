"""The ASE calculator: results, units/conventions, constraints, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, fcc111, add_adsorbate, molecule
from ase.constraints import FixAtoms

from eqv2_calc.calculator import EquiformerV2Calculator
from eqv2_calc.errors import InvalidStructureError
from test_model import seeded_potential


@pytest.fixture(scope="module")
def calc() -> EquiformerV2Calculator:
    return EquiformerV2Calculator(seeded_potential(), device="cpu", dtype=torch.float32)


def slab_with_co() -> Atoms:
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    add_adsorbate(slab, molecule("CO")[::-1], 1.9, "ontop")  # C-down: ase lists O first
    slab.set_constraint(FixAtoms(indices=[a.index for a in slab if a.tag == 3]))
    return slab


def test_results_and_properties(calc: EquiformerV2Calculator) -> None:
    atoms = bulk("NaCl", "rocksalt", a=5.0)
    atoms.rattle(0.05, seed=1)
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    assert atoms.get_potential_energy(force_consistent=True) == energy
    assert atoms.get_forces().shape == (2, 3)
    assert atoms.get_stress().shape == (6,)
    assert set(calc.implemented_properties) == {"energy", "free_energy", "forces", "stress"}


def test_fixatoms_tags_and_mixed_pbc(calc: EquiformerV2Calculator) -> None:
    slab = slab_with_co()
    slab.calc = calc
    forces = slab.get_forces()
    fixed = slab.constraints[0].index
    assert np.all(forces[fixed] == 0.0)
    assert np.abs(slab.get_forces(apply_constraint=False)[fixed]).max() > 0
    mixed = slab.copy()
    mixed.pbc = (True, True, False)
    mixed.calc = calc
    assert np.isfinite(mixed.get_potential_energy())


def test_float64_agrees_with_float32(calc: EquiformerV2Calculator) -> None:
    atoms = molecule("CH3OH")
    atoms.calc = calc
    e32 = atoms.get_potential_energy()
    atoms.calc = EquiformerV2Calculator(seeded_potential(), device="cpu", dtype=torch.float64)
    assert abs(atoms.get_potential_energy() - e32) < 1e-4


def test_precision_switches() -> None:
    """tf32 changes nothing on a CPU and restores torch's CUDA flag; bfloat16 stays close; bad names fail."""
    from eqv2_calc.precision import matmul_precision

    atoms = slab_with_co()
    results = {}
    for precision in ("float32", "tf32", "bfloat16"):
        atoms.calc = EquiformerV2Calculator(seeded_potential(), device="cpu", precision=precision)
        results[precision] = (atoms.get_potential_energy(), atoms.get_forces())
    assert results["tf32"][0] == results["float32"][0]
    scale = np.abs(results["float32"][1]).max()
    assert np.abs(results["bfloat16"][1] - results["float32"][1]).max() < 0.05 * scale
    saved = torch.backends.cuda.matmul.fp32_precision
    with matmul_precision("tf32", torch.device("cuda")):
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
    assert torch.backends.cuda.matmul.fp32_precision == saved
    with pytest.raises(ValueError, match="precision='fp16'"):
        EquiformerV2Calculator(seeded_potential(), device="cpu", precision="fp16")


@pytest.mark.parametrize(
    "atoms,message",
    [
        (Atoms(), "no atoms"),
        (Atoms("Cu2", positions=[[0, 0, 0], [np.nan, 0, 0]]), "atom 1"),
        (Atoms("Cu", positions=[[0, 0, 0]], cell=np.zeros((3, 3)), pbc=True), "lattice vector|cell"),
        (Atoms("Cu2", positions=[[0, 0, 0], [1, 0, 0]], cell=[[2, 0, 0], [4, 0, 0], [0, 0, 3]], pbc=True), "lattice vector|cell"),
        (Atoms("U", positions=[[0, 0, 0]]), r"atomic number 92 \(U\), beyond the elements this model embeds"),
    ],
)
def test_bad_input_gets_a_clear_error(calc: EquiformerV2Calculator, atoms: Atoms, message: str) -> None:
    atoms.calc = calc
    with pytest.raises(InvalidStructureError, match=message):
        atoms.get_potential_energy()


def test_bad_device_and_dtype() -> None:
    with pytest.raises(ValueError, match="dtype"):
        EquiformerV2Calculator(seeded_potential(), device="cpu", dtype=torch.float16)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            EquiformerV2Calculator(seeded_potential(), device="cuda")
