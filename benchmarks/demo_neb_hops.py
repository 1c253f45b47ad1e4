"""The demo model's barriers against EMT's: named hops, each potential relaxing its own end points, and the
held-out hops of an `eqv2 data neb` file on EMT's own bands.

    python benchmarks/demo_neb_hops.py [--model NAME_OR_PATH] [--data .data/emt_neb.db] [--threads N]
                                       [--out benchmarks/results/demo_neb_hops.json]

1. Named hops (issue 28's list): an O atom, a Cu adatom and an Au adatom between hollow sites of fcc(100)
   slabs (3 x 3 surface cell, 3 layers, bottom layer fixed) and a vacancy hop in a 31-atom fcc Cu cell. For EMT and
   for the model alike: end points relaxed with that potential (BFGS, fmax 0.02 eV/A), 7 moving images from IDPP,
   ASE's NEB (improved tangent, k = 0.1 eV/A^2, climbing image), FIRE to an NEB force of 0.05 eV/A (at most 300
   steps); barrier = highest image minus the initial state (eV). Goal: within 0.1 eV of EMT.
2. With `--data`: the test-split hops of that file (never trained on): the model's energies on EMT's converged
   band, barrier error against EMT's on the same images (no model relaxation, so it isolates the energy error).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.emt import EMT
from ase.mep import NEB
from ase.optimize import BFGS, FIRE

ROOT = Path(__file__).resolve().parents[1]
MOVING = 7
NEB_STEPS = 300


def named_hops() -> dict[str, tuple[Atoms, Atoms]]:
    from eqv2_calc.data.neb_paths import surface_hop_ends, vacancy_hop_ends

    return {"O hop on Cu(100)": surface_hop_ends("Cu", "fcc100", "O", layers=3),
            "Cu adatom on Cu(100)": surface_hop_ends("Cu", "fcc100", "Cu", layers=3),
            "Au adatom on Au(100)": surface_hop_ends("Au", "fcc100", "Au", layers=3),
            "vacancy hop in Cu": vacancy_hop_ends("Cu")}


def barrier(initial: Atoms, final: Atoms, make_calc) -> tuple[float, bool, int]:
    """(barrier eV, converged, NEB steps) of one hop with one potential; `make_calc()` gives a calculator."""
    from eqv2_calc.neb import interpolate_band

    ends = []
    for atoms in (initial, final):
        atoms = atoms.copy()
        atoms.calc = make_calc()
        BFGS(atoms, logfile=None).run(fmax=0.02, steps=300)
        ends.append(atoms)
    images = interpolate_band(ends[0], ends[1], MOVING)
    for image in images:
        image.calc = make_calc()
    neb = NEB(images, k=0.1, climb=True, method="improvedtangent")
    optimizer = FIRE(neb, logfile=None)
    converged = bool(optimizer.run(fmax=0.05, steps=NEB_STEPS))
    energies = [image.get_potential_energy() for image in images]
    return max(energies) - energies[0], converged, optimizer.nsteps


def held_out_bands(path: Path, calc: Calculator) -> list[dict]:
    """Barrier errors of the model on EMT's converged bands of the test-split hops in `path`."""
    import ase.db

    bands: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    with ase.db.connect(path) as db:
        for row in db.select(split="test"):
            if row.sampling in ("neb_end", "neb_final"):
                bands[row.system_id][row.sampling].append((row.id, row.toatoms(), row.energy))
    rows = []
    for system_id, parts in bands.items():
        frames = sorted(parts["neb_end"])[:1] + sorted(parts["neb_final"])  # initial state, then the band
        emt = np.array([energy for _, _, energy in frames])
        model = []
        for _, atoms, _ in frames:
            atoms.calc = calc
            model.append(atoms.get_potential_energy())
        model = np.array(model)
        rows.append({"hop": system_id, "E_a_EMT_eV": float(emt.max() - emt[0]),
                     "E_a_model_eV": float(model.max() - model[0])})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="default: the embedded demo model")
    parser.add_argument("--data", type=Path, help="an `eqv2 data neb` file: also score its test-split bands")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "demo_neb_hops.json")
    args = parser.parse_args()
    from eqv2_calc.threads import configure

    configure(args.threads)
    from eqv2_calc.calculator import EquiformerV2Calculator
    from eqv2_calc.predict import DEMO_MODEL, resolve_model

    potential = resolve_model(args.model or DEMO_MODEL, "cpu")
    calc = EquiformerV2Calculator(potential)
    result: dict = {"model": args.model or DEMO_MODEL, "named": []}
    print(f"{'hop':<24} {'E_a EMT':>8} {'E_a model':>9} {'error':>7} {'NEB steps EMT/model':>20}")
    for name, (initial, final) in named_hops().items():
        start = time.perf_counter()
        reference, ref_converged, ref_steps = barrier(initial, final, EMT)
        model, converged, steps = barrier(initial, final, lambda: EquiformerV2Calculator(potential))
        row = {"hop": name, "E_a_EMT_eV": reference, "E_a_model_eV": model, "error_eV": model - reference,
               "converged_EMT": ref_converged, "converged_model": converged, "steps_EMT": ref_steps,
               "steps_model": steps, "seconds": time.perf_counter() - start}
        result["named"].append(row)
        flags = "" if converged and ref_converged else "  (not converged)"
        print(f"{name:<24} {reference:>8.3f} {model:>9.3f} {model - reference:>+7.3f} {ref_steps:>12}/{steps}{flags}")
    if args.data:
        rows = held_out_bands(args.data, calc)
        errors = np.array([r["E_a_model_eV"] - r["E_a_EMT_eV"] for r in rows])
        result["held_out"] = {"hops": len(rows), "barrier_mae_eV": float(np.abs(errors).mean()),
                              "within_0.1_eV": int((np.abs(errors) <= 0.1).sum()), "rows": rows}
        print(f"held-out hops of {args.data} on EMT's bands: {len(rows)} hops, barrier MAE "
              f"{np.abs(errors).mean():.3f} eV, within 0.1 eV: {(np.abs(errors) <= 0.1).sum()}/{len(rows)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
