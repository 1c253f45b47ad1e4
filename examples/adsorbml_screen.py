"""AdsorbML screen of *CO on Cu(111): place it every way, relax all placements together, rank, write for DFT.

    python examples/adsorbml_screen.py [MODEL]

MODEL defaults to the embedded demo model (trained on EMT labels: a demo, not DFT); pass a registered
name or checkpoint file (e.g. EquiformerV2-31M-S2EF-OC20-All+MD) for real adsorption energies. The slab is
a CPU-sized 3x3 cell of 3 layers; drop `slab_settings` for OC20's (7 A thick, 8 A wide, 20 A vacuum) and
raise `num_random` to AdsorbML's 100 on a GPU. The same from the command line:

    eqv2 adsorb --bulk Cu.cif --miller 1 1 1 --adsorbate "*CO" --top-k 5 --plot
"""

from __future__ import annotations

import sys
import time

from ase.build import bulk

from eqv2_calc.adsorbml import SlabSettings, run_adsorbml, summary_lines, write_results
from eqv2_calc.predict import DEMO_MODEL

model = sys.argv[1] if len(sys.argv) > 1 else DEMO_MODEL
start = time.perf_counter()
systems = run_adsorbml(bulk("Cu", "fcc", a=3.59), "*CO", model, miller=(1, 1, 1),
                       slab_settings=SlabSettings(min_slab_size=5.0, min_vacuum=8.0, min_ab=7.0),
                       num_random=2, fmax=0.05, steps=100, progress=False)
for line in summary_lines(systems, top_k=5):
    print(line)
paths = write_results(systems, "adsorbml_screen", top_k=5)
best = systems[0].best
print(f"best: {best.placement.site.kind} site, {best.atoms.get_chemical_formula()}, "
      f"E_ads {best.adsorption_energy:.3f} eV (demo model: EMT-like, not DFT)" if best else "no valid placement")
print(f"{len(systems[0].candidates)} relaxations in {time.perf_counter() - start:.1f} s; "
      f"table {paths['csv']}, top-5 structures for DFT in {paths['top']}/, plot {paths['figure']}")
