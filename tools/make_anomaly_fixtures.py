"""Build the AdsorbML anomaly fixtures and record fairchem-data-oc's verdicts on them.

    python tools/make_anomaly_fixtures.py [OUT_DIR]   # default tests/data

Writes `anomaly_cases.extxyz` (per metal+adsorbate system one frame with `stage=initial`, then one
`stage=final` frame per case; tags 0/1/2; `system` and `case` in each frame's info) and `anomaly_verdicts.json` ({case: sorted anomaly names}) for
`tests/test_adsorbml.py::test_anomaly_verdicts_match_fairchem_data_oc`. The verdicts come from
fairchem-data-oc's `DetectTrajAnomaly` (installed for tools and benchmarks only; the package and tests
never import it). Cases: for *OH, *CO, *NH2, *CH3, *OOH and *CHO on Pt(111) and Cu(111): intact (rattled),
one bond stretched just inside and just outside fairchem's cutoff (radii sum + 0.6 A), broken (the atom
moved onto the surface), desorbed and almost desorbed (just inside the 1.5x cushion), a surface atom popped
out, and the binding atom pushed into the subsurface.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import fcc111
from ase.data import atomic_numbers, covalent_radii
from ase.io import write

from eqv2_calc.adsorbml import get_adsorbate, tag_surface

SEED = 0
# fairchem's bond cushion: ASE's default NeighborList skin, added to both atoms' cutoffs (Angstrom).
CUSHION_A = 0.6
# How far inside / outside a cutoff the near-threshold cases sit (Angstrom).
MARGIN_A = 0.02
ADSORBATES = ("*OH", "*CO", "*NH2", "*CH3", "*OOH", "*CHO")
METALS = {"Pt": 3.92, "Cu": 3.61}
NAMES = {
    "is_adsorbate_dissociated": "dissociated",
    "is_adsorbate_desorbed": "desorbed",
    "has_surface_changed": "surface_changed",
    "is_adsorbate_intercalated": "intercalated",
}


def radius(symbol: str) -> float:
    return float(covalent_radii[atomic_numbers[symbol]])


def initial_structure(metal: str, adsorbate: str) -> Atoms:
    """The adsorbate's binding atom 2.0 A above a top atom of a tagged 2x2x3 (111) slab (adsorbate tag 2)."""
    slab = tag_surface(fcc111(metal, size=(2, 2, 3), a=METALS[metal], vacuum=8.0))
    slab.pbc = True
    slab.set_constraint()
    molecule = get_adsorbate(adsorbate).atoms.copy()
    top = slab.positions[np.argmax(slab.positions[:, 2])]
    molecule.positions += top + (0.0, 0.0, 2.0)
    molecule.set_tags(2)
    return slab + molecule


def set_bond(atoms: Atoms, anchor: int, moved: int, length: float) -> None:
    """Move atom `moved` (and nothing else) along the anchor->moved direction to `length` Angstrom."""
    direction = atoms.positions[moved] - atoms.positions[anchor]
    atoms.positions[moved] = atoms.positions[anchor] + length * direction / np.linalg.norm(direction)


def cases(initial: Atoms, metal: str, rng: np.random.Generator) -> dict[str, Atoms]:
    """Final structures of one initial structure, by case name."""
    ads = np.flatnonzero(initial.get_tags() == 2)
    binding, partner = int(ads[0]), int(ads[1])  # the first bond of the molecule (its binding atom's)
    last = int(ads[-1])
    symbols = initial.get_chemical_symbols()
    bond_cutoff = radius(symbols[binding]) + radius(symbols[partner]) + CUSHION_A
    slab_z = initial.positions[initial.get_tags() == 1, 2].max()
    out: dict[str, Atoms] = {}

    def case(name: str) -> Atoms:
        out[name] = initial.copy()
        return out[name]

    case("unchanged")
    case("intact").positions += rng.normal(0.0, 0.03, (len(initial), 3))
    set_bond(case("stretched_inside"), binding, partner, bond_cutoff - MARGIN_A)
    set_bond(case("stretched_outside"), binding, partner, bond_cutoff + MARGIN_A)
    set_bond(case("stretched_1.59"), binding, partner, 1.59)
    broken = case("broken")
    broken.positions[last] = broken.positions[binding] + (2.4, 0.3, 0.0)
    broken.positions[last, 2] = slab_z + 1.2
    case("desorbed").positions[ads, 2] += 6.0
    desorb_cutoff = 1.5 * (radius(symbols[binding]) + radius(metal)) + CUSHION_A
    for name, margin in (("almost_desorbed", -MARGIN_A), ("just_desorbed", MARGIN_A)):
        final = case(name)
        final.positions[ads, 2] += desorb_cutoff + margin - 2.0  # binding atom stands on top of one metal atom
        # the molecule's other atoms may still reach a slab atom: the verdict is whatever fairchem says
    popped = case("surface_changed")
    surface = np.flatnonzero(initial.get_tags() == 1)
    far = surface[np.argmax(np.linalg.norm(initial.positions[surface, :2] - initial.positions[binding, :2], axis=1))]
    popped.positions[far, 2] += 3.0
    sunk = case("intercalated")
    sunk.positions[ads, 2] -= 2.0 + 1.8  # binding atom 1.8 A below the surface plane, the molecule follows
    return out


def fairchem_verdict(initial: Atoms, final: Atoms) -> list[str]:
    from fairchem.data.oc.utils.flag_anomaly import DetectTrajAnomaly

    detector = DetectTrajAnomaly(initial, final, initial.get_tags())
    return sorted(name for method, name in NAMES.items() if getattr(detector, method)())


def main(out_dir: Path) -> None:
    rng = np.random.default_rng(SEED)
    frames, verdicts = [], {}
    for metal in METALS:
        for adsorbate in ADSORBATES:
            system = f"{adsorbate}/{metal}(111)"
            initial = initial_structure(metal, adsorbate)
            frames.append(Atoms(initial.symbols, initial.positions, cell=initial.cell, pbc=initial.pbc,
                                tags=initial.get_tags(), info={"system": system, "stage": "initial"}))
            for name, final in cases(initial, metal, rng).items():
                verdicts[f"{system} {name}"] = fairchem_verdict(initial, final)
                frames.append(Atoms(final.symbols, final.positions, cell=final.cell, pbc=final.pbc,
                                    tags=final.get_tags(), info={"system": system, "stage": "final", "case": name}))
    out_dir.mkdir(parents=True, exist_ok=True)
    write(out_dir / "anomaly_cases.extxyz", frames, format="extxyz")
    (out_dir / "anomaly_verdicts.json").write_text(json.dumps(verdicts, indent=1, sort_keys=True) + "\n")
    counts: dict[str, int] = {}
    for found in verdicts.values():
        for name in found or ["valid"]:
            counts[name] = counts.get(name, 0) + 1
    print(f"{len(verdicts)} cases -> {out_dir}: {counts}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[1] / "tests" / "data")
