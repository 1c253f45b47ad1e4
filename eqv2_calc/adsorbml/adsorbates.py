"""Adsorbates: the OC20 library (all 86 of fairchem-data-oc's database, geometry + binding atoms) and user molecules.

Every `Adsorbate` is stored with its first binding atom at the origin and the rest of the molecule
pointing up (+z), so that a placement only has to spin and tilt it (`placement.py`); a bidentate one
(`*CH2*O`, `*CH*CH`, ...) lies with both binding atoms at z = 0 and the rest above. Names follow OC20
(`*CO`, `*OH2`, `*OCH2CH3`, `CH2*CO`, ...); the leading `*` is optional.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from ase import Atoms

from ..errors import AdsorbateError
from ..structures import to_atoms

# The OC20 adsorbates (86: index, name, symbols, positions, binding atoms), converted once from
# fairchem-data-oc's database by tools/convert_oc20_adsorbates.py (source, version and license in the file).
OC20_FILE = Path(__file__).with_name("data") / "oc20_adsorbates.json"
# Ours, not in OC20: *NNH (N-bound end-on; bond lengths N=N 1.20, N-H 1.03 Angstrom, 120 degree angle) and
# *H2 (end-on, H-H 0.74 Angstrom: gas-phase H2), which CatTSunami's "*H2 -> *H + *H" names (its database index 86).
_EXTRA: dict[str, tuple[str, list[tuple[float, float, float]]]] = {
    "*NNH": ("NNH", [(0.0, 0.0, 0.0), (0.0, 0.0, 1.20), (0.892, 0.0, 1.715)]),
    "*H2": ("H2", [(0.0, 0.0, 0.0), (0.0, 0.0, 0.74)]),
}
# Other spellings of OC20 names (without the leading "*").
_ALIASES = {"O2H": "OOH", "H2O": "OH2", "HCO": "CHO"}
# Axes tried when turning a molecule binding-atom-down (about 1 degree apart).
_AXIS_CANDIDATES = 40_000
# Turns tried about the binding-atom axis of a bidentate molecule (1 degree apart).
_BIDENTATE_TURNS = 360
# Closest names suggested for an unknown adsorbate.
_SUGGESTIONS = 5


@dataclass(frozen=True)
class Adsorbate:
    """A molecule with its binding atom(s).

    Attributes:
        name: OC20 name (`*CO`) or the user's label.
        atoms: the molecule, binding atom `binding_indices[0]` at the origin and the molecule above it (+z;
            with two or more binding atoms, the first two both at z = 0), positions in Angstrom, no cell, no pbc.
        binding_indices: indices (into `atoms`) of the atoms that bind to the surface; a placement puts
            one of them (chosen at random, as OC20 does) on the site.
    """

    name: str
    atoms: Atoms
    binding_indices: tuple[int, ...]

    @property
    def symbols(self) -> list[str]:
        return self.atoms.get_chemical_symbols()


@lru_cache(maxsize=1)
def _library() -> dict[str, tuple[list[str], list, tuple[int, ...]]]:
    """Name -> (symbols, positions in Angstrom, binding indices): OC20's in database order, then ours."""
    data = json.loads(OC20_FILE.read_text())
    library = {e["name"]: (e["symbols"], e["positions"], tuple(e["binding_indices"])) for e in data["adsorbates"]}
    for name, (formula, positions) in _EXTRA.items():
        library[name] = (Atoms(formula).get_chemical_symbols(), positions, (0,))
    return library


def library_names() -> list[str]:
    """Names of the built-in adsorbates (OC20's 86 in database order, e.g. `*CO`, `CH2*CO`, then `*NNH`, `*H2`)."""
    return list(_library())


def library_table() -> list[str]:
    """One line per built-in adsorbate: name, formula, binding atoms (symbol and index)."""
    lines = [f"{'name':<14} {'formula':<9} binding atoms"]
    for name, (symbols, _, binding) in _library().items():
        formula = Atoms(symbols).get_chemical_formula()
        lines.append(f"{name:<14} {formula:<9} {', '.join(f'{symbols[i]}{i}' for i in binding)}")
    lines.append(f"{len(_library())} adsorbates: OC20's (fairchem-data-oc database) and {', '.join(_EXTRA)}; or a "
                 "molecule file with --binding-atoms")
    return lines


def _fibonacci_sphere(n: int) -> np.ndarray:
    """(n, 3) unit vectors spread evenly over the sphere."""
    k = np.arange(n) + 0.5
    polar, azimuth = np.arccos(1 - 2 * k / n), math.pi * (1 + 5**0.5) * k
    return np.stack([np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)], axis=1)


