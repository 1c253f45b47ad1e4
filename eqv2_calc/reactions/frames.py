"""States of a reaction on a slab and the pairing of initial and final states for NEBs.

A state is the slab with one side's adsorbates on it (tags 2, atoms in the side's order). A one-adsorbate
state is a relaxed AdsorbML placement; a two-adsorbate state joins two relaxed placements (the slab of the
first, the adsorbate atoms of both), as CatTSunami does, and is relaxed again.

Pairing rule (ours; CatTSunami keeps final states whose binding atoms lie inside radii around the
reactant's binding atom, 2 and 3 times the slab's largest covalent radius, and picks among the reaction's
mappings the one with the least total travel): an initial and a final state pair when, under the atom
mapping (of the reaction's mappings) with the least total travel of the adsorbate atoms, no atom moves
farther than `MAX_HOP_A` (minimum image). The same rule for every reaction kind, on every atom rather
than on binding atoms only; pairs are ranked by the higher of their two energies (the transition state
lies above both ends), then by total travel. A final state is aligned to its initial one before
interpolation: adsorbate atoms put in the initial order, every atom moved to its periodic image nearest
its initial position, so no atom crosses the cell during the NEB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.geometry import find_mic

from ..adsorbml.anomalies import DESORBED, detect_anomalies
from ..adsorbml.slabs import ADSORBATE_TAG, SURFACE_TAG
from .equations import BOND_RATIO, bonded_pairs

# Largest distance (Angstrom) any adsorbate atom may travel between paired states (ours: about one to two
# site spacings on a metal, e.g. 2.55 A between Cu(111) hollows; CatTSunami allows 2-3 slab covalent radii,
# 2.6-4.0 A on Cu, between binding atoms). Capped below half the shortest in-plane cell length.
MAX_HOP_A = 3.5
# CatTSunami's desorption: the final state is the adsorbate moved this far (Angstrom) along the surface
# normal, then relaxed (its tests use z_desorption=3).
DESORPTION_HEIGHT_A = 3.0


@dataclass
class State:
    """One side of a reaction on the slab.

    Attributes:
        atoms: slab + adsorbate atoms (tag 2, in the side's order), relaxed; energy: its model energy, eV.
        sites: the site kinds of the placements it came from (e.g. ("fcc", "hcp")).
    """

    atoms: Atoms
    energy: float
    sites: tuple[str, ...]


@dataclass
class Pair:
    """An initial (reactant side) and a final (product side) state, with the atom mapping used.

    `final` is aligned to `initial` (`aligned_final`); travel: (total, largest) adsorbate-atom travel, Angstrom;
    indices: positions of the two states in the lists they were paired from.
    """

    initial: State
    final: State
    mapping: tuple[int, ...]
    travel: tuple[float, float]
    indices: tuple[int, int]

    @property
    def rank_key(self) -> tuple[float, float]:
        return max(self.initial.energy, self.final.energy), self.travel[0]


def adsorbate_mask(atoms: Atoms) -> np.ndarray:
    return atoms.get_tags() == ADSORBATE_TAG


def combine(parts: list[Atoms]) -> Atoms:
    """The slab of `parts[0]` with the adsorbate atoms of every part, in order."""
    out = parts[0][~adsorbate_mask(parts[0])]
    for part in parts:
        out += part[adsorbate_mask(part)]
    out.info = {}
    return out


def _displacements(initial: Atoms, final: Atoms, mapping: tuple[int, ...]) -> np.ndarray:
    """(n, 3) minimum-image displacement of each adsorbate atom i of `initial` to atom mapping[i] of `final`."""
    start = initial.positions[adsorbate_mask(initial)]
    end = final.positions[adsorbate_mask(final)][list(mapping)]
    return find_mic(end - start, initial.cell, initial.pbc)[0]


def travel(initial: Atoms, final: Atoms, mappings) -> tuple[tuple[int, ...], float, float]:
    """The mapping with the least total adsorbate-atom travel, that total and the largest single travel (A)."""
    best = None
    for mapping in mappings:
        lengths = np.linalg.norm(_displacements(initial, final, mapping), axis=1)
        if best is None or lengths.sum() < best[1]:
            best = (tuple(mapping), float(lengths.sum()), float(lengths.max()))
    return best


def max_hop(slab: Atoms) -> float:
    """`MAX_HOP_A`, or less: below half the shortest in-plane cell length (Angstrom), so the image is unique."""
    return min(MAX_HOP_A, 0.5 * float(min(np.linalg.norm(slab.cell[:2], axis=1))) - 0.1)


def aligned_final(initial: Atoms, final: Atoms, mapping: tuple[int, ...]) -> Atoms:
    """`final` with its adsorbate atoms in the order of `initial` (`mapping`) and every atom at its periodic
    image nearest to its position in `initial`; tags, constraints and cell of `initial`."""
    mask = adsorbate_mask(final)
    order = np.concatenate([np.flatnonzero(~mask), np.flatnonzero(mask)[list(mapping)]])
    out = initial.copy()
    out.calc = None
    step = find_mic(final.positions[order] - initial.positions, initial.cell, initial.pbc)[0]
    out.positions = initial.positions + step
    return out


def unique(states: list[State]) -> list[State]:
    """`states` lowest energy first, without repeats: a state repeats a kept one when every adsorbate atom lies
    within its covalent radius of the same atom there (CatTSunami's `are_all_adsorbate_atoms_overlapping`)."""
    kept: list[State] = []
    for state in sorted(states, key=lambda s: s.energy):
        radii = covalent_radii[state.atoms.numbers[adsorbate_mask(state.atoms)]]
        identity = tuple(range(len(radii)))
        if not any(np.all(np.linalg.norm(_displacements(k.atoms, state.atoms, identity), axis=1) < radii)
                   for k in kept):
            kept.append(state)
    return kept


def bonds_as_expected(atoms: Atoms, bonds: set[tuple[int, int]]) -> bool:
    """The adsorbate atoms are bonded exactly as `bonds` (CatTSunami's `is_edge_list_respected`, 1.25 rule)."""
    return bonded_pairs(atoms[adsorbate_mask(atoms)], BOND_RATIO) == bonds


def is_adsorbed(atoms: Atoms) -> bool:
    """Some adsorbate atom is within the 1.25 bond rule of a surface atom (CatTSunami's `is_adsorbate_adsorbed`)."""
    ads, surface = np.flatnonzero(adsorbate_mask(atoms)), np.flatnonzero(atoms.get_tags() == SURFACE_TAG)
    if not len(surface):
        return False
    d = np.array([atoms.get_distances(i, surface, mic=True) for i in ads])
    limit = BOND_RATIO * (covalent_radii[atoms.numbers[ads]][:, None] + covalent_radii[atoms.numbers[surface]][None, :])
    return bool((d < limit).any())


def valid_state(placed: Atoms, relaxed: Atoms, clean_slab: Atoms, bonds: set[tuple[int, int]],
                desorbed: bool = False) -> bool:
    """A relaxed state is usable: its adsorbates bonded as the side says, the AdsorbML rules kept (the surface
    unchanged against the relaxed clean slab, nothing intercalated; on the surface, or, for a desorption's final
    state, off it: not `is_adsorbed`)."""
    anomalies = set(detect_anomalies(placed, relaxed, clean_slab)) - {"dissociated"}
    if desorbed:
        return bonds_as_expected(relaxed, bonds) and not (anomalies - {DESORBED}) and not is_adsorbed(relaxed)
    return bonds_as_expected(relaxed, bonds) and not anomalies


def lifted(state: State, height: float = DESORPTION_HEIGHT_A) -> Atoms:
    """The state's adsorbate moved `height` Angstrom along the surface normal (a desorption's final state)."""
    atoms = state.atoms.copy()
    atoms.calc = None
    normal = np.cross(atoms.cell[0], atoms.cell[1])
    atoms.positions[adsorbate_mask(atoms)] += height * normal / np.linalg.norm(normal)
    return atoms


def pairs_within(initials: list[State], finals: list[State], mappings, hop: float) -> list[Pair]:
    """Every (initial, final) whose best mapping moves no adsorbate atom farther than `hop` Angstrom, ranked."""
    out = []
    for i, initial in enumerate(initials):
        for j, final in enumerate(finals):
            mapping, total, largest = travel(initial.atoms, final.atoms, mappings)
            if largest <= hop:
                aligned = State(aligned_final(initial.atoms, final.atoms, mapping), final.energy, final.sites)
                out.append(Pair(initial, aligned, mapping, (total, largest), (i, j)))
    return sorted(out, key=lambda p: p.rank_key)
