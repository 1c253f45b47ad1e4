"""What `torch.compile` costs and gives on this machine: eager vs `Potential.compiled`, interleaved call by call.

    python benchmarks/bench_compile.py [--model eqV2-demo-EMT] [--backend inductor] [--repeats 5]
                                       [--out benchmarks/results/bench_compile.json]

The model (default: the shipped demo) runs eager and compiled (same weights; atom, edge and structure counts
dynamic) on a 29-atom Cu(111) 3x3x3 + CO slab, the 98-atom Cu(111) 4x4x6 + CO slab and the 256-atom fcc Cu cell
of benchmarks/bench_demo_grid.py, and 1,000 CO molecules 6 A apart (2,000 atoms, 2,000 edges): float32 energy + forces per call as the calculator makes it (graph, forward,
read-back). The first compiled call (on the first structure) holds the compilation; then each structure gets
one warm-up call per variant and `--repeats` timed calls, eager and compiled alternating, so a load that comes
and goes hits both. Reports medians, the frames dynamo compiled after the first call (0 = no recompilation
across sizes; the first compiled call on each structure shows what a recompilation cost), graph breaks, and
the largest energy / force deviation from eager. OMP_WAIT_POLICY=PASSIVE unless set (as the eqv2 command does).
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

from eqv2_calc.threads import configure

configure()  # OMP_WAIT_POLICY=PASSIVE before torch loads, as the eqv2 command does (--threads: torch's threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.build import add_adsorbate, fcc111, molecule  # noqa: E402
from torch._dynamo.utils import counters  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_demo_grid import timing_structures  # noqa: E402

from eqv2_calc.potential import Potential  # noqa: E402
from eqv2_calc.predict import DEMO_MODEL, evaluate, resolve_model  # noqa: E402


def structures() -> dict[str, Atoms]:
    """The 29-atom slab, bench_demo_grid's 98-atom slab and 256-atom cell (rattled, seed 0), and 2,000 atoms of CO
    gas (many atoms, few edges)."""
    slab = fcc111("Cu", size=(3, 3, 3), vacuum=8.0)
    add_adsorbate(slab, molecule("CO")[::-1], 1.9, "ontop")  # C-down: ase lists O first
    slab.rattle(0.02, seed=0)
    return {"29-atom slab": slab, **timing_structures(), "2,000-atom CO gas": co_gas()}


def co_gas(per_side: int = 10, spacing: float = 6.0) -> Atoms:
    """CO molecules on a cubic lattice `spacing` Angstrom apart, `per_side` along each axis: beyond the demo's
    4.5 A cutoff of each other, so each atom has one edge (its partner)."""
    co = molecule("CO", cell=(spacing,) * 3, pbc=True)
    co.center()
    return co.repeat((per_side,) * 3)


def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def timed(potential: Potential, atoms: Atoms):
    """(seconds, Prediction) of one energy + forces call."""
    start = time.perf_counter()
    result = evaluate(potential, [atoms])[0]
    return time.perf_counter() - start, result


def run(model: str, backend: str, repeats: int) -> dict:
    eager = resolve_model(model, "cpu")
    fast = Potential(eager.model, eager.normalizers, eager.element_references).eval()
    fast.compiled = backend
    cases = structures()
    torch._dynamo.reset()
    counters.clear()
    first_name, first_atoms = next(iter(cases.items()))
    eager_first_s, _ = timed(eager, first_atoms)
    first_s, _ = timed(fast, first_atoms)
    frames = counters["frames"]["total"]
    rows = []
    for name, atoms in cases.items():
        times: dict[str, list[float]] = {"eager": [], "compiled": []}
        d_energy = d_forces = 0.0
        for _ in range(repeats + 1):  # the first round is the warm-up
            (eager_s, a), (compiled_s, b) = timed(eager, atoms), timed(fast, atoms)
            times["eager"].append(eager_s)
            times["compiled"].append(compiled_s)
            d_energy = max(d_energy, abs(a.energy - b.energy))
            d_forces = max(d_forces, float(np.abs(a.forces - b.forces).max()))
        eager_s, compiled_s = statistics.median(times["eager"][1:]), statistics.median(times["compiled"][1:])
        rows.append({"structure": name, "natoms": len(atoms), "edges": int(eager.make_graph(atoms).edge_index.shape[1]),
                     "eager_s": eager_s, "compiled_s": compiled_s, "speedup": eager_s / compiled_s,
                     "compiled_warmup_s": times["compiled"][0], "eager_all_s": times["eager"][1:],
                     "compiled_all_s": times["compiled"][1:], "dE_eV": d_energy, "dF_eV_per_A": d_forces})
    return {"first_structure": first_name, "eager_first_call_s": eager_first_s, "compiled_first_call_s": first_s,
            "frames_compiled_after_first_call": counters["frames"]["total"] - frames,
            "graph_breaks": sum(counters["graph_break"].values()), "rows": rows}


def print_table(report: dict) -> None:
    meta = report["meta"]
    print(f"\n{meta['cpu']} | torch {meta['torch']} | {meta['threads']} threads | backend {meta['backend']} | "
          f"load average {meta['load_before']:.1f} -> {meta['load_after']:.1f}")
    print(f"first call on the {report['first_structure']}: compiled {report['compiled_first_call_s']:.1f} s "
          f"(eager {report['eager_first_call_s']:.2f} s); frames compiled after it: "
          f"{report['frames_compiled_after_first_call']}; graph breaks: {report['graph_breaks']}")
    print(f"{'structure':<18} {'atoms':>6} {'edges':>7} {'eager (s)':>10} {'compiled (s)':>13} {'speed-up':>9} "
          f"{'1st compiled (s)':>17} {'max|dE| eV':>11} {'max|dF| eV/A':>13}")
    for r in report["rows"]:
        print(f"{r['structure']:<18} {r['natoms']:>6} {r['edges']:>7} {r['eager_s']:>10.3f} {r['compiled_s']:>13.3f} "
              f"{r['speedup']:>8.2f}x {r['compiled_warmup_s']:>17.2f} {r['dE_eV']:>11.1e} {r['dF_eV_per_A']:>13.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEMO_MODEL)
    parser.add_argument("--backend", default="inductor", help="torch.compile backend (default inductor)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per structure and variant")
    parser.add_argument("--threads", type=int, help="torch threads (default torch's)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_compile.json")
    args = parser.parse_args()
    configure(args.threads)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    report = run(args.model, args.backend, args.repeats)
    report["meta"] = {"model": args.model, "backend": args.backend, "repeats": args.repeats, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "cpu": cpu_name(),
                      "load_before": load_before, "load_after": os.getloadavg()[0],
                      "wall_s": time.perf_counter() - started}
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
