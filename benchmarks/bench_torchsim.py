"""Structures relaxed per second: TorchSim batched FIRE vs `relax_many` vs an ASE BFGS loop, same systems and fmax.

    python benchmarks/bench_torchsim.py [--model NAME_OR_PATH] [--n 32] [--batch 8] [--fmax 0.05] [--steps 300]
        [--device cpu] [--out benchmarks/results/torchsim.json]

Systems: the slab + adsorbate systems of examples/torchsim_relax.py (Cu/Pd/Pt(111) 2x2x3 + CO, O, H, OH;
fully periodic with vacuum, no fixed atoms, since TorchSim 0.3 has no constraints). Every method stops a system
when its largest atomic force is below `--fmax` (eV/Angstrom) or after `--steps` steps:

- TorchSim: `ts.optimize` with TorchSim's FIRE (ASE flavour) and an in-flight autobatcher holding `--batch`
  systems (on CUDA, TorchSim's memory-measuring autobatcher instead);
- `relax_many`: our batched FIRE (ASE's FIRE per structure), `--batch` structures per model call;
- ASE BFGS: `relax(..., optimizer="BFGS")` with `EquiformerV2Calculator`, one structure after another.

Reported per method: wall and CPU seconds (the CPU time of this process is the fairer clock on a shared
machine), structures/s, converged systems, model evaluations per structure (one structure evaluated once;
TorchSim checks convergence every `steps_between_swaps` = 5 steps, its default), CPU ms per evaluation,
and the median |E - E_BFGS| of the final energies. Prints a table and writes JSON (`--out`, default benchmarks/results/torchsim.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))


def timed(run: Callable[[], tuple[list[float], list[float], int]], device) -> dict:
    """Run `run()` -> (energies eV, final fmax eV/A, model evaluations of one structure, summed); time it."""
    import torch

    wall, cpu = time.perf_counter(), time.process_time()
    energies, fmaxes, evaluations = run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "energies": energies, "fmaxes": fmaxes, "evaluations": evaluations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--fmax", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "torchsim.json")
    args = parser.parse_args()

    import numpy as np
    import torch
    import torch_sim as ts

    from eqv2_calc import EquiformerV2Calculator, relax, relax_many
    from eqv2_calc.predict import DEMO_MODEL, resolve_device
    from eqv2_calc.torchsim import EquiformerV2Model, fire_optimizer, in_flight_autobatcher, optimize_max_steps
    from torchsim_relax import slab_systems

    device = resolve_device(args.device)
    model = EquiformerV2Model(args.model or DEMO_MODEL, device=device, compute_stress=False)
    potential = model.potential
    systems, _ = slab_systems(args.n)
    model(ts.io.atoms_to_state(systems[: args.batch], device, model.dtype))  # warm-up

    evaluated = []  # systems per TorchSim model call
    model.register_forward_pre_hook(lambda _, inputs: evaluated.append(int(inputs[0].cell.shape[0])))

    def torchsim_fire():
        batcher = True if device.type == "cuda" else in_flight_autobatcher(model, systems, args.batch)
        final = ts.optimize(systems, model, optimizer=fire_optimizer(), autobatcher=batcher,
                            max_steps=optimize_max_steps(args.steps, args.n, args.batch),
                            convergence_fn=ts.generate_force_convergence_fn(args.fmax, include_cell_forces=False))
        with torch.no_grad():
            out = model(final)
        norms = out["forces"].norm(dim=1).cpu()
        fmaxes = torch.zeros(args.n).scatter_reduce(0, final.system_idx.cpu(), norms, "amax", include_self=False)
        return out["energy"].cpu().tolist(), fmaxes.tolist(), sum(evaluated) - args.n  # not the final check

    def batched_fire():
        results = relax_many(systems, potential, fmax=args.fmax, steps=args.steps, batch_size=args.batch,
                             device=device, progress=False)
        return [r.energy for r in results], [r.fmax for r in results], sum(r.steps + 1 for r in results)

    def bfgs_loop():
        calc = EquiformerV2Calculator(potential, device=device)
        results = [relax(s, calc, fmax=args.fmax, steps=args.steps, optimizer="BFGS") for s in systems]
        return [r.energy for r in results], [r.fmax for r in results], sum(r.steps + 1 for r in results)

    runs = {"TorchSim batched FIRE": timed(torchsim_fire, device), "relax_many batched FIRE": timed(batched_fire, device),
            "ASE BFGS loop": timed(bfgs_loop, device)}
    reference = np.array(runs["ASE BFGS loop"]["energies"])
    methods = {}
    for name, run in runs.items():
        converged = np.array(run["fmaxes"]) < args.fmax
        methods[name] = {
            "wall_s": run["wall_s"], "cpu_s": run["cpu_s"], "structures_per_s": args.n / run["wall_s"],
            "structures_per_cpu_s": args.n / run["cpu_s"], "converged": int(converged.sum()),
            "evaluations_per_structure": run["evaluations"] / args.n,
            "cpu_ms_per_evaluation": 1000 * run["cpu_s"] / run["evaluations"],
            "median_abs_dE_vs_bfgs_eV": float(np.median(np.abs(np.array(run["energies"]) - reference))),
        }
    report = {
        "model": args.model or DEMO_MODEL, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
        "torch_sim_version": version("torch-sim-atomistic"),
        "structures": args.n, "atoms_per_structure": sorted({len(s) for s in systems}), "batch": args.batch,
        "fmax_eV_per_A": args.fmax, "max_steps": args.steps, "methods": methods,
    }
    print(f"{args.n} slab+adsorbate systems, fmax {args.fmax} eV/A, batch {args.batch}, {device}, "
          f"{torch.get_num_threads()} threads, load average {report['load_average'][0]:.1f}")
    print(f"{'method':<26} {'wall s':>8} {'CPU s':>8} {'struct/s':>9} {'struct/CPU-s':>13} {'converged':>10} "
          f"{'evals/struct':>13} {'CPU ms/eval':>12} {'median|dE| eV':>14}")
    for name, m in methods.items():
        print(f"{name:<26} {m['wall_s']:>8.1f} {m['cpu_s']:>8.1f} {m['structures_per_s']:>9.3f} "
              f"{m['structures_per_cpu_s']:>13.3f} {m['converged']:>7}/{args.n:<2} "
              f"{m['evaluations_per_structure']:>13.1f} {m['cpu_ms_per_evaluation']:>12.1f} "
              f"{m['median_abs_dE_vs_bfgs_eV']:>14.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
