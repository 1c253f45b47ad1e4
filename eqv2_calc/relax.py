"""Relaxations: `relax` (one structure, any ASE optimizer) and `relax_many` (batched FIRE or LBFGS).

`relax` runs an ASE optimizer on the calculator (cell through `FrechetCellFilter`; FixAtoms and every
other ASE constraint act as usual). `relax_many` relaxes many structures with one model call per step
for a whole batch: the FIRE algorithm of ASE's `FIRE` (same parameters and step rule, with every norm
taken per structure) or ASE's `LBFGS` (each structure its own history), per-structure convergence,
fixed atoms masked, optional cell degrees of freedom (ASE `UnitCellFilter` coordinates: the deformation
gradient scaled by the atom count, driven by the virial -V * stress), and finished structures swapped out
for waiting ones so the batch stays full. On a CPU, the structures of a step are evaluated side by side
(`cpu_workers`).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from dataclasses import dataclass, field

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms
from ase.filters import FrechetCellFilter
from ase.optimize.optimize import Optimizer
from ase.stress import voigt_6_to_full_3x3_stress

from .calculator import as_calculator
from .cpu_workers import CpuWorkers
from .potential import Potential, require_forces
from .predict import DEMO_MODEL, evaluate, resolve_model
from .structures import StructureLike, to_atoms, to_atoms_list
from .validation import check_structure, structure_labels

# ASE FIRE defaults (ase/optimize/fire.py; Bitzek et al., PRL 97, 170201 (2006)): time step and its
# cap (ASE time units, unit masses), largest step per structure (Angstrom), steps before the time step
# grows, growth / shrink factors, initial mixing and its decay.
FIRE_DT, FIRE_DTMAX, FIRE_MAXSTEP = 0.1, 1.0, 0.2
FIRE_NMIN, FIRE_FINC, FIRE_FDEC = 5, 1.1, 0.5
FIRE_ASTART, FIRE_FA = 0.1, 0.99
# ASE LBFGS defaults (ase/optimize/lbfgs.py): largest step of an atom (Angstrom), steps remembered, step
# damping, initial inverse Hessian 1 / alpha (Angstrom^2 / eV).
LBFGS_MAXSTEP, LBFGS_MEMORY, LBFGS_DAMPING, LBFGS_ALPHA = 0.2, 100, 1.0, 70.0
BATCH_OPTIMIZERS = ("FIRE", "LBFGS")
DEFAULT_FMAX = 0.05  # eV/Angstrom
DEFAULT_STEPS = 500
DEFAULT_RELAX_BATCH = 32  # structures relaxed together by relax_many


@dataclass
class RelaxResult:
    """Outcome of one relaxation.

    Attributes:
        atoms: the relaxed structure (a new `Atoms`, constraints kept) with a `SinglePointCalculator`
            holding its final energy, forces (and stress).
        energy: final energy, eV.
        converged: max force (and cell force) fell below `fmax` within `steps`.
        steps: optimizer steps taken.
        fmax: final max force on free atoms (and cell rows when relaxing the cell), eV/Angstrom.
        energies, fmaxes: the same per evaluation (steps + 1 entries), for plots.
    """

    atoms: Atoms
    energy: float
    converged: bool
    steps: int
    fmax: float
    energies: list[float] = field(default_factory=list)
    fmaxes: list[float] = field(default_factory=list)


def _optimizer_class(optimizer: str | type[Optimizer]) -> type[Optimizer]:
    if isinstance(optimizer, type) and issubclass(optimizer, Optimizer):
        return optimizer
    import ase.optimize

    found = getattr(ase.optimize, str(optimizer), None)
    if not (isinstance(found, type) and issubclass(found, Optimizer)):
        names = sorted(n for n in dir(ase.optimize) if isinstance(getattr(ase.optimize, n), type)
                       and issubclass(getattr(ase.optimize, n), Optimizer) and n != "Optimizer")
        raise ValueError(f"unknown optimizer {optimizer!r}: use one of {', '.join(names)} or an ASE Optimizer class")
    return found


def _check_cell_relaxation(atoms: Atoms, properties: Iterable[str]) -> None:
    if "stress" not in properties:
        raise ValueError("relax_cell needs a model that predicts stress; this one does not")
    if not atoms.pbc.all():
        raise ValueError(f"relax_cell needs a structure periodic along all three axes, got pbc={atoms.pbc.tolist()}")


def frozen_copy(atoms: Atoms, energy: float, forces: np.ndarray | None, stress: np.ndarray | None) -> Atoms:
    """A copy of `atoms` carrying its final results in a `SinglePointCalculator` (forces None: left out)."""
    out = atoms.copy()
    results = {"energy": energy, "free_energy": energy}
    if forces is not None:
        results["forces"] = forces
    if stress is not None:
        results["stress"] = stress
    out.calc = SinglePointCalculator(out, **results)
    return out


def relax(
    atoms: StructureLike,
    model: str | os.PathLike | Potential | Calculator = DEMO_MODEL,
    *,
    fmax: float = DEFAULT_FMAX,
    steps: int = DEFAULT_STEPS,
    optimizer: str | type[Optimizer] = "BFGS",
    relax_cell: bool = False,
    trajectory: str | os.PathLike | None = None,
    logfile: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    allow_untrained_elements: bool = False,
    **optimizer_kwargs,
) -> RelaxResult:
    """Relax one structure with an ASE optimizer; the input is not modified.

    Args:
        atoms: `Atoms` (its constraints apply), pymatgen `Structure`/`Molecule`, or a file (last frame).
        model: default the embedded demo model (EMT-trained, not DFT); a name, path, `Potential` or any
            ASE calculator.
        fmax: convergence threshold on the max force, eV/Angstrom (on cell forces too with `relax_cell`).
        steps: most optimizer steps.
        optimizer: "BFGS", "FIRE", "LBFGS", any name in `ase.optimize`, or an ASE `Optimizer` class.
        relax_cell: also relax the cell (`FrechetCellFilter`; needs a stress-predicting model).
        trajectory, logfile: passed to the optimizer (`logfile="-"`: stdout; None: silent).
        device: for a model given by name or path.
        allow_untrained_elements: for a model given by name or path: compute elements outside its training
            elements instead of refusing them (a calculator passed as `model` keeps its own setting).
        optimizer_kwargs: more optimizer arguments (e.g. `maxstep`).
    """
    atoms = to_atoms(atoms)
    atoms.calc = as_calculator(model, device, allow_untrained_elements=allow_untrained_elements)
    require_forces(atoms.calc.implemented_properties, "relax")
    if relax_cell:
        _check_cell_relaxation(atoms, atoms.calc.implemented_properties)
    target = FrechetCellFilter(atoms) if relax_cell else atoms
    opt = _optimizer_class(optimizer)(target, trajectory=trajectory, logfile=logfile, **optimizer_kwargs)
    energies, fmaxes = [], []

    def record() -> None:
        energies.append(float(atoms.get_potential_energy()))
        fmaxes.append(float(np.linalg.norm(target.get_forces(), axis=1).max()))

    opt.attach(record, interval=1)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    stress = atoms.get_stress() if "stress" in atoms.calc.results else None
    final = frozen_copy(atoms, energies[-1], atoms.get_forces(apply_constraint=False), stress)
    return RelaxResult(final, energies[-1], converged, int(opt.nsteps), fmaxes[-1], energies, fmaxes)


def _free_atoms(atoms: Atoms, what: str) -> np.ndarray:
    """(N,) bool mask of atoms not held by FixAtoms; other constraints are refused."""
    free = np.ones(len(atoms), dtype=bool)
    for constraint in atoms.constraints:
        if not isinstance(constraint, FixAtoms):
            raise ValueError(
                f"{what}: relax_many supports FixAtoms constraints only, found {type(constraint).__name__}; "
                "use relax() for other ASE constraints"
            )
        free[constraint.get_indices()] = False
    return free


@dataclass
class _LbfgsMemory:
    """ASE `LBFGS` state of one structure: the last `LBFGS_MEMORY` steps `s`, force changes `y` and their
    1 / (y . s), and the previous point and forces (flattened generalized coordinates, Angstrom and eV/Angstrom)."""

    s: deque = field(default_factory=lambda: deque(maxlen=LBFGS_MEMORY))
    y: deque = field(default_factory=lambda: deque(maxlen=LBFGS_MEMORY))
    rho: deque = field(default_factory=lambda: deque(maxlen=LBFGS_MEMORY))
    r0: np.ndarray | None = None
    f0: np.ndarray | None = None

    def step(self, r: np.ndarray, f: np.ndarray) -> np.ndarray:
        """The displacement from coordinates `r` ((k, 3) rows: atoms, then cell rows) under forces `f`:
        two-loop recursion, then the longest row scaled to at most `LBFGS_MAXSTEP`, times the damping."""
        r, f = r.reshape(-1), f.reshape(-1)
        if self.r0 is not None:
            s0, y0 = r - self.r0, self.f0 - f
            curvature = float(y0 @ s0)
            if curvature != 0.0:  # ASE divides by it unguarded; a zero step (nothing moved) carries no curvature
                self.s.append(s0)
                self.y.append(y0)
                self.rho.append(1.0 / curvature)
        q = -f
        alphas = []
        for s_i, y_i, rho_i in zip(reversed(self.s), reversed(self.y), reversed(self.rho)):
            alphas.append(rho_i * (s_i @ q))
            q = q - alphas[-1] * y_i
        z = q / LBFGS_ALPHA
        for s_i, y_i, rho_i, a_i in zip(self.s, self.y, self.rho, reversed(alphas)):
            z = z + s_i * (a_i - rho_i * (y_i @ z))
        dr = -z.reshape(-1, 3)
        longest = np.linalg.norm(dr, axis=1).max(initial=0.0)
        if longest >= LBFGS_MAXSTEP:
            dr = dr * (LBFGS_MAXSTEP / longest)
        self.r0, self.f0 = r, f
        return dr * LBFGS_DAMPING


@dataclass
class _RelaxBatch:
    """Optimizer state of the structures being relaxed (tensors concatenated over structures, float64, CPU).

    Per atom (N total): `x` positions in the reference cell frame (Angstrom; the real positions are
    `x @ D^T` with D the deformation gradient), `v` FIRE velocities, `free` (N, 1) 1 for movable atoms.
    Per structure (B): `index` into the input list, `atoms`, `natoms`, `g` (B, 3, 3) = cell_factor * D,
    `vg` its velocity, `ref_cell`, `cell_factor` (= natoms, ASE's default), `dt`, `a`, `n_pos` (FIRE
    counters), `steps`, `energies`, `fmaxes` (histories), `lbfgs` (per structure, with the LBFGS optimizer).
    """

    relax_cell: bool
    optimizer: str = "FIRE"
    index: list[int] = field(default_factory=list)
    atoms: list[Atoms] = field(default_factory=list)
    energies: list[list[float]] = field(default_factory=list)
    fmaxes: list[list[float]] = field(default_factory=list)
    lbfgs: list[_LbfgsMemory] = field(default_factory=list)
    x: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 3, dtype=torch.float64))
    v: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 3, dtype=torch.float64))
    free: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 1, dtype=torch.float64))
    natoms: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    g: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 3, 3, dtype=torch.float64))
    vg: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 3, 3, dtype=torch.float64))
    ref_cell: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 3, 3, dtype=torch.float64))
    dt: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.float64))
    a: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.float64))
    n_pos: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    steps: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    _PER_ATOM = ("x", "v", "free")
    _PER_STRUCTURE = ("natoms", "g", "vg", "ref_cell", "dt", "a", "n_pos", "steps")

    def __len__(self) -> int:
        return len(self.index)

    @property
    def batch(self) -> torch.Tensor:
        return torch.repeat_interleave(torch.arange(len(self)), self.natoms)

    @property
    def deform(self) -> torch.Tensor:
        """(B, 3, 3) deformation gradient D (identity without cell relaxation)."""
        return self.g / self.natoms.view(-1, 1, 1)

    def add(self, index: int, atoms: Atoms, free: np.ndarray) -> None:
        n = len(atoms)
        new = {
            "x": torch.from_numpy(atoms.get_positions()), "v": torch.zeros(n, 3, dtype=torch.float64),
            "free": torch.from_numpy(free.astype(np.float64)).view(-1, 1),
            "natoms": torch.tensor([n]), "g": n * torch.eye(3, dtype=torch.float64).unsqueeze(0),
            "vg": torch.zeros(1, 3, 3, dtype=torch.float64),
            "ref_cell": torch.from_numpy(np.array(atoms.get_cell())).unsqueeze(0),
            "dt": torch.tensor([FIRE_DT], dtype=torch.float64), "a": torch.tensor([FIRE_ASTART], dtype=torch.float64),
            "n_pos": torch.zeros(1, dtype=torch.long), "steps": torch.zeros(1, dtype=torch.long),
        }
        for name, tensor in new.items():
            setattr(self, name, torch.cat((getattr(self, name), tensor)))
        self.index.append(index)
        self.atoms.append(atoms)
        self.energies.append([])
        self.fmaxes.append([])
        self.lbfgs.append(_LbfgsMemory())

    def keep(self, mask: torch.Tensor) -> None:
        """Keep only the structures where the (B,) bool `mask` is True."""
        atom_mask = mask[self.batch]
        for name in self._PER_ATOM:
            setattr(self, name, getattr(self, name)[atom_mask])
        for name in self._PER_STRUCTURE:
            setattr(self, name, getattr(self, name)[mask])
        for name in ("index", "atoms", "energies", "fmaxes", "lbfgs"):
            setattr(self, name, [item for item, k in zip(getattr(self, name), mask.tolist()) if k])

    def sync_atoms(self) -> list[Atoms]:
        """Write the current cells and positions into the `Atoms` objects and return them."""
        deform_t = self.deform.transpose(1, 2)
        cells = (self.ref_cell @ deform_t).numpy()
        positions = torch.bmm(self.x.unsqueeze(1), deform_t[self.batch]).squeeze(1).numpy()
        start = 0
        for b, atoms in enumerate(self.atoms):
            if self.relax_cell:
                atoms.set_cell(cells[b])
            atoms.positions = positions[start : start + len(atoms)]
            start += len(atoms)
        return self.atoms

    def generalized_forces(self, forces: torch.Tensor, stress: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Forces on `x` ((N, 3), zero on fixed atoms) and on `g` ((B, 3, 3); zero without cell relaxation).

        `forces`: (N, 3) eV/Angstrom; `stress`: (B, 3, 3) eV/Angstrom^3 (ASE `UnitCellFilter` formulas).
        """
        deform = self.deform
        fx = torch.bmm(forces.unsqueeze(1), deform[self.batch]).squeeze(1) * self.free
        if not self.relax_cell:
            return fx, torch.zeros_like(self.g)
        cells = self.ref_cell @ deform.transpose(1, 2)
        volume = torch.linalg.det(cells).abs().view(-1, 1, 1)
        virial = -volume * stress
        virial = torch.linalg.solve(deform, virial.transpose(1, 2)).transpose(1, 2)
        return fx, virial / self.natoms.view(-1, 1, 1)

    def max_force(self, fx: torch.Tensor, fg: torch.Tensor) -> torch.Tensor:
        """(B,) largest row norm of the generalized forces (free atoms and cell rows), eV/Angstrom."""
        per_atom = torch.linalg.vector_norm(fx, dim=1)
        largest = torch.zeros(len(self), dtype=fx.dtype).scatter_reduce(0, self.batch, per_atom, "amax")
        return torch.maximum(largest, torch.linalg.vector_norm(fg, dim=2).amax(dim=1))

    def step(self, fx: torch.Tensor, fg: torch.Tensor) -> None:
        """One optimizer step of every structure under generalized forces `fx` (N, 3) and `fg` (B, 3, 3)."""
        if self.optimizer == "LBFGS":
            self._lbfgs_step(fx, fg)
        else:
            self._fire_step(fx, fg)
        self.steps = self.steps + 1

    def _lbfgs_step(self, fx: torch.Tensor, fg: torch.Tensor) -> None:
        """ASE `LBFGS.step` of each structure on its atoms' and (zero without cell relaxation) cell rows."""
        dx, dg = torch.zeros_like(self.x), torch.zeros_like(self.g)
        start = 0
        for b, (memory, n) in enumerate(zip(self.lbfgs, self.natoms.tolist())):
            r = torch.cat((self.x[start : start + n], self.g[b])).numpy()
            f = torch.cat((fx[start : start + n], fg[b])).numpy()
            dr = torch.from_numpy(memory.step(r, f))
            dx[start : start + n], dg[b] = dr[:n], dr[n:]
            start += n
        self.x = self.x + dx * self.free
        self.g = self.g + dg

    def _fire_step(self, fx: torch.Tensor, fg: torch.Tensor) -> None:
        """One FIRE step of every structure (ASE `FIRE.step` with per-structure norms)."""
        batch = self.batch

        def per_structure(atom_term: torch.Tensor, cell_term: torch.Tensor) -> torch.Tensor:
            total = torch.zeros(len(self), dtype=atom_term.dtype).index_add(0, batch, atom_term.sum(dim=1))
            return total + cell_term.sum(dim=(1, 2))

        started = self.steps > 0  # ASE: the first step only accelerates from rest
        vf = per_structure(self.v * fx, self.vg * fg)
        f_norm = per_structure(fx * fx, fg * fg).sqrt()
        v_norm = per_structure(self.v * self.v, self.vg * self.vg).sqrt()
        downhill = started & (vf > 0)
        reset = started & ~downhill
        mix = torch.where(downhill, self.a, 0.0)
        scale = torch.where(f_norm > 0, v_norm / f_norm, 0.0) * mix
        self.v = (1 - mix)[batch, None] * self.v + scale[batch, None] * fx
        self.vg = (1 - mix).view(-1, 1, 1) * self.vg + scale.view(-1, 1, 1) * fg
        grow = downhill & (self.n_pos > FIRE_NMIN)
        self.dt = torch.where(grow, torch.clamp(self.dt * FIRE_FINC, max=FIRE_DTMAX), self.dt)
        self.a = torch.where(grow, self.a * FIRE_FA, self.a)
        self.n_pos = torch.where(downhill, self.n_pos + 1, self.n_pos)
        self.v = self.v * (~reset)[batch, None]
        self.vg = self.vg * (~reset).view(-1, 1, 1)
        self.a = torch.where(reset, FIRE_ASTART, self.a)
        self.dt = torch.where(reset, self.dt * FIRE_FDEC, self.dt)
        self.n_pos = torch.where(reset, 0, self.n_pos)

        self.v = self.v + self.dt[batch, None] * fx
        self.vg = self.vg + self.dt.view(-1, 1, 1) * fg
        dx, dg = self.dt[batch, None] * self.v, self.dt.view(-1, 1, 1) * self.vg
        dr_norm = per_structure(dx * dx, dg * dg).sqrt()
        shrink = torch.where(dr_norm > FIRE_MAXSTEP, FIRE_MAXSTEP / dr_norm, 1.0)
        self.x = self.x + shrink[batch, None] * dx
        self.g = self.g + shrink.view(-1, 1, 1) * dg


