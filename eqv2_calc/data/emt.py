"""An OC20-S2EF-like training set labelled with ASE's EMT potential, for the offline demo model.

`make_emt_dataset(path)` builds small periodic systems of the seven fcc metals EMT knows
(Cu, Ag, Au, Ni, Pd, Pt, Al) and of a few random binary fcc alloys:

- ``bulk``: 1-8 atom cells at EMT's own lattice constant, isotropically or randomly strained
  (each strain component within +-4 %) and rattled;
- ``slab``: (111), (100), (110) slabs, 2x2 or 3x3 surface cells, 3-4 layers, rattled;
- ``adsorbate``: a slab with one adsorbate (H, O, N, C, OH, CO, NH, CH, NO, NH2, CH2, CH3,
  H2O, OOH) on a random ontop/bridge/hollow site, at a random height, tilt and azimuth.

Slabs follow OC20: ``pbc=(True, True, True)``, tags 0 (subsurface, fixed with ``FixAtoms``),
1 (top two surface layers), 2 (adsorbate). Each system is relaxed with LBFGS (a subsample of the
trajectory is kept) and then run for a short Langevin MD at 300, 600 or 1000 K (snapshots kept),
so the forces cover far-from-equilibrium starts, near-equilibrium minima and thermal noise.

Every frame is stored with EMT's energy (eV), forces (eV/Angstrom, raw: *not* zeroed on fixed
atoms) and, for bulk cells only, stress (eV/Angstrom^3, Voigt xx yy zz yz xz xy, ASE sign) as its
calculator results, plus the key-value pairs ``split`` (train/val/test, assigned per *system*:
all frames of one system share a split), ``system_id``, ``kind``, ``metal``, ``adsorbate``,
``facet``, ``sampling`` (relax/md/strain), ``step`` and ``temperature_K`` (0 outside MD).

EMT's H, C, N, O parameters are crude ("fake" in ASE's words): the labels are a consistent
potential-energy surface to train and test on, not chemistry. Each system draws from its own
random stream ``default_rng([seed, system_index])``, so the output does not depend on the
number of worker processes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import product
from pathlib import Path
from typing import TypeVar

import numpy as np
from ase import Atoms, units
from ase.build import add_adsorbate, bulk, fcc100, fcc110, fcc111
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms
from ase.eos import EquationOfState
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary
from ase.optimize import LBFGS

try:  # ase >= 3.29; the same draws as the older, now deprecated MaxwellBoltzmannDistribution
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # pragma: no cover - older ase
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    def thermalize_momenta(atoms, temperature_K, *, rng=None):  # noqa: N803
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)

T = TypeVar("T")

METALS = ("Cu", "Ag", "Au", "Ni", "Pd", "Pt", "Al")
# Random substitutional fcc alloys; EMT mixes any pair of its elements through its own rules.
ALLOYS = (("Cu", "Au"), ("Ni", "Pt"), ("Cu", "Ni"), ("Ag", "Pd"), ("Pd", "Pt"), ("Au", "Ag"))
FACETS = ("fcc111", "fcc100", "fcc110")  # ase.build function names (digits-only strings upset ase.db)

# Adsorbate geometries (Angstrom), binding atom first at the origin, the rest pointing up (+z).
# Bond lengths and angles are textbook gas-phase values (CRC Handbook), rounded; the relaxation
# moves them to EMT's minimum anyway.
_TETRA_UP = math.radians(180.0 - 109.47)  # angle of a CH3 hydrogen from +z when C binds down
ADSORBATES: dict[str, tuple[str, list[tuple[float, float, float]]]] = {
    "H": ("H", [(0.0, 0.0, 0.0)]),
    "O": ("O", [(0.0, 0.0, 0.0)]),
    "N": ("N", [(0.0, 0.0, 0.0)]),
    "C": ("C", [(0.0, 0.0, 0.0)]),
    "OH": ("OH", [(0.0, 0.0, 0.0), (0.0, 0.0, 0.97)]),
    "CO": ("CO", [(0.0, 0.0, 0.0), (0.0, 0.0, 1.15)]),
    "NO": ("NO", [(0.0, 0.0, 0.0), (0.0, 0.0, 1.15)]),
    "NH": ("NH", [(0.0, 0.0, 0.0), (0.0, 0.0, 1.04)]),
    "CH": ("CH", [(0.0, 0.0, 0.0), (0.0, 0.0, 1.09)]),
    # NH2: N-H 1.02, H-N-H 105 deg; CH2: C-H 1.09, 110 deg; H2O: O-H 0.96, 104.5 deg.
    "NH2": ("NH2", [(0.0, 0.0, 0.0), (0.809, 0.0, 0.621), (-0.809, 0.0, 0.621)]),
    "CH2": ("CH2", [(0.0, 0.0, 0.0), (0.893, 0.0, 0.625), (-0.893, 0.0, 0.625)]),
    "CH3": ("CH3", [(0.0, 0.0, 0.0)] + [
        (1.09 * math.sin(_TETRA_UP) * math.cos(phi), 1.09 * math.sin(_TETRA_UP) * math.sin(phi),
         1.09 * math.cos(_TETRA_UP)) for phi in (0.0, 2 * math.pi / 3, 4 * math.pi / 3)]),
    "H2O": ("OH2", [(0.0, 0.0, 0.0), (0.759, 0.0, 0.588), (-0.759, 0.0, 0.588)]),
    # OOH: O-O 1.45 tilted 30 deg from +z, O-H 0.97, O-O-H 105 deg, H pointing up.
    "OOH": ("OOH", [(0.0, 0.0, 0.0), (0.725, 0.0, 1.256), (0.039, 0.0, 1.942)]),
}

# Initial height (Angstrom) of the binding atom above the top layer, per site family. EMT's (crude)
# H/C/N/O parameters put the binding atom ~2.0-2.2 A from its nearest metal atom after relaxation;
# the ranges straddle that so the starts are strained but not absurd.
_HEIGHTS = {  # family: (H range, heavy-atom range)
    "ontop": ((1.6, 2.4), (1.7, 2.4)),
    "bridge": ((1.3, 2.1), (1.4, 2.1)),
    "hollow": ((1.1, 1.9), (0.9, 1.7)),
}
_SITE_FAMILY = {"ontop": "ontop", "bridge": "bridge", "longbridge": "bridge", "shortbridge": "bridge",
                "fcc": "hollow", "hcp": "hollow", "hollow": "hollow"}
MAX_TILT_DEG = 35.0  # adsorbate axis tilt from the surface normal, uniform in [0, MAX_TILT_DEG]

STRAIN_MAX = 0.04          # |strain component| for bulk cells (brief: +-4 %)
BULK_SIZES = (1, 2, 4, 8)  # atoms per bulk cell: primitive, 2x1x1 primitive, cubic, 2x2x2 primitive
BULK_RATTLE_A = (0.02, 0.12)   # rattle standard deviation range (Angstrom), bulk
SLAB_RATTLE_A = (0.02, 0.10)   # rattle standard deviation range (Angstrom), slab surface atoms
VACUUM_A = (8.0, 10.0)     # ase.build `vacuum`, on each side: periodic images >= 16 A apart
SLAB_SIZES = (2, 3)        # n x n surface cells
SLAB_LAYERS = (3, 4)
N_FREE_LAYERS = 2          # top layers tagged 1 and free; the others tagged 0 and fixed (as OC20)

RELAX_FMAX = 0.05          # LBFGS convergence, eV/Angstrom
RELAX_MAX_STEPS = 60
TEMPERATURES_K = (300.0, 600.0, 1000.0)
MD_TIMESTEP_FS = 1.0       # 1 fs keeps hydrogen stable at 1000 K
MD_FRICTION_PER_FS = 0.02  # Langevin friction; ~50 fs relaxation time to the bath
MAX_FORCE = 30.0           # eV/Angstrom: frames with a larger force component are dropped as outliers

# Fractions of the systems per kind (the rest are adsorbate systems) and of bulk systems that are alloys.
BULK_FRACTION = 0.25
SLAB_FRACTION = 0.15
ALLOY_FRACTION = 0.3
SPLIT_FRACTIONS = (("train", 0.8), ("val", 0.1), ("test", 0.1))


@dataclass(frozen=True)
class SystemSpec:
    """What one system is; the geometry details are drawn from its own random stream."""

    index: int
    kind: str          # "bulk", "slab" or "adsorbate"
    metal: str         # "Cu", or "CuAu" for an alloy
    facet: str = ""    # "fcc111"/"fcc100"/"fcc110" for slabs
    adsorbate: str = ""
    split: str = "train"

    @property
    def system_id(self) -> str:
        parts = [f"{self.index:05d}", self.kind, self.metal]
        parts += [p for p in (self.facet, self.adsorbate) if p]
        return "-".join(parts)


@lru_cache(maxsize=None)
def emt_lattice_constant(symbol: str) -> float:
    """EMT's equilibrium fcc lattice constant (Angstrom) of `symbol`, from an EOS fit around ase's default."""
    a_guess = bulk(symbol, "fcc").cell.cellpar()[0] * math.sqrt(2.0)
    volumes, energies = [], []
    for scale in np.linspace(0.96, 1.04, 9):
        atoms = bulk(symbol, "fcc", a=a_guess * scale)
        atoms.calc = EMT()
        volumes.append(atoms.get_volume())
        energies.append(atoms.get_potential_energy())
    v0, _, _ = EquationOfState(volumes, energies).fit()
    return float((4.0 * v0) ** (1.0 / 3.0))


def _alloy_elements(metal: str) -> tuple[str, ...]:
    """("Cu", "Au") from "CuAu"; ("Cu",) from "Cu"."""
    return tuple(re.findall(r"[A-Z][a-z]?", metal))


def _lattice_constant(elements: tuple[str, ...]) -> float:
    """Vegard's law over the EMT lattice constants (exact for a pure metal)."""
    return float(np.mean([emt_lattice_constant(s) for s in elements]))


