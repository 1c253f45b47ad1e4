"""Speed of the demo model's calls beside a busy process, against an idle machine, per thread setting.

The call: `get_forces` of the demo's CO on Cu(111) slab (3x3x3 + CO, 29 atoms) with the embedded demo
model, median of `--calls` calls after one warm-up. Each setting runs in a fresh process (OpenMP reads
OMP_WAIT_POLICY when torch loads): threads 1 or 2, wait policy as torch leaves it ("default", spinning) or
PASSIVE (what the `eqv2` command sets). "Busy" starts one process spinning on one core beside it. Rounds
interleave the settings (idle and busy, default and PASSIVE alternate) so that drifting load on the
machine hits all alike; the table reports the median over rounds, the slowdown busy / idle, and the cost
of PASSIVE when idle (PASSIVE idle / default idle).

    python benchmarks/bench_under_load.py [--rounds 3] [--calls 15] [--threads 1 2] [--demo]
        [--out benchmarks/results/bench_under_load.json]

`--demo` also times the whole `eqv2 demo` command idle and busy (minutes). Run on a quiet machine: other
load distorts "idle".
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ("default", "PASSIVE")

CALL_SCRIPT = """
import statistics, sys, time
import torch
torch.set_num_threads(int(sys.argv[1]))
from ase.build import add_adsorbate, fcc111, molecule
from eqv2_calc.calculator import EquiformerV2Calculator
slab = fcc111("Cu", (3, 3, 3), vacuum=8.0)
add_adsorbate(slab, molecule("CO")[::-1], 1.9, "fcc")
slab.calc = EquiformerV2Calculator(device="cpu")
times = []
for i in range(int(sys.argv[2]) + 1):
    slab.positions[-1, 2] += 1e-4  # a new structure each call
    start = time.perf_counter()
    slab.get_forces()
    times.append(time.perf_counter() - start)
print(statistics.median(times[1:]))
"""


def _spin() -> None:
    while True:
        pass


def _env(policy: str, threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = str(threads)
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    return env


def time_calls(policy: str, threads: int, calls: int) -> float:
    """Median seconds of one `get_forces` call in a fresh process."""
    out = subprocess.run([sys.executable, "-c", CALL_SCRIPT, str(threads), str(calls)], env=_env(policy, threads),
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def time_demo(policy: str, threads: int) -> float:
    """Seconds of `eqv2 demo`. The command sets PASSIVE unless the variable is set, so 'default' sets ACTIVE
    (spinning, the behaviour before the command set PASSIVE)."""
    env = _env(policy, threads)
    env["OMP_WAIT_POLICY"] = "PASSIVE" if policy == "PASSIVE" else "ACTIVE"
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "eqv2_calc.cli", "demo", "-o", tmp, "--device", "cpu"], env=env,
                       capture_output=True, check=True)
        return time.perf_counter() - start


class Busy:
    """One process spinning on one core while the block runs."""

    def __enter__(self) -> Busy:
        self.process = multiprocessing.Process(target=_spin, daemon=True)
        self.process.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=15)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--demo", action="store_true", help="also time `eqv2 demo` idle and busy")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_under_load.json"))
    args = parser.parse_args()
    settings = [(policy, threads) for threads in args.threads for policy in POLICIES]
    samples: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for load in ("idle", "busy") if r % 2 == 0 else ("busy", "idle"):
            for policy, threads in settings if r % 2 == 0 else settings[::-1]:
                key = f"{policy}|{threads}|{load}"
                if load == "busy":
                    with Busy():
                        samples.setdefault(key, []).append(time_calls(policy, threads, args.calls))
                else:
                    samples.setdefault(key, []).append(time_calls(policy, threads, args.calls))
                print(f"round {r}: {key} {samples[key][-1]:.3f} s", file=sys.stderr, flush=True)
    rows = []
    for policy, threads in settings:
        idle = statistics.median(samples[f"{policy}|{threads}|idle"])
        busy = statistics.median(samples[f"{policy}|{threads}|busy"])
        rows.append({"policy": policy, "threads": threads, "idle_s": idle, "busy_s": busy, "slowdown": busy / idle})
    default_idle = {row["threads"]: row["idle_s"] for row in rows if row["policy"] == "default"}
    for row in rows:
        row["idle_vs_default"] = row["idle_s"] / default_idle[row["threads"]]
    print(f"get_forces, 29 atoms, demo model, median of {args.calls} calls, median over {args.rounds} rounds "
          f"({os.cpu_count()} cores)")
    print(f"{'OMP_WAIT_POLICY':<16} {'threads':>7} {'idle (s)':>9} {'busy (s)':>9} {'busy/idle':>9} "
          f"{'idle vs default':>15}")
    for row in rows:
        print(f"{row['policy']:<16} {row['threads']:>7} {row['idle_s']:>9.3f} {row['busy_s']:>9.3f} "
              f"{row['slowdown']:>9.2f} {row['idle_vs_default']:>15.2f}")
    result = {"cores": os.cpu_count(), "calls": args.calls, "rounds": args.rounds, "rows": rows, "samples": samples}
    if args.demo:
        demo = {}
        for policy in POLICIES:
            demo[f"{policy}|idle"] = time_demo(policy, max(args.threads))
            with Busy():
                demo[f"{policy}|busy"] = time_demo(policy, max(args.threads))
            print(f"eqv2 demo, {policy}: idle {demo[f'{policy}|idle']:.1f} s, busy {demo[f'{policy}|busy']:.1f} s "
                  f"({demo[f'{policy}|busy'] / demo[f'{policy}|idle']:.2f}x)")
        result["demo_s"] = demo
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
