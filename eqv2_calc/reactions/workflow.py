"""A reaction on a slab, end to end: AdsorbML placements of every species, batched relaxations, anomaly
rejection, initial/final states paired atom to atom (`frames.py`), NEBs of the best k pairs, lowest barrier.

Stages, each one batched call of the model machinery:
1. every species (reactants and products; a desorption: its reactant) placed on the slab the AdsorbML way
   (heuristic + random sites, `make_placements`) and relaxed with the clean slab in one `relax_many`; results
   breaking an AdsorbML rule or not bonded as the adsorbate is (CatTSunami's 1.25 rule, `frames.valid_state`)
   are dropped, repeats merged (`frames.unique`);
2. the anchor side (the side with one adsorbate; the reactants of a transfer) gives up to `n_initial` states,
   lowest energy first; a two-adsorbate anchor is built from pairs of relaxed placements not bonded to each
   other, lowest summed energy first, and relaxed;
3. for each anchor state, up to `n_final` states of the other side within the pairing rule (`frames.py`),
   lowest (summed) energy first: relaxed placements of a one-adsorbate side as they are, two-adsorbate
   combinations relaxed again (one `relax_many` for all), a desorption's anchor lifted by
   `frames.DESORPTION_HEIGHT_A` along the normal and relaxed (CatTSunami's way: the final state is the
   molecule moved off the surface; it must stay off it);
4. pairs ranked (higher end-state energy first, then travel), the best `top_k` interpolated (IDPP) and run as
   NEBs together (`run_nebs`); the result is the band with the lowest forward barrier (converged bands first).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from itertools import product

import torch
from ase import Atoms

from ..adsorbml.adsorbates import get_adsorbate
from ..adsorbml.placement import make_placements
from ..adsorbml.references import check_known_elements
from ..adsorbml.slabs import check_slab
from ..errors import ReactionError
from ..hub import ModelCard
from ..neb import NEBResult, interpolate_band, run_nebs
from ..potential import Potential, require_forces
from ..predict import DEMO_MODEL, resolve_model
from ..relax import RelaxResult, relax_many
from .equations import Reaction, bonded_pairs, parse_reaction, side_bonds
from .frames import (DESORPTION_HEIGHT_A, Pair, State, combine, lifted, max_hop, pairs_within, travel, unique,
                     valid_state)

# Defaults sized for a CPU run of minutes with the demo model (CatTSunami: 5 x 5 final frames, 10 frames a band).
DEFAULT_TOP_K = 3
DEFAULT_NUM_RANDOM = 6
DEFAULT_N_INITIAL = 3
DEFAULT_N_FINAL = 4
DEFAULT_IMAGES = 5
RELAX_FMAX, RELAX_STEPS = 0.05, 300  # eV/Angstrom, FIRE steps (as `eqv2 adsorb`)
NEB_FMAX, NEB_STEPS = 0.05, 300  # eV/Angstrom, optimizer steps a band (CatTSunami's climbing stage: 0.05)


@dataclass
class Band:
    """One NEB: the pair it started from and its result (`images`, `energies`, barriers, `ts`, `converged`)."""

    pair: Pair
    result: NEBResult


@dataclass
class ReactionRun:
    """What `run_reaction` did and found.

    Attributes:
        reaction, slab: what was run where (slab: the clean slab as given, tags 0/1).
        species: per adsorbate name, its placements and how many relaxed to a valid, distinct state.
        species_states: per adsorbate name, those states (one adsorbate on the slab), lowest energy first.
        initial_states, final_states: the states the pairs came from (reactant side, product side).
        pairs: every pair that met the pairing rule, ranked; bands: the NEBs of the best `top_k`.
        evaluations: model evaluations of single structures per stage ("placements", "states", "neb").
    """

    reaction: Reaction
    slab: Atoms
    species: dict[str, dict[str, int]]
    species_states: dict[str, list[State]]
    initial_states: list[State]
    final_states: list[State]
    pairs: list[Pair]
    bands: list[Band]
    evaluations: dict[str, int] = field(default_factory=dict)

    @property
    def best(self) -> Band | None:
        """The band with the lowest forward barrier (among converged bands, if any converged)."""
        pool = [b for b in self.bands if b.result.converged] or self.bands
        return min(pool, key=lambda b: b.result.barrier_forward) if pool else None


def check_force_model(card: ModelCard) -> None:
    """Refuse a registered model whose outputs have no forces (IS2RE direct), before loading (downloading) it:
    `EnergyOnlyModelError`. A file that turns out energy-only is refused once loaded (`relax_many`)."""
    if card.entry is not None:
        require_forces(card.entry.outputs, f"{card.name}: a reaction (relaxations and NEBs)")


def _evaluations(results: list[RelaxResult]) -> int:
    return sum(len(r.energies) for r in results)


def _relax(structures: list[Atoms], potential: Potential, settings: dict) -> list[RelaxResult]:
    return relax_many(structures, potential, fmax=settings["fmax"], steps=settings["steps"], optimizer="FIRE",
                      device=settings["device"], progress=settings["progress"], max_atoms=settings["max_atoms"])


def _combos(groups: list[list[State]], bonds: set, anchor: list[State] | None, mappings, anchor_first: bool,
            hop: float, limit: int) -> list[tuple[Atoms, float, tuple[str, ...]]]:
    """Up to `limit` two-adsorbate combinations (atoms, summed energy, sites) of relaxed single states whose
    adsorbates are not bonded to each other, lowest summed energy first; with `anchor`, only those within
    `hop` of it under the pairing rule."""
    out = []
    for parts in product(*groups):
        atoms = combine([p.atoms for p in parts])
        if bonded_pairs(atoms[atoms.get_tags() == 2]) != bonds:
            continue
        if anchor is not None:
            initial, final = (anchor[0].atoms, atoms) if anchor_first else (atoms, anchor[0].atoms)
            if travel(initial, final, mappings)[2] > hop:
                continue
        out.append((atoms, sum(p.energy for p in parts), tuple(s for p in parts for s in p.sites)))
    return sorted(out, key=lambda c: c[1])[:limit]


def run_reaction(
    slab: Atoms,
    reaction: Reaction | str,
    model: str | os.PathLike | Potential = DEMO_MODEL,
    *,
    top_k: int = DEFAULT_TOP_K,
    num_random: int = DEFAULT_NUM_RANDOM,
    heuristic: bool = True,
    n_initial: int = DEFAULT_N_INITIAL,
    n_final: int = DEFAULT_N_FINAL,
    n_images: int = DEFAULT_IMAGES,
    fmax: float = RELAX_FMAX,
    steps: int = RELAX_STEPS,
    neb_fmax: float = NEB_FMAX,
    neb_steps: int = NEB_STEPS,
    climb: bool = True,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
    max_atoms: int | None = None,
) -> ReactionRun:
    """Transition states of `reaction` on `slab` (see the module docstring for the stages).

    Args:
        slab: a tagged clean slab (`build_slabs`; tags 0/1, normal along +z, FixAtoms on tag 0).
        reaction: a `Reaction` or its text ("*CO -> *C + *O", one of CatTSunami's 98 or any balanced one).
        model: registered name, checkpoint file or `Potential`, with forces; default the EMT-trained demo model.
        top_k: NEBs run (the best-ranked pairs).
        num_random, heuristic: placements per species (`make_placements`; AdsorbML used 100 random).
        n_initial, n_final: anchor states kept, and other-side states per anchor state.
        n_images: moving images a band; fmax, steps: relaxations (eV/Angstrom, FIRE steps);
        neb_fmax, neb_steps, climb: the NEBs (NEB force eV/Angstrom, steps, climbing image).
        seed: placements are reproducible for a seed. device, progress, max_atoms: as for `relax_many`.

    Raises:
        ReactionError: a bad reaction, a model without forces, or no pair of states to run.
        SlabError, AdsorbateError, UnsupportedElementError: bad slab, adsorbate or an element the model lacks.
    """
    reaction = parse_reaction(reaction) if isinstance(reaction, str) else reaction
    if top_k < 1 or n_initial < 1 or n_final < 1 or n_images < 1:
        raise ReactionError(f"top_k={top_k}, n_initial={n_initial}, n_final={n_final} and n_images={n_images} must "
                            "each be at least 1")
    check_slab(slab)
    if not isinstance(model, Potential):
        model = ModelCard.of(model)
        check_force_model(model)
    potential = resolve_model(model, device)
    entry = potential.card.entry
    names = list(dict.fromkeys(reaction.reactants + reaction.products))
    for name in names:
        check_known_elements(get_adsorbate(name).symbols, entry, potential.config.max_num_elements, name)
    check_known_elements(slab.get_chemical_symbols(), entry, potential.config.max_num_elements, "slab")
    settings = {"fmax": fmax, "steps": steps, "device": device, "progress": progress, "max_atoms": max_atoms}
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if progress else (lambda text: None)

    # 1. every species placed and relaxed together with the clean slab
    placements = {name: make_placements(slab, get_adsorbate(name), num_random=num_random, heuristic=heuristic,
                                        seed=seed + i) for i, name in enumerate(names)}
    flat = [p for name in names for p in placements[name]]
    say(f"{reaction.name} on {slab.get_chemical_formula()}: relaxing {len(flat)} placements of {', '.join(names)} "
        "and the clean slab")
    results = _relax([slab] + [p.atoms for p in flat], potential, settings)
    evaluations = {"placements": _evaluations(results)}
    clean = results[0].atoms
    singles: dict[str, list[State]] = {}
    for name, result_start in zip(names, _offsets([len(placements[n]) for n in names], start=1)):
        bonds = side_bonds([get_adsorbate(name)])
        states = [State(r.atoms, r.energy, (p.site.kind,))
                  for p, r in zip(placements[name], results[result_start:result_start + len(placements[name])])
                  if valid_state(p.atoms, r.atoms, clean, bonds)]
        singles[name] = unique(states)
    species = {name: {"placements": len(placements[name]), "valid_distinct": len(singles[name])} for name in names}
    for name in names:
        if not singles[name]:
            raise ReactionError(f"{reaction.name}: no placement of {name} on {slab.get_chemical_formula()} relaxed "
                                "to a valid state; try more placements (--num-random)")
    hop = max_hop(slab)

    # 2. anchor states
    anchor_side = "products" if len(reaction.reactants) == 2 and len(reaction.products) == 1 else "reactants"
    other_side = "reactants" if anchor_side == "products" else "products"
    anchor_names = getattr(reaction, anchor_side)
    anchor_bonds = side_bonds([get_adsorbate(n) for n in anchor_names])
    evaluations["states"] = 0
    if len(anchor_names) == 1:
        anchors = singles[anchor_names[0]][:n_initial]
    else:
        combos = _combos([singles[n] for n in anchor_names], anchor_bonds, None, reaction.mappings, True, hop,
                         n_initial * n_final)
        relaxed, spent = _relaxed_states(combos, potential, settings, clean, anchor_bonds)
        anchors, evaluations["states"] = unique([s for s in relaxed if s is not None])[:n_initial], spent
    if not anchors:
        raise ReactionError(f"{reaction.name}: no valid {anchor_side[:-1]} state of {' + '.join(anchor_names)}")

    # 3. other-side states near each anchor
    other_names = getattr(reaction, other_side)
    other_bonds = side_bonds([get_adsorbate(n) for n in other_names])
    anchor_first = anchor_side == "reactants"
    if reaction.kind == "desorption":  # each anchor with its own lifted state, whatever the distance
        lifted_states, spent = _relaxed_states([(lifted(a), a.energy, a.sites) for a in anchors], potential,
                                               settings, clean, other_bonds, desorbed=True)
        others = [s for s in lifted_states if s is not None]
        pairs = sorted((pair for a, s in zip(anchors, lifted_states) if s is not None
                        for pair in pairs_within([a], [s], reaction.mappings, float("inf"))), key=lambda p: p.rank_key)
    else:
        if len(other_names) == 1:
            others, spent = singles[other_names[0]], 0
        else:
            candidates = [c for a in anchors for c in _combos([singles[n] for n in other_names], other_bonds, [a],
                                                              reaction.mappings, anchor_first, hop, n_final)]
            relaxed, spent = _relaxed_states(candidates, potential, settings, clean, other_bonds)
            others = unique([s for s in relaxed if s is not None])
        pairs = pairs_within(*((anchors, others) if anchor_first else (others, anchors)), reaction.mappings, hop)
        if len(other_names) == 1:  # at most n_final partners per anchor state
            pairs = _per_anchor(pairs, anchor_first, n_final)
    evaluations["states"] += spent
    initials, finals = (anchors, others) if anchor_first else (others, anchors)
    if not pairs and reaction.kind == "desorption":
        raise ReactionError(f"{reaction.name}: no final state: every molecule lifted {DESORPTION_HEIGHT_A} A off the "
                            "surface went back onto it (or broke) when relaxed")
    if not pairs:
        raise ReactionError(f"{reaction.name}: no initial and final state within {hop:.1f} A of each other "
                            f"({len(initials)} initial, {len(finals)} final states); try more placements")

    # 4. NEBs of the best pairs
    chosen = pairs[:top_k]
    say(f"{len(pairs)} pairs of states; NEBs of the best {len(chosen)} ({n_images} moving images each)")
    bands = [interpolate_band(p.initial.atoms, p.final.atoms, n_images) for p in chosen]
    neb_results = run_nebs(bands, potential, climb=climb, fmax=neb_fmax, steps=neb_steps, device=device,
                           progress=progress, max_atoms=max_atoms)
    evaluations["neb"] = sum(r.steps + 1 for r in neb_results) * n_images
    return ReactionRun(reaction, slab, species, singles, initials, finals, pairs,
                       [Band(p, r) for p, r in zip(chosen, neb_results)], evaluations)


def _offsets(sizes: list[int], start: int = 0) -> list[int]:
    out = []
    for size in sizes:
        out.append(start)
        start += size
    return out


def _relaxed_states(candidates: list[tuple[Atoms, float, tuple[str, ...]]], potential: Potential, settings: dict,
                    clean: Atoms, bonds: set, desorbed: bool = False) -> tuple[list[State | None], int]:
    """The candidates relaxed together: a state for each (None where it is not valid, `frames.valid_state`),
    and the model evaluations spent."""
    if not candidates:
        return [], 0
    results = _relax([c[0] for c in candidates], potential, settings)
    states = [State(r.atoms, r.energy, sites) if valid_state(atoms, r.atoms, clean, bonds, desorbed) else None
              for (atoms, _, sites), r in zip(candidates, results)]
    return states, _evaluations(results)


def _per_anchor(pairs: list[Pair], anchor_first: bool, limit: int) -> list[Pair]:
    """At most `limit` pairs per anchor state, lowest partner energy first; the ranking kept."""
    anchor = 0 if anchor_first else 1
    counts: dict[int, int] = {}
    kept = set()
    for p in sorted(pairs, key=lambda p: (p.final if anchor_first else p.initial).energy):
        if counts.get(p.indices[anchor], 0) < limit:
            counts[p.indices[anchor]] = counts.get(p.indices[anchor], 0) + 1
            kept.add(p.indices)
    return [p for p in pairs if p.indices in kept]
