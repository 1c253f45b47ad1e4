"""Convert fairchem-data-oc's OC20 adsorbate database (a pickle) once into our JSON data file.

    pip install --no-deps fairchem-data-oc==1.0.2
    python tools/convert_oc20_adsorbates.py [--pkl PATH] [--out eqv2_calc/adsorbml/data/oc20_adsorbates.json]

The pickle (`fairchem/data/oc/databases/pkls/adsorbates.pkl`) maps an index to
`(ase.Atoms, name, binding_indices[, reaction])`; its geometries are data (the package's license is MIT).
The JSON keeps index, name, symbols, positions (Angstrom, as stored), binding indices and the reaction
(HTML tags removed), and names its source, version and license. Only this tool reads the pickle.
"""

from __future__ import annotations

import argparse
import html
import json
import pickle
import re
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "eqv2_calc" / "adsorbml" / "data" / "oc20_adsorbates.json"
DISTRIBUTION = "fairchem-data-oc"
PKL_IN_PACKAGE = "fairchem/data/oc/databases/pkls/adsorbates.pkl"


def _default_pkl() -> Path:
    files = metadata.distribution(DISTRIBUTION).files or []
    match = [f for f in files if str(f) == PKL_IN_PACKAGE]
    if not match:
        raise SystemExit(f"{DISTRIBUTION} is installed without {PKL_IN_PACKAGE}; pass --pkl")
    return Path(match[0].locate())


def _plain(reaction: str) -> str:
    """`CO<sub>(g)</sub> + * &rarr; *CO` -> `CO(g) + * -> *CO`."""
    return html.unescape(re.sub(r"</?sub>", "", reaction)).replace("\u2192", "->")


def convert(pkl: Path) -> dict:
    with open(pkl, "rb") as handle:
        database = pickle.load(handle)  # trusted: the file shipped in the installed wheel
    entries = []
    for index in sorted(database):
        atoms, name, binding = database[index][:3]
        entries.append({
            "index": int(index), "name": str(name), "symbols": atoms.get_chemical_symbols(),
            "positions": [[round(float(x), 6) for x in p] for p in atoms.positions],
            "binding_indices": [int(i) for i in binding],
            "reaction": _plain(database[index][3]) if len(database[index]) > 3 else None,
        })
    version = metadata.version(DISTRIBUTION)
    return {
        "description": "OC20 adsorbates (Chanussot et al., ACS Catal. 2021) with their binding atoms",
        "source": f"PyPI {DISTRIBUTION} {version}, {PKL_IN_PACKAGE}",
        "source_version": version,
        "license": "MIT License, Copyright (c) Meta Platforms, Inc. and its affiliates (fairchem-data-oc)",
        "converted_by": "tools/convert_oc20_adsorbates.py",
        "units": "Angstrom",
        "adsorbates": entries,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pkl", type=Path, default=None, help=f"default: the installed {DISTRIBUTION}'s file")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    data = convert(args.pkl or _default_pkl())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {len(data['adsorbates'])} adsorbates from {data['source']} to {args.out}")


if __name__ == "__main__":
    main()
