"""Relax many slab + adsorbate systems at once with the batched FIRE of `relax_many`.

    python examples/batch_relax.py [MODEL]

Builds 8 systems (CO and O on Cu(111) top / fcc / hcp / bridge sites), relaxes them 4 at a time
with one model call per step, and prints a table sorted by energy. MODEL defaults to the embedded
demo model (trained on EMT labels: a demo, not DFT).
"""

from __future__ import annotations

import sys
import time

from ase import Atoms
from ase.build import add_adsorbate, fcc111
from ase.constraints import FixAtoms

from eqv2_calc import relax_many
from eqv2_calc.adsorbml import get_adsorbate
from eqv2_calc.calculator import DEMO_MODEL

model = sys.argv[1] if len(sys.argv) > 1 else DEMO_MODEL
ADSORBATES = {"CO": get_adsorbate("*CO").atoms, "O": Atoms("O")}  # CO C-down (C first, O above)
SITES = ("ontop", "fcc", "hcp", "bridge")

systems, labels = [], []
for name, adsorbate in ADSORBATES.items():
    for site in SITES:
        slab = fcc111("Cu", size=(2, 2, 3), vacuum=7.0)
        add_adsorbate(slab, adsorbate, 1.8, site)
        slab.set_constraint(FixAtoms(indices=[atom.index for atom in slab if atom.tag == 3]))
        systems.append(slab)
        labels.append(f"{name}@{site}")

start = time.perf_counter()
results = relax_many(systems, model, fmax=0.05, steps=100, batch_size=4, device="auto")
elapsed = time.perf_counter() - start
print(f"relaxed {len(systems)} systems in {elapsed:.1f} s ({len(systems) / elapsed:.2f} structures/s), "
      f"{sum(r.converged for r in results)} converged")
print(f"{'system':<12} {'energy (eV)':>12} {'steps':>6} {'fmax (eV/A)':>12}")
for label, r in sorted(zip(labels, results), key=lambda pair: pair[1].energy):
    print(f"{label:<12} {r.energy:>12.4f} {r.steps:>6} {r.fmax:>12.4f}")
