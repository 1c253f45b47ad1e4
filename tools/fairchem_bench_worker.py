"""fairchem 1.10 side of benchmarks/compare_fairchem.py (runs in the reference venv, .venv-ref).

    fairchem_bench_worker.py checkpoint MANIFEST PATH        write the seeded 31M checkpoint (fairchem's layout)
    fairchem_bench_worker.py time CHECKPOINT SIZE REPEATS [DEVICE]
                                                             time OCPCalculator energy + forces on one slab size
                                                             (DEVICE cpu, the default, or cuda: then also the
                                                             peak GPU memory of one call, gpu_peak_mb)

Prints one JSON line. The checkpoint is fairchem's own model (built as OCPCalculator builds it) with every
parameter drawn by tests/seeded_weights.py, saved by tools/make_golden.py's writer.
"""

import json
import sys

from compare_fairchem import make_slab, time_calls, time_median
from make_golden import make_calc, make_configs, save_checkpoint, seeded_checkpoint


def write_checkpoint(path: str) -> dict:
    checkpoint, params = seeded_checkpoint(make_configs()["eqV2_31M"])
    save_checkpoint(checkpoint, path)
    return {"path": path, "parameters": len(params)}


def time_ocp_calculator(checkpoint: str, size: int, repeats: int, device: str = "cpu") -> dict:
    import torch
    from fairchem.core.common.relaxation.ase_utils import OCPCalculator
    from fairchem.core.datasets import data_list_collater

    calc = make_calc(checkpoint, seed=0) if device == "cpu" else OCPCalculator(checkpoint_path=checkpoint, cpu=False,
                                                                              seed=0)

    def energy_forces(atoms) -> None:
        calc.reset()
        atoms.calc = calc
        atoms.get_potential_energy()
        atoms.get_forces()

    result = time_calls(energy_forces, size, repeats)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        energy_forces(make_slab(size, repeats + 1))
        result["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    batch = data_list_collater([calc.a2g.convert(make_slab(size))], otf_graph=True).to(calc.trainer.device)
    result["graph_s"] = time_median(lambda: calc.trainer.model.generate_graph(batch), repeats)
    return result


def main() -> None:
    command, *args = sys.argv[1:]
    if command == "checkpoint":
        print(json.dumps(write_checkpoint(args[1])))
    else:
        print(json.dumps(time_ocp_calculator(args[0], int(args[1]), int(args[2]), *args[3:])))


if __name__ == "__main__":
    main()
