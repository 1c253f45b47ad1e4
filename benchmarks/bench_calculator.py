"""Energy + forces latency and peak memory of the EquiformerV2 31M (OC20) network, ours vs fairchem 1.10.

Each (implementation, size) runs in its own process so peak RSS is that run's alone. Systems are
rattled fcc Cu supercells of ~20/50/100/200 atoms (12 Angstrom cutoff, 20 neighbours, like OC20).
Timing: one warm-up call, then the median of `--repeats` calls, each on freshly rattled positions,
graph construction included. fairchem runs only when the reference venv (.venv-ref) exists.

    python benchmarks/bench_calculator.py [--sizes 20 48 108 192] [--repeats 3] [--out benchmarks/results/calculator.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "tests" / "data" / "params_eqV2_31M.json"
REF_PYTHON = ROOT / ".venv-ref" / "bin" / "python"
REF_SHIMS = ROOT.parent / "shared" / "reference" / "shims"
SUPERCELLS = {20: (1, 1, 5), 48: (2, 2, 3), 108: (3, 3, 3), 192: (3, 4, 4)}


def make_atoms(natoms: int, seed: int):
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * SUPERCELLS[natoms]
    atoms.rattle(0.05, seed=seed)
    return atoms


def run_ours(natoms: int, repeats: int) -> dict:
    import torch

    from eqv2_calc.calculator import EquiformerV2Calculator
    from eqv2_calc.checkpoint import potential_from_checkpoint

    manifest = json.loads(MANIFEST.read_text())
    sys.path.insert(0, str(ROOT / "tests"))
    from seeded_weights import seeded_state_dict

    state_dict = {k: torch.from_numpy(v) for k, v in seeded_state_dict(manifest["params"]).items()}
    checkpoint = {"config": manifest["config"], "state_dict": state_dict, "normalizers": manifest["normalizers"]}
    calc = EquiformerV2Calculator(potential_from_checkpoint(checkpoint), device="cpu")
    return _time_calls(lambda atoms: (atoms.get_potential_energy(), atoms.get_forces()), calc, natoms, repeats)


def _time_calls(call, calc, natoms: int, repeats: int) -> dict:
    times = []
    for i in range(repeats + 1):
        atoms = make_atoms(natoms, seed=i)
        atoms.calc = calc
        start = time.perf_counter()
        call(atoms)
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times[1:]), "times_s": times[1:],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_in_subprocess(impl: str, natoms: int, repeats: int) -> dict:
    if impl == "ours":
        cmd = [sys.executable, __file__, "--worker", str(natoms), "--repeats", str(repeats)]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
    else:
        cmd = [str(REF_PYTHON), str(ROOT / "tools" / "fairchem_bench_worker.py"), str(MANIFEST), str(natoms), str(repeats)]
        env = dict(os.environ, PYTHONPATH=f"{REF_SHIMS}:{ROOT / 'benchmarks'}:{ROOT / 'tests'}")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(SUPERCELLS), choices=sorted(SUPERCELLS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "calculator.json"))
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_ours(args.worker, args.repeats)))
        return
    impls = ["ours"] + (["fairchem"] if REF_PYTHON.exists() else [])
    rows = []
    for natoms in args.sizes:
        row = {"natoms": natoms}
        for impl in impls:
            row[impl] = run_in_subprocess(impl, natoms, args.repeats)
        if "fairchem" in row and "median_s" in row["fairchem"] and "median_s" in row["ours"]:
            row["speedup"] = row["fairchem"]["median_s"] / row["ours"]["median_s"]
        rows.append(row)
        _print_row(row)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    import torch

    meta = {"model": "EquiformerV2 31M (OC20 hyperparameters, seeded random weights)", "device": "cpu",
            "torch_threads": torch.get_num_threads(), "repeats": args.repeats}
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


def _print_row(row: dict) -> None:
    def cell(r: dict | None) -> str:
        if not r:
            return f"{'-':>22}"
        if "error" in r:
            return f"{'error':>22}"
        return f"{r['median_s']:>9.3f} s {r['peak_rss_mb']:>8.0f} MB"

    if row["natoms"] == min(SUPERCELLS) or not hasattr(_print_row, "done"):
        print(f"{'atoms':>6} | {'ours (median, peak RSS)':>22} | {'fairchem 1.10':>22} | speedup")
        _print_row.done = True
    speedup = f"{row['speedup']:.2f}x" if "speedup" in row else "-"
    print(f"{row['natoms']:>6} | {cell(row.get('ours'))} | {cell(row.get('fairchem'))} | {speedup}", flush=True)


if __name__ == "__main__":
    main()