# ----------------------------------------------------------------------------------------- specs

def system_specs(n_systems: int, seed: int = 0) -> list[SystemSpec]:
    """The balanced list of systems for `n_systems`, with their train/val/test split.

    Metals, facets and adsorbates cycle through shuffled combinations so every one is covered once
    `n_systems` is large enough. The split is drawn per kind (stratified), 80/10/10.
    """
    if n_systems < 1:
        raise ValueError(f"n_systems={n_systems} must be >= 1")
    rng = np.random.default_rng([seed, 2**31 - 1])  # a stream distinct from every system's stream
    n_bulk = max(1, round(BULK_FRACTION * n_systems)) if n_systems >= 3 else 1
    n_slab = max(1, round(SLAB_FRACTION * n_systems)) if n_systems >= 3 else (1 if n_systems >= 2 else 0)
    n_ads = n_systems - n_bulk - n_slab
    n_alloy = round(ALLOY_FRACTION * n_bulk) if n_bulk >= 3 else 0

    def cycle(choices: list, n: int) -> list:
        out: list = []
        while len(out) < n:
            out += [choices[i] for i in rng.permutation(len(choices))]
        return out[:n]

    rows: list[tuple[str, str, str, str]] = []
    rows += [("bulk", m, "", "") for m in cycle(list(METALS), n_bulk - n_alloy)]
    rows += [("bulk", "".join(pair), "", "") for pair in cycle(list(ALLOYS), n_alloy)]
    rows += [("slab", m, f, "") for m, f in cycle(list(product(METALS, FACETS)), n_slab)]
    rows += [("adsorbate", m, f, a) for m, f, a in cycle(list(product(METALS, FACETS, ADSORBATES)), n_ads)]

    splits: dict[int, str] = {}
    for kind in ("bulk", "slab", "adsorbate"):
        members = [i for i, r in enumerate(rows) if r[0] == kind]
        order = [members[i] for i in rng.permutation(len(members))]
        n_val = math.floor(SPLIT_FRACTIONS[1][1] * len(order) + 0.5) if len(order) >= 3 else 0
        n_test = math.floor(SPLIT_FRACTIONS[2][1] * len(order) + 0.5) if len(order) >= 3 else 0
        for j, i in enumerate(order):
            splits[i] = "val" if j < n_val else "test" if j < n_val + n_test else "train"
    return [SystemSpec(i, kind, metal, facet, ads, splits[i]) for i, (kind, metal, facet, ads) in enumerate(rows)]


