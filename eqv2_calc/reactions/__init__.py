"""Reactions after AdsorbML: transition states of surface reactions (CatTSunami's enumeration, arXiv 2405.02078).

`run_reaction(slab, "*CO -> *C + *O")` places reactants and products, relaxes them in batches, pairs initial
and final states atom to atom and runs NEBs of the best pairs (`eqv2_calc.neb`). Modules, one job each:
`equations` (parsing, balance, atom mappings, CatTSunami's 98 reactions), `frames` (states, the pairing rule,
alignment), `workflow` (`run_reaction`), `report` (files and figures).
"""

from __future__ import annotations

from .equations import Reaction, cattsunami_reactions, derive_mappings, parse_reaction, reaction_table

__all__ = ["Reaction", "cattsunami_reactions", "derive_mappings", "parse_reaction", "reaction_table"]
