"""EquiformerV2 31M (OC20) on the same weights: our calculator vs fairchem 1.10's OCPCalculator.

    python benchmarks/compare_fairchem.py [--sizes 20 50 100 200 500 1000] [--fairchem-max-atoms 200]
                                          [--repeats 3] [--out benchmarks/results/compare_fairchem.json]

1. Writes the OC20 31M network with seeded random weights (tests/data/params_eqV2_31M.json) as a
   fairchem-format checkpoint: with fairchem's own model and `torch.save` layout when the reference venv
   (.venv-ref, built by tools/reference/make_ref_venv.sh) exists, else with `eqv2_calc.checkpoint.save_checkpoint`.
2. Times energy + forces on Cu(111) slabs with CO on top (about 20 ... 1000 atoms, 12 Angstrom cutoff,
   20 neighbours), each (implementation, size) in its own process: one warm-up call, then the median of
   `--repeats` calls on freshly rattled positions, graph construction included (our calculator with
   skin=0, a fresh neighbour search per call like fairchem). Also the graph construction alone, the
   peak memory of one call (VmHWM over the call minus the RSS before it) and the process peak.
3. Batched throughput (ours): many 20-atom slabs through `eqv2_calc.predict` vs one calculator call each.

Achieved GFLOP/s use an analytic cost of the 31M network (docs/performance.md, "Cost model"): matmul work only,
2 FLOP per multiply-add, forward only, per layer 11.1 MFLOP per edge (SO(2) convolutions 7.6, edge S2 activation
1.7, radial MLP 1.0, rotations and permutations 0.6, the rest 0.1) and 39 MFLOP per atom (the FFN's grid MLP 32);
"floor" is the 60 GFLOP/s that the 2-core development machine sustains on float32 matmuls of eqV2's shapes.
fairchem needs ~50 MB per atom, so it runs only up to `--fairchem-max-atoms`.
This file is imported by tools/fairchem_bench_worker.py (reference venv), so it imports eqv2_calc lazily.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "tests" / "data" / "params_eqV2_31M.json"
REF_PYTHON = ROOT / ".venv-ref" / "bin" / "python"
REF_SHIMS = ROOT / "tools" / "reference" / "shims"
WORKER = ROOT / "tools" / "fairchem_bench_worker.py"
# target atom count -> Cu(111) (nx, ny, layers); CO on top adds 2 atoms
SLABS = {20: (3, 3, 2), 50: (4, 4, 3), 100: (5, 5, 4), 200: (7, 7, 4), 500: (10, 10, 5), 1000: (14, 14, 5),
         5000: (22, 23, 10)}
CPU_SIZES = [size for size in SLABS if size <= 1000]  # 5000 atoms is for a GPU (benchmarks/gpu_check.py)
NUM_LAYERS = 8
MFLOP_PER_EDGE_LAYER = 11.1
MFLOP_PER_ATOM_LAYER = 39.0
FLOOR_GFLOPS = 60.0


def make_slab(size: int, seed: int = 0):
    """Cu(111) with CO on top of one atom, positions rattled by 0.02 Angstrom (`seed`)."""
    from ase.build import add_adsorbate, fcc111, molecule

    slab = fcc111("Cu", size=SLABS[size], vacuum=8.0)
    add_adsorbate(slab, molecule("CO")[::-1], 1.9, "ontop")  # C-down: ase lists O first
    slab.rattle(0.02, seed=seed)
    return slab


def rss_mb(field: str) -> float:
    """`VmRSS` or `VmHWM` (peak since the last reset) of this process, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def time_calls(call: Callable, size: int, repeats: int) -> dict:
    """Median seconds of `call(atoms)` over `repeats` rattled slabs after one warm-up; peak memory per call."""
    times, call_peaks = [], []
    for seed in range(repeats + 1):
        atoms = make_slab(size, seed)
        reset_peak_rss()
        before = rss_mb("VmRSS")
        start = time.perf_counter()
        call(atoms)
        times.append(time.perf_counter() - start)
        call_peaks.append(rss_mb("VmHWM") - before)
    return {"natoms": len(make_slab(size)), "median_s": statistics.median(times[1:]), "times_s": times[1:],
            "call_peak_mb": max(call_peaks), "process_peak_mb": rss_mb("VmHWM")}


