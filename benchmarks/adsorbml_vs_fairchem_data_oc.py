"""AdsorbML placement: ours (`eqv2_calc.adsorbml.make_placements`) vs fairchem-data-oc's, side by side.

On the EMT stand-in benchmark of `adsorbml_emt.py` (fcc metals x (111)/(100) x H/C/N/O adsorbates, small
slabs at EMT's lattice constant), each system gets the same budget of placements from each generator:

- ours: every distinct heuristic site (top/bridge/fcc/hcp/hollow) + random sites up to the budget;
- theirs (fairchem-data-oc 1.0.2, as the AdsorbML paper placed them): `AdsorbateSlabConfig` mode
  "heuristic" (pymatgen's sites) + "random_site_heuristic_placement" up to the budget, from the database
  geometry of the adsorbate (`Adsorbate(adsorbate_smiles_from_db=name)`), seeded through `np.random.seed`.

Both generators' placements go through the screen of `eqv2 adsorb`: with the clean slab, they are relaxed
together by the model through `relax_many` (the embedded demo model, trained on EMT labels; fmax 0.05 eV/A,
<= 300 FIRE steps), the same anomaly rules (`detect_anomalies` against the model-relaxed clean slab) reject
placements, and the valid ones are ranked by model energy. EMT plays DFT, as AdsorbML's evaluation used it:

- exhaustive "DFT": every placement of both generators relaxed with EMT from its initial geometry (BFGS, fmax
  0.05 eV/A, <= 300 steps), anomalies checked against the EMT-relaxed clean slab; the lowest valid energy of a
  system over both generators is its minimum;
- ML+RX: a generator's k best-ranked placements re-relaxed with EMT from the model's structures; success at k:
  the best valid one is within 0.1 eV of the minimum (AdsorbML dense_eval.py; lower counts);
- EMT calls saved at k: the ML+RX force calls of the top k against relaxing every placement of that generator
  from its initial geometry, over the systems where both generators rank at least k valid placements.

`--table JSON` prints the table of an earlier run.

    python benchmarks/adsorbml_vs_fairchem_data_oc.py [--systems 20] [--placements 10]
        [--out benchmarks/results/adsorbml_vs_fairchem_data_oc.json]
"""

from __future__ import annotations

import argparse
import json
import time
from itertools import product
from pathlib import Path

from adsorbml_emt import KS, METALS, MILLERS, SLAB, SUCCESS_EV, emt_relax, write_json

ROOT = Path(__file__).resolve().parents[1]
# adsorbml_emt.py's atoms and small molecules plus polyatomic OC20 ones (EMT knows H, C, N, O)
ADSORBATES = ("*O", "*H", "*CO", "*OH", "*N", "*C", "*CH", "*NH", "*CH3", "*OCH3", "*NO", "*CH2*CH2")
GENERATORS = ("ours", "fairchem-data-oc")
TIE_EV = 0.01  # minima closer than this (eV) count as equal; the table also counts AdsorbML's "much better" (> 0.1 eV)


