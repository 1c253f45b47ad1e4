"""Chunk tasks: what a model-holding worker runs on a list of structures.

A `Task` is a module-level function `fn(calc, structures, **params)` (`calc` the worker's
`EquiformerV2Calculator`: its `potential` (with its `card`), `device`) returning one `(row, Atoms)` pair per
structure: `row` a dict of table values (keys `Task.columns`; floats in eV, Angstrom), `Atoms` the
structure to keep (with a `SinglePointCalculator` holding its energy and forces) or None. `predict_task` and
`relax_task` wrap `eqv2_calc.predict.predict` and `eqv2_calc.relax.relax_many`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from ase import Atoms

from ..calculator import EquiformerV2Calculator
from ..predict import DEFAULT_BATCH_SIZE, STRESS_COLUMNS, predict
from ..relax import DEFAULT_FMAX, DEFAULT_RELAX_BATCH, DEFAULT_STEPS, frozen_copy, relax_many

ItemResult = tuple[dict[str, Any], Atoms | None]
DEFAULT_CHUNK_SIZE = 32  # structures per chunk: enough to fill a batch, small enough to retry cheaply
PREDICT_COLUMNS = ("energy_eV", "fmax_eV_per_A", *STRESS_COLUMNS)
RELAX_COLUMNS = ("energy_eV", "fmax_eV_per_A", "converged", "steps")


@dataclass(frozen=True)
class Task:
    """`fn(calc, structures, **params) -> list[ItemResult]`, run by a worker on each chunk.

    `fn` must be importable by name (a module-level function) so that Ray workers can unpickle it;
    `params` must be JSON-serialisable (they are part of the job's fingerprint); `chunk_size` is the
    work items per chunk that suits it (a job's default); `info_keys` the `Atoms.info` entries that are part
    of a work item (hashed into the job's fingerprint with the structure).
    """

    fn: Callable[..., list[ItemResult]]
    columns: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    chunk_size: int = DEFAULT_CHUNK_SIZE
    info_keys: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.fn.__module__}.{self.fn.__qualname__}"

    def __call__(self, calc: EquiformerV2Calculator, structures: Sequence[Atoms]) -> list[ItemResult]:
        return self.fn(calc, list(structures), **self.params)


def placement(calc: EquiformerV2Calculator) -> dict[str, torch.device | torch.dtype]:
    """The device and dtype the worker loaded its model with, so that workflows keep them."""
    return {"device": calc.device, "dtype": next(calc.potential.parameters()).dtype}


def predict_items(calc: EquiformerV2Calculator, structures: list[Atoms], *, batch_size: int,
                  allow_untrained_elements: bool = False) -> list[ItemResult]:
    """`predict` on one chunk: energy (eV), max force (eV/A), Voigt stress (eV/A^3, empty without one)."""
    out = []
    for atoms, p in zip(structures, predict(structures, calc.potential, batch_size=batch_size, progress=False,
                                            allow_untrained_elements=allow_untrained_elements, **placement(calc))):
        stress = p.stress.tolist() if p.stress is not None else [None] * len(STRESS_COLUMNS)
        row = {"energy_eV": p.energy, "fmax_eV_per_A": p.fmax,
               **dict(zip(STRESS_COLUMNS, stress))}
        out.append((row, frozen_copy(atoms, p.energy, p.forces, p.stress)))
    return out


def relax_items(calc: EquiformerV2Calculator, structures: list[Atoms], *, fmax: float, steps: int,
                relax_cell: bool, batch_size: int, allow_untrained_elements: bool = False) -> list[ItemResult]:
    """`relax_many` (batched FIRE) on one chunk: final energy (eV), max force (eV/A), converged, steps."""
    results = relax_many(structures, calc.potential, fmax=fmax, steps=steps, relax_cell=relax_cell,
                         batch_size=batch_size, progress=False, allow_untrained_elements=allow_untrained_elements,
                         **placement(calc))
    return [({"energy_eV": r.energy, "fmax_eV_per_A": r.fmax, "converged": r.converged, "steps": r.steps}, r.atoms)
            for r in results]


def _opt_out(allow_untrained_elements: bool) -> dict[str, bool]:
    """The task parameter of `--allow-untrained-elements`, only when set (so jobs without it keep their
    fingerprint)."""
    return {"allow_untrained_elements": True} if allow_untrained_elements else {}


def predict_task(batch_size: int = DEFAULT_BATCH_SIZE, allow_untrained_elements: bool = False) -> Task:
    """Energies, forces and stresses: `batch_size` structures per model call; structures with elements the
    model was not trained on are refused (their row holds the error) unless `allow_untrained_elements`."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    return Task(predict_items, PREDICT_COLUMNS, {"batch_size": batch_size, **_opt_out(allow_untrained_elements)})


def relax_task(fmax: float = DEFAULT_FMAX, steps: int = DEFAULT_STEPS, relax_cell: bool = False,
               batch_size: int = DEFAULT_RELAX_BATCH, allow_untrained_elements: bool = False) -> Task:
    """Batched FIRE relaxations to `fmax` eV/Angstrom within `steps` steps (see `relax_many`); elements as in
    `predict_task`."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    return Task(relax_items, RELAX_COLUMNS, {"fmax": fmax, "steps": steps, "relax_cell": relax_cell,
                                             "batch_size": batch_size, **_opt_out(allow_untrained_elements)})
