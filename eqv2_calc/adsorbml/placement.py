"""Adsorbate placements on a slab: heuristic (one per distinct site) and random (random sites), as AdsorbML.

A placement spins the adsorbate about the surface normal by a uniform angle, tilts it inside a 20 degree
cone (the "wobble" of fairchem's heuristic modes; rotations that would put another atom below the binding
atom are redrawn), puts the binding atom on the site and lifts the molecule along the normal to the lowest
height at which every adsorbate-slab distance is at least the sum of covalent radii plus a 0.1 A gap
(fairchem `_get_scaled_normal`; solved here in closed form). Random placements also move the site by a
small lateral jitter; they are spread over the cell (each the farthest from the others, from a 4x pool of
uniform sites) and their spins stratified, so that a small budget covers sites and orientations evenly.
Placements that still overlap are rejected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.geometry import find_mic, get_distances

from ..errors import AdsorbateError
from .adsorbates import Adsorbate
from .sites import Site, heuristic_sites, random_sites
from .slabs import ADSORBATE_TAG, check_slab

# fairchem data/oc AdsorbateSlabConfig defaults: gap added to the covalent-radius contact (Angstrom) and
# the half-angle of the tilt cone of heuristic orientations (pi / 9).
INTERSTITIAL_GAP_A = 0.1
WOBBLE_RAD = math.pi / 9
# Standard deviation (Angstrom) of the lateral jitter of random placements (our choice: small against
# the ~1.3-1.5 A distance between neighbouring site types on close-packed metals).
JITTER_A = 0.1
# Draws of a tilted orientation before the least bad one is kept.
MAX_ORIENTATION_DRAWS = 50
# AdsorbML's random placements per system (fairchem AdsorbML walkthrough: num_sites = 100).
ADSORBML_NUM_RANDOM = 100
# Random sites are picked from a pool this many times larger, each the farthest from those already picked.
SITE_POOL = 4


@dataclass(frozen=True)
class Placement:
    """An adsorbate put on a slab, before relaxation.

    Attributes:
        atoms: slab + adsorbate (tags 0/1 of the slab, 2 for the adsorbate; the slab's FixAtoms kept).
        site: where the binding atom was put.
        mode: "heuristic" or "random".
        binding_index: index (into `atoms`) of the binding atom.
    """

    atoms: Atoms
    site: Site
    mode: str
    binding_index: int


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """(3, 3) rotation matrix about unit `axis` by `angle` radians (Rodrigues)."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def _random_orientation(relative: np.ndarray, rng: np.random.Generator, checked: np.ndarray,
                        spin: float | None = None) -> np.ndarray:
    """A spun and tilted copy of `relative` ((n, 3) positions about the binding atom, which stays at 0).

    The spin (radians) is `spin` for the first draw, else uniform about z; the tilt moves the pole to a
    uniform point of the cone z >= cos(WOBBLE_RAD).
    Draws that lower a `checked` atom ((n,) bool: the non-binding atoms) below the binding atom (beyond
    what the untilted molecule does) are redrawn, up to `MAX_ORIENTATION_DRAWS` times.
    """
    floor = min(0.0, float(relative[checked, 2].min())) if checked.any() else 0.0
    best, best_low = relative, -np.inf
    for draw in range(MAX_ORIENTATION_DRAWS):
        angle = spin if spin is not None and draw == 0 else rng.uniform(0.0, 2 * math.pi)
        spun = relative @ _rotation(np.array([0.0, 0.0, 1.0]), angle).T
        cos_tilt = rng.uniform(math.cos(WOBBLE_RAD), 1.0)
        azimuth = rng.uniform(0.0, 2 * math.pi)
        axis = np.array([-math.sin(azimuth), math.cos(azimuth), 0.0])
        turned = spun @ _rotation(axis, math.acos(cos_tilt)).T
        low = float(turned[checked, 2].min()) if checked.any() else 0.0
        if low >= floor - 1e-9:
            return turned
        if low > best_low:
            best, best_low = turned, low
    return best


def _lift(slab: Atoms, molecule: np.ndarray, numbers: np.ndarray, gap: float) -> float:
    """Smallest upward shift (Angstrom, >= 0) after which every molecule-slab pair is at least r_a + r_b + gap apart.

    `molecule`: (n, 3) positions; pairs are compared through the in-plane periodic images (nearest image).
    """
    radii_mol = covalent_radii[numbers][:, None]
    radii_slab = covalent_radii[slab.numbers][None, :]
    contact = radii_mol + radii_slab + gap  # (n, N)
    delta = slab.positions[None, :, :] - molecule[:, None, :]
    lateral = delta.copy()
    lateral[..., 2] = 0.0
    lateral, _ = find_mic(lateral.reshape(-1, 3), slab.cell, pbc=(True, True, False))
    d_xy = np.linalg.norm(lateral, axis=1).reshape(contact.shape)
    close = d_xy < contact
    if not close.any():
        return 0.0
    dz_needed = np.sqrt(np.maximum(contact**2 - d_xy**2, 0.0))
    shift = (delta[..., 2] + dz_needed)[close].max()  # z_slab + dz - z_mol
    return max(0.0, float(shift))