def time_median(call: Callable, repeats: int) -> float:
    """Median seconds of `call()` over `repeats` calls after one warm-up."""
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def write_checkpoint(path: Path) -> str:
    """Write the seeded 31M checkpoint in fairchem format; returns who wrote it."""
    if REF_PYTHON.exists():
        run_worker([str(REF_PYTHON), str(WORKER), "checkpoint", str(MANIFEST), str(path)], ref=True)
        return "fairchem 1.10 (model.state_dict() incl. buffers)"
    import torch

    from eqv2_calc.checkpoint import potential_from_checkpoint, save_checkpoint

    sys.path.insert(0, str(ROOT / "tests"))
    from seeded_weights import seeded_state_dict

    manifest = json.loads(MANIFEST.read_text())
    weights = {k: torch.from_numpy(v) for k, v in seeded_state_dict(manifest["params"]).items()}
    save_checkpoint(potential_from_checkpoint({"config": manifest["config"], "state_dict": weights,
                                               "normalizers": manifest["normalizers"]}), path)
    return "eqv2_calc.checkpoint.save_checkpoint"


def run_ours(checkpoint: str, size: int, repeats: int) -> dict:
    """Worker: our calculator (CPU, skin 0) and our graph construction on one slab size."""
    from eqv2_calc.calculator import EquiformerV2Calculator

    calc = EquiformerV2Calculator(checkpoint, device="cpu", skin=0.0)

    def energy_forces(atoms) -> None:
        atoms.calc = calc
        atoms.get_potential_energy()
        atoms.get_forces()

    result = time_calls(energy_forces, size, repeats)
    slab = make_slab(size)
    graph = calc.potential.make_graph(slab)
    result["graph_s"] = time_median(lambda: calc.potential.make_graph(slab), repeats)
    result["edges"] = int(graph.edge_index.shape[1])
    return result


def run_batched(checkpoint: str, structures: int, batch_size: int) -> dict:
    """Worker: atoms/s of `predict` over many 20-atom slabs vs one calculator call per slab."""
    from eqv2_calc.calculator import EquiformerV2Calculator
    from eqv2_calc.predict import predict

    calc = EquiformerV2Calculator(checkpoint, device="cpu", skin=0.0)
    slabs = [make_slab(20, seed) for seed in range(structures)]
    natoms = sum(len(s) for s in slabs)
    predict(slabs[:batch_size], calc.potential, batch_size=batch_size, device="cpu", progress=False)  # warm-up
    start = time.perf_counter()
    predict(slabs, calc.potential, batch_size=batch_size, device="cpu", progress=False)
    batched = time.perf_counter() - start
    start = time.perf_counter()
    for slab in slabs:
        slab.calc = calc
        slab.get_forces()
    single = time.perf_counter() - start
    return {"structures": structures, "atoms_per_structure": len(slabs[0]), "batch_size": batch_size,
            "batched_atoms_per_s": natoms / batched, "one_by_one_atoms_per_s": natoms / single}


