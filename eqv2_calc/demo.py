"""`eqv2 demo`: the package's main jobs on a fresh machine with the embedded demo model, in under a minute.

Each section runs one workflow, prints what a user wants to see and draws one row (two panels) of the
summary figure `eqv2_demo.png`: a relaxation, an MD run and a small AdsorbML adsorbate screen. Add a
workflow by appending a section maker to `SECTIONS`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import add_adsorbate, bulk, fcc111
from ase.calculators.calculator import Calculator
from ase.constraints import FixAtoms

from .adsorbml.adsorbates import get_adsorbate
from .calculator import EquiformerV2Calculator
from .md import plot_md, run_md
from .predict import DEMO_MODEL
from .relax import plot_relaxation, relax

DEMO_NOTICE = (
    "Note: the demo model eqV2-demo-EMT is a small EquiformerV2 trained on ASE EMT (effective-medium theory) "
    "labels, not on DFT: its numbers demonstrate the workflows, they are not predictions of real chemistry."
)
FIGURE_NAME = "eqv2_demo.png"
# CO on Cu(111): 3x3 surface cell, 3 layers (bottom one fixed), 8 Angstrom vacuum, CO C-down on top, C 2.0 Angstrom up.
RELAX_FMAX = 0.05  # eV/Angstrom
RELAX_STEPS = 200
# Cu(111) slab MD: NVE from 300 K Maxwell-Boltzmann velocities, 1 fs steps.
MD_TEMPERATURE_K, MD_TIMESTEP_FS, MD_STEPS, MD_LOGINTERVAL = 300.0, 1.0, 100, 5
# Adsorbate screen: *O on Cu(111) cut from bulk Cu (EMT lattice constant, Angstrom) as a 3x3 cell of
# 3 layers with 8 A vacuum (a thin, CPU-sized version of OC20's slabs), heuristic sites + 4 random placements.
SCREEN_ADSORBATE = "*O"
SCREEN_CU_LATTICE_A = 3.59
SCREEN_SLAB_SIZE_A, SCREEN_VACUUM_A, SCREEN_MIN_AB_A = 5.0, 8.0, 7.0
SCREEN_NUM_RANDOM, SCREEN_TOP_K = 4, 3


@dataclass
class DemoSection:
    """One demo workflow: a title, the lines it printed, and a function drawing it on two matplotlib axes."""

    title: str
    lines: list[str]
    draw: Callable[[tuple], None]


def co_on_cu111() -> Atoms:
    """CO C-down on top of a Cu(111) 3x3x3 slab with its bottom layer fixed; C and O are the last two atoms."""
    slab = fcc111("Cu", size=(3, 3, 3), vacuum=8.0)
    add_adsorbate(slab, get_adsorbate("*CO").atoms, 2.0, "ontop")  # C at the anchor, O above (ase's molecule("CO") is O first)
    slab.set_constraint(FixAtoms(indices=[atom.index for atom in slab if atom.tag == 3]))
    return slab


def relax_section(calc: Calculator) -> DemoSection:
    """Relax CO on Cu(111) with BFGS; report energy, steps, the C-O / Cu-C bond lengths and the C height."""
    result = relax(co_on_cu111(), calc, fmax=RELAX_FMAX, steps=RELAX_STEPS)
    atoms = result.atoms
    carbon, oxygen = atoms.symbols.search("C")[0], atoms.symbols.search("O")[0]
    copper = atoms.symbols.search("Cu")
    cu_c = atoms.get_distances(carbon, copper, mic=True).min()
    height = atoms.positions[carbon, 2] - atoms.positions[copper, 2].max()
    lines = [
        f"relaxed energy {result.energy:.4f} eV after {result.steps} BFGS steps "
        f"({'converged' if result.converged else 'NOT converged'}, max force {result.fmax:.3f} eV/A)",
        f"C-O {atoms.get_distance(carbon, oxygen):.3f} A, Cu-C {cu_c:.3f} A, C {height:.3f} A above the top Cu",
    ]
    return DemoSection("CO on Cu(111): relaxation", lines, lambda axes: plot_relaxation([result], axes))


def md_section(calc: Calculator) -> DemoSection:
    """NVE MD of a Cu(111) slab from 300 K; report energy drift and mean temperature."""
    slab = fcc111("Cu", size=(3, 3, 3), vacuum=8.0)
    result = run_md(slab, calc, ensemble="nve", temperature_K=MD_TEMPERATURE_K, timestep_fs=MD_TIMESTEP_FS,
                    steps=MD_STEPS, loginterval=MD_LOGINTERVAL)
    temperatures = np.array([f.temperature_K for f in result.log])
    lines = [
        f"{MD_STEPS} NVE steps of {MD_TIMESTEP_FS:g} fs: energy drift {1000 * result.energy_drift_eV_per_atom:+.3f} "
        f"meV/atom, temperature {temperatures.mean():.0f} +- {temperatures.std():.0f} K",
    ]
    return DemoSection("Cu(111) slab: molecular dynamics", lines, lambda axes: plot_md(result, axes))


def adsorbate_screen_section(calc: Calculator, out_dir: Path) -> DemoSection:
    """A small AdsorbML screen: *O on a 3x3x3 Cu(111) slab, heuristic sites plus a few random placements,
    relaxed together with `relax_many`; results and plot written to `out_dir/adsorbml`."""
    from .adsorbml import SlabSettings, build_slabs, screen, summary_lines, write_results
    from .adsorbml.report import plot_energies, plot_structure

    title = f"{SCREEN_ADSORBATE} on Cu(111): a small adsorbate screen (AdsorbML)"
    if not isinstance(calc, EquiformerV2Calculator):  # relax_many batches EquiformerV2 models only
        return DemoSection(title, [f"skipped: needs an EquiformerV2 model, not {type(calc).__name__}"],
                           lambda axes: [ax.axis("off") for ax in axes])
    settings = SlabSettings(SCREEN_SLAB_SIZE_A, SCREEN_VACUUM_A, SCREEN_MIN_AB_A)
    slab = build_slabs(bulk("Cu", "fcc", a=SCREEN_CU_LATTICE_A), (1, 1, 1), settings=settings)[0]
    system = screen(slab, SCREEN_ADSORBATE, calc, num_random=SCREEN_NUM_RANDOM, fmax=RELAX_FMAX, steps=RELAX_STEPS,
                    progress=False)[0]
    paths = write_results([system], out_dir / "adsorbml", top_k=SCREEN_TOP_K)
    lines = summary_lines([system], SCREEN_TOP_K) + [f"results: {paths['csv']}, plot: {paths['figure']}"]
    best = system.best

    def draw(axes: tuple) -> None:
        plot_energies(system, axes[0])
        if best is not None:
            plot_structure(best.atoms, axes[1], f"best: {best.placement.site.kind} site")

    return DemoSection(title, lines, draw)


# The demo's workflows, in order; each gets the calculator and the output directory.
SECTIONS: list[Callable[[Calculator, Path], DemoSection]] = [
    lambda calc, out_dir: relax_section(calc),
    lambda calc, out_dir: md_section(calc),
    adsorbate_screen_section,
]


def run_demo(
    out_dir: str | os.PathLike = ".",
    model: str | os.PathLike | Calculator = DEMO_MODEL,
    device: str = "auto",
    echo: Callable[[str], None] = print,
) -> Path:
    """Run every section of `SECTIONS`, print their results and save the summary figure; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    echo(DEMO_NOTICE)
    calc = model if isinstance(model, Calculator) else EquiformerV2Calculator(model, device=device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = []
    for make in SECTIONS:
        section = make(calc, out_dir)
        echo(f"\n== {section.title}")
        for line in section.lines:
            echo(f"   {line}")
        sections.append(section)
    fig, axes = plt.subplots(len(sections), 2, figsize=(10, 3.6 * len(sections)), layout="constrained", squeeze=False)
    for section, row in zip(sections, axes):
        section.draw(tuple(row))
    fig.suptitle("eqv2 demo (EMT-trained demo model, not DFT)")
    path = out_dir / FIGURE_NAME
    fig.savefig(path, dpi=120)
    plt.close(fig)
    echo(f"\nplot: {path}")
    return path
