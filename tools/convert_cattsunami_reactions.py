"""Convert CatTSunami's reaction databases (pickles) once into our JSON data file.

    pip download --no-deps fairchem-applications-cattsunami==1.1.1 -d DIR && unzip DIR/*.whl -d DIR
    PYTHONPATH=. python tools/convert_cattsunami_reactions.py --databases DIR/fairchem/applications/cattsunami/databases

The pickles (`dissociation_reactions_22May24.pkl`, `transfers_5Sept23.pkl`, `desorptions_9Aug23.pkl`) are
lists of plain dicts (no fairchem class): the reaction text, its type, indices into fairchem-data-oc's
adsorbate database, `idx_mapping` (one or more {reactant atom: product atom} dicts) and the bonds before and
after. The JSON keeps, per reaction: a canonical name in our library's adsorbate names, CatTSunami's own
text, type, reactants, products (a desorption's product is its reactant, with the gas molecule named), the
OC20 indices, the atom mappings as lists (mapping[i] = product-side atom of reactant-side atom i) and the
bonds (edges) as stored. Every mapping is checked against the library's element order. Source, version
and license are named in the file. Only this tool reads the pickles.
"""

from __future__ import annotations

import argparse
import json
import pickle
from collections import Counter
from pathlib import Path

from eqv2_calc.adsorbml.adsorbates import get_adsorbate, library_names

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "eqv2_calc" / "reactions" / "data" / "cattsunami_reactions.json"
VERSION = "1.1.1"
FILES = {"dissociation": "dissociation_reactions_22May24.pkl", "transfer": "transfers_5Sept23.pkl",
         "desorption": "desorptions_9Aug23.pkl"}
SIDES = {"dissociation": (("reactant",), ("product1", "product2")),
         "transfer": (("reactant1", "reactant2"), ("product1", "product2")),
         "desorption": (("reactant",), ("product",))}
# CatTSunami's adsorbate database index 86 (*H2) is not in fairchem-data-oc 1.0.2's 86 (0-85): ours, *H2.
EXTRA_INDICES = {86: "*H2"}
# Its "*CHCHO -> *CH + *CHO" stores product2 = 71 (*COH); both balance, the text and bonds say *CHO (see below).


def _name(index: int) -> str:
    return EXTRA_INDICES.get(index) or library_names()[index]


def _symbols(names: list[str]) -> list[str]:
    return [s for n in names for s in get_adsorbate(n).symbols]


def _bonds_fit(names: list[str], edges: list) -> bool:
    """The stored edges are exactly the bonds of the library geometries (CatTSunami's 1.25 rule)."""
    from eqv2_calc.reactions.equations import side_bonds

    return side_bonds([get_adsorbate(n) for n in names]) == {tuple(sorted(map(int, e))) for e in edges}


def convert_entry(entry: dict, kind: str) -> tuple[dict, list[str]]:
    """One reaction as JSON, and the notes of what had to be decided."""
    notes = []
    left, right = ([_name(entry[key]) for key in keys] for keys in SIDES[kind])
    text = " ".join(entry["reaction"].replace("+", " + ").split())
    if kind == "dissociation" and not _bonds_fit(right, entry["edge_indices_final"]):
        written = [part.strip() for part in text.split("->")[1].split("+")]
        if _bonds_fit([get_adsorbate(n).name for n in written], entry["edge_indices_final"]):
            notes.append(f"{text!r}: products stored as {right}, the text and stored bonds say {written}; "
                         "the text is kept")
            right = [get_adsorbate(n).name for n in written]
    gas = text.split("->")[1].strip() if kind == "desorption" else None
    mappings = [[int(m[i]) for i in range(len(m))] for m in entry["idx_mapping"]]
    before, after = _symbols(left), _symbols(right)
    assert Counter(before) == Counter(after), f"{text}: does not balance"
    for m in mappings:
        assert sorted(m) == list(range(len(before))) and all(before[i] == after[j] for i, j in enumerate(m)), \
            f"{text}: mapping {m} does not fit the library's atom order"
    name = f"{left[0]} -> {gas}" if gas else f"{' + '.join(left)} -> {' + '.join(right)}"
    edges = ({"bonds": entry["edge_indices"]} if kind == "desorption" else
             {"bonds_initial": entry["edge_indices_initial"], "bonds_final": entry["edge_indices_final"]})
    return {
        "name": name, "source_text": entry["reaction"], "type": kind, "reactants": left,
        "products": left if gas else right, "gas": gas,
        "oc20_indices": {key: int(entry[key]) for keys in SIDES[kind] for key in keys},
        "atom_mappings": mappings, **{k: [[int(i) for i in e] for e in v] for k, v in edges.items()},
    }, notes


def convert(databases: Path) -> tuple[dict, list[str]]:
    reactions, notes = [], []
    for kind, file in FILES.items():
        with open(databases / file, "rb") as handle:
            entries = pickle.load(handle)  # trusted: the files of the MIT-licensed wheel
        for entry in entries:
            reaction, entry_notes = convert_entry(entry, kind)
            reactions.append(reaction)
            notes += entry_notes
    return {
        "description": "CatTSunami's reactions (Wander et al., arXiv 2405.02078): dissociations, transfers, "
                       "desorptions with their atom mappings, in OC20 adsorbate names",
        "source": f"PyPI fairchem-applications-cattsunami {VERSION}, fairchem/applications/cattsunami/databases/"
                  f"{{{', '.join(FILES.values())}}}",
        "source_version": VERSION,
        "license": "MIT License, Copyright (c) Meta Platforms, Inc. and affiliates "
                   "(fairchem-applications-cattsunami)",
        "converted_by": "tools/convert_cattsunami_reactions.py",
        "notes": notes + ["adsorbate index 86 of CatTSunami's database is *H2, not in fairchem-data-oc 1.0.2; "
                          "eqv2_calc builds it (end-on H2, 0.74 Angstrom)"],
        "reactions": reactions,
    }, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", type=Path, required=True,
                        help="the unpacked wheel's fairchem/applications/cattsunami/databases folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    data, notes = convert(args.databases)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    reactions = data.pop("reactions")  # one reaction a line
    head = json.dumps(data, indent=1)[:-2]
    body = ",\n  ".join(json.dumps(r) for r in reactions)
    args.out.write_text(f"{head},\n \"reactions\": [\n  {body}\n ]\n}}\n")
    print(f"wrote {len(reactions)} reactions ({dict(Counter(r['type'] for r in reactions))}) "
          f"to {args.out}")
    for note in notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
