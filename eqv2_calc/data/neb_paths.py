"""Minimum-energy paths labelled by EMT (`eqv2 data neb`), so a model learns the saddles between minima.

`eqv2 data emt` samples minima, relaxation paths and thermal noise, and `eqv2 data active` a model's own
relaxations: none of them visits the saddle of a hop, so a model trained on them can get a barrier badly
wrong (the demo model: an Au adatom on Au(100) 0.14 eV against EMT's 0.49). This module runs EMT's own NEBs
of small hops and stores images of the bands along the way:

- ``surface_hop``: an adatom (H, C, N, O, or a metal atom of `emt.METALS`) between neighbouring hollow
  sites of an fcc(100) (hollow -> hollow), fcc(111) (fcc -> hcp) or fcc(110) (hollow -> hollow) slab of a
  metal of `emt.METALS`: 3 x 3 surface cell, 3-4 layers, the layers below the top two fixed (OC20's tags:
  0 fixed, 1 surface, 2 adatom), EMT lattice constant strained isotropically within +-2 %;
- ``vacancy_hop``: a nearest neighbour jumping into the vacancy of a 2 x 2 x 2 cubic fcc cell (31 atoms)
  of one metal, lattice strained within +-2 %, cell fixed.

End points are relaxed with EMT (BFGS, fmax 0.02 eV/Angstrom), the band is interpolated with IDPP and
optimized with ASE's NEB (improved tangent, k = 0.1 eV/Angstrom^2, climbing image) and FIRE to an NEB force of
0.05 eV/Angstrom. Kept frames: both end points, the moving images of the IDPP band, of one band half-way
through the optimization and of the last band (EMT energy and raw forces of every atom). Frames carry
``split`` (per hop: every tenth hop is test, the next one val), ``system_id``, ``kind``, ``metal``,
``facet``, ``adsorbate`` (the adatom, or "vacancy"), ``sampling`` ("neb_end", "neb_idpp", "neb_mid",
"neb_final"), ``step`` (the band's optimizer step) and ``temperature_K`` (0), as `eqv2 data emt`'s do.
Each hop draws from ``default_rng([seed, index])``: the output does not depend on the number of workers.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import add_adsorbate, bulk, fcc100, fcc110, fcc111
from ase.calculators.emt import EMT
from ase.mep import NEB
from ase.optimize import BFGS, FIRE

from .emt import (METALS, emt_lattice_constant, keep_frame, label_frame, map_systems, run_dataset_command,
                  summarize, tag_like_oc20, write_frames)

ADATOMS = ("H", "C", "N", "O") + METALS
# facet: (ase.build function, initial site, final site, final site's offset in surface cells)
HOP_SITES = {
    "fcc100": (fcc100, "hollow", "hollow", (1, 0)),
    "fcc111": (fcc111, "fcc", "hcp", (0, 0)),
    "fcc110": (fcc110, "hollow", "hollow", (1, 0)),
}
# adatom height (Angstrom) above the top layer at the start: light atoms sit lower in a hollow
START_HEIGHT = {"H": 0.9, "C": 1.0, "N": 1.0, "O": 1.1}
METAL_START_HEIGHT = 1.8
VACANCY_FRACTION = 0.25
STRAIN_MAX = 0.02       # |isotropic strain| of the lattice
END_FMAX = 0.02         # eV/Angstrom, end point relaxations
NEB_FMAX = 0.05         # eV/Angstrom, NEB force
NEB_MAX_STEPS = 200
SPRING = 0.1            # eV/Angstrom^2, ASE's default
MOVING_IMAGES = 5


@dataclass(frozen=True)
class HopSpec:
    """One hop; geometry details (layers, strain) come from its own random stream."""

    index: int
    kind: str        # "surface_hop" or "vacancy_hop"
    metal: str
    facet: str       # "fcc100"/"fcc111"/"fcc110", or "bulk"
    adatom: str      # the hopping species, or "vacancy"
    split: str

    @property
    def system_id(self) -> str:
        return f"neb{self.index:05d}-{self.kind}-{self.metal}-{self.facet}-{self.adatom}"


def hop_specs(n_hops: int, seed: int = 0) -> list[HopSpec]:
    """`n_hops` hops drawn from `seed`: ~75 % surface hops, ~25 % vacancy hops; every tenth hop is test and
    the one after it val."""
    rng = np.random.default_rng([seed, 2**20])
    specs = []
    for i in range(n_hops):
        split = ("test", "val")[i % 10] if i % 10 < 2 else "train"
        metal = str(rng.choice(METALS))
        if rng.uniform() < VACANCY_FRACTION:
            specs.append(HopSpec(i, "vacancy_hop", metal, "bulk", "vacancy", split))
        else:
            specs.append(HopSpec(i, "surface_hop", metal, str(rng.choice(sorted(HOP_SITES))),
                                 str(rng.choice(ADATOMS)), split))
    return specs


def surface_hop_ends(metal: str, facet: str, adatom: str, *, layers: int = 4, strain: float = 0.0,
                     size: int = 3) -> tuple[Atoms, Atoms]:
    """An adatom on neighbouring sites of a `size` x `size` slab (`HOP_SITES`), unrelaxed; OC20 tags and pbc."""
    builder, site_a, site_b, offset_b = HOP_SITES[facet]
    slab = builder(metal, size=(size, size, layers), a=emt_lattice_constant(metal) * (1 + strain), vacuum=7.0)
    tag_like_oc20(slab)
    height = START_HEIGHT.get(adatom, METAL_START_HEIGHT)
    ends = []
    for site, offset in ((site_a, (0, 0)), (site_b, offset_b)):
        atoms = slab.copy()
        add_adsorbate(atoms, adatom, height, site, offset=offset)
        atoms.info.pop("adsorbate_info", None)
        tags = atoms.get_tags()
        tags[-1] = 2
        atoms.set_tags(tags)
        ends.append(atoms)
    return ends[0], ends[1]


def vacancy_hop_ends(metal: str, *, strain: float = 0.0) -> tuple[Atoms, Atoms]:
    """A 2 x 2 x 2 cubic fcc cell with atom 0 removed, and the same with a nearest neighbour of the vacancy
    moved into it (atom order kept), unrelaxed."""
    cell = bulk(metal, "fcc", a=emt_lattice_constant(metal) * (1 + strain), cubic=True).repeat((2, 2, 2))
    vacancy = cell.positions[0].copy()
    initial = cell[1:]
    jumper = int(np.argmin(np.linalg.norm(initial.positions - vacancy, axis=1)))  # a nearest neighbour
    final = initial.copy()
    final.positions[jumper] = vacancy
    return initial, final


def relaxed_end(atoms: Atoms) -> Atoms:
    atoms = atoms.copy()
    atoms.calc = EMT()
    BFGS(atoms, logfile=None).run(fmax=END_FMAX, steps=300)
    return atoms


def hop_ends(spec: HopSpec, rng: np.random.Generator) -> tuple[Atoms, Atoms]:
    """The unrelaxed end points of `spec`."""
    strain = float(rng.uniform(-STRAIN_MAX, STRAIN_MAX))
    if spec.kind == "vacancy_hop":
        return vacancy_hop_ends(spec.metal, strain=strain)
    return surface_hop_ends(spec.metal, spec.facet, spec.adatom, layers=int(rng.choice((3, 4))), strain=strain)


def hop_frames(spec: HopSpec, seed: int = 0, moving: int = MOVING_IMAGES) -> list[tuple[Atoms, dict]]:
    """EMT-labelled frames of one hop's NEB: (Atoms with EMT results, key-value pairs) pairs."""
    from ..neb import interpolate_band

    rng = np.random.default_rng([seed, spec.index])
    initial, final = (relaxed_end(atoms) for atoms in hop_ends(spec, rng))
    images = interpolate_band(initial, final, moving)
    for image in images:
        image.calc = EMT()
    neb = NEB(images, k=SPRING, climb=True, method="improvedtangent")
    bands: list[tuple[int, list[Atoms]]] = []
    optimizer = FIRE(neb, logfile=None)
    optimizer.attach(lambda: bands.append((optimizer.nsteps, [label_frame(a, False) for a in images[1:-1]])))
    optimizer.run(fmax=NEB_FMAX, steps=NEB_MAX_STEPS)
    info = {"split": spec.split, "system_id": spec.system_id, "kind": spec.kind, "metal": spec.metal,
            "facet": spec.facet, "adsorbate": spec.adatom, "temperature_K": 0.0}
    frames = [(label_frame(end, False), {**info, "sampling": "neb_end", "step": 0}) for end in (initial, final)]
    for sampling, (step, band) in (("neb_idpp", bands[0]), ("neb_mid", bands[len(bands) // 2]),
                                   ("neb_final", bands[-1])):
        frames += [(frame, {**info, "sampling": sampling, "step": int(step)}) for frame in band]
    return frames


def _hop_job(args: tuple) -> list[tuple[Atoms, dict]]:
    return hop_frames(*args)


def make_neb_dataset(path: str | Path, *, n_hops: int = 300, seed: int = 0, moving: int = MOVING_IMAGES,
                     workers: int = 1, progress: bool = True, overwrite: bool = False) -> dict:
    """Write the EMT NEB frames of `hop_specs(n_hops, seed)` to `path` and return their summary.

    Args:
        path: ``.db`` (ASE SQLite) or an ase.io format; it appears only when complete.
        n_hops, seed: the hops (`hop_specs`).
        moving: moving images per band.
        workers: processes; the output does not depend on it.
        progress: tqdm progress bar over hops (stderr).
        overwrite: replace an existing `path`.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    if n_hops < 1 or moving < 1:
        raise ValueError(f"n_hops={n_hops} and moving={moving} must be >= 1")
    start = time.perf_counter()
    frames: list[tuple[Atoms, dict]] = []
    n_dropped = 0
    jobs = [(spec, seed, moving) for spec in hop_specs(n_hops, seed)]
    for hop in map_systems(_hop_job, jobs, workers=workers, desc="EMT NEBs", progress=progress):
        kept = [(atoms, kvp) for atoms, kvp in hop if keep_frame(atoms)]
        n_dropped += len(hop) - len(kept)
        frames += kept
    write_frames(path, frames)
    summary = summarize([a for a, _ in frames], [k for _, k in frames])
    summary.update({"path": str(path), "seed": seed, "n_dropped": n_dropped,
                    "total_seconds": round(time.perf_counter() - start, 1)})
    return summary


def build_parser() -> argparse.ArgumentParser:
    """The options of `eqv2 data neb` (also read by tools/gen_cli_docs.py)."""
    parser = argparse.ArgumentParser(prog="eqv2 data neb", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="output file: .db (ASE SQLite database) or .extxyz")
    parser.add_argument("--n-hops", type=int, default=300, help="number of hops (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--images", type=int, default=MOVING_IMAGES,
                        help=f"moving images per band (default {MOVING_IMAGES})")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1; output does not "
                        "depend on it)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line: ``eqv2 data neb OUT.db [--n-hops 300] [--seed 0] [--workers 2]``."""
    return run_dataset_command(build_parser(), argv, lambda args: make_neb_dataset(
        args.path, n_hops=args.n_hops, seed=args.seed, moving=args.images, workers=args.workers,
        progress=not args.no_progress, overwrite=args.overwrite))