# ------------------------------------------------------------------------------------ geometries

def _random_strain(rng: np.random.Generator) -> np.ndarray:
    """A symmetric strain tensor: isotropic (half the time) or with every component in +-STRAIN_MAX."""
    if rng.random() < 0.5:
        return np.eye(3) * rng.uniform(-STRAIN_MAX, STRAIN_MAX)
    eps = rng.uniform(-STRAIN_MAX, STRAIN_MAX, size=(3, 3))
    return 0.5 * (eps + eps.T)


def _strained(atoms: Atoms, strain: np.ndarray) -> Atoms:
    atoms = atoms.copy()
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
    return atoms


def build_bulk(spec: SystemSpec, rng: np.random.Generator) -> Atoms:
    """A 1-8 atom fcc cell (alloys: >= 2 atoms, random occupation) at the EMT lattice constant, unstrained."""
    elements = _alloy_elements(spec.metal)
    a = _lattice_constant(elements)
    sizes = BULK_SIZES if len(elements) == 1 else BULK_SIZES[1:]
    size = int(rng.choice(sizes))
    if size == 4:
        atoms = bulk(elements[0], "fcc", a=a, cubic=True)
    else:
        atoms = bulk(elements[0], "fcc", a=a) * {1: (1, 1, 1), 2: (2, 1, 1), 8: (2, 2, 2)}[size]
    if len(elements) > 1:
        symbols = rng.choice(elements, size=len(atoms))
        symbols[:2] = elements  # both elements present
        atoms.set_chemical_symbols(list(rng.permutation(symbols)))
    return atoms


