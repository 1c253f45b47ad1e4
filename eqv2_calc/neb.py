"""Nudged elastic bands: many bands relaxed together, every moving image through the model in one call per step.

The NEB physics is ASE's own, not a new method: each band is an `ase.mep.NEB` (its tangents and spring
projections of the chosen method class: aseneb, improvedtangent, eb, spline, string; the climbing image; the
images' constraints such as FixAtoms; its force residual), stepped by an ASE optimizer (FIRE, BFGS, LBFGS,
MDMin) on that NEB. Only the energies and forces of the images come from elsewhere: before every step the
moving images of all bands still running are evaluated together (one model call, or memory-sized chunks of
atoms as `relax_many` makes them; on a CPU the structures of a call run side by side, `cpu_workers`) and
handed to the images as `SinglePointCalculator`s, which is all `NEB.get_forces` asks of them. A band thus
takes the same steps as ASE's optimizer on `ase.mep.NEB` with the calculator image by image (float round-off
of the batched call aside). The end points are evaluated once, in the first call.

Climbing image (`climb=True`): as CatTSunami's validation (and many ASE users) run it, a first stage without
climbing converges the band to `fmax + climb_delta_fmax`, then the highest image climbs until the NEB force
is below `fmax`; the optimizer (and its state) carries on from the first stage, as ASE's `opt.run` called
twice on the same optimizer. Convergence is ASE's: the largest row norm of the NEB forces of all moving
images (climbing image included), eV/Angstrom.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import ase.optimize
import numpy as np
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.geometry import find_mic
from ase.mep import NEB
from ase.optimize.optimize import Optimizer

from .batching import max_batch_atoms
from .cpu_workers import CpuWorkers
from .errors import NEBError
from .files import staged_files
from .potential import Potential, require_forces
from .predict import DEMO_MODEL, Prediction, evaluate, resolve_model
from .relax import DEFAULT_FMAX, DEFAULT_STEPS, frozen_copy
from .validation import check_structure

NEB_METHODS = ("improvedtangent", "aseneb", "eb", "spline", "string")  # ase.mep.neb.get_neb_method
NEB_OPTIMIZERS = ("FIRE", "BFGS", "LBFGS", "MDMin")  # ASE optimizers whose step() needs only the forces
INTERPOLATIONS = ("idpp", "linear")
DEFAULT_SPRING = 0.1  # eV/Angstrom^2, ASE's NEB default
# The first (non-climbing) stage converges to fmax + this, eV/Angstrom: CatTSunami's run_validation
# (--delta_fmax_climb 0.4 in its OC20NEB validation script).
DEFAULT_CLIMB_DELTA_FMAX = 0.4
CELL_TOLERANCE = 1e-6  # Angstrom: end points whose cell vectors differ by more are refused
BAND_FILES = ("band.extxyz", "band.traj", "ts.extxyz", "ts.traj", "neb.json")  # NEBResult.write
PLOT_FILE = "neb.png"


@dataclass
class NEBResult:
    """Outcome of one nudged elastic band.

    Attributes:
        images: the band, end points included, each a new `Atoms` with a `SinglePointCalculator` holding its
            energy (eV) and forces (eV/Angstrom, without constraints).
        energies: (n_images + 2,) energies along the band, eV.
        converged: the NEB force fell below `fmax` (in the climbing stage with `climb`) within `steps`.
        steps: optimizer steps taken.
        fmax: final NEB force, the largest row norm of the projected forces of the moving images, eV/Angstrom.
        fmaxes: the NEB force after every evaluation (steps + 1 entries; the climbing stage's from its start).
        climbed: the climbing stage was reached.
    """

    images: list[Atoms]
    energies: np.ndarray
    converged: bool
    steps: int
    fmax: float
    fmaxes: list[float] = field(default_factory=list)
    climbed: bool = False

    @property
    def ts_index(self) -> int:
        """Index of the highest image (the transition state), 0 .. n_images + 1."""
        return int(np.argmax(self.energies))

    @property
    def ts(self) -> Atoms:
        """The highest image (with its energy and forces)."""
        return self.images[self.ts_index]

    @property
    def barrier_forward(self) -> float:
        """Highest energy minus the initial state's, eV."""
        return float(self.energies.max() - self.energies[0])

    @property
    def barrier_reverse(self) -> float:
        """Highest energy minus the final state's, eV."""
        return float(self.energies.max() - self.energies[-1])

    @property
    def reaction_energy(self) -> float:
        """Final minus initial energy, eV."""
        return float(self.energies[-1] - self.energies[0])

    def path_length(self) -> np.ndarray:
        """(n_images + 2,) distance along the band from the initial state, Angstrom (minimum image convention)."""
        steps = [np.linalg.norm(find_mic(b.positions - a.positions, a.cell, a.pbc)[0])
                 for a, b in zip(self.images[:-1], self.images[1:])]
        return np.concatenate(([0.0], np.cumsum(steps)))

    def summary(self) -> dict:
        """The numbers of the band as plain JSON types (energies eV, forces eV/Angstrom)."""
        return {"barrier_forward_eV": self.barrier_forward, "barrier_reverse_eV": self.barrier_reverse,
                "reaction_energy_eV": self.reaction_energy, "ts_index": self.ts_index, "converged": self.converged,
                "climbed": self.climbed, "steps": self.steps, "fmax_eV_per_A": self.fmax,
                "energies_eV": self.energies.tolist(), "path_A": self.path_length().tolist()}

    def write(self, directory: str | os.PathLike, plot: bool = False) -> list[Path]:
        """Write `band.extxyz` and `band.traj` (every image with energy and forces), `ts.extxyz` and `ts.traj`
        (the highest image), `neb.json` (`summary`) and with `plot` `neb.png` into `directory` (created if
        needed). The files are made in a temporary folder inside it and moved in only when all are written.
        Returns the paths."""
        from .structures import write_structures

        out = Path(directory)
        names = list(BAND_FILES) + ([PLOT_FILE] if plot else [])
        with staged_files(out, names) as staged:
            for name in names[:2]:
                write_structures(staged / name, self.images)
            for name in names[2:4]:
                write_structures(staged / name, self.ts)
            (staged / names[4]).write_text(json.dumps(self.summary(), indent=2))
            if plot:
                self.plot(staged / PLOT_FILE)
        return [out / name for name in names]

    def plot(self, path: str | os.PathLike | None = None, title: str = ""):
        """Energy along the band (eV above the initial state, against the distance along the band in Angstrom)
        with the forward barrier marked, beside a top view of the transition state. Saves a PNG to `path` when
        given; returns the figure."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from ase.visualize.plot import plot_atoms

        fig, (ax_e, ax_ts) = plt.subplots(1, 2, figsize=(9.5, 3.8), layout="constrained",
                                          gridspec_kw={"width_ratios": [3, 2]})
        x, e = self.path_length(), self.energies - self.energies[0]
        ax_e.plot(x, e, "o-", color="tab:blue")
        ts = self.ts_index
        ax_e.plot(x[ts], e[ts], "*", ms=14, color="tab:red", label=f"TS (image {ts})")
        ax_e.annotate("", xy=(x[ts], e[ts]), xytext=(x[ts], 0.0), arrowprops={"arrowstyle": "<->", "color": "tab:red"})
        ax_e.text(x[ts], e[ts] / 2, f"  {self.barrier_forward:.3f} eV", color="tab:red", va="center")
        ax_e.axhline(0.0, color="0.5", lw=0.8, ls="--")
        state = "converged" if self.converged else "NOT converged"
        ax_e.set(xlabel="distance along the band (Å)", ylabel="E - E_initial (eV)",
                 title=title or f"NEB: {state}, {self.steps} steps, fmax {self.fmax:.3f} eV/Å")
        ax_e.legend(fontsize="small")
        plot_atoms(self.ts, ax_ts, radii=0.8)
        ax_ts.set(title=f"transition state ({self.ts.get_chemical_formula()})")
        ax_ts.set_axis_off()
        if path is not None:
            fig.savefig(path, dpi=120)
            plt.close(fig)
        return fig


def check_end_points(initial: Atoms, final: Atoms, what: tuple[str, str] = ("initial", "final")) -> None:
    """Refuse two states of a band that differ in atoms, atom order, cell or periodicity.

    Raises:
        NEBError: naming the first difference.
    """
    a, b = what
    if len(initial) != len(final):
        raise NEBError(f"the {a} state has {len(initial)} atoms and the {b} state {len(final)}: "
                       "the ends of a band need the same atoms in the same order")
    differ = np.nonzero(initial.numbers != final.numbers)[0]
    if len(differ):
        i = int(differ[0])
        same_atoms = sorted(initial.numbers) == sorted(final.numbers)
        raise NEBError(f"atom {i} is {initial[i].symbol} in the {a} state and {final[i].symbol} in the {b} state: "
                       + ("the same atoms in another order: reorder one file so that each index is the same "
                          "atom in both" if same_atoms else "the ends of a band need the same atoms in the same order"))
    if not np.array_equal(initial.pbc, final.pbc):
        raise NEBError(f"periodicity differs: pbc {initial.pbc.tolist()} in the {a} state, {final.pbc.tolist()} "
                       f"in the {b} state")
    gap = float(np.abs(np.array(initial.cell) - np.array(final.cell)).max())
    if gap > CELL_TOLERANCE:
        raise NEBError(f"the cells of the {a} and {b} states differ (by up to {gap:.3g} Å): an NEB moves atoms "
                       "in one fixed cell; relax both states in the same cell")


def interpolate_band(initial: Atoms, final: Atoms, n_images: int, method: str = "idpp") -> list[Atoms]:
    """A band of `n_images` moving images between two end points (ASE's interpolation, minimum image
    convention along periodic axes; "idpp": ASE's image-dependent pair potential, "linear": straight lines).

    The end points are checked (`check_end_points`) and copied with their constraints, without calculators;
    moving images are copies of `initial` (its constraints, tags and info) at the interpolated positions.
    Fixed atoms are interpolated like the others (they normally sit at the same place in both states).

    Returns:
        n_images + 2 new `Atoms`, end points included.

    Raises:
        NEBError: mismatched end points, `n_images` < 1 or an unknown `method`.
    """
    if int(n_images) != n_images or n_images < 1:
        raise NEBError(f"n_images={n_images}: a band needs at least 1 moving image")
    if method not in INTERPOLATIONS:
        raise NEBError(f"unknown interpolation {method!r}: use one of {', '.join(INTERPOLATIONS)}")
    check_end_points(initial, final)
    images = [initial.copy() for _ in range(int(n_images) + 1)] + [final.copy()]
    for image in images:
        image.calc = None
    band = NEB(images, method="improvedtangent")
    band.interpolate(method=method, mic=bool(initial.pbc.any()), apply_constraint=False)
    return images


def _check_band(images: Sequence[Atoms], what: str) -> None:
    if len(images) < 3:
        raise NEBError(f"{what} has {len(images)} images: a band needs both end points and at least 1 moving image")
    for i, image in enumerate(images[1:], start=1):
        check_end_points(images[0], image, (f"{what} image 0", f"image {i}"))


@dataclass
class _BandRun:
    """One band being relaxed: ASE's NEB on `images` (moving images carry the latest model results) and the
    ASE optimizer stepping it; `final_stage`: climbing (or no climbing asked), converging to the final fmax."""

    index: int
    images: list[Atoms]
    neb: NEB
    optimizer: Optimizer
    stage_fmax: float
    final_stage: bool
    fmaxes: list[float] = field(default_factory=list)

    def neb_fmax(self) -> float:
        """The NEB force of the band at its current images (ASE's projections), eV/Angstrom."""
        optimizable = self.optimizer.optimizable
        return float(optimizable.gradient_norm(optimizable.get_gradient()))

    def advance(self, fmax: float, steps: int) -> bool:
        """Check convergence as ASE's `Optimizer.irun` does, then take one optimizer step unless done.

        Returns True when the band is finished (converged, or `steps` taken)."""
        force = self.neb_fmax()
        if not self.final_stage and force < self.stage_fmax:  # first stage done: the highest image climbs
            self.neb.climb = True
            self.final_stage = True
            force = self.neb_fmax()
        self.fmaxes.append(force)
        if (self.final_stage and force < fmax) or self.optimizer.nsteps >= steps:
            return True
        self.optimizer.step()
        self.optimizer.nsteps += 1
        return False

    def result(self, fmax: float) -> NEBResult:
        frozen = [frozen_copy(image, image.calc.results["energy"], image.calc.results["forces"], None)
                  for image in self.images]
        energies = np.array([image.calc.results["energy"] for image in self.images])
        force = self.fmaxes[-1]
        return NEBResult(frozen, energies, bool(self.final_stage and force < fmax), int(self.optimizer.nsteps),
                         force, self.fmaxes, bool(self.neb.climb))


def _chunks(structures: list[Atoms], max_atoms: int) -> list[list[Atoms]]:
    """Consecutive groups of at most `max_atoms` atoms (a larger structure alone)."""
    groups: list[list[Atoms]] = [[]]
    for atoms in structures:
        if groups[-1] and sum(len(a) for a in groups[-1]) + len(atoms) > max_atoms:
            groups.append([])
        groups[-1].append(atoms)
    return groups


def run_nebs(
    bands: Sequence[Sequence[Atoms]],
    model: str | os.PathLike | Potential = DEMO_MODEL,
    *,
    climb: bool = True,
    fmax: float = DEFAULT_FMAX,
    steps: int = DEFAULT_STEPS,
    k: float = DEFAULT_SPRING,
    method: str = "improvedtangent",
    optimizer: str = "FIRE",
    climb_delta_fmax: float = DEFAULT_CLIMB_DELTA_FMAX,
    device: str | torch.device = "auto",
    dtype: torch.dtype = torch.float32,
    max_atoms: int | None = None,
    progress: bool = True,
    allow_untrained_elements: bool = False,
) -> list[NEBResult]:
    """Relax many nudged elastic bands together: every moving image of every running band in one model call
    per step (or chunks of at most `max_atoms` atoms).

    Args:
        bands: each a full image list, end points included (e.g. from `interpolate_band`); the same atoms in the
            same order, cell and pbc along a band (bands may differ from each other). Constraints of the images
            (FixAtoms) act as in ASE. The inputs are not modified.
        model: default the embedded demo model (EMT-trained, not DFT); a name, path or `Potential` with forces.
        climb: climbing image after a first stage without it (converged to `fmax + climb_delta_fmax`).
        fmax: convergence on the NEB force (largest row norm over the moving images), eV/Angstrom.
        steps: most optimizer steps per band, both stages together.
        k: spring constant, eV/Angstrom^2 (ASE's default 0.1).
        method: ASE's NEB method: improvedtangent (default), aseneb, eb, spline, string.
        optimizer: ASE optimizer stepping each band: FIRE (default), BFGS, LBFGS or MDMin, ASE's defaults.
        climb_delta_fmax: how much looser the first stage converges, eV/Angstrom (0.4, CatTSunami's).
        device, dtype: where and in which precision the model runs.
        max_atoms: at most this many atoms per model call; None: sized from the memory a call needs
            (`batching.max_batch_atoms`; on a CPU at most 256).
        progress: show a progress bar (on a terminal) of finished bands.
        allow_untrained_elements: compute elements outside the model's training elements instead of refusing.

    Returns:
        One `NEBResult` per band, in input order.

    Raises:
        NEBError: a band with mismatched images or fewer than 3, an unknown method or optimizer, a model
            without forces. InvalidStructureError: an image the model cannot take.
    """
    if method not in NEB_METHODS:
        raise NEBError(f"unknown NEB method {method!r}: use one of {', '.join(NEB_METHODS)}")
    if optimizer not in NEB_OPTIMIZERS:
        raise NEBError(f"optimizer={optimizer!r}: an NEB here runs one of {', '.join(NEB_OPTIMIZERS)}")
    if not fmax > 0 or climb_delta_fmax < 0:
        raise NEBError(f"fmax={fmax} must be > 0 and climb_delta_fmax={climb_delta_fmax} >= 0 (eV/Å)")
    if max_atoms is not None and max_atoms < 1:
        raise NEBError(f"max_atoms={max_atoms} must be at least 1")
    if not bands:
        raise NEBError("no bands given")
    from tqdm.auto import tqdm

    potential = resolve_model(model, device, dtype)
    require_forces(potential.implemented_properties, "an NEB")
    copies = []
    for b, band in enumerate(bands):
        what = f"band {b}" if len(bands) > 1 else "the band"
        _check_band(band, what)
        copies.append([image.copy() for image in band])
        for i, image in enumerate(copies[-1]):
            check_structure(image, potential.card.entry, f"{what} image {i}", allow_untrained_elements)
    optimizer_class = getattr(ase.optimize, optimizer)
    runs = []
    for b, images in enumerate(copies):
        neb = NEB(images, k=k, climb=False, method=method)
        runs.append(_BandRun(b, images, neb, optimizer_class(neb, logfile=None),
                             fmax + climb_delta_fmax if climb else fmax, final_stage=not climb))
    limit = max_atoms or max_batch_atoms(potential, max((img for band in copies for img in band), key=len))
    results: list[NEBResult | None] = [None] * len(runs)
    pending = [image for images in copies for image in (images[0], images[-1])]  # the ends, evaluated once
    active = runs
    run_chunk = partial(evaluate, potential)
    with (tqdm(total=len(runs), unit="band", disable=None if progress else True) as bar,
          CpuWorkers(potential) as workers):
        while active:
            structures = pending + [image for run in active for image in run.images[1:-1]]
            predictions: list[Prediction] = []
            for chunk in _chunks(structures, limit):
                predictions += workers.map(run_chunk, chunk)
            for image, p in zip(structures, predictions):
                image.calc = SinglePointCalculator(image, energy=p.energy, free_energy=p.energy, forces=p.forces)
            pending = []
            running = []
            for run in active:
                if run.advance(fmax, steps):
                    results[run.index] = run.result(fmax)
                    bar.update(1)
                else:
                    running.append(run)
            active = running
            if active:
                bar.set_postfix(step=max(r.optimizer.nsteps for r in active),
                                fmax=f"{max(r.fmaxes[-1] for r in active):.3f}", refresh=False)
    return results  # type: ignore[return-value]
