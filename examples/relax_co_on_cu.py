"""Relax CO on top of Cu(111) with BFGS, then again with the cell of bulk Cu relaxed.

    python examples/relax_co_on_cu.py [MODEL]

MODEL defaults to the embedded demo model (trained on EMT labels: a demo, not DFT); pass a registered
name or checkpoint file for real numbers.
"""

from __future__ import annotations

import sys

from ase.build import add_adsorbate, bulk, fcc111
from ase.constraints import FixAtoms

from eqv2_calc import relax
from eqv2_calc.adsorbml import get_adsorbate
from eqv2_calc.calculator import DEMO_MODEL, EquiformerV2Calculator

calc = EquiformerV2Calculator(sys.argv[1] if len(sys.argv) > 1 else DEMO_MODEL, device="auto")

slab = fcc111("Cu", size=(3, 3, 3), vacuum=8.0)
add_adsorbate(slab, get_adsorbate("*CO").atoms, 2.0, "ontop")  # C-down: C at the anchor, O above it
slab.set_constraint(FixAtoms(indices=[atom.index for atom in slab if atom.tag == 3]))  # bottom layer
result = relax(slab, calc, fmax=0.05, steps=200, optimizer="BFGS")
atoms = result.atoms
carbon, oxygen = atoms.symbols.search("C")[0], atoms.symbols.search("O")[0]
copper = atoms.symbols.search("Cu")
print(f"CO/Cu(111): E = {result.energy:.4f} eV after {result.steps} steps "
      f"({'converged' if result.converged else 'not converged'}, max force {result.fmax:.3f} eV/A)")
print(f"  C-O bond {atoms.get_distance(carbon, oxygen):.3f} A, Cu-C {atoms.get_distances(carbon, copper, mic=True).min():.3f} A, "
      f"C height above the top Cu layer {atoms.positions[carbon, 2] - atoms.positions[copper, 2].max():.3f} A, "
      f"O height {atoms.positions[oxygen, 2] - atoms.positions[copper, 2].max():.3f} A")

if "stress" in calc.implemented_properties:
    crystal = bulk("Cu", "fcc", a=3.7, cubic=True)
    cell = relax(crystal, calc, fmax=0.01, steps=200, relax_cell=True)
    print(f"bulk Cu: lattice constant {cell.atoms.cell.lengths().mean():.3f} A after {cell.steps} steps "
          f"(started from 3.700 A)")
