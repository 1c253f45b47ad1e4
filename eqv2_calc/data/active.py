"""Active learning: frames from a trained model's own relaxations, labelled by EMT (`eqv2 data active`).

A model trained on `eqv2 data emt` frames sees the EMT surface along EMT's own relaxation paths and MD.
Relaxing with the model takes other paths, and where they leave the training data the model can fall
into basins EMT does not have (a bond broken, an H atom driven into the metal). This module relaxes
fresh slab + adsorbate systems with the model (BFGS, as `benchmarks/demo_acceptance.py` does), keeps
frames of each trajectory spread in log(step) and always its last frame (the model's minimum), and
labels them with EMT. Next to them it stores the standard EMT relaxation and MD frames of the same
systems (`generate_system`). Fine-tuning on the union teaches the model the surface where it goes.

The systems are the slab + adsorbate systems of ``system_specs(n_systems, seed)`` outside the test
split; use a `seed` other than the base dataset's, so the systems are new draws and the base dataset's
test systems stay unseen. Frames keep the generator's key-value pairs (split by system) with
``sampling="model_relax"`` for the model's frames and ``system_id`` prefixed by ``seed{seed}-``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.emt import EMT
from ase.optimize import BFGS

from .emt import (RELAX_FMAX, SystemSpec, generate_system, keep_frame, label_frame, map_systems, run_dataset_command,
                  start_geometry, subsample_log, summarize, system_info, system_specs, write_frames)

MODEL_RELAX_MAX_STEPS = 300  # as benchmarks/demo_acceptance.py


def model_relaxation_frames(atoms: Atoms, calc: Calculator, n_keep: int, *, fmax: float = RELAX_FMAX,
                            steps: int = MODEL_RELAX_MAX_STEPS) -> tuple[list[tuple[Atoms, dict]], np.ndarray]:
    """Relax `atoms` with `calc` (BFGS) and return EMT-labelled frames of the trajectory.

    Args:
        atoms: start geometry (its constraints are kept); it is relaxed in place.
        calc: the model's calculator.
        n_keep: frames kept, spread in log(step), the first and the last always among them.
        fmax, steps: BFGS convergence (eV/Angstrom) and step limit.

    Returns:
        ``(frames, model_forces)``: frames as (Atoms with EMT results, key-value pairs) pairs, and the
        model's forces at those frames, ``(n_frames, natoms, 3)`` eV/Angstrom, raw (not constrained).
    """
    trajectory: list[tuple[Atoms, np.ndarray, int]] = []
    atoms.calc = calc
    opt = BFGS(atoms, logfile=None)
    opt.attach(lambda: trajectory.append((atoms.copy(), atoms.get_forces(apply_constraint=False).copy(),
                                          opt.nsteps)), interval=1)
    opt.run(fmax=fmax, steps=steps)
    frames, model_forces = [], []
    for geometry, forces, step in subsample_log(trajectory, n_keep):
        geometry.calc = EMT()
        frames.append((label_frame(geometry, False), {"sampling": "model_relax", "step": int(step),
                                                      "temperature_K": 0.0}))
        model_forces.append(forces)
    return frames, np.stack(model_forces)


_worker_calc: Calculator | None = None  # each worker process's model calculator (set by _init_worker)


def _init_worker(model: str, device: str, one_thread: bool) -> None:
    global _worker_calc
    import torch

    from ..calculator import EquiformerV2Calculator

    if one_thread:  # one core per worker process: small models are overhead-bound, not compute-bound
        torch.set_num_threads(1)
    _worker_calc = EquiformerV2Calculator(model, device=device)


def active_system_frames(spec: SystemSpec, calc: Calculator, seed: int, n_keep: int, n_relax: int, n_md: int,
                         steps: int) -> tuple[list[tuple[Atoms, dict]], np.ndarray]:
    """All frames of one system (EMT frames, then the model's own relaxation) and the model's force errors.

    Returns:
        ``(frames, errors)``: (Atoms with EMT results, key-value pairs) pairs, unfiltered, and the absolute
        model-minus-EMT force components of the kept model frames (flat, eV/Angstrom).
    """
    frames = generate_system(spec, seed, n_relax, n_md)
    atoms = start_geometry(spec, np.random.default_rng([seed, spec.index, 1]))
    model_frames, model_forces = model_relaxation_frames(atoms, calc, n_keep, steps=steps)
    errors = [np.abs(forces - frame.calc.results["forces"]).ravel()
              for (frame, _), forces in zip(model_frames, model_forces) if keep_frame(frame)]
    frames += [(frame, {**system_info(spec), **kvp}) for frame, kvp in model_frames]
    system_id = f"seed{seed}-{spec.system_id}"
    return ([(frame, {**kvp, "system_id": system_id}) for frame, kvp in frames],
            np.concatenate(errors) if errors else np.zeros(0))


def _active_job(args: tuple) -> tuple[list[tuple[Atoms, dict]], np.ndarray]:
    return active_system_frames(args[0], _worker_calc, *args[1:])


def make_active_dataset(path: str | Path, model: str, *, n_systems: int = 1000, seed: int = 1,
                        n_keep: int = 6, n_relax: int = 5, n_md: int = 2, steps: int = MODEL_RELAX_MAX_STEPS,
                        workers: int = 1, device: str = "cpu", progress: bool = True, overwrite: bool = False) -> dict:
    """Write the model-relaxation frames and the EMT frames of fresh adsorbate systems to `path`.

    Args:
        path: output file, ``.db`` (ASE SQLite) or an ase.io format; it appears only when complete.
        model: registered name or checkpoint file of the model whose relaxations are sampled.
        n_systems, seed: ``system_specs(n_systems, seed)``; its adsorbate systems outside the test split
            are used (~54 % of `n_systems`).
        n_keep: frames kept per model relaxation.
        n_relax, n_md: EMT relaxation frames and MD snapshots per system (`generate_system`).
        steps: BFGS step limit of each model relaxation.
        workers: processes (one core and one model each); the output does not depend on it, up to the
            round-off of the model's thread count (~1e-5 eV along a BFGS path).
        device: "cpu" or "cuda" for the model.
        progress: tqdm progress bar over systems (stderr).
        overwrite: replace an existing `path`.

    Returns:
        `summarize` of the frames, plus the model's force MAE (eV/Angstrom) against EMT on the frames of
        its own relaxations (all atoms) and the largest such error.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    if n_keep < 1:
        raise ValueError(f"n_keep={n_keep} must be >= 1")
    specs = [s for s in system_specs(n_systems, seed) if s.kind == "adsorbate" and s.split != "test"]
    start = time.perf_counter()
    frames: list[tuple[Atoms, dict]] = []
    errors: list[np.ndarray] = []
    n_dropped = 0
    jobs = [(spec, seed, n_keep, n_relax, n_md, steps) for spec in specs]
    # spawn: a forked child would inherit the parent's OpenMP state; each worker loads the model once
    for system_frames, system_errors in map_systems(_active_job, jobs, workers=workers, desc="model relaxations",
                                                    progress=progress, context="spawn", initializer=_init_worker,
                                                    initargs=(model, device, workers > 1)):
        kept = [(atoms, kvp) for atoms, kvp in system_frames if keep_frame(atoms)]
        n_dropped += len(system_frames) - len(kept)
        frames += kept
        errors.append(system_errors)
    write_frames(path, frames)
    error = np.concatenate(errors) if sum(e.size for e in errors) else np.zeros(1)
    summary = summarize([a for a, _ in frames], [k for _, k in frames])
    summary.update({"path": str(path), "seed": seed, "n_systems_requested": n_systems, "n_dropped": n_dropped,
                    "model_force_mae_on_own_relaxations_eV_per_A": round(float(error.mean()), 4),
                    "model_force_max_error_on_own_relaxations_eV_per_A": round(float(error.max()), 2),
                    "total_seconds": round(time.perf_counter() - start, 1)})
    return summary


def build_parser() -> argparse.ArgumentParser:
    """The options of `eqv2 data active` (also read by tools/gen_cli_docs.py)."""
    parser = argparse.ArgumentParser(prog="eqv2 data active", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="output file: .db (ASE SQLite database) or .extxyz")
    parser.add_argument("--model", help="registered name or checkpoint file (default: the embedded demo model)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--n-systems", type=int, default=1000, help="system_specs size; its non-test adsorbate "
                        "systems are relaxed (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed; not the base dataset's (default 1)")
    parser.add_argument("--n-keep", type=int, default=6, help="frames kept per model relaxation (default 6)")
    parser.add_argument("--n-relax", type=int, default=5, help="EMT relaxation frames per system (default 5)")
    parser.add_argument("--n-md", type=int, default=2, help="EMT MD snapshots per system (default 2)")
    parser.add_argument("--steps", type=int, default=MODEL_RELAX_MAX_STEPS, help="BFGS step limit of each model "
                        f"relaxation (default {MODEL_RELAX_MAX_STEPS})")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes, one core each (default 1; "
                        "output does not depend on it, up to float round-off)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line: ``eqv2 data active OUT.db [--model NAME] [--n-systems 1000] [--seed 1]``."""
    from ..predict import DEMO_MODEL

    return run_dataset_command(build_parser(), argv, lambda args: make_active_dataset(
        args.path, args.model or DEMO_MODEL, n_systems=args.n_systems, seed=args.seed, n_keep=args.n_keep,
        n_relax=args.n_relax, n_md=args.n_md, steps=args.steps, workers=args.workers, device=args.device,
        progress=not args.no_progress, overwrite=args.overwrite))
