"""Structures relaxed per second: a sequential loop of ASE BFGS vs the batched FIRE of `relax_many`.

Systems: Cu(111) 2x2x3 slabs (bottom layer fixed) with CO, O, H or OH on top / fcc / hcp / bridge sites
at slightly different heights (`--n` of them, default 64). Both relax to `--fmax`; the report gives
structures/s, mean steps, and the largest energy difference between the two minima.

    python benchmarks/bench_relax.py [--model NAME_OR_PATH] [--n 64] [--batch-size 32] [--device cpu]
        [--out benchmarks/results/relax.json]

Default model: the embedded demo model, or (until it is registered) a seeded network of its shape.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def systems(n: int) -> list:
    from ase import Atoms
    from ase.build import add_adsorbate, fcc111

    from eqv2_calc.adsorbml import get_adsorbate
    from ase.constraints import FixAtoms

    adsorbates = [get_adsorbate("*CO").atoms, Atoms("O"), Atoms("H"), get_adsorbate("*OH").atoms]  # binding atom down (ase lists CO O-first, OH H-below)
    sites = ("ontop", "fcc", "hcp", "bridge")
    out = []
    for i in range(n):
        slab = fcc111("Cu", size=(2, 2, 3), vacuum=7.0)
        add_adsorbate(slab, adsorbates[i % 4], 1.7 + 0.05 * (i // 16), sites[(i // 4) % 4])
        slab.set_constraint(FixAtoms(indices=[a.index for a in slab if a.tag == 3]))
        out.append(slab)
    return out


def model(name: str | None):
    from eqv2_calc.hub import find_entry
    from eqv2_calc.predict import DEMO_MODEL

    if name or find_entry(DEMO_MODEL) is not None:
        return name or DEMO_MODEL, name or DEMO_MODEL
    sys.path.insert(0, str(ROOT / "tests"))
    from test_predict import demo_like_potential

    return demo_like_potential().float(), "seeded demo-shaped network (demo model not registered yet)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--fmax", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import torch

    from eqv2_calc.calculator import EquiformerV2Calculator
    from eqv2_calc.relax import relax, relax_many

    potential, label = model(args.model)
    structures = systems(args.n)
    calc = EquiformerV2Calculator(potential, device=args.device)
    start = time.perf_counter()
    sequential = [relax(s, calc, fmax=args.fmax, steps=args.steps, optimizer="BFGS") for s in structures]
    t_seq = time.perf_counter() - start
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    batched = relax_many(structures, calc.potential, fmax=args.fmax, steps=args.steps, batch_size=args.batch_size,
                         device=args.device, progress=False)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    t_many = time.perf_counter() - start
    both = [(a, b) for a, b in zip(sequential, batched) if a.converged and b.converged]
    report = {
        "model": label, "device": args.device, "torch_threads": torch.get_num_threads(), "structures": args.n,
        "batch_size": args.batch_size, "fmax": args.fmax,
        "ase_bfgs": {"seconds": t_seq, "per_second": args.n / t_seq, "converged": sum(r.converged for r in sequential),
                     "mean_steps": sum(r.steps for r in sequential) / args.n},
        "relax_many_fire": {"seconds": t_many, "per_second": args.n / t_many,
                            "converged": sum(r.converged for r in batched),
                            "mean_steps": sum(r.steps for r in batched) / args.n},
        "speedup": t_seq / t_many,
        "max_energy_difference_eV": max((abs(a.energy - b.energy) for a, b in both), default=None),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
