"""AdsorbML's physical-validity rules for a relaxed adsorbate+slab (fairchem `DetectTrajAnomaly` semantics).

Two atoms are bonded when their distance is below the sum of their covalent radii times a multiplier
(ASE `natural_cutoffs`) plus twice ASE's neighbour-list skin (0.3 Angstrom each), periodic images included:
fairchem builds its `NeighborList` with ASE's default skin, and ASE adds the skin to every atom's cutoff, so
O-H (0.97 A radii sum), N-H (1.02) and C-H (1.07) count as bonded up to 1.57, 1.62 and 1.67 A. Without that
cushion the equilibrium X-H bonds sit right at the cutoff and round-off decides the verdict.
Tags: 0 subsurface, 1 surface, 2 adsorbate.

- dissociated: the bonds among adsorbate atoms (multiplier 1.0) differ between the initial and final structure;
- desorbed: no adsorbate atom is bonded to any slab atom in the final structure (multiplier 1.5);
- surface_changed: the slab part of the final structure has a bond (1.0) the relaxed clean slab lacks even
  at 1.5, or the clean slab has a bond (1.0) the final slab part lacks even at 1.5 (reconstruction, or a
  clean-slab reference that no longer fits);
- intercalated: an adsorbate atom is bonded (1.0) to a subsurface atom (tag 0).

AdsorbML (the paper) used the first three; `intercalated` is fairchem's later addition.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.neighborlist import NeighborList, natural_cutoffs

from .slabs import ADSORBATE_TAG, SUBSURFACE_TAG

DISSOCIATED, DESORBED, SURFACE_CHANGED, INTERCALATED = "dissociated", "desorbed", "surface_changed", "intercalated"
ANOMALIES = (DISSOCIATED, DESORBED, SURFACE_CHANGED, INTERCALATED)
# fairchem DetectTrajAnomaly defaults: cutoff multipliers of the desorption and surface-change rules.
DESORPTION_MULTIPLIER = 1.5
SURFACE_CHANGE_MULTIPLIER = 1.5
# ASE NeighborList's default skin (Angstrom), which fairchem keeps; added to each atom's cutoff radius.
BOND_SKIN_A = 0.3


def connectivity(atoms: Atoms, multiplier: float = 1.0) -> np.ndarray:
    """(N, N) bool matrix: atoms i and j are bonded, i.e. some image of j lies closer to i than
    multiplier * (r_cov,i + r_cov,j) + 2 * BOND_SKIN_A (Angstrom); the diagonal marks an atom bonded to its own image."""
    if len(atoms) == 0:
        return np.zeros((0, 0), dtype=bool)
    neighbors = NeighborList(natural_cutoffs(atoms, mult=multiplier), self_interaction=False, bothways=True,
                             skin=BOND_SKIN_A)
    neighbors.update(atoms)
    return neighbors.get_connectivity_matrix(sparse=False).astype(bool)


def _adsorbate_mask(atoms: Atoms) -> np.ndarray:
    mask = atoms.get_tags() == ADSORBATE_TAG
    if not mask.any():
        raise ValueError(f"{atoms.get_chemical_formula()} has no adsorbate atoms (tag 2)")
    return mask


def is_dissociated(initial: Atoms, final: Atoms) -> bool:
    """A bond among adsorbate atoms broke or formed between `initial` and `final`."""
    mask = _adsorbate_mask(initial)
    return not np.array_equal(connectivity(initial[mask]), connectivity(final[mask]))


def is_desorbed(final: Atoms, multiplier: float = DESORPTION_MULTIPLIER) -> bool:
    """No adsorbate atom is bonded to any slab atom at `multiplier` x covalent radii."""
    mask = _adsorbate_mask(final)
    bonds = connectivity(final, multiplier)
    return not bonds[np.ix_(mask, ~mask)].any()


def has_surface_changed(final: Atoms, clean_slab: Atoms, multiplier: float = SURFACE_CHANGE_MULTIPLIER) -> bool:
    """The slab part of `final` and the (relaxed) `clean_slab` disagree on a bond beyond the `multiplier` cushion."""
    slab_part = final[~_adsorbate_mask(final)]
    if len(slab_part) != len(clean_slab):
        raise ValueError(f"the clean slab has {len(clean_slab)} atoms, the adsorbate+slab has {len(slab_part)} "
                         "slab atoms")
    adslab_tight, adslab_loose = connectivity(slab_part), connectivity(slab_part, multiplier)
    slab_tight, slab_loose = connectivity(clean_slab), connectivity(clean_slab, multiplier)
    return bool((adslab_tight & ~slab_loose).any() or (slab_tight & ~adslab_loose).any())


def is_intercalated(final: Atoms) -> bool:
    """An adsorbate atom is bonded to a subsurface (tag 0) atom."""
    mask = _adsorbate_mask(final)
    bonds = connectivity(final)
    return bool(bonds[np.ix_(mask, final.get_tags() == SUBSURFACE_TAG)].any())


def detect_anomalies(initial: Atoms, final: Atoms, clean_slab: Atoms | None = None) -> list[str]:
    """Names (from `ANOMALIES`) of the rules `final` breaks; empty for a valid relaxed structure.

    Args:
        initial: the placement before relaxation (tags 0/1/2).
        final: the relaxed structure, same atoms and order.
        clean_slab: the relaxed clean slab; default: `initial` without its adsorbate (as fairchem does).
    """
    if len(initial) != len(final) or not np.array_equal(initial.numbers, final.numbers):
        raise ValueError("initial and final structures must hold the same atoms in the same order")
    if clean_slab is None:
        clean_slab = initial[~_adsorbate_mask(initial)]
    checks = {
        DISSOCIATED: lambda: is_dissociated(initial, final),
        DESORBED: lambda: is_desorbed(final),
        SURFACE_CHANGED: lambda: has_surface_changed(final, clean_slab),
        INTERCALATED: lambda: is_intercalated(final),
    }
    return [name for name, check in checks.items() if check()]
