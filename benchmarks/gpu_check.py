"""The GPU check in one command: parity, speed, memory, FLOP/s, throughput, MD and host syncs on one device.

    python benchmarks/gpu_check.py                       # CUDA, full sizes (<= 8 min on one H100/H200)
    python benchmarks/gpu_check.py --device cpu          # CI size: tiny models and systems, seconds
    python benchmarks/gpu_check.py --fairchem-venv PATH  # + fairchem 1.10 OCPCalculator on the same GPU

Writes one JSON (`--out`, default benchmarks/results/gpu_check[_cpu].json) and prints a table.

- parity: float64 on the device vs float64 on the CPU, and float32 / tf32 / bfloat16 on the device vs that
  CPU float64 reference: max |dE|/atom (eV), max |dF| (eV/A), max |dS| (eV/A^3) over the golden structures
  (tests/data/structures.traj), for seeded 31M-layout weights in the OC20 layout (tests/data/params_eqV2_31M.json)
  and in the OMat24 hydra layout (with stress head). CPU mode: the small golden checkpoints of tests/data.
- host syncs: ops that make the host wait (tests/device_guard.py `SyncCounter`) in one graph build and in
  one forward (must be 0); on CUDA also torch's own count (`torch.cuda.set_sync_debug_mode`).
- speed: energy + forces per call (graph build and read-back included, as the calculator does) on Cu(111) + CO
  slabs of 20 / 100 / 200 / 1,000 / 5,000 atoms in float32, tf32 and bfloat16; forward-only time, peak device
  memory (`torch.cuda.max_memory_allocated`), FLOPs of one forward (`torch.utils.flop_counter`), achieved
  TFLOP/s and its share of the device's FP32 peak.
- throughput: 256 slab+adsorbate systems: `predict` and `relax_many` (fixed step count) structures/s vs an ASE
  BFGS loop with the calculator on the same device (on a subset, scaled to structures/s).
- NEB: 4 bands x 7 moving images (28-atom fcc(100) hops), `run_nebs` vs ASE's NEB loop with the calculator on each
  image, the same 10 FIRE steps (benchmarks/bench_neb.py; target >= 5x on a GPU).
- MD: steps/s of a 500-atom NVE run (velocity Verlet) with a new neighbour search each step and with a 1 A skin.
- compiled: eager vs `Potential.compiled` (torch.compile, atom / edge / structure counts dynamic) per energy +
  forces call on the speed slabs, float32, interleaved call by call: the first compiled call (compile time
  included), frames compiled after it (dynamo's counters; 0 = no recompilation across sizes), largest force
  deviation from eager. CPU mode: backend "eager" (dynamo's capture only, seconds; benchmarks/bench_compile.py
  measures inductor on a CPU).
- fairchem: with `--fairchem-venv`, tools/fairchem_bench_worker.py times OCPCalculator on the same slabs.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]
from compare_fairchem import MANIFEST, WORKER, make_slab, run_worker  # noqa: E402
from device_guard import SyncCounter  # noqa: E402
from seeded_weights import seeded_state_dict, seeded_tensor  # noqa: E402

# FP32 (non-tensor-core) peak TFLOP/s by device name, dense, from the vendors' datasheets.
FP32_PEAK_TFLOPS = {"H200": 67.0, "H100 PCIe": 51.2, "H100": 67.0, "A100": 19.5, "L40S": 91.6, "L4": 30.3,
                    "A10": 31.2, "V100": 15.7, "RTX 4090": 82.6}
PRECISIONS = ("float32", "tf32", "bfloat16")
# per mode: slab sizes, timed repeats, throughput systems / BFGS subset / steps / batch, MD atoms (fcc reps) / steps
MODES = {
    "cuda": dict(parity_structures=12, sizes=[20, 100, 200, 1000, 5000], repeats=3, systems=256, bfgs_systems=16, relax_steps=25,
                 batch_size=64, md_reps=5, md_steps=50, sync_size=100, neb_bands=4, neb_images=7, neb_size=(3, 3, 3),
                 neb_steps=10, compile_backend="inductor"),
    "cpu": dict(parity_structures=2, sizes=[20], repeats=1, systems=3, bfgs_systems=1, relax_steps=2, batch_size=3,
                md_reps=1, md_steps=2, sync_size=20, neb_bands=2, neb_images=1, neb_size=(2, 2, 2), neb_steps=2,
                compile_backend="eager"),
}
MD_SKIN = 1.0
ADSORBATES = ("*CO", "*OH", "*CH3", "*N2", "*OH2", "*NH3")  # OC20 geometries, binding atom down


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seeded(potential):
    """`potential` with every parameter drawn by tests/seeded_weights.py from its (our) name."""
    with torch.no_grad():
        for name, param in potential.model.named_parameters():
            param.copy_(torch.from_numpy(seeded_tensor(name, tuple(param.shape))))
    return potential


def oc20_31m():
    """EquiformerV2 31M, OC20 layout (deprecated single class), seeded weights as in the golden tests."""
    from eqv2_calc.checkpoint import potential_from_checkpoint

    manifest = json.loads(MANIFEST.read_text())
    prefix = manifest.get("state_dict_prefix", "")
    weights = {prefix + k: torch.from_numpy(v) for k, v in seeded_state_dict(manifest["params"]).items()}
    return potential_from_checkpoint({"config": manifest["config"], "state_dict": weights,
                                      "normalizers": manifest["normalizers"]}, source="eqV2_31M seeded")


def omat_31m():
    """The OMat24 hydra layout (backbone + energy, force and decomposed stress heads) at eqV2-S / 31M size."""
    from eqv2_calc.checkpoint import load_potential
    from eqv2_calc.model import EquiformerV2
    from eqv2_calc.potential import Potential

    small = load_potential(DATA / "ckpt_omat_stress.pt")
    config = dataclasses.replace(
        small.config, num_layers=8, sphere_channels=128, attn_hidden_channels=64, num_heads=8, attn_alpha_channels=64,
        attn_value_channels=16, ffn_hidden_channels=128, edge_channels=128, lmax_list=(4,), mmax_list=(2,),
        grid_resolution=18, max_radius=12.0, max_neighbors=20)
    return seeded(Potential(EquiformerV2(config), small.normalizers, small.element_references))


def models(mode: str) -> dict:
    if mode == "cpu":
        from eqv2_calc.checkpoint import load_potential

        return {"oc20": load_potential(DATA / "ckpt_small.pt"), "omat": load_potential(DATA / "ckpt_omat_stress.pt")}
    return {"oc20": oc20_31m(), "omat": omat_31m()}


def outputs(potential, graphs: list, device: torch.device, dtype: torch.dtype, precision: str = "float32") -> list:
    """Energy, forces, stress (float64 numpy) of each graph, with `potential` on `device` in `dtype` / `precision`."""
    potential = copy.deepcopy(potential).to(device=device, dtype=dtype).eval()
    potential.precision = precision
    rows = []
    for graph in graphs:
        with torch.no_grad():
            out = potential(graph.to(device=device, dtype=dtype))
        rows.append({k: v.detach().double().cpu().numpy() for k, v in out.items()} | {"natoms": graph.pos.shape[0]})
    return rows


def parity(potentials: dict, device: torch.device, num_structures: int) -> dict:
    """Deviations from float64 on the CPU, every run on the same graphs (built once, float32, on the CPU: a
    graph built in float64 may keep other members of a degenerate neighbour shell)."""
    from ase.io import read

    structures = read(DATA / "structures.traj", index=":")[:num_structures]
    result = {}
    for name, potential in potentials.items():
        graphs = [potential.make_graph(atoms) for atoms in structures]
        reference = outputs(potential, graphs, torch.device("cpu"), torch.float64)
        runs = {"float64": outputs(potential, graphs, device, torch.float64)}
        for precision in PRECISIONS:
            runs[precision] = outputs(potential, graphs, device, torch.float32, precision)
        result[name] = {}
        for run, rows in runs.items():
            dev = {"dE_per_atom": max(float(np.abs(r["energy"] - q["energy"]).max()) / r["natoms"]
                                      for r, q in zip(rows, reference)),
                   "dF": max(float(np.abs(r["forces"] - q["forces"]).max()) for r, q in zip(rows, reference))}
            dev["dS"] = max((float(np.abs(r["stress"] - q["stress"]).max()) for r, q in zip(rows, reference)
                             if "stress" in q), default=None)
            result[name][run] = dev
    return result


def host_syncs(potential, device: torch.device, size: int) -> dict:
    """Host syncs of one graph build and one forward (dispatch-level count; on CUDA also torch's own)."""
    atoms = make_slab(size)
    potential.make_graph(atoms)
    with SyncCounter() as graph_count:
        graph = potential.make_graph(atoms)
    with torch.no_grad():
        potential(graph)
        with SyncCounter() as forward_count:
            potential(graph)
    result = {"natoms": len(atoms), "graph_build": graph_count.total, "graph_ops": dict(graph_count.ops),
              "forward": forward_count.total, "forward_ops": dict(forward_count.ops)}
    if device.type == "cuda":
        import warnings

        synchronize(device)
        for what, call in (("graph_build", lambda: potential.make_graph(atoms)),
                           ("forward", lambda: potential(graph))):
            with warnings.catch_warnings(record=True) as caught, torch.no_grad():
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    call()
                finally:
                    torch.cuda.set_sync_debug_mode("default")
            result[f"{what}_cuda_sync_warnings"] = sum("synchroniz" in str(w.message) for w in caught)
    return result


def count_flops(potential, graph) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        potential(graph)
    return counter.get_total_flops()


def speed(potential, device: torch.device, sizes: list[int], repeats: int, peak: float | None) -> list[dict]:
    """Energy + forces per call (`evaluate`: graph + forward + read-back) and forward alone, per size and precision."""
    from eqv2_calc.predict import evaluate

    rows = []
    for size in sizes:
        slabs = [make_slab(size, seed) for seed in range(repeats + 1)]
        graph = potential.make_graph(slabs[0])
        flops = count_flops(potential, graph)
        for precision in PRECISIONS:
            potential.precision = precision
            row = {"size": size, "natoms": len(slabs[0]), "edges": int(graph.edge_index.shape[1]),
                   "precision": precision, "gflop": flops / 1e9}
            try:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                calls, forwards = [], []
                for slab in slabs:
                    start = time.perf_counter()
                    evaluate(potential, [slab])
                    calls.append(time.perf_counter() - start)
                    synchronize(device)
                    start = time.perf_counter()
                    with torch.no_grad():
                        potential(graph)
                    synchronize(device)
                    forwards.append(time.perf_counter() - start)
                row["call_s"] = statistics.median(calls[1:])
                row["forward_s"] = statistics.median(forwards[1:])
                row["atoms_per_s"] = row["natoms"] / row["call_s"]
                row["tflops"] = flops / row["forward_s"] / 1e12
                if peak:
                    row["fp32_peak_share"] = row["tflops"] / peak
                if device.type == "cuda":
                    row["peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
            except torch.OutOfMemoryError as error:
                row["error"] = f"out of memory: {str(error).splitlines()[0]}"
                torch.cuda.empty_cache()
            rows.append(row)
        potential.precision = "float32"
    return rows


def compiled(potential, device: torch.device, sizes: list[int], repeats: int, backend: str) -> dict:
    """Eager vs torch.compile'd network, interleaved call by call on the same slabs (see the module docstring)."""
    from torch._dynamo.utils import counters

    from eqv2_calc.potential import Potential
    from eqv2_calc.predict import evaluate

    torch._dynamo.reset()
    counters.clear()
    fast = Potential(potential.model, potential.normalizers, potential.element_references).eval()
    fast.compiled = backend
    slabs = {size: [make_slab(size, seed) for seed in range(repeats + 1)] for size in sizes}
    start = time.perf_counter()
    evaluate(fast, slabs[sizes[0]][:1])
    synchronize(device)
    report = {"backend": backend, "first_call_s": time.perf_counter() - start, "rows": []}
    frames = counters["frames"]["total"]
    for size in sizes:
        times: dict[str, list[float]] = {"eager": [], "compiled": []}
        deviation = 0.0
        for slab in slabs[size]:
            results = {}
            for name, model in (("eager", potential), ("compiled", fast)):
                start = time.perf_counter()
                results[name] = evaluate(model, [slab])[0]
                synchronize(device)
                times[name].append(time.perf_counter() - start)
            deviation = max(deviation, float(np.abs(results["compiled"].forces - results["eager"].forces).max()))
        eager_s, compiled_s = (statistics.median(times[k][1:]) for k in ("eager", "compiled"))
        report["rows"].append({"size": size, "natoms": len(slabs[size][0]), "eager_s": eager_s,
                               "compiled_s": compiled_s, "speedup": eager_s / compiled_s, "dF": deviation})
    report["recompiles_after_first_call"] = counters["frames"]["total"] - frames
    return report


def slab_systems(count: int) -> list:
    """`count` Cu(111) 3x3x3 slabs with one of `ADSORBATES` on top, rattled, FixAtoms on the bottom layer."""
    from ase.build import add_adsorbate, fcc111
    from ase.constraints import FixAtoms

    from eqv2_calc.adsorbml import get_adsorbate

    systems = []
    for i in range(count):
        slab = fcc111("Cu", size=(3, 3, 3), vacuum=8.0)
        slab.set_constraint(FixAtoms(indices=[a.index for a in slab if a.tag == 3]))
        adsorbate = get_adsorbate(ADSORBATES[i % len(ADSORBATES)])
        add_adsorbate(slab, adsorbate.atoms, 1.9, "ontop", mol_index=adsorbate.binding_indices[0])
        slab.rattle(0.05, seed=i)
        systems.append(slab)
    return systems


def throughput(potential, device: torch.device, mode: dict) -> dict:
    """Structures/s of predict, relax_many (fixed steps) and an ASE BFGS loop on the same device."""
    from ase.optimize import BFGS

    from eqv2_calc.calculator import EquiformerV2Calculator
    from eqv2_calc.predict import predict
    from eqv2_calc.relax import relax_many

    systems, steps = slab_systems(mode["systems"]), mode["relax_steps"]
    predict(systems[: mode["batch_size"]], potential, batch_size=mode["batch_size"], device=device, progress=False)
    start = time.perf_counter()
    predict(systems, potential, batch_size=mode["batch_size"], device=device, progress=False)
    predict_s = time.perf_counter() - start
    start = time.perf_counter()
    relaxed = relax_many(systems, potential, fmax=1e-9, steps=steps, batch_size=mode["batch_size"], device=device,
                         progress=False)
    relax_s = time.perf_counter() - start
    calc = EquiformerV2Calculator(potential, device=device)
    subset = [atoms.copy() for atoms in systems[: mode["bfgs_systems"]]]
    start = time.perf_counter()
    for atoms in subset:
        atoms.calc = calc
        BFGS(atoms, logfile=None).run(fmax=1e-9, steps=steps - 1)  # steps - 1 moves = `steps` force calls
    bfgs_s = time.perf_counter() - start
    result = {"systems": len(systems), "atoms_per_system": len(systems[0]), "batch_size": mode["batch_size"],
              "relax_steps": steps, "relax_many_steps_done": max(r.steps for r in relaxed),
              "predict_structures_per_s": len(systems) / predict_s,
              "relax_many_structures_per_s": len(systems) / relax_s,
              "bfgs_loop_systems": len(subset), "bfgs_loop_structures_per_s": len(subset) / bfgs_s}
    result["relax_many_vs_bfgs"] = result["relax_many_structures_per_s"] / result["bfgs_loop_structures_per_s"]
    return result


def neb(potential, device: torch.device, mode: dict) -> dict:
    """Bands x moving images of fcc(100) hops: `run_nebs` (one model call per step) vs ASE's NEB loop with the
    calculator on each image, the same FIRE steps (benchmarks/bench_neb.py)."""
    from bench_neb import neb_bands, time_nebs

    bands = neb_bands(mode["neb_bands"], mode["neb_images"], mode["neb_size"])
    return time_nebs(potential, device, bands, mode["neb_steps"])


def md(potential, device: torch.device, mode: dict) -> list[dict]:
    from ase.build import bulk

    from eqv2_calc.calculator import EquiformerV2Calculator
    from eqv2_calc.md import run_md

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * ((mode["md_reps"],) * 3)
    rows = []
    for skin in (0.0, MD_SKIN):
        calc = EquiformerV2Calculator(potential, device=device, skin=skin)
        run_md(atoms, calc, ensemble="nve", steps=1, loginterval=1000)  # warm-up
        start = time.perf_counter()
        result = run_md(atoms, calc, ensemble="nve", steps=mode["md_steps"], loginterval=1000, temperature_K=300.0)
        elapsed = time.perf_counter() - start
        rows.append({"natoms": len(atoms), "skin": skin, "steps": mode["md_steps"], "steps_per_s": mode["md_steps"] / elapsed,
                     "graph_builds": result.graph_builds, "graph_calls": result.graph_calls})
    return rows


def fairchem(venv: Path, device: torch.device, sizes: list[int], repeats: int, max_atoms: int) -> dict:
    """OCPCalculator timings in the fairchem 1.10 venv, on the seeded 31M checkpoint written by fairchem itself."""
    import tempfile

    python = venv / "bin" / "python"
    if not python.exists():
        return {"error": f"{python} not found"}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "eqV2_31M_seeded.pt"
        written = run_worker([str(python), str(WORKER), "checkpoint", str(MANIFEST), str(checkpoint)], ref=True)
        if "error" in written:
            return written
        return {str(size): run_worker([str(python), str(WORKER), "time", str(checkpoint), str(size), str(repeats),
                                       device.type], ref=True)
                for size in sizes if size <= max_atoms}


def fp32_peak(device: torch.device, override: float | None) -> float | None:
    if override or device.type != "cuda":
        return override
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in FP32_PEAK_TFLOPS.items() if key in name), None)


