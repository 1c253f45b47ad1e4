"""Rotation-equivariance checks of a calculator's forces, shared by tests/test_demo_symmetry.py and
benchmarks/bench_demo_grid.py: a molecule, a slab and a bulk cell, rotated rigidly (cell included)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.calculator import Calculator
from scipy.spatial.transform import Rotation

from eqv2_calc.demo import co_on_cu111

# The rotation the equivariance report (issue 29) used, then random ones.
EULER_XYZ_DEG = (37.0, -21.0, 64.0)


def rotations(n_random: int, seed: int = 0) -> np.ndarray:
    """`(1 + n_random, 3, 3)` rotation matrices: Euler xyz 37/-21/64 degrees first, then random ones."""
    first = Rotation.from_euler("xyz", EULER_XYZ_DEG, degrees=True).as_matrix()[None]
    return np.concatenate([first, Rotation.random(n_random, random_state=seed).as_matrix().reshape(-1, 3, 3)])


def methanol() -> Atoms:
    """CH3OH in a 6 A vacuum box, no periodic axis."""
    atoms = molecule("CH3OH")
    atoms.center(vacuum=6.0)
    return atoms


def co_slab() -> Atoms:
    """Cu(111) 3x3x3 + CO on top (the demo's relaxation start), unconstrained and rattled 0.05 A."""
    atoms = co_on_cu111()
    atoms.set_constraint()
    atoms.rattle(0.05, seed=1)
    return atoms


def alloy_cell() -> Atoms:
    """A 32-atom fcc Cu cell with two Au atoms, rattled 0.08 A (periodic in 3D)."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    atoms.symbols[[0, 5]] = "Au"
    atoms.rattle(0.08, seed=2)
    return atoms


STRUCTURES = {"CH3OH": methanol, "Cu(111)+CO": co_slab, "Cu30Au2 cell": alloy_cell}


def rotated(atoms: Atoms, rotation: np.ndarray) -> Atoms:
    """`atoms` with positions and cell rotated by `rotation` (3, 3) about the origin."""
    out = atoms.copy()
    out.set_cell(atoms.cell[:] @ rotation.T, scale_atoms=False)
    out.positions = atoms.positions @ rotation.T
    return out


def force_rotation_error(calc: Calculator, atoms: Atoms, rotations: np.ndarray) -> float:
    """Largest |F(R x) - R F(x)| over atoms, components and `rotations`, relative to the largest |F(x)| component."""
    atoms = atoms.copy()
    atoms.calc = calc
    forces = atoms.get_forces()
    worst = 0.0
    for rotation in rotations:
        turned = rotated(atoms, rotation)
        turned.calc = calc
        worst = max(worst, float(np.abs(turned.get_forces() - forces @ rotation.T).max()))
    return worst / float(np.abs(forces).max())
