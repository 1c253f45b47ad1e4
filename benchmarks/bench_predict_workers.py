"""`predict` on CPU workers (one intra-op thread each, eqv2_calc/cpu_workers.py) vs one intra-op-parallel call
per batch (what `predict` did before), on the same structures, interleaved; medians.

    python benchmarks/bench_predict_workers.py [--threads 2] [--repeats 5] [--batch-size 8]
                                               [--out benchmarks/results/bench_predict_workers.json]

Structures: Cu(111) slabs with CO on top (3x3x3 to 4x4x4, 29-66 atoms) and fcc Cu/Au bulk cells (4-32 atoms),
16 in all, demo model, float32. Both paths give the same numbers (float round-off aside; checked).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from ase.build import add_adsorbate, bulk, fcc111, molecule

from eqv2_calc.predict import DEMO_MODEL, evaluate, predict, resolve_model

ROOT = Path(__file__).resolve().parents[1]


def structures() -> list:
    out = []
    for i, (n, layers) in enumerate([(3, 3), (3, 4), (4, 3), (4, 4)] * 2):
        slab = fcc111("Cu", (n, n, layers), vacuum=8.0)
        add_adsorbate(slab, molecule("CO")[::-1], 1.9, "ontop")
        slab.rattle(0.03, seed=i)
        out.append(slab)
    for i, reps in enumerate([(1, 1, 1), (2, 1, 1), (2, 2, 1), (2, 2, 2)] * 2):
        cell = bulk("Cu" if i < 4 else "Au", "fcc", a=3.6 if i < 4 else 4.08, cubic=True).repeat(reps)
        cell.rattle(0.03, seed=i)
        out.append(cell)
    return out


def one_call_per_batch(potential, atoms_list: list, batch_size: int) -> list:
    """The former `predict` loop: each batch one model call, PyTorch's intra-op threads splitting it."""
    return [p for start in range(0, len(atoms_list), batch_size)
            for p in evaluate(potential, atoms_list[start : start + batch_size])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_predict_workers.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    potential = resolve_model(DEMO_MODEL, "cpu", torch.float32)
    atoms_list = structures()
    paths = {"one call per batch": partial(one_call_per_batch, potential, atoms_list, args.batch_size),
             "CPU workers (predict)": partial(predict, atoms_list, potential, batch_size=args.batch_size,
                                              device="cpu", progress=False)}
    times: dict[str, list[float]] = {name: [] for name in paths}
    results = {}
    for i in range(args.repeats + 1):
        for name, run in paths.items():
            start = time.perf_counter()
            results[name] = run()
            if i:  # the first round is the warm-up
                times[name].append(time.perf_counter() - start)
    a, b = results.values()
    force_dev = max(float(np.abs(x.forces - y.forces).max()) for x, y in zip(a, b))
    rows = [{"path": name, "median_s": statistics.median(t), "structures_per_s": len(atoms_list) / statistics.median(t)}
            for name, t in times.items()]
    print(f"{len(atoms_list)} structures, {sum(map(len, atoms_list))} atoms, batch {args.batch_size}, "
          f"{args.threads} threads; max force difference {force_dev:.1e} eV/A")
    for r in rows:
        print(f"{r['path']:>24} {r['median_s']:8.2f} s {r['structures_per_s']:8.2f} structures/s")
    meta = {"model": DEMO_MODEL, "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "threads": args.threads, "torch": torch.__version__, "repeats": args.repeats,
            "batch_size": args.batch_size, "max_force_difference_eV_per_A": force_dev}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
