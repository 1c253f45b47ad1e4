"""Adsorbates: the OC20 library (geometry + binding atoms) and user molecules.

Every `Adsorbate` is stored with its first binding atom at the origin and the rest of the molecule
pointing up (+z), so that a placement only has to spin and tilt it (`placement.py`). Names follow OC20
(`*CO`, `*OH2`, ...); the leading `*` is optional.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from ..errors import AdsorbateError
from ..structures import to_atoms

# sp3 substituent angle from +z when the central atom binds down: 180 - 109.47 degrees (tetrahedral).
_SP3 = math.radians(180.0 - 109.47)
# sp2 substituent angle from +z (120 degree bond angles in the plane holding +z).
_SP2 = math.radians(60.0)


def _up(length: float, polar: float, azimuth: float = 0.0, origin: Sequence[float] = (0.0, 0.0, 0.0)) -> tuple:
    """`origin` + a bond of `length` (Angstrom) at `polar` radians from +z and `azimuth` radians about z."""
    x, y, z = origin
    return (x + length * math.sin(polar) * math.cos(azimuth), y + length * math.sin(polar) * math.sin(azimuth),
            z + length * math.cos(polar))


def _umbrella(length: float, origin: Sequence[float] = (0.0, 0.0, 0.0)) -> list[tuple]:
    """Three tetrahedral bonds of `length` pointing up from `origin` (a CH3 / NH3 cap)."""
    return [_up(length, _SP3, phi, origin) for phi in (0.0, 2 * math.pi / 3, 4 * math.pi / 3)]


# OC20 adsorbates: (symbols, positions in Angstrom with the binding atom first at the origin).
# Bond lengths are textbook gas-phase values (CRC Handbook), rounded: C-H 1.09, N-H 1.01-1.04, O-H 0.97,
# C-O 1.15 (CO) / 1.20 (C=O) / 1.35 (C-OH) / 1.43 (C-O single), N-O 1.15, N-N 1.10 / 1.20, O-O 1.45.
_O_CH3 = (0.0, 0.0, 1.43)  # the C of methoxy
_LIBRARY: dict[str, tuple[str, list[tuple]]] = {
    "H": ("H", [(0.0, 0.0, 0.0)]),
    "O": ("O", [(0.0, 0.0, 0.0)]),
    "C": ("C", [(0.0, 0.0, 0.0)]),
    "N": ("N", [(0.0, 0.0, 0.0)]),
    "OH": ("OH", [(0.0, 0.0, 0.0), (0.0, 0.0, 0.97)]),
    "OH2": ("OH2", [(0.0, 0.0, 0.0), _up(0.96, math.radians(52.25)), _up(0.96, math.radians(52.25), math.pi)]),
    "CH": ("CH", [(0.0, 0.0, 0.0), (0.0, 0.0, 1.09)]),
    "CH2": ("CH2", [(0.0, 0.0, 0.0), _up(1.09, math.radians(55.0)), _up(1.09, math.radians(55.0), math.pi)]),
    "CH3": ("CH3", [(0.0, 0.0, 0.0), *_umbrella(1.09)]),
    "NH": ("NH", [(0.0, 0.0, 0.0), (0.0, 0.0, 1.04)]),
    "NH2": ("NH2", [(0.0, 0.0, 0.0), _up(1.02, math.radians(52.5)), _up(1.02, math.radians(52.5), math.pi)]),
    "NH3": ("NH3", [(0.0, 0.0, 0.0), *_umbrella(1.01)]),
    "CO": ("CO", [(0.0, 0.0, 0.0), (0.0, 0.0, 1.15)]),
    "COH": ("COH", [(0.0, 0.0, 0.0), (0.0, 0.0, 1.33), _up(0.97, math.radians(70.0), 0.0, (0.0, 0.0, 1.33))]),
    "CHO": ("CHO", [(0.0, 0.0, 0.0), _up(1.11, _SP2, math.pi), _up(1.20, _SP2)]),
    "CHOH": ("CHOH", [(0.0, 0.0, 0.0), _up(1.09, _SP2, math.pi), _up(1.35, _SP2),
                      _up(0.97, 0.0, 0.0, _up(1.35, _SP2))]),
    "CH2OH": ("CH2OH", [(0.0, 0.0, 0.0), *_umbrella(1.09)[1:], _up(1.43, _SP3),
                        _up(0.97, 0.0, 0.0, _up(1.43, _SP3))]),
    "OCH3": ("OCH3", [(0.0, 0.0, 0.0), _O_CH3, *_umbrella(1.09, _O_CH3)]),
    "NO": ("NO", [(0.0, 0.0, 0.0), (0.0, 0.0, 1.15)]),
    "N2": ("N2", [(0.0, 0.0, 0.0), (0.0, 0.0, 1.10)]),
    "NNH": ("NNH", [(0.0, 0.0, 0.0), (0.0, 0.0, 1.20), _up(1.03, _SP2, 0.0, (0.0, 0.0, 1.20))]),
    "OOH": ("OOH", [(0.0, 0.0, 0.0), _up(1.45, math.radians(30.0)),
                    _up(0.97, 0.0, 0.0, _up(1.45, math.radians(30.0)))]),
}
# Axes tried when turning a molecule binding-atom-down (about 1 degree apart).
_AXIS_CANDIDATES = 40_000
_ALIASES = {"O2H": "OOH", "H2O": "OH2", "HCO": "CHO"}


@dataclass(frozen=True)
class Adsorbate:
    """A molecule with its binding atom(s).

    Attributes:
        name: OC20 name (`*CO`) or the user's label.
        atoms: the molecule, binding atom `binding_indices[0]` at the origin and the molecule above it (+z),
            positions in Angstrom, no cell, no pbc.
        binding_indices: indices (into `atoms`) of the atoms that may bind to the surface; a placement
            binds through one of them (chosen at random for multidentate molecules, as in OC20).
    """

    name: str
    atoms: Atoms
    binding_indices: tuple[int, ...]

    @property
    def symbols(self) -> list[str]:
        return self.atoms.get_chemical_symbols()


def library_names() -> list[str]:
    """Names of the built-in OC20 adsorbates, with their `*` (e.g. `*CO`)."""
    return [f"*{name}" for name in _LIBRARY]


def _fibonacci_sphere(n: int) -> np.ndarray:
    """(n, 3) unit vectors spread evenly over the sphere."""
    k = np.arange(n) + 0.5
    polar, azimuth = np.arccos(1 - 2 * k / n), math.pi * (1 + 5**0.5) * k
    return np.stack([np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)], axis=1)


def _oriented(atoms: Atoms, binding: int) -> Atoms:
    """`atoms` moved so atom `binding` sits at the origin and points down.

    "Down" is the direction that keeps every other atom as far above the binding atom as possible: +z is
    the axis maximising the smallest cosine between it and the bonds from the binding atom to the others.
    """
    out = atoms.copy()
    out.positions -= out.positions[binding]
    others = np.delete(out.positions, binding, axis=0)
    lengths = np.linalg.norm(others, axis=1)
    if len(others) and lengths.min() > 1e-6:
        axes = _fibonacci_sphere(_AXIS_CANDIDATES)
        best = axes[np.argmax(((others / lengths[:, None]) @ axes.T).min(axis=0))]
        out.rotate(best, (0.0, 0.0, 1.0), center=(0.0, 0.0, 0.0))
    out.set_cell(None)
    out.pbc = False
    return out


def make_adsorbate(
    molecule: Atoms | str | os.PathLike, binding_indices: Sequence[int] | None, name: str | None = None
) -> Adsorbate:
    """A user molecule (`Atoms`, pymatgen `Molecule` or a structure file) with its binding atom indices.

    The molecule is turned so that the first binding atom points down (the others' centroid on +z).

    Raises:
        AdsorbateError: no binding atom given, or an index outside the molecule.
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
    return Adsorbate(label, _oriented(atoms, indices[0]), indices)


def get_adsorbate(name: str, binding_indices: Sequence[int] | None = None) -> Adsorbate:
    """A library adsorbate by OC20 name (`"*CO"`, `"CO"`, `"*O2H"`...), binding through its first atom
    (or through `binding_indices`, e.g. `get_adsorbate("*CO", [1])` for O-down CO).

    Raises:
        AdsorbateError: the name is not in the library (the message lists the known names).
    """
    key = name.strip().lstrip("*")
    key = _ALIASES.get(key, key)
    if key not in _LIBRARY:
        raise AdsorbateError(
            f"unknown adsorbate {name!r}: use one of {', '.join(library_names())}, or a molecule file with "
            "its binding atom(s)"
        )
    symbols, positions = _LIBRARY[key]
    atoms = Atoms(symbols, positions=positions)
    if binding_indices:
        return make_adsorbate(atoms, binding_indices, f"*{key}")
    return Adsorbate(f"*{key}", _oriented(atoms, 0), (0,))


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