def build_slab(spec: SystemSpec, rng: np.random.Generator) -> Atoms:
    """An OC20-like slab: n x n cell, 3-4 layers, vacuum on both sides, pbc all True, tags 0/1, FixAtoms."""
    builder = {"fcc111": fcc111, "fcc100": fcc100, "fcc110": fcc110}[spec.facet]
    n = int(rng.choice(SLAB_SIZES))
    layers = int(rng.choice(SLAB_LAYERS))
    slab = builder(spec.metal, size=(n, n, layers), a=emt_lattice_constant(spec.metal),
                   vacuum=float(rng.uniform(*VACUUM_A)))
    tag_like_oc20(slab)
    return slab  # slab.info["adsorbate_info"] holds ase.build's site positions


def tag_like_oc20(slab: Atoms) -> None:
    """In place, on an ase.build slab (tags 1 = top layer ...): pbc all True, tag 1 on the top `N_FREE_LAYERS`
    layers (free), tag 0 below (fixed with `FixAtoms`), as OC20 does."""
    slab.pbc = (True, True, True)
    layer = slab.get_tags()
    slab.set_tags(np.where(layer <= N_FREE_LAYERS, 1, 0))
    slab.set_constraint(FixAtoms(mask=layer > N_FREE_LAYERS))


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation matrix about unit `axis` by `angle` (radians)."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def build_adsorbate_system(spec: SystemSpec, rng: np.random.Generator) -> Atoms:
    """A slab with `spec.adsorbate` on a random site, height, tilt, azimuth and small lateral offset."""
    slab = build_slab(spec, rng)
    symbols, positions = ADSORBATES[spec.adsorbate]
    pos = np.array(positions, dtype=float)
    azimuth = rng.uniform(0.0, 2 * math.pi)
    tilt = math.radians(rng.uniform(0.0, MAX_TILT_DEG))
    tilt_axis = np.array([math.cos(azimuth), math.sin(azimuth), 0.0])
    spin = _rotation(np.array([0.0, 0.0, 1.0]), rng.uniform(0.0, 2 * math.pi))
    pos = pos @ spin.T @ _rotation(tilt_axis, tilt).T
    molecule = Atoms(symbols, positions=pos)

    sites = sorted(slab.info["adsorbate_info"]["sites"])  # ase.build's names for this facet
    site = str(rng.choice(sites))
    h_range, heavy_range = _HEIGHTS[_SITE_FAMILY[site]]
    height = rng.uniform(*(h_range if symbols[0] == "H" else heavy_range))
    surface_cell = slab.info["adsorbate_info"]["cell"]  # the 1x1 surface cell
    n = int(round(np.linalg.norm(slab.cell[0]) / np.linalg.norm(surface_cell[0])))
    offset = tuple(int(x) for x in rng.integers(0, n, size=2))  # which of the n x n copies of the site
    add_adsorbate(slab, molecule, height, position=site, offset=offset, mol_index=0)
    n_ads = len(molecule)
    slab.positions[-n_ads:, :2] += rng.normal(0.0, 0.15, size=2)  # off the ideal site
    tags = slab.get_tags()
    tags[-n_ads:] = 2
    slab.set_tags(tags)
    slab.wrap()
    return slab


# -------------------------------------------------------------------------------------- sampling

