"""Host-side checks that a structure is one a model can answer for, run before its graph is built.

- Form: atoms, atomic numbers 1..118, finite positions and cell, a cell that is not degenerate
  (`eqv2_calc.graph.check_atoms`, the checks graph building makes itself), run first so that the checks below
  only see well-formed structures.
- Elements: a registry entry that lists its training `elements` (the demo model: Cu Ag Au Ni Pd Pt Al H C
  N O) refuses structures holding others; `allow_untrained_elements=True` (`--allow-untrained-elements`)
  opts out. Entries without the list accept every Z below `max_num_elements` (checked at graph building).
- Distances: two atoms closer than `MIN_DISTANCE_FRACTION` times the sum of their covalent radii are
  refused. Nothing physical comes that close (bonds rarely fall below 0.8x the radii sum; H2: 0.74 A,
  1.2x); a model answers there from far outside its training data, with an energy that looks ordinary. Refused rather than warned about: a warning in an MD or relaxation loop is lost
  among thousands of steps, while the error names the pair and the distance.

These checks run on the CPU from `Atoms` (ASE's neighbour list), never inside the model's forward.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols, covalent_radii

from .errors import InvalidStructureError, UnsupportedElementError
from .graph import check_atoms
from .hub import ModelEntry

# Pairs closer than this fraction of their covalent radii sum (ASE `covalent_radii`) are refused.
MIN_DISTANCE_FRACTION = 0.5


def training_elements(entry: ModelEntry | None) -> frozenset[str] | None:
    """Elements a registered model was trained on (its entry's `elements`); None when the entry lists none."""
    if entry is None or entry.elements is None:
        return None
    return frozenset(entry.elements)


def check_elements(symbols: Iterable[str], entry: ModelEntry | None, what: str,
                   allow_untrained_elements: bool = False) -> None:
    """Refuse elements outside the training elements of `entry` (no check when it lists none or on opt-out).

    Raises:
        UnsupportedElementError: naming the elements, the model, what it was trained on and the opt-out.
    """
    known = training_elements(entry)
    if known is None or allow_untrained_elements:
        return
    unknown = sorted(set(symbols) - known, key=lambda s: atomic_numbers.get(s, 0))
    if unknown:
        raise UnsupportedElementError(
            f"{what} contains {', '.join(unknown)}, which {entry.name} was not trained on (it knows "
            f"{' '.join(entry.elements)}); its answer would be meaningless. Use a model trained on these "
            "elements, or pass allow_untrained_elements=True (--allow-untrained-elements) to compute anyway"
        )


def check_distances(atoms: Atoms, what: str) -> None:
    """Refuse two atoms (periodic images included) closer than `MIN_DISTANCE_FRACTION` x their radii sum.

    `atoms` must be well formed (`check_atoms`). The search runs in a Minkowski-reduced basis of the lattice
    (same lattice, so the same distances), after the shortest lattice vector (every atom's distance to its
    own nearest image) is checked: ASE's neighbour list takes minutes in a cell much thinner than its cutoff.

    Raises:
        InvalidStructureError: naming the closest such pair (indices, elements) and its distance in Angstrom.
    """
    from ase.geometry import minkowski_reduce
    from ase.neighborlist import neighbor_list

    radii = covalent_radii[atoms.numbers]
    reduced = atoms.copy()
    reduced.set_cell(minkowski_reduce(atoms.cell.complete(), pbc=atoms.pbc)[0])
    periods = np.linalg.norm(reduced.cell.array[reduced.pbc], axis=1)
    largest = int(np.argmax(radii))
    if len(periods) and periods.min() < 2 * MIN_DISTANCE_FRACTION * radii[largest]:
        _refuse_pair(atoms, largest, largest, float(periods.min()), what)
    i, j, d = neighbor_list("ijd", reduced, 2 * MIN_DISTANCE_FRACTION * float(radii.max()), self_interaction=False)
    short = d < MIN_DISTANCE_FRACTION * (radii[i] + radii[j])
    if short.any():
        k = int(np.argmin(np.where(short, d, np.inf)))
        _refuse_pair(atoms, *sorted((int(i[k]), int(j[k]))), float(d[k]), what)


def _refuse_pair(atoms: Atoms, a: int, b: int, distance: float, what: str) -> None:
    """Raise the `check_distances` error for atoms `a` <= `b` (the same atom: one and its periodic image)."""
    radii = covalent_radii[atoms.numbers]
    pair = f"{chemical_symbols[atoms.numbers[a]]}{a}-{chemical_symbols[atoms.numbers[b]]}{b}"
    image = " (one with a periodic image of the other)" if a == b else ""
    raise InvalidStructureError(
        f"{what}: atoms {pair}{image} are {distance:.3f} A apart, closer than {MIN_DISTANCE_FRACTION:g} x their "
        f"covalent radii sum ({MIN_DISTANCE_FRACTION * (radii[a] + radii[b]):.2f} A); no model answers "
        "meaningfully there: check the structure (overlapping or duplicated atoms, wrong units or cell?)"
    )


def structure_labels(labels: Iterable[str] | None, count: int) -> list[str]:
    """A name per structure for error messages: `labels` (e.g. "file.xyz:3"), or "structure i" when None.

    Raises:
        ValueError: `labels` does not hold one name per structure.
    """
    if labels is None:
        return [f"structure {i}" for i in range(count)]
    labels = list(labels)
    if len(labels) != count:
        raise ValueError(f"{len(labels)} labels for {count} structures")
    return labels


def labelled(exc: Exception, label: str) -> Exception:
    """The same kind of error with `label` (e.g. "file.xyz:3") naming the structure: a message about
    "structure ..." gets the label in that word's place, any other gets it in front."""
    message = str(exc)
    message = label + message[len("structure"):] if message.startswith("structure") else f"{label}: {message}"
    return type(exc)(message)


def check_structure(atoms: Atoms, entry: ModelEntry | None, what: str = "structure",
                    allow_untrained_elements: bool = False) -> None:
    """`check_atoms`, `check_elements` and `check_distances` of one structure.

    Raises:
        InvalidStructureError: the first problem found, `what` naming the structure.
    """
    check_atoms(atoms, what)
    check_elements(atoms.get_chemical_symbols(), entry, what, allow_untrained_elements)
    check_distances(atoms, what)
