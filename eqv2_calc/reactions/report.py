"""A reaction run for people: a summary table, `reaction.json`, every band and the transition state as extxyz and
traj (ASE reads them back, energies and forces included), and with `plot` the energy along each band with its
barrier marked (`reaction.png`) and a picture of the best transition state (`ts.png`)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..adsorbml.report import plot_structure
from ..files import staged_files
from ..structures import write_structures
from .workflow import Band, ReactionRun

JSON_NAME, BANDS_DIR, FIGURE_NAME, TS_FIGURE_NAME = "reaction.json", "bands", "reaction.png", "ts.png"
TS_NAME, TS_TRAJ_NAME = "ts.extxyz", "ts.traj"


def _band_record(index: int, band: Band) -> dict:
    r, p = band.result, band.pair
    return {"band": index, "initial_sites": list(p.initial.sites), "final_sites": list(p.final.sites),
            "initial_energy_eV": p.initial.energy, "final_energy_eV": p.final.energy, "mapping": list(p.mapping),
            "travel_total_A": p.travel[0], "travel_max_A": p.travel[1], "barrier_forward_eV": r.barrier_forward,
            "barrier_reverse_eV": r.barrier_reverse, "ts_index": r.ts_index, "converged": r.converged,
            "steps": r.steps, "fmax_eV_per_A": r.fmax, "energies_eV": [float(e) for e in r.energies],
            "files": f"{BANDS_DIR}/band{index}/"}


def summary_lines(run: ReactionRun) -> list[str]:
    """The species screened, the states and pairs found, one line per band and the lowest barrier."""
    species = ", ".join(f"{n} {s['valid_distinct']}/{s['placements']}" for n, s in run.species.items())
    lines = [f"{run.reaction.name} ({run.reaction.kind}, mappings: {run.reaction.source}) on "
             f"{run.slab.get_chemical_formula()}",
             f"  distinct valid states / placements: {species}; {len(run.initial_states)} initial and "
             f"{len(run.final_states)} final states, {len(run.pairs)} pairs",
             f"  model evaluations: {', '.join(f'{k} {v}' for k, v in run.evaluations.items())}",
             f"  {'band':>4} {'initial':<14} {'final':<14} {'Ea fwd':>7} {'Ea rev':>7} {'steps':>5} conv"]
    for i, band in enumerate(run.bands):
        r = band.result
        lines.append(f"  {i:>4} {'+'.join(band.pair.initial.sites):<14} {'+'.join(band.pair.final.sites):<14} "
                     f"{r.barrier_forward:>7.3f} {r.barrier_reverse:>7.3f} {r.steps:>5} "
                     f"{'yes' if r.converged else 'NO'}")
    best = run.best
    if best is not None:
        lines.append(f"  lowest barrier: {best.result.barrier_forward:.3f} eV (band {run.bands.index(best)}"
                     f"{'' if best.result.converged else ', NOT converged'})")
    return lines


def write_reaction(run: ReactionRun, out_dir: str | os.PathLike, plot: bool = False) -> dict[str, Path]:
    """Write `reaction.json`, `bands/band<i>/` for every band (`NEBResult.write`: band.extxyz and band.traj with
    every image's energy and forces, ts.extxyz, ts.traj, neb.json, with `plot` neb.png), `ts.extxyz` and
    `ts.traj` (the transition state of the lowest-barrier band) and, with `plot`, `reaction.png` (every band)
    and `ts.png`. Everything is written into a temporary folder inside `out_dir` and moved in at the end."""
    out = Path(out_dir)
    best = run.best
    records = [_band_record(i, band) for i, band in enumerate(run.bands)]
    summary = {"reaction": run.reaction.name, "kind": run.reaction.kind, "mappings_from": run.reaction.source,
               "slab": run.slab.get_chemical_formula(), "miller": run.slab.info.get("miller"),
               "species": run.species, "initial_states": len(run.initial_states),
               "final_states": len(run.final_states), "pairs": len(run.pairs), "evaluations": run.evaluations,
               "best_band": run.bands.index(best) if best else None,
               "lowest_barrier_eV": best.result.barrier_forward if best else None, "bands": records}
    names = [JSON_NAME, BANDS_DIR] + ([TS_NAME, TS_TRAJ_NAME] if best else []) + (
        [FIGURE_NAME] + ([TS_FIGURE_NAME] if best else []) if plot else [])
    if (out / BANDS_DIR).exists():
        shutil.rmtree(out / BANDS_DIR)  # a rerun into the same folder replaces the bands
    with staged_files(out, names) as staged:
        (staged / JSON_NAME).write_text(json.dumps(summary, indent=2))
        for i, band in enumerate(run.bands):
            band.result.write(staged / BANDS_DIR / f"band{i}", plot=plot)
        if best is not None:
            write_structures(staged / TS_NAME, best.result.ts, format="extxyz")
            write_structures(staged / TS_TRAJ_NAME, best.result.ts)
        if plot:
            plot_bands(run, staged / FIGURE_NAME)
            if best is not None:
                plot_ts(run, staged / TS_FIGURE_NAME)
    return {name: out / name for name in names}


def plot_bands(run: ReactionRun, path: str | os.PathLike) -> Path:
    """Energy along each band (relative to its initial state, eV) against the distance along it (Angstrom), the
    transition state of each band marked with its forward barrier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
    for i, band in enumerate(run.bands):
        r = band.result
        energies, x = r.energies - r.energies[0], r.path_length()
        line, = ax.plot(x, energies, "o-", label=f"band {i}: {r.barrier_forward:.2f} eV"
                        + ("" if r.converged else " (not converged)"))
        ax.annotate(f"{r.barrier_forward:.2f}", (x[r.ts_index], energies[r.ts_index]), textcoords="offset points",
                    xytext=(0, 6), ha="center", color=line.get_color())
        ax.plot([x[r.ts_index]], [energies[r.ts_index]], "*", ms=14, color=line.get_color())
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set(xlabel="distance along the band (Å)", ylabel="E - E(initial) (eV)",
           title=f"{run.reaction.name} on {run.slab.get_chemical_formula()}")
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_ts(run: ReactionRun, path: str | os.PathLike) -> Path:
    """Top and side views of the transition state of the lowest-barrier band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ase.visualize.plot import plot_atoms

    best = run.best
    fig, (top, side) = plt.subplots(1, 2, figsize=(8, 4), layout="constrained")
    plot_structure(best.result.ts, top, f"TS, {best.result.barrier_forward:.2f} eV above the initial state")
    plot_atoms(best.result.ts, side, radii=0.8, rotation="-90x")
    side.set(title="side view", xticks=[], yticks=[])
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