def label_frame(atoms: Atoms, with_stress: bool) -> Atoms:
    """A copy of `atoms` (no momenta) carrying the current EMT results in a SinglePointCalculator."""
    frame = atoms.copy()
    frame.arrays.pop("momenta", None)
    results = {"energy": atoms.get_potential_energy(),
               "forces": atoms.get_forces(apply_constraint=False).copy()}
    results["free_energy"] = results["energy"]
    if with_stress:
        results["stress"] = atoms.get_stress(apply_constraint=False).copy()
    frame.calc = SinglePointCalculator(frame, **results)
    return frame


def subsample_log(frames: list, n: int) -> list:
    """At most `n` frames spread evenly in log(step), keeping the first and the last.

    A relaxation changes most in its first steps, so log spacing keeps more of the high-force
    frames than even spacing would (e.g. steps 0, 2, 7, 20, 59 of 60).
    """
    if len(frames) <= n:
        return list(frames)
    idx = np.unique(np.geomspace(1, len(frames), n).round().astype(int) - 1)
    return [frames[i] for i in idx]


def _relax_frames(atoms: Atoms, with_stress: bool, n_keep: int) -> list[tuple[Atoms, dict]]:
    frames: list[tuple[Atoms, int]] = []
    opt = LBFGS(atoms, logfile=None)
    opt.attach(lambda: frames.append((label_frame(atoms, with_stress), opt.nsteps)), interval=1)
    opt.run(fmax=RELAX_FMAX, steps=RELAX_MAX_STEPS)
    return [(f, {"sampling": "relax", "step": int(step), "temperature_K": 0.0})
            for f, step in subsample_log(frames, n_keep)]


def _md_frames(atoms: Atoms, with_stress: bool, temperature_k: float, n_keep: int, interval: int,
               rng: np.random.Generator) -> list[tuple[Atoms, dict]]:
    thermalize_momenta(atoms, temperature_K=temperature_k, rng=rng)
    Stationary(atoms)
    dyn = Langevin(atoms, MD_TIMESTEP_FS * units.fs, temperature_K=temperature_k,
                   friction=MD_FRICTION_PER_FS / units.fs, fixcm=False, rng=rng)
    frames: list[tuple[Atoms, dict]] = []

    def snapshot() -> None:
        if dyn.nsteps > 0:  # the start is the relaxed minimum, already kept
            frames.append((label_frame(atoms, with_stress),
                           {"sampling": "md", "step": int(dyn.nsteps), "temperature_K": float(temperature_k)}))

    dyn.attach(snapshot, interval=interval)
    dyn.run(n_keep * interval)
    return frames


def start_geometry(spec: SystemSpec, rng: np.random.Generator) -> Atoms:
    """The first frame of a slab or slab + adsorbate system: built from `spec`, free atoms rattled."""
    atoms = build_slab(spec, rng) if spec.kind == "slab" else build_adsorbate_system(spec, rng)
    atoms.info.pop("adsorbate_info", None)
    free = atoms.get_tags() > 0
    atoms.positions[free] += rng.normal(0.0, rng.uniform(*SLAB_RATTLE_A), size=(int(free.sum()), 3))
    return atoms


def generate_system(spec: SystemSpec, seed: int = 0, n_relax: int = 5, n_md: int = 6,
                    md_interval: int = 10) -> list[tuple[Atoms, dict]]:
    """All labelled frames of one system: (Atoms with EMT results, key-value pairs) pairs."""
    rng = np.random.default_rng([seed, spec.index])
    temperature = float(rng.choice(TEMPERATURES_K))
    frames: list[tuple[Atoms, dict]] = []
    if spec.kind == "bulk":
        atoms = build_bulk(spec, rng)
        if len(atoms) == 1:
            # One-atom cell: forces vanish by symmetry, so sample the strain (energy + stress) instead.
            for step in range(n_relax + n_md):
                frame = _strained(atoms, _random_strain(rng))
                frame.calc = EMT()
                frames.append((label_frame(frame, True), {"sampling": "strain", "step": step, "temperature_K": 0.0}))
        else:
            atoms = _strained(atoms, _random_strain(rng))
            atoms.rattle(stdev=rng.uniform(*BULK_RATTLE_A), seed=int(rng.integers(2**31)))
            atoms.calc = EMT()
            frames += _relax_frames(atoms, True, n_relax)
            frames += _md_frames(atoms, True, temperature, n_md, md_interval, rng)
    else:
        atoms = start_geometry(spec, rng)
        atoms.calc = EMT()
        frames += _relax_frames(atoms, False, n_relax)
        frames += _md_frames(atoms, False, temperature, n_md, md_interval, rng)

    info = system_info(spec)
    return [(frame, {**info, **extra}) for frame, extra in frames]


