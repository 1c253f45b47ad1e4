"""Structures per second of the scale-out engine (`eqv2_calc.scale`) with 1 and 2 Ray workers.

Workload: `--n` Cu(111) 2x2x3 slabs with O / CO / H / OH on top (12-14 atoms, default 96), predicted
(energies, forces, stresses) in chunks of `--chunk-size`. Rows of the report:
    predict()        one process, no engine: the baseline
    local            the engine without Ray (`LocalExecutor`): chunks, per-chunk files, merge
    ray xN           N Ray workers of one core each (`RayExecutor`), pool already started
    ray xN no-op     the same chunks with a task that skips the model: engine + Ray cost per chunk
Per-task overhead = no-op wall time / chunks. Pool start (actors + model load) and `ray.init` are
reported apart, as a long run pays them once. Writes a table and `benchmarks/results/scaleout.json`.

    python benchmarks/bench_scaleout.py [--model NAME_OR_PATH] [--n 96] [--chunk-size 8] [--workers 1 2]
        [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def systems(n: int) -> list:
    from ase import Atoms
    from ase.build import add_adsorbate, fcc111

    from eqv2_calc.adsorbml import get_adsorbate

    adsorbates = [Atoms("O"), get_adsorbate("*CO").atoms, Atoms("H"), get_adsorbate("*OH").atoms]  # binding atom down (ase lists CO O-first, OH H-below)
    out = []
    for i in range(n):
        slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
        add_adsorbate(slab, adsorbates[i % 4], 1.6 + 0.01 * (i // 4), "ontop")
        out.append(slab)
    return out


def noop_items(calc, structures, **params) -> list:
    """The engine's work without the model: a zero row and a copy of each structure."""
    from eqv2_calc.scale.tasks import PREDICT_COLUMNS

    return [(dict.fromkeys(PREDICT_COLUMNS, 0.0), atoms.copy()) for atoms in structures]


def timed(job, executor, directory: Path) -> float:
    from eqv2_calc.scale import run_job

    start = time.perf_counter()
    summary = run_job(job, executor, directory, progress=False)
    assert summary.status == "complete", summary.lines()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="default: the embedded demo model")
    parser.add_argument("--n", type=int, default=96)
    parser.add_argument("--chunk-size", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scaleout.json")
    args = parser.parse_args()
    import torch

    from eqv2_calc.predict import DEMO_MODEL, predict
    from eqv2_calc.scale import Job, LocalExecutor, RayExecutor, Task, connect, predict_task
    from eqv2_calc.scale.tasks import PREDICT_COLUMNS

    model = args.model or DEMO_MODEL
    structures = systems(args.n)
    labels = [f"slab{i}" for i in range(args.n)]
    job = Job(structures, labels, predict_task(args.batch_size), model, chunk_size=args.chunk_size)
    noop = Job(structures, labels, Task(noop_items, PREDICT_COLUMNS), model, chunk_size=args.chunk_size)
    chunks = len(job.chunks())
    rows, scratch = [], tempfile.TemporaryDirectory(prefix="bench_scaleout_")
    work = Path(scratch.name)

    def add(name: str, seconds: float, workers: int, start_s: float | None = None) -> None:
        rows.append({"run": name, "workers": workers, "seconds": seconds, "structures_per_s": args.n / seconds,
                     "per_chunk_ms": 1000 * seconds / chunks, "start_s": start_s})

    torch.set_num_threads(1)  # one core per worker, as the Ray workers
    predict(structures[:2], model, device=args.device, progress=False)  # load and warm up
    start = time.perf_counter()
    predict(structures, model, batch_size=args.batch_size, device=args.device, progress=False)
    add("predict()", time.perf_counter() - start, 1)
    with LocalExecutor(model, device=args.device) as local:
        add("local", timed(job, local, work / "local"), 1)
        add("local no-op", timed(noop, local, work / "local_noop"), 1)

    start = time.perf_counter()
    connect(num_cpus=max(args.workers))
    ray_init_s = time.perf_counter() - start
    for n in args.workers:
        start = time.perf_counter()
        with RayExecutor(model, workers=n, device=args.device) as pool:
            pool_start_s = time.perf_counter() - start
            timed(job, pool, work / f"warm{n}")  # first chunks pay lazy imports and kernel warm-up
            add(f"ray x{n}", timed(job, pool, work / f"ray{n}"), n, pool_start_s)
            add(f"ray x{n} no-op", timed(noop, pool, work / f"ray{n}_noop"), n)

    scratch.cleanup()
    report = {"model": model, "device": args.device, "structures": args.n, "chunk_size": args.chunk_size,
              "chunks": chunks, "batch_size": args.batch_size, "ray_init_s": ray_init_s, "cpu_count": os.cpu_count(),
              "load_average": os.getloadavg(), "machine": platform.machine(), "torch": torch.__version__,
              "rows": rows}
    print(f"{args.n} structures (Cu(111) 2x2x3 + adsorbate), {chunks} chunks of {args.chunk_size}, {model}, "
          f"{args.device}; ray.init {ray_init_s:.1f} s; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    print(f"{'run':<16} {'workers':>7} {'seconds':>8} {'struct/s':>9} {'ms/chunk':>9} {'pool start s':>12}")
    for r in rows:
        start = f"{r['start_s']:.1f}" if r["start_s"] is not None else "-"
        print(f"{r['run']:<16} {r['workers']:>7} {r['seconds']:>8.2f} {r['structures_per_s']:>9.1f} "
              f"{r['per_chunk_ms']:>9.1f} {start:>12}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
