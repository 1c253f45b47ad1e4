"""Benchmark worker for fairchem 1.10 (runs in .venv-ref): time energy+forces of the 31M network.

Called by benchmarks/bench_calculator.py: `fairchem_bench_worker.py MANIFEST NATOMS REPEATS`; prints one JSON line.
Builds fairchem's own model from the manifest config with the same seeded weights and runs it on the
same structures through AtomsToGraphs + the model forward (what OCPCalculator does per call).
"""

import json
import sys

import torch
from bench_calculator import _time_calls, make_atoms
from fairchem.core.common.registry import registry
from fairchem.core.common.utils import setup_imports
from fairchem.core.datasets import data_list_collater
from fairchem.core.preprocessing import AtomsToGraphs
from seeded_weights import seeded_state_dict


def main() -> None:
    manifest_path, natoms, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    manifest = json.load(open(manifest_path))
    setup_imports()
    model_section = manifest["config"]["model"]
    attrs = dict(manifest["config"].get("model_attributes") or {}) if isinstance(model_section, str) else dict(model_section)
    name = model_section if isinstance(model_section, str) else attrs.pop("name")
    attrs.pop("name", None)
    model = registry.get_model_class(name)(**attrs)
    weights = seeded_state_dict(manifest["params"])
    with torch.no_grad():
        for key, param in model.named_parameters():
            param.copy_(torch.from_numpy(weights[key]))
    model.eval()
    a2g = AtomsToGraphs(r_energy=False, r_forces=False, r_distances=False, r_pbc=True, r_edges=False)

    def call(atoms):
        batch = data_list_collater([a2g.convert(atoms)], otf_graph=True)
        with torch.no_grad():
            out = model(batch)
        return float(out["energy"]), out["forces"].detach().numpy()

    print(json.dumps(_time_calls(call, None, natoms, repeats)))


if __name__ == "__main__":
    main()
