"""Screen results for people and for DFT: a table (text, CSV, JSON), the top-k structures (extxyz and
POSCAR), and a figure with the energy distribution and the best structures."""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from ase import Atoms

from ..structures import write_structures
from .screen import Candidate, SystemScreen

CSV_NAME, JSON_NAME, FIGURE_NAME, TOP_DIR = "adsorbml.csv", "adsorbml.json", "adsorbml.png", "top"
# Columns of the CSV table, in order (energies in eV, forces in eV/Angstrom).
COLUMNS = ("system", "placement", "mode", "site", "rank", "valid", "anomalies", "energy_eV", "adsorption_energy_eV",
           "converged", "steps", "fmax_eV_per_A")


def _records(system: SystemScreen) -> list[dict]:
    ranks = {c.index: r for r, c in enumerate(system.ranked(), start=1)}
    return [{"system": system.label, "placement": c.index, "mode": c.placement.mode, "site": c.placement.site.kind,
             "rank": ranks.get(c.index), "valid": c.valid, "anomalies": " ".join(c.anomalies), "energy_eV": c.energy,
             "adsorption_energy_eV": c.adsorption_energy, "converged": c.result.converged, "steps": c.result.steps,
             "fmax_eV_per_A": c.result.fmax} for c in system.candidates]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def summary_lines(systems: Sequence[SystemScreen], top_k: int) -> list[str]:
    """What a user wants to see: per system the counts, the reference scheme and the top-k table."""
    lines = []
    for system in systems:
        ranked = system.ranked()
        invalid = [c for c in system.candidates if not c.valid]
        reasons = sorted({a for c in invalid for a in c.anomalies})
        lines.append(f"{system.label}: {len(system.candidates)} placements, {len(ranked)} valid, {len(invalid)} "
                     f"rejected{' (' + ', '.join(reasons) + ')' if reasons else ''}; clean slab "
                     f"{system.slab_result.energy:.4f} eV")
        lines.append(f"  adsorption energy: {system.scheme.description}")
        lines.append(f"  {'rank':>4} {'mode':<9} {'site':<7} {'E (eV)':>12} {'dE (eV)':>8} {'E_ads (eV)':>10} "
                     f"{'steps':>5} conv")
        for rank, c in enumerate(ranked[:top_k], start=1):
            e_ads = f"{c.adsorption_energy:>10.3f}" if c.adsorption_energy is not None else f"{'-':>10}"
            lines.append(f"  {rank:>4} {c.placement.mode:<9} {c.placement.site.kind:<7} {c.energy:>12.4f} "
                         f"{c.energy - ranked[0].energy:>8.3f} {e_ads} {c.result.steps:>5} "
                         f"{'yes' if c.result.converged else 'NO'}")
        if not ranked:
            lines.append("  no valid placement: every relaxed structure broke an AdsorbML rule")
    return lines


def write_results(systems: Sequence[SystemScreen], out_dir: str | os.PathLike, top_k: int = 5,
                  plot: bool = True) -> dict[str, Path]:
    """Write `adsorbml.csv`, `adsorbml.json`, `top/<system>_rank<r>.extxyz` + `.POSCAR` (the k best valid
    structures, tags and FixAtoms kept) and, with `plot`, `adsorbml.png`. Returns the paths by kind."""
    if top_k < 1:
        raise ValueError(f"top_k={top_k} must be at least 1")
    out = Path(out_dir)
    (out / TOP_DIR).mkdir(parents=True, exist_ok=True)
    records = [r for s in systems for r in _records(s)]
    with open(out / CSV_NAME, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in records)
    summary = [{"system": s.label, "adsorbate": s.adsorbate.name, "miller": s.slab.info.get("miller"),
                "slab_energy_eV": s.slab_result.energy, "reference_scheme": s.scheme.description,
                "placements": len(s.candidates), "valid": len(s.ranked()),
                "best_energy_eV": s.best.energy if s.best else None,
                "best_adsorption_energy_eV": s.best.adsorption_energy if s.best else None} for s in systems]
    (out / JSON_NAME).write_text(json.dumps({"systems": summary, "candidates": records}, indent=2))
    paths = {"csv": out / CSV_NAME, "json": out / JSON_NAME, "top": out / TOP_DIR}
    for system in systems:
        for rank, c in enumerate(system.top(top_k), start=1):
            stem = out / TOP_DIR / f"{_slug(system.label)}_rank{rank}"
            atoms = _for_dft(c, rank)
            write_structures(f"{stem}.extxyz", atoms, format="extxyz")
            write_structures(f"{stem}.POSCAR", atoms, format="vasp", direct=True, sort=False)
    if plot:
        paths["figure"] = plot_screen(systems, out / FIGURE_NAME, top_k)
    return paths


def _for_dft(candidate: Candidate, rank: int) -> Atoms:
    """The relaxed structure without model results (a clean DFT input), with its rank and energies in `info`."""
    atoms = candidate.atoms.copy()
    atoms.calc = None
    atoms.info.update(rank=rank, ml_energy_eV=candidate.energy)
    if candidate.adsorption_energy is not None:
        atoms.info["ml_adsorption_energy_eV"] = candidate.adsorption_energy
    return atoms


def plot_energies(system: SystemScreen, ax) -> None:
    """Relaxed energies above the best valid one (eV) per placement: valid ones by mode, rejected ones in grey."""
    ranked = system.ranked()
    reference = ranked[0].energy if ranked else min(c.energy for c in system.candidates)
    groups = {"heuristic": ("tab:blue", "o"), "random": ("tab:orange", "s")}
    for mode, (color, marker) in groups.items():
        chosen = [c for c in system.candidates if c.valid and c.placement.mode == mode]
        ax.scatter([c.index for c in chosen], [c.energy - reference for c in chosen], c=color, marker=marker,
                   label=f"{mode} ({len(chosen)})")
    rejected = [c for c in system.candidates if not c.valid]
    if rejected:
        ax.scatter([c.index for c in rejected], [c.energy - reference for c in rejected], c="0.6", marker="x",
                   label=f"rejected ({len(rejected)})")
    ax.axhline(0.1, color="k", lw=0.8, ls="--", label="best + 0.1 eV")
    ax.set(xlabel="placement", ylabel="E - E_best (eV)", title=system.label)
    ax.legend(fontsize="small")


def plot_structure(atoms: Atoms, ax, title: str) -> None:
    """Top view of a slab+adsorbate (the adsorbate drawn last, on top)."""
    from ase.visualize.plot import plot_atoms

    plot_atoms(atoms, ax, radii=0.8, rotation="0x,0y,0z")
    ax.set(title=title, xticks=[], yticks=[])


def plot_screen(systems: Sequence[SystemScreen], path: str | os.PathLike, top_k: int = 5,
                max_structures: int = 3) -> Path:
    """One row per system: the energy distribution and the best (up to `max_structures`) structures; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 1 + min(top_k, max_structures)
    fig, axes = plt.subplots(len(systems), columns, figsize=(4 * columns, 3.8 * len(systems)), squeeze=False,
                             layout="constrained")
    for system, row in zip(systems, axes):
        plot_energies(system, row[0])
        top = system.top(columns - 1)
        for rank, ax in enumerate(row[1:], start=1):
            if rank <= len(top):
                c = top[rank - 1]
                e = c.adsorption_energy if c.adsorption_energy is not None else c.energy
                label = "E_ads" if c.adsorption_energy is not None else "E"
                plot_structure(c.atoms, ax, f"#{rank} {c.placement.site.kind}: {label} {e:.3f} eV")
            else:
                ax.axis("off")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
