"""Export a trained run as the embedded demo model and register it in checkpoints.json.

    python tools/export_demo.py .data/demo_neb5/checkpoint.pt [--grids 8x24/16x24] [--data .data/emt.db]

Writes eqv2_calc/weights/eqv2_demo_emt.pt (inference-only: config, EMA weights, normalizers,
element references, the training config and held-out test metrics), on the EDGE/NODE S2 grids of `--grids`
(LATxLONG each; grids hold no weights) if given, then updates the demo entry of
eqv2_calc/checkpoints.json (and its repo-root copy) with the file's size and sha256. Prints the test-set accuracy vs EMT.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eqv2_calc.checkpoint import load_potential, read_checkpoint, save_checkpoint
from eqv2_calc.data.dataset import load_structures
from eqv2_calc.data.emt import METALS
from eqv2_calc.hub import sha256_file
from eqv2_calc.train.grow import grid_options, regrid
from eqv2_calc.train.loop import mean_absolute_errors

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "eqv2_calc" / "weights" / "eqv2_demo_emt.pt"
REGISTRY = ROOT / "eqv2_calc" / "checkpoints.json"
ROOT_REGISTRY = ROOT / "checkpoints.json"  # the repo-root copy of the shipped registry
DEMO_NAME = "eqV2-demo-EMT"


def test_metrics(potential, structures) -> dict[str, float]:
    """Energy MAE (meV/atom) and force MAE (meV/Angstrom) against the stored EMT labels, and the structure count."""
    return {**mean_absolute_errors(potential, structures), "test_structures": len(structures)}


def registry_entry(potential, metrics: dict) -> dict:
    c = potential.config
    return {
        "name": DEMO_NAME,
        "aliases": ["demo", "eqv2_demo_emt"],
        "source": {"type": "package", "path": "weights/eqv2_demo_emt.pt"},
        "parameters_millions": round(sum(p.numel() for p in potential.parameters()) / 1e6, 3),
        "size_bytes": WEIGHTS.stat().st_size,
        "sha256": sha256_file(WEIGHTS),
        "license": "MIT",
        "license_details": "Trained by eqv2-calc on its own EMT data; MIT like the package",
        "training_data": "DEMO ONLY, not DFT: ASE EMT labels for Cu, Ag, Au, Ni, Pd, Pt, Al bulk, slabs and "
                         "H/C/N/O adsorbates (eqv2 data emt)",
        "outputs": ["energy", "forces", "stress"],
        "domain": "any",
        "energy_reference": {"kind": "total", "description": "EMT total energy (ASE's EMT reference: isolated "
                             "fcc metals near 0 eV); not comparable to DFT energies"},
        "model_config": {"num_layers": c.num_layers, "lmax": c.lmax, "mmax": c.mmax,
                         "sphere_channels": c.sphere_channels, "max_radius": c.max_radius,
                         "max_neighbors": c.max_neighbors, "max_num_elements": c.max_num_elements},
        "energy_mean_eV": potential.normalizers["energy"].mean,  # added once per structure (0 for the demo)
        "supported": True,
        "elements": [*METALS, "H", "C", "N", "O"],  # the training set's elements: others are refused
        "notes": (f"Conservative forces (-dE/dx) and stress, smooth cutoff envelope. Held-out test vs EMT: "
                  f"energy MAE {metrics['energy_mae_meV_per_atom']:.1f} meV/atom, force MAE "
                  f"{metrics['force_mae_meV_per_A']:.0f} meV/A ({metrics['test_structures']} structures). "
                  f"Reproduce: eqv2 data emt .data/emt.db --n-systems 1000; eqv2 train configs/demo_emt.yaml; "
                  f"eqv2 train configs/demo_emt_finetune.yaml; eqv2 train configs/demo_emt_labelfix.yaml; "
                  f"eqv2 data active .data/emt_active.db --model .data/demo_labelfix/checkpoint.pt --n-systems 600 "
                  f"--seed 1; eqv2 train configs/demo_emt_active.yaml; "
                  f"eqv2 data active .data/emt_active2.db --model .data/demo_active/checkpoint.pt --n-systems 400 "
                  f"--seed 2; eqv2 train configs/demo_emt_active2.yaml; eqv2 data neb .data/emt_neb.db --n-hops 400; "
                  f"eqv2 train configs/demo_emt_neb.yaml, then demo_emt_neb2.yaml ... demo_emt_neb5.yaml; "
                  f"python tools/export_demo.py .data/demo_neb5/checkpoint.pt"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--data", default=str(ROOT / ".data" / "emt.db"))
    parser.add_argument("--grids", help="EDGE/NODE S2 grids, LATxLONG each (e.g. 8x24/16x24); default: the run's")
    args = parser.parse_args()
    potential = load_potential(args.checkpoint)
    if args.grids:
        potential = regrid(potential, grid_options(args.grids))
    run = read_checkpoint(args.checkpoint)
    metrics = test_metrics(potential, load_structures(args.data, split="test"))
    print(json.dumps(metrics, indent=1))
    save_checkpoint(potential, WEIGHTS, extra={"train_config": run.get("train_config", {}), "test_metrics": metrics,
                                               "step": run.get("step", 0)})
    registry = json.loads(REGISTRY.read_text())
    registry["models"] = [m for m in registry["models"] if m["name"] != DEMO_NAME]
    registry["models"].insert(0, registry_entry(potential, metrics))
    for path in (REGISTRY, ROOT_REGISTRY):
        path.write_text(json.dumps(registry, indent=2) + "\n")
    print(f"wrote {WEIGHTS} ({WEIGHTS.stat().st_size / 1e6:.1f} MB) and the {DEMO_NAME} registry entry")


if __name__ == "__main__":
    main()
