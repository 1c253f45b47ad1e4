"""What the demo model's S2 grids buy (rotation equivariance) and cost (time per forces call).

    python benchmarks/bench_demo_grid.py [--grids 8x8/8x8 8x24/16x24 24x24/24x24] [--rotations 4] [--repeats 7]
                                         [--out benchmarks/results/bench_demo_grid.json]

A grid pair is EDGE/NODE, each LATxLONG points: the S2 grid of the edge activations (in each edge's frame) and
of the node (feed-forward) activations. The shipped demo weights (eqv2_calc/weights/eqv2_demo_emt.pt) are moved to
each pair (`train.grow.regrid`: grids hold no weights, so the same weights run on any grid). Equivariance:
float64, the largest change of a force component under rigid rotations (Euler xyz 37/-21/64 degrees plus
`--rotations` random ones) relative to the largest force, for CH3OH in a box, Cu(111)+CO and a Cu30Au2 cell
(tests/rotations.py). Cost: float32 energy + forces calls on a 98-atom Cu(111) 4x4x6 + CO slab and a 256-atom fcc
Cu cell, the grid pairs interleaved call by call; medians of `--repeats` calls after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from ase import Atoms
from ase.build import add_adsorbate, bulk, fcc111, molecule

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from rotations import STRUCTURES, force_rotation_error, rotations  # noqa: E402

from eqv2_calc.calculator import EquiformerV2Calculator  # noqa: E402
from eqv2_calc.checkpoint import load_potential  # noqa: E402
from eqv2_calc.potential import Potential  # noqa: E402
from eqv2_calc.train.grow import grid_options, regrid  # noqa: E402

WEIGHTS = ROOT / "eqv2_calc" / "weights" / "eqv2_demo_emt.pt"


def demo_on_grid(grids: str, dtype: torch.dtype) -> Potential:
    """The shipped demo weights on the EDGE/NODE grids `grids`."""
    return regrid(load_potential(WEIGHTS), grid_options(grids)).to(dtype).eval()


def timing_structures() -> dict[str, Atoms]:
    slab = fcc111("Cu", size=(4, 4, 6), vacuum=8.0)
    add_adsorbate(slab, molecule("CO")[::-1], 1.9, "ontop")  # C-down: ase lists O first
    slab.rattle(0.02, seed=0)
    cell = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((4, 4, 4))
    cell.rattle(0.02, seed=0)
    return {"98-atom slab": slab, "256-atom cell": cell}


def call_times(grids: list[str], repeats: int) -> dict[tuple[str, str], float]:
    """Median seconds of an energy + forces call per (grid pair, structure), interleaved."""
    calcs = {r: EquiformerV2Calculator(demo_on_grid(r, torch.float32)) for r in grids}
    times: dict[tuple[str, str], list[float]] = {}
    for name, atoms in timing_structures().items():
        for i in range(repeats + 1):
            for r, calc in calcs.items():
                calc.reset()
                start = time.perf_counter()
                calc.get_forces(atoms)
                if i:  # the first round is the warm-up
                    times.setdefault((r, name), []).append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grids", nargs="+", default=["8x8/8x8", "8x24/16x24", "24x24/24x24"],
                        help="EDGE/NODE grid pairs, LATxLONG each")
    parser.add_argument("--rotations", type=int, default=4, help="random rotations besides the 37/-21/64 one")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_demo_grid.json")
    args = parser.parse_args()
    turns = rotations(args.rotations)
    rows = []
    for r in args.grids:
        calc = EquiformerV2Calculator(demo_on_grid(r, torch.float64))
        rows.append({"grids": r, **{f"equivariance {name}": force_rotation_error(calc, make(), turns)
                                             for name, make in STRUCTURES.items()}})
    times = call_times(args.grids, args.repeats)
    for row in rows:
        row.update({f"seconds {name}": s for (r, name), s in times.items() if r == row["grids"]})
    columns = [k for k in rows[0] if k != "grids"]
    print(f"{'edge/node grids':>15} " + " ".join(f"{c:>26}" for c in columns))
    for row in rows:
        print(f"{row['grids']:>15} " + " ".join(f"{row[c]:>26.3g}" for c in columns))
    meta = {"model": "eqV2-demo-EMT weights", "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "rotations": len(turns), "repeats": args.repeats}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