def print_table(report: dict) -> None:
    meta = report["meta"]
    print(f"\n{meta['device_name']} | torch {meta['torch']} | FP32 peak {meta['fp32_peak_tflops'] or '?'} TFLOP/s")
    print("\nparity vs float64 on the CPU      max|dE|/atom eV   max|dF| eV/A   max|dS| eV/A^3")
    for model, runs in report["parity"].items():
        for run, dev in runs.items():
            ds = f"{dev['dS']:.2e}" if dev["dS"] is not None else "-"
            print(f"  {model:<6} {run:<24} {dev['dE_per_atom']:>15.2e} {dev['dF']:>14.2e} {ds:>16}")
    s = report["host_syncs"]
    print(f"\nhost syncs ({s['natoms']} atoms): graph build {s['graph_build']} {s['graph_ops']}, forward {s['forward']}"
          + (f"; torch.cuda sync warnings: graph {s.get('graph_build_cuda_sync_warnings')}, "
             f"forward {s.get('forward_cuda_sync_warnings')}" if "forward_cuda_sync_warnings" in s else ""))
    print("\nspeed, OC20 layout: energy + forces per call (graph + forward + read-back)")
    print(f"{'atoms':>6} {'edges':>7} {'precision':>9} {'call ms':>9} {'fwd ms':>9} {'atoms/s':>9} {'GFLOP':>8} "
          f"{'TFLOP/s':>8} {'of peak':>7} {'peak MB':>8}")
    for r in report["speed"]:
        if "error" in r:
            print(f"{r['natoms']:>6} {r['edges']:>7} {r['precision']:>9}  {r['error'][:60]}")
            continue
        share = f"{r['fp32_peak_share']:.0%}" if "fp32_peak_share" in r else "-"
        mem = f"{r['peak_mem_mb']:.0f}" if "peak_mem_mb" in r else "-"
        print(f"{r['natoms']:>6} {r['edges']:>7} {r['precision']:>9} {1e3 * r['call_s']:>9.1f} {1e3 * r['forward_s']:>9.1f} "
              f"{r['atoms_per_s']:>9.0f} {r['gflop']:>8.1f} {r['tflops']:>8.3f} {share:>7} {mem:>8}")
    t = report["throughput"]
    print(f"\nthroughput, {t['systems']} x {t['atoms_per_system']}-atom slab+adsorbate, {t['relax_steps']} steps: "
          f"predict {t['predict_structures_per_s']:.1f}/s, relax_many {t['relax_many_structures_per_s']:.2f}/s, "
          f"ASE BFGS loop {t['bfgs_loop_structures_per_s']:.2f}/s -> {t['relax_many_vs_bfgs']:.1f}x")
    n = report["neb"]
    print(f"NEB, {n['bands']} bands x {n['moving_images'] // n['bands']} moving images x {n['atoms_per_image']} atoms, "
          f"{n['steps']} FIRE steps: run_nebs {n['batched_s']:.2f} s, ASE NEB loop {n['ase_loop_s']:.2f} s -> "
          f"{n['speedup']:.1f}x")
    for r in report["md"]:
        print(f"MD NVE {r['natoms']} atoms, skin {r['skin']} A: {r['steps_per_s']:.2f} steps/s "
              f"({r['graph_builds']} searches / {r['graph_calls']} calls)")
    c = report["compiled"]
    print(f"\ntorch.compile ({c['backend']}): first call {c['first_call_s']:.1f} s, frames compiled after it "
          f"{c['recompiles_after_first_call']}")
    for r in c["rows"]:
        print(f"{r['natoms']:>6} atoms: eager {1e3 * r['eager_s']:.1f} ms, compiled {1e3 * r['compiled_s']:.1f} ms "
              f"-> {r['speedup']:.2f}x, max|dF| {r['dF']:.1e} eV/A")
    for size, r in (report.get("fairchem") or {}).items():
        if isinstance(r, dict) and "median_s" in r:
            ours = next((o for o in report["speed"] if str(o["size"]) == size and o["precision"] == "float32"), None)
            ratio = f" -> ours {r['median_s'] / ours['call_s']:.1f}x faster" if ours and "call_s" in ours else ""
            print(f"fairchem 1.10 OCPCalculator {r['natoms']} atoms: {1e3 * r['median_s']:.1f} ms/call{ratio}")
        else:
            print(f"fairchem {size}: {r}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (full sizes) or cpu (CI size)")
    parser.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/gpu_check[_cpu].json)")
    parser.add_argument("--fairchem-venv", type=Path, help="a venv with fairchem-core 1.10 (bin/python)")
    parser.add_argument("--fairchem-max-atoms", type=int, default=1000)
    parser.add_argument("--fp32-peak-tflops", type=float, help="the device's FP32 peak (default: from its name)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA device; use --device cpu for the CI-size run")
    mode = MODES["cuda" if device.type == "cuda" else "cpu"]
    out = args.out or ROOT / "benchmarks" / "results" / f"gpu_check{'' if device.type == 'cuda' else '_' + device.type}.json"
    started = time.perf_counter()
    peak = fp32_peak(device, args.fp32_peak_tflops)
    potentials = models("cuda" if device.type == "cuda" else "cpu")
    report = {"meta": {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
                       else platform.processor() or platform.machine(), "torch": torch.__version__,
                       "fp32_peak_tflops": peak, "mode": mode, "models": {k: p.config.num_layers for k, p in potentials.items()}}}
    report["parity"] = parity(potentials, device, mode["parity_structures"])
    oc20 = potentials["oc20"].to(device).eval()
    report["host_syncs"] = host_syncs(oc20, device, mode["sync_size"])
    report["speed"] = speed(oc20, device, mode["sizes"], mode["repeats"], peak)
    report["throughput"] = throughput(oc20, device, mode)
    report["neb"] = neb(oc20, device, mode)
    report["md"] = md(oc20, device, mode)
    report["compiled"] = compiled(oc20, device, mode["sizes"], mode["repeats"], mode["compile_backend"])
    if args.fairchem_venv:
        report["fairchem"] = fairchem(args.fairchem_venv, device, mode["sizes"], mode["repeats"], args.fairchem_max_atoms)
    report["meta"]["wall_s"] = time.perf_counter() - started
    print_table(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float))
    print(f"\nwrote {out} ({report['meta']['wall_s']:.0f} s)")
    return report


if __name__ == "__main__":
    main()
