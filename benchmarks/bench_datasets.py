"""Structures per second read from a fairchem S2EF LMDB (and an .aselmdb) vs evaluated by a model.

Workload: `--n` EMT-labelled O / CO / H on Cu(111) 3x3x4 slabs (37-38 atoms, OC20-like tags and fixed
subsurface), written as fairchem does (pickled torch_geometric Data, float32 tensors) to an LMDB and the
same structures to an .aselmdb. Rows:
    read lmdb       open_dataset + every structure as labelled Atoms (restricted unpickler), no model
    read aselmdb    the same through ase-db-backends
    evaluate        `eqv2_calc.evaluate` on the LMDB: reading + batched model + metrics (its own split
                    of read and model seconds is reported too)
Writes a table and `benchmarks/results/datasets.json`. Needs torch_geometric (to write the LMDB) and lmdb.

    python benchmarks/bench_datasets.py [--model NAME_OR_PATH] [--n 64] [--batch-size 16] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the fairchem-format writers of the tests


def structures(n: int) -> list:
    import numpy as np
    from ase import Atoms
    from ase.build import add_adsorbate, fcc111, molecule
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.constraints import FixAtoms

    adsorbates = [Atoms("O"), molecule("CO"), Atoms("H")]
    out = []
    for i in range(n):
        slab = fcc111("Cu", size=(3, 3, 4), vacuum=6.0)
        tags = np.where(slab.get_tags() <= 2, 1, 0)  # ase tags layers 1 (top) .. 4
        add_adsorbate(slab, adsorbates[i % 3], 1.8, "fcc")
        slab.set_tags([*tags, *[2] * (len(slab) - len(tags))])
        slab.set_constraint(FixAtoms(indices=np.flatnonzero(slab.get_tags() == 0)))
        slab.rattle(0.05, seed=i)
        slab.calc = EMT()
        slab.calc = SinglePointCalculator(slab, energy=slab.get_potential_energy(),
                                          forces=slab.get_forces(apply_constraint=False))
        out.append(slab)
    return out


def read_rate(path: Path) -> float:
    from eqv2_calc.data.formats import open_dataset

    start = time.perf_counter()
    source = open_dataset(path, energy_kind="total")
    count = sum(1 for _ in source)
    source.close()
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="eqV2-demo-EMT")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "datasets.json")
    args = parser.parse_args()

    import torch

    from eqv2_calc.evaluation import evaluate
    from lmdb_files import write_aselmdb, write_s2ef_lmdb

    frames = structures(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        lmdb_path = write_s2ef_lmdb(Path(tmp) / "s2ef.lmdb", frames)
        aselmdb_path = write_aselmdb(Path(tmp) / "s2ef.aselmdb", frames)
        rates = {"read lmdb": read_rate(lmdb_path), "read aselmdb": read_rate(aselmdb_path)}
        start = time.perf_counter()
        report = evaluate(lmdb_path, args.model, energy_kind="total", batch_size=args.batch_size, device=args.device,
                          progress=False)
        rates["evaluate"] = args.n / (time.perf_counter() - start)
    timing = report.metrics["timing"]
    print(f"{args.n} structures of {len(frames[0])}-{max(len(f) for f in frames)} atoms, model {args.model}, "
          f"{torch.get_num_threads()} torch threads, batch {args.batch_size}")
    print(f"{'row':<14} {'structures/s':>13}")
    for name, rate in rates.items():
        print(f"{name:<14} {rate:>13.1f}")
    print(f"inside evaluate: read {timing['read_structures_per_s']:.1f}/s, model {timing['model_structures_per_s']:.2f}/s "
          f"-> reading is {100 * timing['read_s'] / (timing['read_s'] + timing['model_s']):.1f} % of the time")
    result = {"n": args.n, "atoms": [len(frames[0]), max(len(f) for f in frames)], "model": args.model,
              "batch_size": args.batch_size, "device": args.device, "torch_threads": torch.get_num_threads(),
              "structures_per_s": rates, "evaluate_timing": timing, "machine": platform.platform(),
              "cpus": os.cpu_count(), "note": "measure on an idle machine; a loaded one slows the model more than reading"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