def relax_many(
    structures: StructureLike | Iterable[StructureLike],
    model: str | os.PathLike | Potential = DEMO_MODEL,
    *,
    fmax: float = DEFAULT_FMAX,
    steps: int = DEFAULT_STEPS,
    relax_cell: bool = False,
    optimizer: str = "FIRE",
    batch_size: int = DEFAULT_RELAX_BATCH,
    device: str | torch.device = "auto",
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
    callback: Callable[[int, RelaxResult], None] | None = None,
    max_atoms: int | None = None,
    labels: Sequence[str] | None = None,
    allow_untrained_elements: bool = False,
) -> list[RelaxResult]:
    """Relax many structures together with a batched FIRE or LBFGS: one model call per step for the whole batch.

    Args:
        structures: `Atoms` (FixAtoms respected; other constraints are refused), pymatgen structures, files,
            or an iterable of them. The inputs are not modified.
        model: default the embedded demo model (EMT-trained, not DFT); a name, path or `Potential`.
        fmax: per-structure convergence on the max force of free atoms (and cell rows), eV/Angstrom.
        steps: most FIRE steps per structure; a structure that reaches it is returned with converged=False.
        relax_cell: also relax each cell (needs a stress-predicting model and fully periodic structures).
        optimizer: "FIRE" (ASE's FIRE) or "LBFGS" (ASE's LBFGS, as AdsorbML relaxed; fewer steps to a tight
            fmax on adsorbate slabs: 52 instead of 87 for *CO on Cu(111), demo model).
        batch_size: structures evaluated together; finished ones are replaced by waiting ones. On a CPU the
            structures of a step are split over PyTorch's threads, one intra-op thread each (`cpu_workers`).
        max_atoms: also at most this many atoms per model call (a structure larger than it runs alone);
            `eqv2_calc.batching.max_batch_atoms` sizes it from memory. None: no limit.
        device, dtype: where and in which precision the model runs.
        progress: show a progress bar (on a terminal) of finished structures, with how many converged.
        callback: called as `callback(i, result)` when structure i finishes.
        labels: a name per structure for error messages (e.g. "file.xyz:3"); default "structure i".
        allow_untrained_elements: compute elements outside the model's training elements instead of refusing.

    Returns:
        One `RelaxResult` per input structure, in input order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    if optimizer not in BATCH_OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r}: relax_many runs one of {', '.join(BATCH_OPTIMIZERS)}")
    if max_atoms is not None and max_atoms < 1:
        raise ValueError(f"max_atoms={max_atoms} must be at least 1")
    from tqdm.auto import tqdm

    atoms_list = to_atoms_list(structures)
    labels = structure_labels(labels, len(atoms_list))
    potential = resolve_model(model, device, dtype)
    require_forces(potential.implemented_properties, "relax_many")
    for atoms, label in zip(atoms_list, labels):  # at the start; the FIRE steps do not check distances again
        check_structure(atoms, potential.card.entry, label, allow_untrained_elements)
    free = [_free_atoms(atoms, label) for atoms, label in zip(atoms_list, labels)]
    if relax_cell:
        for atoms in atoms_list:
            _check_cell_relaxation(atoms, potential.implemented_properties)
    waiting = deque(range(len(atoms_list)))
    results: list[RelaxResult | None] = [None] * len(atoms_list)
    state = _RelaxBatch(relax_cell, optimizer)
    limit = max_atoms or sum(len(a) for a in atoms_list)
    converged_count = 0
    with (tqdm(total=len(atoms_list), unit="structure", disable=None if progress else True) as bar,
          CpuWorkers(potential) as workers):
        while waiting or len(state):
            while waiting and len(state) < batch_size and (
                    not len(state) or int(state.natoms.sum()) + len(atoms_list[waiting[0]]) <= limit):
                i = waiting.popleft()
                state.add(i, atoms_list[i], free[i])
            predictions = workers.map(partial(evaluate, potential), state.sync_atoms())
            forces = torch.from_numpy(np.concatenate([p.forces for p in predictions]))
            stress = (torch.from_numpy(np.stack([voigt_6_to_full_3x3_stress(p.stress) for p in predictions]))
                      if relax_cell else None)
            fx, fg = state.generalized_forces(forces, stress)
            largest = state.max_force(fx, fg)
            converged = largest < fmax
            for b, p in enumerate(predictions):
                state.energies[b].append(p.energy)
                state.fmaxes[b].append(float(largest[b]))
            done = converged | (state.steps >= steps)
            for b in torch.nonzero(done).view(-1).tolist():
                p = predictions[b]
                result = RelaxResult(frozen_copy(state.atoms[b], p.energy, p.forces, p.stress), p.energy,
                                     bool(converged[b]), int(state.steps[b]), float(largest[b]),
                                     state.energies[b], state.fmaxes[b])
                results[state.index[b]] = result
                if callback is not None:
                    callback(state.index[b], result)
                converged_count += result.converged
                bar.set_postfix(converged=converged_count, refresh=False)
                bar.update(1)
            keep = ~done
            fx, fg = fx[keep[state.batch]], fg[keep]
            state.keep(keep)
            state.step(fx, fg)
    return results  # type: ignore[return-value]


def plot_relaxation(results: Iterable[RelaxResult], axes: tuple | None = None, path: str | os.PathLike | None = None):
    """Energy (eV) and max force (eV/Angstrom, log scale) per step of one or more relaxations.

    Draws on `axes` (two matplotlib axes) or a new figure; saves a PNG to `path` when given. Returns the figure.
    """
    import matplotlib

    if axes is None:
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
    ax_e, ax_f = axes
    for i, r in enumerate(results):
        ax_e.plot(r.energies, label=f"{i}: {r.atoms.get_chemical_formula()}")
        ax_f.semilogy(r.fmaxes)
    ax_e.set(xlabel="step", ylabel="energy (eV)", title="relaxation")
    ax_f.set(xlabel="step", ylabel="max force (eV/Å)", title="convergence")
    if len(ax_e.lines) <= 10:
        ax_e.legend(fontsize="small")
    fig = ax_e.figure
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
