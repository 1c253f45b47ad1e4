"""Parity with fairchem-core 1.10.0 and the upstream research code on golden files (tests/data, made by
tools/make_golden.py and, for `golden_upstream_*` / `golden_odac_is2re`, tools/make_golden_upstream.py:
the DeNS and the paper's repositories' own classes).

Issue tolerances (float32, CPU): energy 1e-5 eV/atom, forces 1e-4 eV/Angstrom (max abs), stress
1e-5 eV/Angstrom^3. fairchem rolls every edge frame by a random angle, so its own outputs move
between calls by the golden's `*_spread` (up to 4e-4 eV/Angstrom for the released 31M grid). Hence
two checks per case:
- `*_fixed_roll`: fairchem run with our deterministic edge frame patched in; all other arithmetic is
  fairchem's, so we hold these to the issue's tolerances.
- the plain (random-roll, seed 0) values: within the tolerance plus twice fairchem's own spread.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import GOLDEN_CONFIGS, golden, golden_potential, is_real_size_upstream, load_golden_potential, structure
from eqv2_calc.calculator import EquiformerV2Calculator

E_TOL, F_TOL, S_TOL = 1e-5, 1e-4, 1e-5
# The full-size DeNS configs (lmax 6, 89M-153M parameters) take ~20 s each to build and run on a CPU:
# one structure each here; their goldens hold three (tools/make_golden_upstream.py).
REAL_SIZE_UPSTREAM_STRUCTURE = "si_diamond"
CASES = [(c, s) for c in GOLDEN_CONFIGS for s in golden(c)["structures"]
         if not is_real_size_upstream(c) or s == REAL_SIZE_UPSTREAM_STRUCTURE]


@pytest.mark.parametrize("config_name,structure_name", CASES)
def test_matches_fairchem(config_name: str, structure_name: str) -> None:
    ref = golden(config_name)["structures"][structure_name]
    atoms = structure(structure_name)
    load = load_golden_potential if is_real_size_upstream(config_name) else golden_potential  # memory: not kept
    atoms.calc = EquiformerV2Calculator(load(config_name), device="cpu")
    natoms = len(atoms)
    energy = atoms.get_potential_energy()
    assert abs(energy - ref["energy_fixed_roll"]) / natoms < E_TOL
    assert abs(energy - ref["energy"]) / natoms < E_TOL + 2 * ref["energy_spread"] / natoms
    if ref["forces"] is None:  # an energy-only (IS2RE direct) model
        assert atoms.calc.implemented_properties == ["energy", "free_energy"]
        return
    forces = atoms.get_forces(apply_constraint=False)
    if ref["stress"] is not None and not atoms.pbc.any():  # a molecule: fairchem answers, we give no stress
        assert "stress" not in atoms.calc.results
        ref = {**ref, "stress": None}
    stress = atoms.get_stress(voigt=False) if ref["stress"] is not None else None

    assert np.abs(forces - np.array(ref["forces_fixed_roll"])).max() < F_TOL
    assert np.abs(forces - np.array(ref["forces"])).max() < F_TOL + 2 * ref["forces_spread"]
    if stress is not None:
        assert np.abs(stress - np.array(ref["stress_fixed_roll"])).max() < S_TOL
        assert np.abs(stress - np.array(ref["stress"])).max() < S_TOL + 2 * ref["stress_spread"]


def test_golden_tool_uses_our_edge_frame() -> None:
    """tools/make_golden.py patches our frame into fairchem (it cannot import us): same constants."""
    from pathlib import Path

    from eqv2_calc.model.so3 import FRAME_ROTATION_ANGLES

    tool = (Path(__file__).parents[1] / "tools" / "make_golden.py").read_text()
    assert f"FRAME_ROTATION_ANGLES = {FRAME_ROTATION_ANGLES}" in tool
