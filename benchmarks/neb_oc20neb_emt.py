"""The OC20NEB-style benchmark (`eqv2 neb --benchmark`) on stand-in trajectories made with EMT as DFT.

OC20NEB cannot be downloaded here. Each hop of tests/neb_systems.py `HOPS` (an adatom between hollow sites of an
fcc(100) slab, bottom layer fixed) gets an EMT NEB written as OC20NEB's trajectories are (end points relaxed with
EMT, 8 moving images from IDPP, k = 1, climbing image, BFGS, every band of the optimization), named like them;
then `benchmark_oc20neb` runs the model's NEB from each first band with CatTSunami's settings and compares its
barrier with EMT's. Prints the rows and the summary and writes the benchmark's files.

    python benchmarks/neb_oc20neb_emt.py [--model NAME_OR_PATH] [--size 2 2 2] [--steps 500] [--hops NAME ...]
        [--optimizer BFGS] [--method aseneb] [--threads N] [--out benchmarks/results/neb_oc20neb_emt]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="default: the embedded demo model")
    parser.add_argument("--size", type=int, nargs=3, default=(2, 2, 2), help="slab repeats (default 2 2 2)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--hops", nargs="+", help="names of tests/neb_systems.py HOPS (default: all)")
    parser.add_argument("--optimizer", default="BFGS", help="default BFGS (CatTSunami's)")
    parser.add_argument("--method", default="aseneb", help="default aseneb (CatTSunami's OCPNEB)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "neb_oc20neb_emt")
    args = parser.parse_args()
    from eqv2_calc.threads import configure

    configure(args.threads)
    from eqv2_calc.neb_benchmark import benchmark_oc20neb
    from eqv2_calc.predict import DEMO_MODEL
    from neb_systems import HOPS, hop_ends, write_emt_neb_trajectory

    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(args.hops or HOPS):
            slug = name.replace("/", "_").replace("(", "").replace(")", "")
            write_emt_neb_trajectory(Path(tmp) / f"hop_id_{i}_{slug}_neb1.0.traj", *hop_ends(name, tuple(args.size)))
        start = time.perf_counter()
        report = benchmark_oc20neb(tmp, args.model or DEMO_MODEL, output_dir=args.out, steps=args.steps,
                                   optimizer=args.optimizer, method=args.method, device=args.device)
        elapsed = time.perf_counter() - start
    print(f"{'trajectory':<34} {'E_a EMT':>8} {'E_a model':>9} {'error':>7} {'converged':>9} {'steps':>5} success")
    for r in report.rows:
        print(f"{r['trajectory']:<34} {r['E_a_dft_eV']:>8.3f} {r['E_a_ml_eV']:>9.3f} {r['error_eV']:>+7.3f} "
              f"{'yes' if r['converged_ml'] else 'no':>9} {r['steps']:>5} {'yes' if r['success'] else 'no'}")
    print("\n".join(report.lines()))
    print(f"model NEBs: {elapsed:.0f} s")


if __name__ == "__main__":
    main()
