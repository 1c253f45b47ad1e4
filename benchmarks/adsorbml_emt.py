"""AdsorbML success rate offline, with ASE's EMT standing in for DFT.

For each slab/adsorbate system (fcc metals x (111)/(100) x H/C/N/O adsorbates, slabs cut from bulk at
EMT's lattice constant):

1. the screen (`eqv2_calc.adsorbml.screen`) places the adsorbate (all distinct heuristic sites + random
   ones) and relaxes every placement with the model;
2. ground truth ("exhaustive EMT"): every placement relaxed with EMT (ASE BFGS), anomalies removed, the
   lowest energy kept (the clean slab relaxed with EMT is the surface-change reference);
3. ML+RX (AdsorbML): the model's k lowest valid structures re-relaxed with EMT, anomalies removed, lowest kept.

A system succeeds at k when best(ML+RX, top k) - best(exhaustive) <= 0.1 eV (lower counts; a system without
a valid ML candidate fails), as `dense_eval.py` of AdsorbML defines it. "EMT calls saved" compares the EMT
force evaluations (and relaxations) of the exhaustive search with those of the top-k re-relaxations.

    python benchmarks/adsorbml_emt.py [--model NAME_OR_PATH] [--systems 20] [--num-random 16]
        [--out benchmarks/results/adsorbml_emt.json]

Default model: the embedded demo model (trained on EMT labels).
"""

from __future__ import annotations

import argparse
import json
import time
from itertools import product
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METALS = ("Cu", "Pt", "Ag", "Pd", "Au", "Ni", "Al")
MILLERS = ((1, 1, 1), (1, 0, 0))
ADSORBATES = ("*O", "*H", "*CO", "*OH", "*N", "*C", "*CH", "*NH")
SUCCESS_EV = 0.1  # AdsorbML dense_eval.py SUCCESS_THRESHOLD
KS = (1, 5)
# CPU-sized slabs: ~3 layers, in-plane cell >= 5 A (2x2 on fcc(111)), 8 A vacuum.
SLAB = dict(min_slab_size=5.0, min_vacuum=8.0, min_ab=5.0)