def system_list(n: int, adsorbates: tuple[str, ...] = ADSORBATES, seed: int = 0) -> list[tuple]:
    """`n` distinct (metal, miller, adsorbate) triples drawn without replacement (fixed seed), every
    adsorbate used about equally often."""
    import random

    rng = random.Random(seed)
    combos = [[(m, h, a) for m, h in product(METALS, MILLERS)] for a in adsorbates]
    for group in combos:
        rng.shuffle(group)
    picked = [combos[i % len(adsorbates)][i // len(adsorbates)] for i in range(n)]
    return picked


def ours(slab, name: str, budget: int, seed: int) -> list:
    """Our placements: heuristic sites first, random ones up to `budget` (overlapping ones are dropped)."""
    from eqv2_calc.adsorbml import get_adsorbate, heuristic_sites, make_placements

    n_heuristic = len(heuristic_sites(slab))
    placements = make_placements(slab, get_adsorbate(name), num_random=max(0, budget - n_heuristic), seed=seed)
    return [p.atoms for p in placements[:budget]]


def theirs(slab, name: str, budget: int, seed: int) -> list:
    """fairchem-data-oc's placements: heuristic (pymatgen sites) + random-site heuristic up to `budget`."""
    import numpy as np
    from fairchem.data.oc.core import Adsorbate, AdsorbateSlabConfig, Slab

    np.random.seed(seed)
    their_slab = Slab(slab_atoms=slab.copy(), min_ab=0.0)  # our slab is already tiled
    adsorbate = Adsorbate(adsorbate_smiles_from_db=name)
    atoms = AdsorbateSlabConfig(their_slab, adsorbate, mode="heuristic").atoms_list[:budget]
    if budget > len(atoms):
        atoms += AdsorbateSlabConfig(their_slab, adsorbate, num_sites=budget - len(atoms),
                                     mode="random_site_heuristic_placement").atoms_list
    for a in atoms:
        a.pbc = True
    return atoms


def screen_with_model(slab, placements: dict[str, list], potential, fmax: float, steps: int) -> tuple:
    """The clean slab and every generator's placements relaxed together by the model (`relax_many`)."""
    from eqv2_calc.adsorbml.screen import SCREEN_OPTIMIZER
    from eqv2_calc.relax import relax_many

    structures = [slab] + [atoms for g in GENERATORS for atoms in placements[g]]
    results = relax_many(structures, potential, fmax=fmax, steps=steps, optimizer=SCREEN_OPTIMIZER, progress=False)
    out, start = {}, 1
    for g in GENERATORS:
        out[g] = results[start : start + len(placements[g])]
        start += len(placements[g])
    return results[0], out


def evaluate(initials: list, ml_results: list, clean_ml, clean_emt, fmax: float, steps: int) -> list[dict]:
    """Per placement: model energy and validity, exhaustive EMT relaxation from the initial geometry, and for
    the `max(KS)` best-ranked valid ones ML+RX (EMT from the model's structure); energies in eV, EMT force calls."""
    from eqv2_calc.adsorbml import detect_anomalies

    out = []
    for initial, ml in zip(initials, ml_results):
        dft = emt_relax(initial, fmax, steps)
        out.append({"ml_eV": ml.energy, "ml_valid": not detect_anomalies(initial, ml.atoms, clean_ml.atoms),
                    "ml_steps": ml.steps, "dft_eV": dft.energy,
                    "dft_anomalies": detect_anomalies(initial, dft.atoms, clean_emt.atoms),
                    "dft_calls": len(dft.energies), "rx_eV": None, "rx_anomalies": None, "rx_calls": None})
    for r, initial, ml in sorted(((r, i, m) for r, i, m in zip(out, initials, ml_results) if r["ml_valid"]),
                                 key=lambda rim: rim[0]["ml_eV"])[: max(KS)]:
        rx = emt_relax(ml.atoms, fmax, steps)
        r.update(rx_eV=rx.energy, rx_anomalies=detect_anomalies(initial, rx.atoms, clean_emt.atoms),
                 rx_calls=len(rx.energies))
    return out


def summarise(runs: list[dict], global_min: float | None) -> dict:
    """One generator on one system: success at k, minima, rejections, EMT calls."""
    ranked = sorted((r for r in runs if r["ml_valid"]), key=lambda r: r["ml_eV"])
    valid_dft = [r["dft_eV"] for r in runs if not r["dft_anomalies"]]
    row = {"placements": len(runs), "rejected_screen": sum(not r["ml_valid"] for r in runs),
           "rejected_dft": sum(bool(r["dft_anomalies"]) for r in runs),
           "own_min_eV": min(valid_dft) if valid_dft else None,
           "emt_calls_all": sum(r["dft_calls"] for r in runs), "ml_steps": sum(r["ml_steps"] for r in runs)}
    for k in KS:
        found = [r["rx_eV"] for r in ranked[:k] if not r["rx_anomalies"]]
        best = min(found) if found else None
        row[f"top{k}_eV"] = best
        row[f"success_k{k}"] = best is not None and global_min is not None and best - global_min <= SUCCESS_EV
        row[f"emt_calls_top{k}"] = sum(r["rx_calls"] for r in ranked[:k])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", type=int, default=20)
    parser.add_argument("--placements", type=int, default=10, help="placements per system and generator")
    parser.add_argument("--model", default=None, help="default: the embedded demo model (trained on EMT)")
    parser.add_argument("--fmax", type=float, default=0.05, help="eV/A of the model and EMT relaxations")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--adsorbates", nargs="+", default=list(ADSORBATES))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "adsorbml_vs_fairchem_data_oc.json"))
    parser.add_argument("--table", metavar="JSON", help="only print the table of an earlier run's JSON")
    args = parser.parse_args()
    if args.table:
        data = json.loads(Path(args.table).read_text())
        print_table({**data["summary"], **compare(data["systems"])})
        return

    import fairchem_stand_in

    fairchem_stand_in.install()
    import torch
    from ase.build import bulk

    from eqv2_calc.adsorbml import SlabSettings, build_slabs
    from eqv2_calc.data.emt import emt_lattice_constant
    from eqv2_calc.predict import DEMO_MODEL, resolve_model

    model = args.model or DEMO_MODEL
    potential = resolve_model(model, "cpu", torch.float32)
    start = time.perf_counter()
    makers = {"ours": ours, "fairchem-data-oc": theirs}
    rows = []
    for index, (metal, miller, name) in enumerate(system_list(args.systems, tuple(args.adsorbates), args.seed)):
        slab = build_slabs(bulk(metal, "fcc", a=emt_lattice_constant(metal)), miller, settings=SlabSettings(**SLAB))[0]
        placements = {g: makers[g](slab, name, args.placements, args.seed + index) for g in GENERATORS}
        clean_ml, ml = screen_with_model(slab, placements, potential, args.fmax, args.steps)
        clean_emt = emt_relax(slab, args.fmax, args.steps)
        runs = {g: evaluate(placements[g], ml[g], clean_ml, clean_emt, args.fmax, args.steps) for g in GENERATORS}
        valid = [r["dft_eV"] for g in GENERATORS for r in runs[g] if not r["dft_anomalies"]]
        global_min = min(valid) if valid else None
        row = {"system": f"{metal}{''.join(map(str, miller))} {name}", "slab_atoms": len(slab),
               "exhaustive_min_eV": global_min}
        row.update({g: summarise(runs[g], global_min) for g in GENERATORS})
        rows.append(row)
        print(f"  {row['system']:<14} min {global_min if global_min is None else round(global_min, 3)}: " + "; ".join(
            f"{g} k1 {row[g]['success_k1']} k5 {row[g]['success_k5']} own min {row[g]['own_min_eV']}"
            for g in GENERATORS) + f" ({time.perf_counter() - start:.0f} s)", flush=True)
    seconds = time.perf_counter() - start

    summary = {"systems": len(rows), "placements_per_system": args.placements, "model": str(model),
               "fmax": args.fmax, "steps": args.steps, "threshold_eV": SUCCESS_EV, "seconds": seconds}
    summary.update(compare(rows))
    print_table(summary)
    write_json(args.out, summary, rows)


def compare(rows: list[dict]) -> dict:
    """Per generator: success at k, lower minima than the other, placements, rejections, EMT calls saved.

    Calls saved at k count the systems where both generators ranked at least k valid placements (a
    generator whose placements are all rejected spends no "DFT" call but finds nothing)."""
    out = {}
    for g, other in (GENERATORS, GENERATORS[::-1]):
        s = {}
        for k in KS:
            s[f"success_k{k}"] = sum(r[g][f"success_k{k}"] for r in rows) / len(rows)
            both = [r for r in rows if all(r[x]["placements"] - r[x]["rejected_screen"] >= k for x in GENERATORS)]
            calls = sum(r[g][f"emt_calls_top{k}"] for r in both)
            s[f"emt_calls_saved_k{k}"] = 1 - calls / max(sum(r[g]["emt_calls_all"] for r in both), 1)
            s[f"systems_saved_k{k}"] = len(both)
        s["lower_min"] = sum(_lower(r[g]["top5_eV"], r[other]["top5_eV"], TIE_EV) for r in rows)
        s["much_lower_min"] = sum(_lower(r[g]["top5_eV"], r[other]["top5_eV"], SUCCESS_EV) for r in rows)
        s["lower_own_min"] = sum(_lower(r[g]["own_min_eV"], r[other]["own_min_eV"], TIE_EV) for r in rows)
        s["placements"] = sum(r[g]["placements"] for r in rows)
        s["rejected"] = sum(r[g]["rejected_screen"] for r in rows)
        s["rejected_dft"] = sum(r[g]["rejected_dft"] for r in rows)
        out[g] = s
    return out


def print_table(summary: dict) -> None:
    print(f"{'generator':<18} {'k=1':>5} {'k=5':>5} {'lower top-5':>11} {'> 0.1 eV':>8} {'lower all':>9} "
          f"{'placed':>6} {'rejected':>8} {'saved k=1':>9} {'saved k=5':>9}")
    for g in GENERATORS:
        s = summary[g]
        print(f"{g:<18} {100 * s['success_k1']:>4.0f}% {100 * s['success_k5']:>4.0f}% {s['lower_min']:>11} "
              f"{s['much_lower_min']:>8} {s['lower_own_min']:>9} {s['placements']:>6} {s['rejected']:>8} "
              f"{100 * s['emt_calls_saved_k1']:>8.0f}% {100 * s['emt_calls_saved_k5']:>8.0f}%")
    print(f"{summary['systems']} systems x {summary['placements_per_system']} placements per generator; "
          f"calls saved over the {summary[GENERATORS[0]]['systems_saved_k5']} systems where both rank >= 5 valid "
          f"placements ({summary[GENERATORS[0]]['systems_saved_k1']} for k=1); {summary['seconds']:.0f} s")


def _lower(a: float | None, b: float | None, margin: float) -> bool:
    """`a` is a lower minimum than `b` by more than `margin` eV (a found minimum beats none)."""
    return a is not None and (b is None or a < b - margin)


if __name__ == "__main__":
    main()
