"""Speed and accuracy of the matmul precision switches (`precision=` of the calculator) on the 31M model.

    python benchmarks/bench_precision.py [--sizes 20 100 200] [--device auto] [--repeats 3]
                                         [--out benchmarks/results/bench_precision.json]

The OC20 31M network with seeded random weights (as in compare_fairchem.py) on Cu(111) + CO slabs:
for each precision ("float32", "tf32", "bfloat16"; tf32 only on CUDA, where it differs from float32)
the median time of an energy + forces call after a warm-up, and the largest deviation from float32:
energy per atom (meV/atom) and force components (meV/Angstrom), next to the float32 force scale.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_fairchem import ROOT, make_slab, time_median, write_checkpoint

from eqv2_calc.calculator import EquiformerV2Calculator, resolve_device


def measure(checkpoint: str, device: torch.device, precisions: list[str], sizes: list[int], repeats: int) -> list[dict]:
    calculators = {p: EquiformerV2Calculator(checkpoint, device=device, precision=p) for p in precisions}
    rows = []
    for size in sizes:
        slab = make_slab(size)
        results = {}
        for precision, calc in calculators.items():
            atoms = slab.copy()
            atoms.calc = calc
            results[precision] = (atoms.get_potential_energy(), atoms.get_forces())

            def call(atoms=atoms, calc=calc) -> None:
                calc.reset()
                atoms.get_forces()

            row = {"size": size, "natoms": len(slab), "precision": precision, "median_s": time_median(call, repeats)}
            energy, forces = results[precision]
            energy32, forces32 = results["float32"]
            row["energy_dev_meV_per_atom"] = 1000 * abs(energy - energy32) / len(slab)
            row["force_dev_max_meV_per_A"] = 1000 * float(np.abs(forces - forces32).max())
            row["force_scale_max_meV_per_A"] = 1000 * float(np.abs(forces32).max())
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 100, 200])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_precision.json")
    args = parser.parse_args()
    device = resolve_device(args.device)
    precisions = ["float32", "tf32", "bfloat16"] if device.type == "cuda" else ["float32", "bfloat16"]
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = str(Path(tmp) / "eqV2_31M_seeded.pt")
        write_checkpoint(Path(checkpoint))
        rows = measure(checkpoint, device, precisions, args.sizes, args.repeats)
    print(f"{'atoms':>6} {'precision':>9} {'time s':>8} {'speedup':>8} {'dE meV/atom':>12} {'max dF meV/A':>13} {'max |F| meV/A':>14}")
    base = {r["size"]: r["median_s"] for r in rows if r["precision"] == "float32"}
    for r in rows:
        r["speedup_vs_float32"] = base[r["size"]] / r["median_s"]
        print(f"{r['natoms']:>6} {r['precision']:>9} {r['median_s']:>8.3f} {r['speedup_vs_float32']:>8.2f} "
              f"{r['energy_dev_meV_per_atom']:>12.3f} {r['force_dev_max_meV_per_A']:>13.1f} {r['force_scale_max_meV_per_A']:>14.0f}")
    meta = {"model": "EquiformerV2 31M (OC20 hyperparameters, seeded random weights)", "device": str(device),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
