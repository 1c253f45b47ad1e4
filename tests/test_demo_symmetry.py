"""The shipped demo model is rotation-equivariant to EQUIVARIANCE_BOUND (relative to the largest force).

EquiformerV2's S2 activations are equivariant only up to the quadrature error of their grids; the demo's edge and
node grids (`edge_grid_resolution`, `node_grid_resolution` in its config) were chosen for this bound
(benchmarks/bench_demo_grid.py measures the error and the cost per grid pair). float64, so round-off plays no part.
"""

from __future__ import annotations

import pytest
import torch

from eqv2_calc.calculator import EquiformerV2Calculator
from eqv2_calc.predict import DEMO_MODEL
from rotations import STRUCTURES, force_rotation_error, rotations

EQUIVARIANCE_BOUND = 5e-4


@pytest.fixture(scope="module")
def demo64() -> EquiformerV2Calculator:
    return EquiformerV2Calculator(DEMO_MODEL, device="cpu", dtype=torch.float64)


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_demo_forces_rotate_with_the_structure(demo64: EquiformerV2Calculator, name: str) -> None:
    assert force_rotation_error(demo64, STRUCTURES[name](), rotations(3)) <= EQUIVARIANCE_BOUND
