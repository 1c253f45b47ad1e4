"""Small NEB systems (tests and benchmarks/bench_neb.py): hops on fcc(100) slabs, and DFT-like NEB trajectories in
OC20NEB's layout made with EMT standing in for DFT."""

from __future__ import annotations

import os

import numpy as np
from ase import Atoms
from ase.build import add_adsorbate, fcc100
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from ase.mep import NEB
from ase.optimize import BFGS

# adatom hops: metal of the slab, adatom, height above the top layer (Angstrom)
HOPS = {"O/Cu(100)": ("Cu", "O", 1.0), "Cu/Cu(100)": ("Cu", "Cu", 1.7), "Au/Au(100)": ("Au", "Au", 1.8),
        "Pt/Pt(100)": ("Pt", "Pt", 1.8), "Ag/Ag(100)": ("Ag", "Ag", 1.8), "N/Ni(100)": ("Ni", "N", 0.9)}


def hop_ends(name: str = "O/Cu(100)", size: tuple[int, int, int] = (2, 2, 2)) -> tuple[Atoms, Atoms]:
    """An adatom in a hollow site of an fcc(100) slab and in the next hollow along x (bottom layer fixed);
    unrelaxed, heights in Angstrom above the top layer from `HOPS`."""
    metal, adatom, height = HOPS[name]
    slab = fcc100(metal, size=size, vacuum=6.0)
    slab.set_constraint(FixAtoms(indices=[a.index for a in slab if a.tag == size[2]]))
    initial, final = slab.copy(), slab.copy()
    add_adsorbate(initial, adatom, height, "hollow")
    add_adsorbate(final, adatom, height, "hollow", offset=(1, 0))
    for atoms in (initial, final):
        atoms.info.pop("adsorbate_info", None)
    return initial, final


def emt_relaxed(atoms: Atoms, fmax: float = 0.02) -> Atoms:
    atoms = atoms.copy()
    atoms.calc = EMT()
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=200)
    return atoms


def write_emt_neb_trajectory(path: str | os.PathLike, initial: Atoms, final: Atoms, moving: int = 8,
                             fmax: float = 0.05, steps: int = 150) -> np.ndarray:
    """An ASE NEB with EMT (end points relaxed with EMT, IDPP band, k = 1, climbing image, BFGS) written as ASE's
    optimizer writes it: every band of the optimization, `moving + 2` images each with energies, the layout of
    OC20NEB's trajectories. Returns the final band's energies (eV)."""
    from eqv2_calc.neb import interpolate_band

    images = interpolate_band(emt_relaxed(initial), emt_relaxed(final), moving)
    for image in images:
        image.calc = EMT()
    neb = NEB(images, k=1.0, climb=True, method="improvedtangent")
    BFGS(neb, logfile=None, trajectory=str(path)).run(fmax=fmax, steps=steps)
    return np.array([image.get_potential_energy() for image in images])
