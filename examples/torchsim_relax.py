"""Relax 32 slab + adsorbate systems with TorchSim's batched FIRE and its in-flight autobatcher.

    pip install "eqv2-calc[torchsim]"
    python examples/torchsim_relax.py [--model NAME_OR_PATH] [--n 32] [--batch 8] [--fmax 0.05] [--small]

Systems: Cu, Pd and Pt(111) 2x2x3 slabs (hexagonal cells) with CO (C-down), O, H or OH on top / fcc / hcp /
bridge sites. TorchSim 0.3 keeps one pbc flag per batch, so the slabs are periodic along z with vacuum, and it
has no FixAtoms, so every atom relaxes. On a GPU the autobatcher sizes the batches from measured memory; on a
CPU (where TorchSim's estimate is unavailable) `in_flight_autobatcher` keeps `--batch` systems in flight and
swaps converged ones out for waiting ones. MODEL defaults to the embedded demo model (EMT-trained: a demo, not
DFT). `--small`: 2 systems, 1 in flight, 5 steps (the test's size).
"""

from __future__ import annotations

import argparse
import time
from importlib.metadata import version

import torch
from ase import Atoms
from ase.build import add_adsorbate, fcc111

from eqv2_calc.predict import DEMO_MODEL, resolve_device

ADSORBATES = {  # binding atom first, pointing down
    "CO": Atoms("CO", positions=[(0, 0, 0), (0, 0, 1.15)]),
    "O": Atoms("O"),
    "H": Atoms("H"),
    "OH": Atoms("OH", positions=[(0, 0, 0), (0, 0, 0.97)]),
}
SITES = ("ontop", "fcc", "hcp", "bridge")
METALS = ("Cu", "Pd", "Pt")
HEIGHT = {"ontop": 1.9, "bridge": 1.6, "fcc": 1.3, "hcp": 1.3}  # Angstrom above the top layer


def slab_systems(n: int) -> tuple[list[Atoms], list[str]]:
    """`n` metal(111) + adsorbate systems (fully periodic, 7 Angstrom vacuum each side) and their labels."""
    systems, labels = [], []
    for i in range(n):
        metal, name, site = METALS[i % 3], list(ADSORBATES)[(i // 3) % 4], SITES[(i // 12) % 4]
        slab = fcc111(metal, size=(2, 2, 3), vacuum=7.0)
        add_adsorbate(slab, ADSORBATES[name], HEIGHT[site] + 0.02 * (i // 48), site)
        slab.pbc = True
        slab.rattle(0.02, seed=i)
        systems.append(slab)
        labels.append(f"{name}@{metal}(111)-{site}")
    return systems, labels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEMO_MODEL)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8, help="systems in flight on a CPU")
    parser.add_argument("--fmax", type=float, default=0.05, help="eV/Angstrom")
    parser.add_argument("--steps", type=int, default=300, help="most FIRE steps per system")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--small", action="store_true", help="2 systems, 1 in flight, 5 steps")
    args = parser.parse_args(argv)
    if args.small:
        args.n, args.batch, args.steps = 2, 1, 5

    import torch_sim as ts

    from eqv2_calc.torchsim import EquiformerV2Model, fire_optimizer, in_flight_autobatcher, optimize_max_steps

    device = resolve_device(args.device)
    model = EquiformerV2Model(args.model, device=device, compute_stress=False)
    systems, labels = slab_systems(args.n)
    # CUDA: TorchSim measures the memory per metric unit; CPU: a fixed number of systems in flight
    autobatcher = True if device.type == "cuda" else in_flight_autobatcher(model, systems, args.batch)
    converged = ts.generate_force_convergence_fn(args.fmax, include_cell_forces=False)
    start = time.perf_counter()
    final = ts.optimize(systems, model, optimizer=fire_optimizer(), convergence_fn=converged,
                        autobatcher=autobatcher, steps_between_swaps=5,
                        max_steps=optimize_max_steps(args.steps, args.n, args.batch))
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start

    out = model(final)  # energies and forces of the relaxed structures
    energies = out["energy"].cpu()
    fmaxes = torch.zeros(args.n).scatter_reduce(
        0, final.system_idx.cpu(), out["forces"].norm(dim=1).cpu(), "amax", include_self=False)
    n_converged = int((fmaxes < args.fmax).sum())
    print(f"relaxed {args.n} systems with TorchSim {version('torch-sim-atomistic')} batched FIRE on {device} "
          f"in {elapsed:.1f} s ({args.n / elapsed:.2f} structures/s); {n_converged}/{args.n} below "
          f"fmax {args.fmax} eV/A; {model.graphs.calls} model calls")
    print(f"{'system':<22} {'energy (eV)':>12} {'fmax (eV/A)':>12}")
    for label, energy, fmax in sorted(zip(labels, energies.tolist(), fmaxes.tolist()), key=lambda r: r[1]):
        print(f"{label:<22} {energy:>12.4f} {fmax:>12.4f}")


if __name__ == "__main__":
    main()