def run_worker(cmd: list[str], ref: bool = False) -> dict:
    """Run a worker process; its last stdout line is JSON (an `error` entry when it failed)."""
    paths = [str(REF_SHIMS), str(ROOT / "benchmarks"), str(ROOT / "tests"), str(ROOT / "tools")] if ref else [str(ROOT)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()
        return {"error": tail[-1] if tail else f"exit {proc.returncode}"}
    return json.loads(lines[-1])


def gflops(row: dict) -> float:
    """Achieved GFLOP/s of our calculator from the analytic cost of one energy + forces call."""
    mflop = NUM_LAYERS * (MFLOP_PER_EDGE_LAYER * row["edges"] + MFLOP_PER_ATOM_LAYER * row["natoms"])
    return mflop / 1e3 / row["median_s"]


def print_table(rows: list[dict], batched: dict | None) -> None:
    print(f"{'atoms':>6} {'edges':>6} | {'ours s':>7} {'graph':>6} {'call MB':>8} {'GFLOP/s':>8} {'floor':>6} | "
          f"{'fairchem s':>10} {'graph':>6} {'call MB':>8} | {'speed':>6} {'memory':>6}")
    for row in rows:
        ours, ref = row["ours"], row.get("fairchem", {})
        if "error" in ours:
            print(f"{row['size']:>6} ours failed: {ours['error']}")
            continue
        line = (f"{ours['natoms']:>6} {ours['edges']:>6} | {ours['median_s']:>7.3f} {ours['graph_s']:>6.3f} "
                f"{ours['call_peak_mb']:>8.0f} {gflops(ours):>8.1f} {gflops(ours) / FLOOR_GFLOPS:>6.0%} | ")
        if "median_s" in ref:
            line += (f"{ref['median_s']:>10.3f} {ref['graph_s']:>6.3f} {ref['call_peak_mb']:>8.0f} | "
                     f"{ref['median_s'] / ours['median_s']:>5.2f}x {ours['call_peak_mb'] / ref['call_peak_mb']:>5.2f}x")
        else:
            line += f"{ref.get('error', 'not run')[:40]:>27} |"
        print(line, flush=True)
    if batched and "error" not in batched:
        print(f"batched throughput, {batched['structures']} x {batched['atoms_per_structure']}-atom slabs: "
              f"predict(batch_size={batched['batch_size']}) {batched['batched_atoms_per_s']:.1f} atoms/s, "
              f"one calculator call each {batched['one_by_one_atoms_per_s']:.1f} atoms/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=CPU_SIZES, choices=sorted(SLABS))
    parser.add_argument("--fairchem-max-atoms", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batched-structures", type=int, default=32, help="0 skips the throughput run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "compare_fairchem.json")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "CHECKPOINT", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, checkpoint, size = args.worker
        result = (run_ours(checkpoint, int(size), args.repeats) if kind == "ours"
                  else run_batched(checkpoint, args.batched_structures, int(size)))
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "eqV2_31M_seeded.pt"
        written_by = write_checkpoint(checkpoint)
        if not checkpoint.is_file():
            sys.exit(f"could not write the benchmark checkpoint ({written_by})")
        rows = []
        for size in args.sizes:
            row = {"size": size, "ours": run_worker([sys.executable, __file__, "--repeats", str(args.repeats),
                                                     "--worker", "ours", str(checkpoint), str(size)])}
            if REF_PYTHON.exists() and size <= args.fairchem_max_atoms:
                row["fairchem"] = run_worker([str(REF_PYTHON), str(WORKER), "time", str(checkpoint), str(size),
                                              str(args.repeats)], ref=True)
            rows.append(row)
        batched = None
        if args.batched_structures:
            batched = run_worker([sys.executable, __file__, "--batched-structures", str(args.batched_structures),
                                  "--worker", "batched", str(checkpoint), "16"])
    print_table(rows, batched)
    import torch

    meta = {"model": "EquiformerV2 31M (OC20 hyperparameters, seeded random weights)", "checkpoint_written_by": written_by,
            "device": "cpu", "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "repeats": args.repeats,
            "floor_gflops": FLOOR_GFLOPS}
    for row in rows:
        if "median_s" in row["ours"]:
            row["ours"]["gflops"] = gflops(row["ours"])
            if "median_s" in row.get("fairchem", {}):
                row["speedup"] = row["fairchem"]["median_s"] / row["ours"]["median_s"]
                row["memory_ratio"] = row["ours"]["call_peak_mb"] / row["fairchem"]["call_peak_mb"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows, "batched": batched}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
