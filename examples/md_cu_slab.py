"""Molecular dynamics of a Cu(111) slab: NVE from 300 K, then Langevin NVT at 600 K.

    python examples/md_cu_slab.py [MODEL]

Writes md_cu_slab.traj and prints energy conservation (NVE) and the temperature reached (NVT).
MODEL defaults to the embedded demo model (trained on EMT labels: a demo, not DFT).
"""

from __future__ import annotations

import sys

import numpy as np
from ase.build import fcc111
from ase.constraints import FixAtoms

from eqv2_calc import run_md
from eqv2_calc.calculator import DEMO_MODEL, EquiformerV2Calculator

calc = EquiformerV2Calculator(sys.argv[1] if len(sys.argv) > 1 else DEMO_MODEL, device="auto")
slab = fcc111("Cu", size=(3, 3, 3), vacuum=8.0)
slab.set_constraint(FixAtoms(indices=[atom.index for atom in slab if atom.tag == 3]))

nve = run_md(slab, calc, ensemble="nve", temperature_K=300, timestep_fs=1.0, steps=50, loginterval=5)
print(f"NVE, 50 x 1 fs: total energy drift {1000 * nve.energy_drift_eV_per_atom:+.3f} meV/atom, "
      f"{nve.graph_builds} neighbour searches for {nve.graph_calls} force calls (Verlet skin)")

nvt = run_md(nve.atoms, calc, ensemble="nvt", temperature_K=600, timestep_fs=2.0, steps=50, loginterval=5,
             trajectory="md_cu_slab.traj")
temperatures = [frame.temperature_K for frame in nvt.log]
print(f"Langevin NVT at 600 K, 50 x 2 fs: T = {' '.join(f'{t:.0f}' for t in temperatures)} K "
      f"(last half mean {np.mean(temperatures[len(temperatures) // 2:]):.0f} K); wrote md_cu_slab.traj")