def system_info(spec: SystemSpec) -> dict[str, str]:
    """The key-value pairs every frame of a system carries (split, system_id, kind, metal, facet, adsorbate)."""
    return {"split": spec.split, "system_id": spec.system_id, "kind": spec.kind, "metal": spec.metal,
            "facet": spec.facet or "none", "adsorbate": spec.adsorbate or "none"}


def _generate(args: tuple) -> list[tuple[Atoms, dict]]:
    spec, seed, n_relax, n_md, md_interval = args
    return generate_system(spec, seed, n_relax, n_md, md_interval)


# ------------------------------------------------------------------------------------ the writer

def make_emt_dataset(path: str | os.PathLike, *, n_systems: int = 500, seed: int = 0, progress: bool = True,
                     workers: int = 1, n_relax: int = 5, n_md: int = 6, md_interval: int = 10,
                     overwrite: bool = False) -> dict:
    """Generate the EMT dataset at `path` and return its summary (see `summarize`).

    Args:
        path: output file; ``.db`` writes an ASE SQLite database (one transaction), anything else is
            written with `ase.io.write` (e.g. ``.extxyz``). The file appears only when complete (a
            temporary file is renamed at the end).
        n_systems: number of systems; ~25 % bulk, 15 % clean slabs, 60 % slab + adsorbate.
        seed: random seed; the same seed gives the same dataset whatever `workers` is.
        progress: show a tqdm progress bar over systems (on stderr).
        workers: processes generating systems in parallel.
        n_relax: relaxation frames kept per system (spread in log(step) over the LBFGS trajectory).
        n_md: MD snapshots kept per system, one every `md_interval` steps of 1 fs.
        overwrite: replace an existing `path` instead of refusing.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    specs = system_specs(n_systems, seed)
    for symbol in METALS:  # warm the cache once, before any worker forks
        emt_lattice_constant(symbol)

    start = time.perf_counter()
    jobs = [(spec, seed, n_relax, n_md, md_interval) for spec in specs]
    frames: list[tuple[Atoms, dict]] = []
    n_dropped = 0
    for system_frames in map_systems(_generate, jobs, workers=workers, desc="EMT systems", progress=progress):
        kept = [(atoms, kvp) for atoms, kvp in system_frames if keep_frame(atoms)]
        n_dropped += len(system_frames) - len(kept)
        frames += kept
    generate_s = time.perf_counter() - start
    write_frames(path, frames)
    summary = summarize([a for a, _ in frames], [k for _, k in frames])
    summary.update({"path": str(path), "seed": seed, "n_systems_requested": n_systems, "n_dropped": n_dropped,
                    "max_force_cutoff": MAX_FORCE, "generate_seconds": round(generate_s, 1),
                    "total_seconds": round(time.perf_counter() - start, 1), "workers": workers})
    return summary


def map_systems(job: Callable[[tuple], T], jobs: list[tuple], *, workers: int, desc: str, progress: bool,
                context: str = "fork", initializer: Callable[..., None] | None = None,
                initargs: tuple = ()) -> Iterator[T]:
    """``map(job, jobs)`` in order, in `workers` processes when > 1, with a tqdm bar (stderr) when `progress`.

    `initializer(*initargs)` runs once in each worker process (or here, with one worker). `context` is the
    multiprocessing start method ("fork" falls back to "spawn" where fork does not exist).
    """
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(jobs), desc=desc, unit="sys", file=sys.stderr)
    pool = None
    try:
        if workers > 1:
            import multiprocessing as mp
            if context not in mp.get_all_start_methods():
                context = "spawn"
            pool = mp.get_context(context).Pool(workers, initializer=initializer, initargs=initargs)
            results = pool.imap(job, jobs, chunksize=1)
        else:
            if initializer is not None:
                initializer(*initargs)
            results = map(job, jobs)
        for result in results:
            yield result
            if bar is not None:
                bar.update(1)
    finally:
        if pool is not None:
            pool.terminate()
        if bar is not None:
            bar.close()


def keep_frame(atoms: Atoms) -> bool:
    """False for a frame with a non-finite label or a force component above MAX_FORCE (an outlier)."""
    forces = atoms.calc.results["forces"]
    return bool(np.isfinite(atoms.calc.results["energy"]) and np.isfinite(forces).all()
                and np.abs(forces).max(initial=0.0) <= MAX_FORCE)


def write_frames(path: Path, frames: list[tuple[Atoms, dict]]) -> None:
    """Write labelled frames to `path` (``.db``: ASE SQLite, one transaction; else `ase.io.write`).

    The file appears only when complete: a temporary file beside it is renamed at the end.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
    try:
        tmp.unlink(missing_ok=True)
        if path.suffix == ".db":
            import ase.db
            with ase.db.connect(tmp, type="db", append=False) as db:
                for atoms, kvp in frames:
                    db.write(atoms, key_value_pairs=kvp)
        else:
            from ..structures import write_structures
            out = [_with_info(atoms, kvp) for atoms, kvp in frames]
            write_structures(tmp, out, format="extxyz" if path.suffix in (".xyz", ".extxyz") else None)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _with_info(atoms: Atoms, kvp: dict) -> Atoms:
    calc = atoms.calc
    atoms = atoms.copy()
    atoms.info.update(kvp)
    atoms.calc = SinglePointCalculator(atoms, **calc.results)
    return atoms


