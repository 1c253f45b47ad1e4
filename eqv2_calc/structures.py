"""Input conversion for every workflow: ASE `Atoms`, pymatgen `Structure`/`Molecule`, or structure files.

One place decides what counts as a structure, so `predict`, `relax`, `run_md` and the `eqv2` command
line accept the same inputs and fail with the same messages; and one place writes structure files
(`write_structures`), so that every file a command writes reads back in ASE and pymatgen.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np
from ase import Atoms

from .errors import InvalidStructureError

# What a workflow accepts as a structure: ase.Atoms, pymatgen Structure / Molecule, or a file path.
StructureLike = Any


def read_file(path: str | os.PathLike, index: str | int = ":") -> list[Atoms]:
    """Frames of any ASE-readable file (extxyz, CIF, POSCAR, traj, ...), as a list.

    Raises:
        InvalidStructureError: missing or unreadable file, unknown element, no frames, a frame without atoms,
            a partially occupied site (a CIF of a disordered crystal: order it first).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidStructureError(f"{path}: no such file")
    try:
        from ase.io import read

        frames = read(path, index=index)
    except KeyError as exc:  # ASE's symbol lookup
        raise InvalidStructureError(f"{path}: unknown element or field {exc} in the file") from exc
    except Exception as exc:  # ASE raises many types (StopIteration, AssertionError, ValueError, ...)
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise InvalidStructureError(f"{path}: cannot read it as a structure file ({why})") from exc
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise InvalidStructureError(f"{path}: the file holds no structures")
    for i, atoms in enumerate(frames):
        if len(atoms) == 0:
            raise InvalidStructureError(f"{path}: structure {i} has no atoms")
        _check_ordered(atoms, f"{path}" if len(frames) == 1 else f"{path} frame {i}")
    return frames


# Occupancies within this of 1 count as full (CIFs round them to a few digits).
_FULL_OCCUPANCY_TOLERANCE = 1e-3
_ORDER_IT = ("a model needs one element per site: order it first (e.g. pymatgen's "
             "OrderDisorderedStructureTransformation, or a special quasirandom structure)")


def _check_ordered(atoms: Atoms, what: str) -> None:
    """Refuse a structure read (by ASE's CIF reader) from a file with partially occupied sites, naming them;
    ASE would otherwise keep one species per site and drop the rest silently."""
    occupancy = atoms.info.get("occupancy") or {}
    partial = {kind: occ for kind, occ in occupancy.items()
               if len(occ) > 1 or abs(sum(occ.values()) - 1.0) > _FULL_OCCUPANCY_TOLERANCE}
    if not partial:
        return
    kinds = atoms.arrays.get("spacegroup_kinds")
    sites = []
    for kind, occ in partial.items():
        species = ", ".join(f"{element} {value:g}" for element, value in occ.items())
        where = ""
        if kinds is not None and (kinds == int(kind)).any():
            frac = atoms.get_scaled_positions()[np.flatnonzero(kinds == int(kind))[0]]
            where = f" at fractional ({frac[0]:.4g}, {frac[1]:.4g}, {frac[2]:.4g})"
        sites.append(f"site {kind} ({species}){where}")
    raise InvalidStructureError(f"{what}: partially occupied {'; '.join(sites)}; {_ORDER_IT} and give the ordered file")


def to_atoms(structure: StructureLike) -> Atoms:
    """One structure as a new `Atoms`: a copy of an `Atoms` (constraints and info kept), a pymatgen
    `Structure`/`Molecule` via `AseAtomsAdaptor`, or the last frame of a file."""
    if isinstance(structure, Atoms):
        return structure.copy()
    if isinstance(structure, (str, os.PathLike)):
        return read_file(structure, index=-1)[0]
    if _is_pymatgen(structure):
        from pymatgen.io.ase import AseAtomsAdaptor

        if not structure.is_ordered:
            sites = [f"site {i} ({site.species_string}) at {site.coords.round(4).tolist()} A"
                     for i, site in enumerate(structure) if not site.is_ordered]
            raise InvalidStructureError(f"{structure.formula}: partially occupied {'; '.join(sites)}; {_ORDER_IT}")
        return AseAtomsAdaptor.get_atoms(structure)
    raise InvalidStructureError(
        f"cannot use a {type(structure).__name__} as a structure: give an ase.Atoms, a pymatgen Structure or "
        "Molecule, or a file path"
    )


def to_atoms_list(structures: StructureLike | Iterable[StructureLike]) -> list[Atoms]:
    """Many structures as new `Atoms`: one item or an iterable of items; a file contributes all its frames."""
    if isinstance(structures, (Atoms, str, os.PathLike)) or _is_pymatgen(structures):
        structures = [structures]
    out: list[Atoms] = []
    for item in structures:
        out += read_file(item) if isinstance(item, (str, os.PathLike)) else [to_atoms(item)]
    if not out:
        raise InvalidStructureError("no structures given")
    return out


def writable_copy(atoms: Atoms) -> Atoms:
    """A copy of `atoms` holding only per-atom columns every atom has a value in.

    Text columns with an empty entry are dropped: pymatgen's site properties (`bulk_wyckoff` of a slab) are
    empty for atoms added later (an adsorbate), and such a column makes an extxyz line short by one field,
    which ASE cannot read back. Numbers, positions, tags, masses, momenta, charges, magnetic moments,
    numeric columns, `info`, the calculator's results and the constraints (FixAtoms) are kept.
    """
    out = atoms.copy()
    out.calc = atoms.calc
    for name, values in list(out.arrays.items()):
        if values.dtype.kind in "USO" and any(v is None or str(v).strip() == "" for v in values.ravel()):
            del out.arrays[name]
    return out


def write_structures(destination: str | os.PathLike | IO[str], structures: Atoms | Iterable[Atoms],
                     format: str | None = None, **kwargs: Any) -> None:
    """Write structures to any ASE format (the format from the extension; extxyz for an extension ASE does
    not know, or none, or a text stream), each first made readable by `writable_copy`.

    `kwargs` go to `ase.io.write` (e.g. `direct=True` for POSCAR).
    """
    from ase.io import write
    from ase.io.formats import filetype

    images = [writable_copy(a) for a in ([structures] if isinstance(structures, Atoms) else structures)]
    if format is None:
        try:
            format = filetype(destination, read=False) if isinstance(destination, (str, os.PathLike)) else "extxyz"
        except ValueError:
            format = "extxyz"
    with warnings.catch_warnings():  # info dicts (e.g. ASE's adsorbate_info) do not fit in extxyz
        warnings.filterwarnings("ignore", message="Skipping unhashable information")
        write(destination, images if len(images) != 1 else images[0], format=format, **kwargs)


def _is_pymatgen(obj: Any) -> bool:
    return type(obj).__module__.startswith("pymatgen.")
