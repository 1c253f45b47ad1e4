"""NEB steps per second: `run_nebs` (every moving image of every band in one model call per step) vs ASE's NEB
loop with the calculator on each image, the same bands, optimizer (FIRE) and number of steps.

Bands: `--bands` (default 4) hops on fcc(100) slabs (O/Cu, Cu/Cu, Au/Au, then again), `--images` (default 7)
moving images each (IDPP), end points unrelaxed. Both run exactly `--steps` FIRE steps per band (fmax 1e-9, no climbing
stage): the table gives the wall time, band steps per second, model calls (batched: chunks of at most 256
atoms on a CPU count as one step's call), the speed-up, and the largest
difference of the final energies between the two (they take the same steps; float32 round-off).

    python benchmarks/bench_neb.py [--model NAME_OR_PATH] [--bands 4] [--images 7] [--steps 20] [--size 2 2 3]
        [--device cpu] [--threads N] [--out benchmarks/results/neb.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]
HOP_CYCLE = ("O/Cu(100)", "Cu/Cu(100)", "Au/Au(100)")


def neb_bands(count: int, moving: int, size: tuple[int, int, int]) -> list[list]:
    """`count` IDPP bands of `moving` images: the hops of `HOP_CYCLE` in turn."""
    from eqv2_calc.neb import interpolate_band
    from neb_systems import hop_ends

    return [interpolate_band(*hop_ends(HOP_CYCLE[i % len(HOP_CYCLE)], size), moving) for i in range(count)]


def time_nebs(potential, device, bands: list[list], steps: int) -> dict:
    """Wall time of `steps` FIRE steps of every band: batched (`run_nebs`) and ASE's NEB loop image by image."""
    import numpy as np
    from ase.mep import NEB
    from ase.optimize import FIRE

    from eqv2_calc.calculator import EquiformerV2Calculator
    from eqv2_calc.neb import run_nebs

    run_nebs([bands[0]], potential, climb=False, fmax=1e-9, steps=1, device=device, progress=False)  # warm-up
    start = time.perf_counter()
    batched = run_nebs(bands, potential, climb=False, fmax=1e-9, steps=steps, device=device, progress=False)
    batched_s = time.perf_counter() - start
    loop_energies = []
    start = time.perf_counter()
    for band in bands:
        images = [image.copy() for image in band]
        for image in images:
            image.calc = EquiformerV2Calculator(potential, device=device)
        FIRE(NEB(images, climb=False, method="improvedtangent"), logfile=None).run(fmax=1e-9, steps=steps)
        loop_energies.append([image.get_potential_energy() for image in images])
    loop_s = time.perf_counter() - start
    moving = sum(len(band) - 2 for band in bands)
    return {"bands": len(bands), "moving_images": moving, "atoms_per_image": len(bands[0][0]), "steps": steps,
            "batched_s": batched_s, "ase_loop_s": loop_s, "batched_band_steps_per_s": len(bands) * steps / batched_s,
            "ase_loop_band_steps_per_s": len(bands) * steps / loop_s, "speedup": loop_s / batched_s,
            "batched_model_calls": steps + 1, "ase_loop_model_calls": moving * (steps + 1) + 2 * len(bands),
            "steps_done": [r.steps for r in batched],
            "max_energy_difference_eV": float(max(np.abs(r.energies - e).max()
                                                  for r, e in zip(batched, loop_energies)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="default: the embedded demo model")
    parser.add_argument("--bands", type=int, default=4)
    parser.add_argument("--images", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, nargs=3, default=(2, 2, 3), help="slab repeats (default 2 2 3: 13 atoms)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads (default torch's)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "neb.json")
    args = parser.parse_args()
    from eqv2_calc.threads import configure

    configure(args.threads)  # OMP_WAIT_POLICY=PASSIVE before torch loads, as the eqv2 command does
    import torch

    from eqv2_calc.predict import DEMO_MODEL, resolve_model

    potential, _ = resolve_model(args.model or DEMO_MODEL, args.device)
    bands = neb_bands(args.bands, args.images, tuple(args.size))
    result = time_nebs(potential, torch.device(args.device), bands, args.steps)
    result.update(model=args.model or DEMO_MODEL, device=args.device, threads=torch.get_num_threads())
    print(f"{result['bands']} bands x {args.images} moving images x {result['atoms_per_image']} atoms, "
          f"{args.steps} FIRE steps, {args.device}, {result['threads']} threads")
    print(f"{'':<22} {'wall s':>8} {'band steps/s':>13} {'model calls':>12}")
    print(f"{'run_nebs (batched)':<22} {result['batched_s']:>8.1f} {result['batched_band_steps_per_s']:>13.3f} "
          f"{result['batched_model_calls']:>12}")
    print(f"{'ASE NEB loop':<22} {result['ase_loop_s']:>8.1f} {result['ase_loop_band_steps_per_s']:>13.3f} "
          f"{result['ase_loop_model_calls']:>12}")
    print(f"speed-up {result['speedup']:.2f}x; largest final energy difference "
          f"{result['max_energy_difference_eV']:.1e} eV")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
