"""MD with the Verlet skin vs a neighbour search every step: time, searches, and identical trajectories.

System: a Cu(111) slab (`--size`, default 4x4x4 = 64 atoms) in NVE from 600 K, 1 fs steps. Besides the
whole MD, the graph work alone is timed on the recorded trajectory, for the model's graph and for the
OC20 eqV2 graph (12 Angstrom, 20 neighbours, strict), where the neighbour search costs most.

    python benchmarks/bench_md.py [--model NAME_OR_PATH] [--steps 200] [--skin 1.0] [--device cpu]
        [--out benchmarks/results/md.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench_relax import model


def graph_seconds(frames: list, radius: float, neighbors: int, skin: float) -> dict:
    """Seconds to make every frame's graph: a search per frame vs reuse within the skin."""
    from eqv2_calc.graph import build_graph, reuse_graph

    start = time.perf_counter()
    for atoms in frames:
        build_graph(atoms, radius, neighbors)
    every = time.perf_counter() - start
    start, builds, reference = time.perf_counter(), 0, None
    for atoms in frames:
        graph = None if reference is None else reuse_graph(reference, atoms, radius, neighbors, True, skin / 2)
        if graph is None:
            reference, builds = build_graph(atoms, radius + skin, 0), builds + 1
            reuse_graph(reference, atoms, radius, neighbors, True, skin / 2)
    reused = time.perf_counter() - start
    return {"every_step_s": every, "verlet_skin_s": reused, "searches": builds, "speedup": every / reused}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--size", type=int, nargs=3, default=(4, 4, 4))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--skin", type=float, default=1.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import numpy as np
    import torch
    from ase.build import fcc111
    from ase.io import read

    from eqv2_calc.md import run_md

    potential, label = model(args.model)
    slab = fcc111("Cu", size=tuple(args.size), vacuum=8.0)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for skin in (0.0, args.skin):
            start = time.perf_counter()
            result = run_md(slab, potential, ensemble="nve", temperature_K=600, steps=args.steps, loginterval=1,
                            skin=skin, device=args.device, trajectory=Path(tmp) / f"{skin}.traj")
            runs[skin] = (time.perf_counter() - start, result)
        frames = read(Path(tmp) / f"{args.skin}.traj", index=":")
    (t0, r0), (t1, r1) = runs[0.0], runs[args.skin]
    config = r1.atoms.calc.potential.config
    report = {
        "model": label, "device": args.device, "torch_threads": torch.get_num_threads(), "atoms": len(slab),
        "steps": args.steps, "skin_A": args.skin,
        "md_every_step": {"seconds": t0, "graph_builds": r0.graph_builds},
        "md_verlet_skin": {"seconds": t1, "graph_builds": r1.graph_builds},
        "md_speedup": t0 / t1,
        "max_position_difference_A": float(np.abs(r0.atoms.positions - r1.atoms.positions).max()),
        "graph_only_model": graph_seconds(frames, config.max_radius, config.max_neighbors, args.skin),
        "graph_only_oc20_12A_20nb": graph_seconds(frames, 12.0, 20, args.skin),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