def summarize(frames: list[Atoms], kvps: list[dict]) -> dict:
    """Counts per split/kind/element/adsorbate and label ranges of a list of labelled frames."""
    energies = np.array([a.calc.results["energy"] for a in frames])
    per_atom = energies / np.array([len(a) for a in frames])
    fmax = np.array([np.linalg.norm(a.calc.results["forces"], axis=1).max() for a in frames])
    comps = np.concatenate([a.calc.results["forces"].ravel() for a in frames]) if frames else np.zeros(1)
    stress = [a.calc.results["stress"] for a in frames if "stress" in a.calc.results]
    systems = {k["system_id"]: k for k in kvps}

    def count(key: str) -> dict:
        return {"frames": dict(Counter(k[key] for k in kvps)),
                "systems": dict(Counter(k[key] for k in systems.values()))}

    elements: Counter = Counter()
    for atoms in frames:
        elements.update(set(atoms.get_chemical_symbols()))
    q = lambda x: [round(float(v), 3) for v in np.percentile(x, [0, 50, 99, 100])] if len(x) else []  # noqa: E731
    return {
        "n_frames": len(frames), "n_systems": len(systems),
        "natoms_range": [min(map(len, frames)), max(map(len, frames))] if frames else [],
        "split": count("split"), "kind": count("kind"), "sampling": dict(Counter(k["sampling"] for k in kvps)),
        "adsorbate": count("adsorbate")["systems"], "metal": count("metal")["systems"],
        "frames_with_element": dict(sorted(elements.items())),
        "energy_eV_min_median_p99_max": q(energies), "energy_per_atom_eV_min_median_p99_max": q(per_atom),
        "max_force_eV_per_A_min_median_p99_max": q(fmax),
        "force_component_std_eV_per_A": round(float(comps.std()), 3),
        "stress_eV_per_A3_absmax": round(float(np.abs(stress).max()), 4) if stress else None,
    }


def build_parser() -> argparse.ArgumentParser:
    """The options of `eqv2 data emt` (also read by tools/gen_cli_docs.py)."""
    parser = argparse.ArgumentParser(prog="eqv2 data emt", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="output file: .db (ASE SQLite database) or .extxyz")
    parser.add_argument("--n-systems", type=int, default=500, help="number of systems (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1; output "
                        "does not depend on it)")
    parser.add_argument("--n-relax", type=int, default=5, help="relaxation frames kept per system (default 5)")
    parser.add_argument("--n-md", type=int, default=6, help="MD snapshots kept per system (default 6)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run_dataset_command(parser: argparse.ArgumentParser, argv: list[str] | None,
                        make: Callable[[argparse.Namespace], dict]) -> int:
    """Parse `argv`, build the dataset with `make(args)` and print its summary as JSON; a refused output file or
    a bad option value exits with status 2 and one line (the `eqv2 data` commands)."""
    args = parser.parse_args(argv)
    try:
        summary = make(args)
    except (FileExistsError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    print(json.dumps(summary, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python tools/make_emt_dataset.py OUT.db`` (or ``eqv2 data emt OUT.db``)."""
    return run_dataset_command(build_parser(), argv, lambda args: make_emt_dataset(
        args.path, n_systems=args.n_systems, seed=args.seed, progress=not args.no_progress, workers=args.workers,
        n_relax=args.n_relax, n_md=args.n_md, overwrite=args.overwrite))