def _up_axis(others: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """The unit vector among `axes` (K, 3) maximising the smallest cosine to `others` (n, 3), from the origin."""
    lengths = np.linalg.norm(others, axis=1)
    if not len(others) or lengths.min() < 1e-6:
        return axes[0]
    if len(others) == 1:  # a diatomic: exactly along its bond
        return others[0] / lengths[0]
    return axes[np.argmax(((others / lengths[:, None]) @ axes.T).min(axis=0))]


def _frame(up: np.ndarray, along: np.ndarray) -> np.ndarray:
    """(3, 3) rotation taking unit `up` to +z and unit `along` (perpendicular to `up`) to +x."""
    return np.stack([along, np.cross(up, along), up])


def _oriented(atoms: Atoms, binding: Sequence[int]) -> Atoms:
    """`atoms` moved so atom `binding[0]` sits at the origin and the molecule points up.

    One binding atom: +z is the axis maximising the smallest cosine between it and the bonds from the
    binding atom to the others. Two or more: the first two lie along x at z = 0 and +z is the direction
    perpendicular to them that keeps the other atoms highest (both binding atoms face the surface).
    """
    out = atoms.copy()
    out.positions -= out.positions[binding[0]]
    if len(binding) == 1:
        others = np.delete(out.positions, binding[0], axis=0)
        out.rotate(_up_axis(others, _fibonacci_sphere(_AXIS_CANDIDATES)), (0.0, 0.0, 1.0), center=(0.0, 0.0, 0.0))
    else:
        along = out.positions[binding[1]] / np.linalg.norm(out.positions[binding[1]])
        side = np.cross(along, (0.0, 0.0, 1.0) if abs(along[2]) < 0.9 else (1.0, 0.0, 0.0))
        side /= np.linalg.norm(side)
        turns = np.linspace(0.0, 2 * math.pi, _BIDENTATE_TURNS, endpoint=False)
        ups = np.cos(turns)[:, None] * side + np.sin(turns)[:, None] * np.cross(along, side)
        rest = np.delete(out.positions, list(binding[:2]), axis=0)
        up = ups[np.argmax((rest @ ups.T).min(axis=0))] if len(rest) else ups[0]
        out.positions = out.positions @ _frame(up, along).T
    out.set_cell(None)
    out.pbc = False
    return out


def make_adsorbate(
    molecule: Atoms | str | os.PathLike, binding_indices: Sequence[int] | None, name: str | None = None
) -> Adsorbate:
    """A user molecule (`Atoms`, pymatgen `Molecule` or a structure file) with its binding atom indices.

    The molecule is turned so that the binding atom points down (with two or more, the first two lie
    flat on the surface side; see `_oriented`).

    Raises:
        AdsorbateError: no binding atom given, an index outside the molecule, or a repeated index.
    """
    atoms = to_atoms(molecule)
    label = name or atoms.get_chemical_formula()
    if not binding_indices:
        raise AdsorbateError(
            f"adsorbate {label!r} has no binding atom: give the index (0-based) of the atom(s) that bind to the "
            "surface (binding_indices=..., or --binding-atoms at the command line)"
        )
    bad = [i for i in binding_indices if not -len(atoms) <= i < len(atoms)]
    if bad:
        raise AdsorbateError(f"adsorbate {label!r}: binding atom index {bad[0]} is outside its {len(atoms)} atoms")
    indices = tuple(int(i) % len(atoms) for i in binding_indices)
    if len(set(indices)) != len(indices):
        raise AdsorbateError(f"adsorbate {label!r}: binding atom indices {list(binding_indices)} repeat an atom")
    return Adsorbate(label, _oriented(atoms, indices), indices)


def _lookup(name: str) -> str:
    """The library name of `name` (`"CO"` -> `"*CO"`; aliases such as `O2H`); AdsorbateError with suggestions."""
    library = _library()
    bare = {key.lstrip("*"): key for key in library}
    text = name.strip()
    key = text.lstrip("*")
    key = _ALIASES.get(key, key)
    if text in library:
        return text
    if key in bare:
        return bare[key]
    close = difflib.get_close_matches(key, list(bare), n=_SUGGESTIONS, cutoff=0.5)
    hint = f"closest: {', '.join(bare[c] for c in close)}; " if close else ""
    raise AdsorbateError(
        f"unknown adsorbate {name!r}: {hint}`eqv2 adsorb --list-adsorbates` lists all {len(library)}, or give a "
        "molecule file with its binding atom(s)"
    )


def get_adsorbate(name: str, binding_indices: Sequence[int] | None = None) -> Adsorbate:
    """A library adsorbate by OC20 name (`"*CO"`, `"CO"`, `"*OCH2CH3"`, `"*O2H"`...), binding through its
    database binding atom(s) (or through `binding_indices`, e.g. `get_adsorbate("*CO", [1])` for O-down CO).

    Raises:
        AdsorbateError: the name is not in the library (the message suggests the closest names).
    """
    key = _lookup(name)
    symbols, positions, binding = _library()[key]
    atoms = Atoms(symbols, positions=positions)
    return make_adsorbate(atoms, binding_indices or binding, key)


def resolve_adsorbate(
    adsorbate: Adsorbate | Atoms | str | os.PathLike, binding_indices: Sequence[int] | None = None
) -> Adsorbate:
    """An `Adsorbate` from itself, a library name, or a molecule (`Atoms` / file) plus `binding_indices`."""
    if isinstance(adsorbate, Adsorbate):
        return adsorbate
    if isinstance(adsorbate, (str, os.PathLike)) and not os.path.isfile(adsorbate):
        text = str(adsorbate)
        if isinstance(adsorbate, os.PathLike) or "." in text or os.sep in text:
            raise AdsorbateError(f"adsorbate file {text!r}: no such file")
        return get_adsorbate(text, binding_indices)
    return make_adsorbate(adsorbate, binding_indices,
                          os.path.basename(str(adsorbate)) if isinstance(adsorbate, (str, os.PathLike)) else None)