def system_list(n: int) -> list[tuple[str, tuple[int, int, int], str]]:
    """`n` (metal, miller, adsorbate) triples spread over the metals, facets and adsorbates."""
    combos = list(product(METALS, MILLERS, ADSORBATES))
    step = max(1, len(combos) // n) if n <= len(combos) else 1
    picked = [combos[(i * step + i // len(ADSORBATES)) % len(combos)] for i in range(n)]
    return list(dict.fromkeys(picked))  # order kept, duplicates dropped


def emt_relax(atoms, fmax: float, steps: int):
    from ase.calculators.emt import EMT

    from eqv2_calc.relax import relax

    return relax(atoms, EMT(), fmax=fmax, steps=steps, optimizer="BFGS")


def best_valid(results, initials, clean_slab) -> float | None:
    """Lowest energy (eV) among EMT results that break no AdsorbML rule."""
    from eqv2_calc.adsorbml import detect_anomalies

    energies = [r.energy for r, init in zip(results, initials) if not detect_anomalies(init, r.atoms, clean_slab)]
    return min(energies) if energies else None


def write_json(path: str, summary: dict, rows: list[dict]) -> None:
    """The benchmark's summary and per-system rows as JSON at `path` (folders created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "systems": rows}, indent=2))
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="default: the embedded demo model")
    parser.add_argument("--systems", type=int, default=20)
    parser.add_argument("--num-random", type=int, default=16, help="random placements per system (AdsorbML: 100)")
    parser.add_argument("--fmax", type=float, default=0.05, help="eV/A, model and EMT relaxations")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "adsorbml_emt.json"))
    args = parser.parse_args()

    from ase.build import bulk

    from eqv2_calc.adsorbml import SlabSettings, build_slabs, screen
    from eqv2_calc.data.emt import emt_lattice_constant
    from eqv2_calc.predict import DEMO_MODEL

    model = args.model or DEMO_MODEL
    specs = system_list(args.systems)
    start = time.perf_counter()
    slabs = {}
    for metal, miller, _ in specs:
        if (metal, miller) not in slabs:
            cut = build_slabs(bulk(metal, "fcc", a=emt_lattice_constant(metal)), miller, settings=SlabSettings(**SLAB))
            slabs[metal, miller] = cut[0]
    ml_start = time.perf_counter()
    screens = {}
    for adsorbate in dict.fromkeys(a for _, _, a in specs):  # one batched screen per adsorbate
        keys = [(m, h) for m, h, a in specs if a == adsorbate]
        for key, system in zip(keys, screen([slabs[k] for k in keys], adsorbate, model, num_random=args.num_random,
                                            fmax=args.fmax, steps=args.steps, device=args.device, progress=False)):
            screens[(*key, adsorbate)] = system
    ml_seconds = time.perf_counter() - ml_start
    print(f"model screen of {len(screens)} systems: {ml_seconds:.0f} s; EMT relaxations follow", flush=True)

    rows, emt_start = [], time.perf_counter()
    for metal, miller, adsorbate in specs:
        system = screens[metal, miller, adsorbate]
        clean = emt_relax(system.slab, args.fmax, args.steps)
        initials = [c.placement.atoms for c in system.candidates]
        exhaustive = [emt_relax(atoms, args.fmax, args.steps) for atoms in initials]
        best = best_valid(exhaustive, initials, clean.atoms)
        top = system.top(max(KS))
        rerelaxed = [emt_relax(c.atoms, args.fmax, args.steps) for c in top]
        row = {"system": f"{metal}{''.join(map(str, miller))} {adsorbate}", "placements": len(initials),
               "ml_valid": len(system.ranked()), "emt_best_eV": best,
               "emt_calls_exhaustive": sum(len(r.energies) for r in exhaustive),
               "relaxations_exhaustive": len(exhaustive)}
        for k in KS:
            found = best_valid(rerelaxed[:k], [c.placement.atoms for c in top[:k]], clean.atoms)
            row[f"top{k}_best_eV"] = found
            row[f"top{k}_diff_eV"] = None if found is None or best is None else found - best
            row[f"top{k}_success"] = found is not None and best is not None and found - best <= SUCCESS_EV
            row[f"emt_calls_top{k}"] = sum(len(r.energies) for r in rerelaxed[:k])
            row[f"relaxations_top{k}"] = len(rerelaxed[:k])
        rows.append(row)
        print(f"  {row['system']}: EMT best {best}, top-5 best {row['top5_best_eV']}", flush=True)
    emt_seconds = time.perf_counter() - emt_start

    print(f"{'system':<16} {'plac':>4} {'valid':>5} {'EMT best':>10} {'d(k=1)':>8} {'d(k=5)':>8} {'calls all':>9} "
          f"{'k=1':>5} {'k=5':>5}")
    for r in rows:
        diff = lambda v: f"{v:>8.3f}" if v is not None else f"{'-':>8}"  # noqa: E731
        best = f"{r['emt_best_eV']:>10.3f}" if r["emt_best_eV"] is not None else f"{'-':>10}"
        print(f"{r['system']:<16} {r['placements']:>4} {r['ml_valid']:>5} {best} {diff(r['top1_diff_eV'])} "
              f"{diff(r['top5_diff_eV'])} {r['emt_calls_exhaustive']:>9} {r['emt_calls_top1']:>5} "
              f"{r['emt_calls_top5']:>5}")
    total_calls = sum(r["emt_calls_exhaustive"] for r in rows)
    total_relax = sum(r["relaxations_exhaustive"] for r in rows)
    summary = {"model": model, "systems": len(rows), "num_random": args.num_random, "fmax": args.fmax,
               "steps": args.steps, "threshold_eV": SUCCESS_EV, "emt_calls_exhaustive": total_calls,
               "relaxations_exhaustive": total_relax, "ml_seconds": ml_seconds, "emt_seconds": emt_seconds,
               "total_seconds": time.perf_counter() - start}
    for k in KS:
        calls = sum(r[f"emt_calls_top{k}"] for r in rows)
        summary[f"success_k{k}"] = sum(r[f"top{k}_success"] for r in rows) / len(rows)
        summary[f"emt_calls_top{k}"] = calls
        summary[f"emt_calls_saved_k{k}"] = 1 - calls / total_calls
        summary[f"relaxations_top{k}"] = sum(r[f"relaxations_top{k}"] for r in rows)
        print(f"k={k}: success {100 * summary[f'success_k{k}']:.1f}% ({sum(r[f'top{k}_success'] for r in rows)}/"
              f"{len(rows)} within {SUCCESS_EV} eV of the exhaustive EMT minimum); EMT force calls {calls} vs "
              f"{total_calls} exhaustive ({100 * summary[f'emt_calls_saved_k{k}']:.1f}% saved, "
              f"{total_calls / max(calls, 1):.1f}x fewer); relaxations {summary[f'relaxations_top{k}']} vs "
              f"{total_relax}")
    print(f"model screen {ml_seconds:.0f} s, EMT {emt_seconds:.0f} s, total {summary['total_seconds']:.0f} s")
    write_json(args.out, summary, rows)


if __name__ == "__main__":
    main()