def overlapping(atoms: Atoms, gap: float = 0.0) -> bool:
    """True when an adsorbate atom (tag 2) is closer to a slab atom than their covalent radii sum + `gap` (Angstrom)."""
    tags = atoms.get_tags()
    ads, slab = np.flatnonzero(tags == ADSORBATE_TAG), np.flatnonzero(tags != ADSORBATE_TAG)
    if not len(ads) or not len(slab):
        return False
    _, d = get_distances(atoms.positions[ads], atoms.positions[slab], cell=atoms.cell, pbc=atoms.pbc)
    contact = covalent_radii[atoms.numbers[ads]][:, None] + covalent_radii[atoms.numbers[slab]][None, :]
    return bool((d < contact + gap - 1e-6).any())


def place(slab: Atoms, adsorbate: Adsorbate, site: Site, rng: np.random.Generator, *, mode: str = "heuristic",
          jitter: float = 0.0, gap: float = INTERSTITIAL_GAP_A, spin: float | None = None) -> Placement | None:
    """`adsorbate` on `site` of `slab` (see the module docstring), spun by `spin` radians about the normal
    (default: a uniform random angle); None when the result overlaps."""
    binding = int(rng.choice(adsorbate.binding_indices))
    relative = adsorbate.atoms.positions - adsorbate.atoms.positions[binding]
    anchor = np.array(site.position, dtype=float)
    if jitter > 0:
        anchor[:2] += rng.normal(0.0, jitter, size=2)
    checked = np.ones(len(relative), dtype=bool)
    checked[list(adsorbate.binding_indices)] = False
    molecule = anchor + _random_orientation(relative, rng, checked, spin)
    molecule[:, 2] += _lift(slab, molecule, adsorbate.atoms.numbers, gap)
    ads = Atoms(adsorbate.atoms.numbers, positions=molecule, tags=[ADSORBATE_TAG] * len(adsorbate.atoms))
    combined = slab.copy()  # keeps the slab's FixAtoms (its indices stay valid: the adsorbate comes last)
    combined.extend(ads)
    combined.info.update(adsorbate=adsorbate.name, site=site.kind, placement=mode)
    if overlapping(combined):
        return None
    return Placement(combined, site, mode, len(slab) + binding)


def spread_sites(slab: Atoms, pool: list[Site], n: int, rng: np.random.Generator) -> list[Site]:
    """`n` sites of `pool` spread over the surface: a random first one, then each the farthest (in-plane,
    periodic) from those already picked, so a small budget still covers the cell evenly."""
    if n >= len(pool):
        return list(pool)
    frac = np.array([np.linalg.solve(slab.cell.array.T, s.position)[:2] for s in pool])
    chosen = [int(rng.integers(len(pool)))]
    nearest = np.full(len(pool), np.inf)
    while len(chosen) < n:
        delta = frac - frac[chosen[-1]]
        delta -= np.round(delta)
        nearest = np.minimum(nearest, np.linalg.norm(delta @ slab.cell.array[:2, :2], axis=1))
        chosen.append(int(np.argmax(nearest)))
    return [pool[i] for i in chosen]


def make_placements(
    slab: Atoms, adsorbate: Adsorbate, *, num_random: int = ADSORBML_NUM_RANDOM, heuristic: bool = True,
    seed: int | np.random.Generator | None = 0, gap: float = INTERSTITIAL_GAP_A,
) -> list[Placement]:
    """All AdsorbML placements of `adsorbate` on `slab`: one per distinct heuristic site, plus `num_random` random ones.

    Args:
        slab: a tagged slab (`build_slabs`; tags 0/1, normal along +z).
        adsorbate: from `get_adsorbate` / `make_adsorbate`.
        num_random: placements on random sites (AdsorbML: 100), with a 0.1 A lateral jitter; the sites are
            spread over the cell (`spread_sites`) and their spins about the normal stratified over 360 degrees.
        heuristic: include the top / bridge / hollow placements.
        seed: seed or numpy Generator (placements are reproducible for a given seed).
        gap: Angstrom added to the covalent-radius contact distance.

    Raises:
        SlabError: no surface atoms. AdsorbateError: no placement without overlap.
    """
    check_slab(slab)
    rng = np.random.default_rng(seed)
    placements = []
    if heuristic:
        placements += [place(slab, adsorbate, s, rng, mode="heuristic", gap=gap) for s in heuristic_sites(slab)]
    sites = spread_sites(slab, random_sites(slab, SITE_POOL * num_random, rng), num_random, rng)
    spins = (rng.permutation(num_random) + rng.random(num_random)) * 2 * math.pi / max(num_random, 1)
    placements += [place(slab, adsorbate, s, rng, mode="random", jitter=JITTER_A, gap=gap, spin=spin)
                   for s, spin in zip(sites, spins)]
    kept = [p for p in placements if p is not None]
    if not kept and (heuristic or num_random):
        raise AdsorbateError(f"{adsorbate.name} could not be placed on {slab.get_chemical_formula()} without overlap")
    return kept
