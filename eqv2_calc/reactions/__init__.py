"""Reactions after AdsorbML: transition states of surface reactions (CatTSunami's enumeration, arXiv 2405.02078).

`parse_reaction("*CO -> *C + *O")` reads a reaction in OC20 adsorbate names (CatTSunami's 98 by name);
modules, one job each: `equations` (parsing, balance, atom mappings, the reaction list).
"""

from __future__ import annotations

from .equations import Reaction, cattsunami_reactions, derive_mappings, parse_reaction, reaction_table

__all__ = ["Reaction", "cattsunami_reactions", "derive_mappings", "parse_reaction", "reaction_table"]
