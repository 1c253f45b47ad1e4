"""Evaluate an EquiformerV2 checkpoint on a slab with an adsorbate and on a bulk crystal.

    python examples/evaluate_checkpoint.py [CHECKPOINT]

Without an argument it uses the small random-weight test checkpoint shipped in tests/data (its
numbers are not physics); pass any fairchem 1.x eqV2 file, e.g. eqV2_31M_omat_mp_salex.pt.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ase.build import add_adsorbate, bulk, fcc111
from ase.constraints import FixAtoms

from eqv2_calc.adsorbml import get_adsorbate
from eqv2_calc.calculator import EquiformerV2Calculator

checkpoint = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parents[1] / "tests" / "data" / "ckpt_omat_stress.pt"
calc = EquiformerV2Calculator(model=checkpoint, device="auto")
print(f"model: {checkpoint} on {calc.device}, predicts {', '.join(calc.implemented_properties)}")

slab = fcc111("Cu", size=(2, 2, 3), vacuum=8.0)
add_adsorbate(slab, get_adsorbate("*CO").atoms, 1.9, "ontop")  # CO C-down
slab.set_constraint(FixAtoms(indices=[atom.index for atom in slab if atom.tag == 3]))
slab.calc = calc
print(f"CO on Cu(111): E = {slab.get_potential_energy():.4f} eV, "
      f"max |F| on free atoms = {abs(slab.get_forces()).max():.4f} eV/A")

crystal = bulk("NaCl", "rocksalt", a=5.64)
crystal.calc = calc
line = f"NaCl rocksalt: E = {crystal.get_potential_energy():.4f} eV"
if "stress" in calc.implemented_properties:
    line += f", stress (Voigt, eV/A^3) = {crystal.get_stress().round(5)}"
print(line)
