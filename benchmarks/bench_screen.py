"""Time and peak memory of the default AdsorbML screen command, with the batch sized from memory (the
default) and with the old unlimited batch (`--max-atoms 100000`: all 32 structures in one model call).

    python benchmarks/bench_screen.py [--adsorbate "*CO"] [--threads 2] [--old] [--steps 300]
        [--out benchmarks/results/bench_screen.json]

It runs `eqv2 adsorb --bulk Cu.cif --miller 1 1 1 --adsorbate *CO --top-k 5` (the README's command; Cu
conventional cell, a = 3.61 A) in a child process and reports its wall time and peak resident memory
(`resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`, one child per run), the plan line, and the steps and
convergence of every placement (from adsorbml.csv). `--old` also runs the unlimited batch (slow: tens of
minutes and ~8 GB on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_screen(bulk: Path, adsorbate: str, threads: int, steps: int, extra: list[str]) -> dict:
    """One screen in a child process: wall seconds, peak RSS (GB), the plan, per-placement steps."""
    out = Path(tempfile.mkdtemp(prefix="bench_screen_"))
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "eqv2_calc.cli", "adsorb", "--bulk", str(bulk), "--miller", "1", "1", "1",
               "--adsorbate", adsorbate, "--top-k", "5", "--device", "cpu", "--threads", str(threads),
               "--steps", str(steps), "-o", str(out), *extra]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6  # KiB -> GB; largest child so far
    with open(out / "adsorbml.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    plan = next((line for line in done.stderr.splitlines() if line.startswith("plan:")), "")
    return {"command": command[2:], "wall_s": wall, "peak_rss_gb": peak_gb, "plan": plan,
            "placements": len(rows), "converged": sum(r["converged"] == "True" for r in rows),
            "steps": [int(r["steps"]) for r in rows], "valid": sum(r["valid"] == "True" for r in rows),
            "best_energy_eV": min((float(r["energy_eV"]) for r in rows if r["valid"] == "True"), default=None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adsorbate", default="*CO")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--old", action="store_true", help="also run the unlimited batch (the old default)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_screen.json"))
    args = parser.parse_args()
    from ase.build import bulk
    from ase.io import write

    cif = Path(tempfile.mkdtemp(prefix="bench_screen_")) / "Cu.cif"
    write(cif, bulk("Cu", "fcc", a=3.61, cubic=True))
    runs = {"memory-sized batch": run_screen(cif, args.adsorbate, args.threads, args.steps, [])}
    if args.old:  # after the new one: RUSAGE_CHILDREN keeps the largest child, so this order keeps both right
        runs["one batch of 32 (old)"] = run_screen(cif, args.adsorbate, args.threads, args.steps,
                                                   ["--max-atoms", "100000"])
    print(f"eqv2 adsorb Cu(111) {args.adsorbate}, demo model, {args.threads} threads, {os.cpu_count()} cores")
    print(f"{'setting':<24} {'wall (s)':>9} {'peak RSS (GB)':>13} {'converged':>10} {'median steps':>12}")
    for name, r in runs.items():
        steps = sorted(r["steps"])
        print(f"{name:<24} {r['wall_s']:>9.0f} {r['peak_rss_gb']:>13.2f} {r['converged']:>4}/{r['placements']:<5} "
              f"{steps[len(steps) // 2]:>12}")
        print(f"  {r['plan']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(runs, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
