"""Surface reactions in OC20 adsorbate names: parsing, balance, atom mappings, CatTSunami's 98 reactions.

A reaction is written `"*CO -> *C + *O"`, `"*OH + *H -> *OH2"` or `"*CO -> CO(g)"`: one or two adsorbates
(OC20 names, `eqv2 adsorb --list-adsorbates`; the leading `*` optional, bare `*` sites ignored) on each
side of `->`; a gas-phase product (`X(g)`) makes it a desorption of the one reactant. The atoms of a side are
its adsorbates' atoms in the order written, each in its library order; an atom mapping `m` of length n
says that atom i of the reactant side is atom `m[i]` of the product side.

The 98 reactions of CatTSunami (fairchem-applications-cattsunami 1.1.1: 54 dissociations, 19 desorptions,
25 transfers) run by name from `data/cattsunami_reactions.json` (converted once by
tools/convert_cattsunami_reactions.py), with their atom mappings. For any other reaction the mappings are
derived: every element-preserving bijection that keeps the most bonds (CatTSunami's bond rule: distance
below 1.25 times the sum of covalent radii, in the library geometries), so every symmetric choice (which H
leaves *CH3) is kept and the NEB pairing picks the one with the shortest path (`frames.py`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from itertools import permutations, product
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import covalent_radii

from ..adsorbml.adsorbates import Adsorbate, get_adsorbate
from ..errors import AdsorbateError, ReactionError

CATTSUNAMI_FILE = Path(__file__).with_name("data") / "cattsunami_reactions.json"
# CatTSunami's bond rule (autoframe.py `is_edge_list_respected`, its tutorial's `get_edges`): two adsorbate
# atoms are bonded when their distance is below this times the sum of their covalent radii.
BOND_RATIO = 1.25
# Most element-preserving bijections tried when deriving a mapping (7 H and 3 C: 30,240).
MAX_MAPPINGS_TRIED = 200_000
ARROWS = ("->", "\u2192")
KINDS = ("dissociation", "association", "transfer", "rearrangement", "desorption")


@dataclass(frozen=True)
class Reaction:
    """A surface reaction.

    Attributes:
        name: canonical text, e.g. "*CO -> *C + *O".
        kind: one of `KINDS` (CatTSunami's three, plus the reverse of a dissociation and 1 -> 1).
        reactants, products: library adsorbate names, in the order written; a desorption's product is the
            reactant itself, lifted off the surface (`gas` names the molecule).
        mappings: atom mappings (see the module docstring), at least one.
        source: "CatTSunami" or "derived".
        gas: the gas-phase product of a desorption ("CO(g)"), else None.
    """

    name: str
    kind: str
    reactants: tuple[str, ...]
    products: tuple[str, ...]
    mappings: tuple[tuple[int, ...], ...]
    source: str
    gas: str | None = None

    def adsorbates(self, side: str) -> list[Adsorbate]:
        """The library adsorbates of "reactants" or "products", in order."""
        return [get_adsorbate(name) for name in (self.reactants if side == "reactants" else self.products)]

    def symbols(self, side: str) -> list[str]:
        return [s for a in self.adsorbates(side) for s in a.symbols]

    def bonds(self, side: str) -> set[tuple[int, int]]:
        """Bonded atom pairs (i < j) of a side, indices into its atoms (adsorbates never bonded to each other)."""
        return side_bonds(self.adsorbates(side))


def bonded_pairs(atoms: Atoms, ratio: float = BOND_RATIO) -> set[tuple[int, int]]:
    """Pairs (i < j) of `atoms` closer than `ratio` x (r_cov,i + r_cov,j), minimum image where periodic."""
    if len(atoms) < 2:
        return set()
    distances = atoms.get_all_distances(mic=bool(atoms.pbc.any()))
    radii = covalent_radii[atoms.numbers]
    close = distances < ratio * (radii[:, None] + radii[None, :])
    return {(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(close, k=1)))}


def side_bonds(adsorbates: list[Adsorbate]) -> set[tuple[int, int]]:
    """Bonds within each adsorbate of a side (library geometry), indices offset to the side's atoms."""
    bonds, offset = set(), 0
    for ads in adsorbates:
        bonds |= {(i + offset, j + offset) for i, j in bonded_pairs(ads.atoms)}
        offset += len(ads.atoms)
    return bonds


def derive_mappings(symbols_in: list[str], bonds_in: set, symbols_out: list[str], bonds_out: set
                    ) -> list[tuple[int, ...]]:
    """Every element-preserving bijection in -> out keeping the most bonds (see the module docstring).

    Raises:
        ReactionError: the sides hold different atoms, or too many bijections to try.
    """
    if Counter(symbols_in) != Counter(symbols_out):
        raise ReactionError(_imbalance(symbols_in, symbols_out))
    groups = sorted(set(symbols_in))
    sources = [[i for i, s in enumerate(symbols_in) if s == el] for el in groups]
    targets = [[i for i, s in enumerate(symbols_out) if s == el] for el in groups]
    tried = math.prod(math.factorial(len(t)) for t in targets)
    if tried > MAX_MAPPINGS_TRIED:
        raise ReactionError(f"{tried:,} atom mappings to try (more than {MAX_MAPPINGS_TRIED:,}): the adsorbates are "
                            "too large for an automatic atom mapping")
    best, best_kept = [], -1
    for choice in product(*(permutations(t) for t in targets)):
        mapping = [0] * len(symbols_in)
        for source, target in zip(sources, choice):
            for i, j in zip(source, target):
                mapping[i] = j
        kept = sum(tuple(sorted((mapping[i], mapping[j]))) in bonds_out for i, j in bonds_in)
        if kept > best_kept:
            best, best_kept = [tuple(mapping)], kept
        elif kept == best_kept:
            best.append(tuple(mapping))
    return best


def _imbalance(symbols_in: list[str], symbols_out: list[str]) -> str:
    left, right = Counter(symbols_in), Counter(symbols_out)
    differ = [el for el in sorted(set(left) | set(right)) if left[el] != right[el]]
    diff = ", ".join(f"{el} {left[el]} -> {right[el]}" for el in differ)
    return f"the atoms do not balance ({diff})"


def _species(side: str, text: str) -> list[str]:
    """The names on one side of a reaction: split at '+', bare '*' (an empty site) dropped."""
    names = [part.strip() for part in side.split("+")]
    names = [name for name in names if name and name != "*"]
    if not names:
        raise ReactionError(f"reaction {text!r}: a side without adsorbates")
    if len(names) > 2:
        raise ReactionError(f"reaction {text!r}: {len(names)} species on one side; at most two (as CatTSunami's "
                            "dissociations, desorptions and transfers)")
    return names


def _library_name(name: str, text: str) -> str:
    try:
        return get_adsorbate(name).name
    except AdsorbateError as exc:
        raise ReactionError(f"reaction {text!r}: {exc}") from None


def parse_reaction(text: str) -> Reaction:
    """A `Reaction` from free text in OC20 adsorbate names (see the module docstring); one of CatTSunami's
    98 (by its canonical name or its database text) comes with its database mappings.

    Raises:
        ReactionError: no arrow, more than two species a side, an unknown adsorbate (the closest names
            suggested), atoms that do not balance, or a gas species that is not a desorption product.
    """
    known = _cattsunami_by_text().get(" ".join(text.split()))
    if known is not None:
        return known
    arrows = [arrow for arrow in ARROWS if arrow in text]
    if len(arrows) != 1 or text.count(arrows[0]) != 1:
        raise ReactionError(f"reaction {text!r}: write one arrow '->' between reactants and products, e.g. "
                            "\"*CO -> *C + *O\"")
    left, right = text.split(arrows[0])
    reactant_names, product_names = _species(left, text), _species(right, text)
    if any(n.endswith("(g)") for n in reactant_names):
        raise ReactionError(f"reaction {text!r}: a gas-phase reactant; only desorptions (\"*CO -> CO(g)\") take "
                            "a gas species, as a product")
    reactants = tuple(_library_name(n, text) for n in reactant_names)
    symbols_in = [s for n in reactants for s in get_adsorbate(n).symbols]
    gas = [n for n in product_names if n.endswith("(g)")]
    if gas:
        if len(product_names) != 1 or len(reactants) != 1:
            raise ReactionError(f"reaction {text!r}: a desorption takes one adsorbate to one gas molecule, "
                                "e.g. \"*CO -> CO(g)\"")
        molecule = _gas_symbols(gas[0], text)
        if Counter(molecule) != Counter(symbols_in):
            raise ReactionError(f"reaction {text!r}: {gas[0]} is not the molecule {reactants[0]}: "
                                f"{_imbalance(symbols_in, molecule)}")
        return Reaction(f"{reactants[0]} -> {gas[0]}", "desorption", reactants, reactants,
                        (tuple(range(len(symbols_in))),), "derived", gas[0])
    products = tuple(_library_name(n, text) for n in product_names)
    symbols_out = [s for n in products for s in get_adsorbate(n).symbols]
    if Counter(symbols_in) != Counter(symbols_out):
        raise ReactionError(f"reaction {text!r}: {_imbalance(symbols_in, symbols_out)}")
    name = f"{' + '.join(reactants)} -> {' + '.join(products)}"
    known = _cattsunami_by_text().get(name)
    if known is not None:
        return known
    kind = {(1, 2): "dissociation", (2, 1): "association", (2, 2): "transfer", (1, 1): "rearrangement"}[
        (len(reactants), len(products))]
    mappings = derive_mappings(symbols_in, side_bonds([get_adsorbate(n) for n in reactants]), symbols_out,
                               side_bonds([get_adsorbate(n) for n in products]))
    return Reaction(name, kind, reactants, products, tuple(mappings), "derived")


def _gas_symbols(gas: str, text: str) -> list[str]:
    """The atoms of a gas-phase species written as a formula with "(g)" ("CH3CH2OH(g)")."""
    try:
        return Atoms(gas[: -len("(g)")]).get_chemical_symbols()
    except (KeyError, ValueError):
        raise ReactionError(f"reaction {text!r}: {gas!r} is not a chemical formula with (g)") from None


@lru_cache(maxsize=1)
def cattsunami_reactions() -> tuple[Reaction, ...]:
    """CatTSunami's 98 reactions, in its databases' order (dissociations, transfers, desorptions)."""
    data = json.loads(CATTSUNAMI_FILE.read_text())
    return tuple(Reaction(e["name"], e["type"], tuple(e["reactants"]), tuple(e["products"]),
                          tuple(tuple(m) for m in e["atom_mappings"]), "CatTSunami", e.get("gas"))
                 for e in data["reactions"])


@lru_cache(maxsize=1)
def _cattsunami_by_text() -> dict[str, Reaction]:
    """Canonical names and CatTSunami's own texts (whitespace normalised) -> reaction."""
    data = json.loads(CATTSUNAMI_FILE.read_text())
    out = {}
    for entry, reaction in zip(data["reactions"], cattsunami_reactions()):
        out[reaction.name] = reaction
        out.setdefault(" ".join(entry["source_text"].split()), reaction)
    return out


def reaction_table() -> list[str]:
    """One line per CatTSunami reaction (kind, name), for `eqv2 reaction --list-reactions`."""
    reactions = cattsunami_reactions()
    lines = [f"{'kind':<13} reaction"] + [f"{r.kind:<13} {r.name}" for r in reactions]
    counts = Counter(r.kind for r in reactions)
    lines.append(f"{len(reactions)} reactions of CatTSunami ({', '.join(f'{n} {k}s' for k, n in counts.items())}); "
                 "any other written in OC20 adsorbate names (eqv2 adsorb --list-adsorbates) works too")
    return lines

