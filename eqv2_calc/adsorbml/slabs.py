"""Slabs from a bulk crystal, cut, tagged and constrained as OC20 does (fairchem `data/oc/core/slab.py`).

A slab is an `ase.Atoms` with the surface in the a-b plane (a along x, b in the x-y plane, the surface
normal along +z), vacuum above and below, pbc True along all axes, tags 0 (subsurface, fixed by FixAtoms)
and 1 (surface, free), and `info["miller"]`, `info["shift"]` describing the cut.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms

from ..errors import SlabError
from ..structures import StructureLike, to_atoms

# OC20 slab settings (fairchem data/oc core/slab.py): slab and vacuum thickness (Angstrom), cut tolerance
# (Angstrom), surface depth for the height tagging rule (Angstrom), smallest in-plane cell length (Angstrom),
# largest Miller index enumerated.
MIN_SLAB_SIZE_A = 7.0
MIN_VACUUM_A = 20.0
SLAB_TOLERANCE_A = 0.3
SURFACE_DEPTH_A = 2.0
MIN_AB_A = 8.0
MAX_MILLER = 2
SURFACE_TAG, SUBSURFACE_TAG, ADSORBATE_TAG = 1, 0, 2


@dataclass(frozen=True)
class SlabSettings:
    """How slabs are cut: thicknesses in Angstrom (defaults: OC20)."""

    min_slab_size: float = MIN_SLAB_SIZE_A
    min_vacuum: float = MIN_VACUUM_A
    min_ab: float = MIN_AB_A
    surface_depth: float = SURFACE_DEPTH_A


def load_bulk(bulk: StructureLike) -> Atoms:
    """The bulk crystal (`Atoms`, pymatgen `Structure` or file) as its conventional standard cell.

    Miller indices refer to this cell (as for pymatgen and OC20), so (1, 1, 1) of a primitive fcc cell
    is the usual fcc(111).

    Raises:
        SlabError: the structure is not periodic along all three axes.
    """
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    atoms = to_atoms(bulk)
    if not atoms.pbc.all() or atoms.cell.rank < 3:
        raise SlabError(f"the bulk {atoms.get_chemical_formula()} must be periodic along a, b and c with a full cell; "
                        f"got pbc={atoms.pbc.tolist()}")
    structure = AseAtomsAdaptor.get_structure(atoms)
    return AseAtomsAdaptor.get_atoms(SpacegroupAnalyzer(structure).get_conventional_standard_structure())


def distinct_millers(bulk: StructureLike, max_index: int = MAX_MILLER) -> list[tuple[int, int, int]]:
    """Symmetrically distinct Miller indices up to `max_index` of the conventional bulk cell."""
    from pymatgen.core.surface import get_symmetrically_distinct_miller_indices
    from pymatgen.io.ase import AseAtomsAdaptor

    if max_index < 1:
        raise SlabError(f"max Miller index {max_index} must be at least 1")
    structure = AseAtomsAdaptor.get_structure(load_bulk(bulk))
    return [tuple(int(i) for i in m) for m in get_symmetrically_distinct_miller_indices(structure, max_index)]


def tag_surface(slab: Atoms, depth: float = SURFACE_DEPTH_A) -> Atoms:
    """Tag atoms within `depth` Angstrom (along z) of the topmost one 1 and the rest 0; fix tag 0 atoms.

    Modifies and returns `slab` (its surface normal must be +z).
    """
    z = slab.positions[:, 2]
    tags = np.where(z >= z.max() - depth, SURFACE_TAG, SUBSURFACE_TAG)
    slab.set_tags(tags)
    slab.set_constraint(FixAtoms(mask=tags == SUBSURFACE_TAG))
    return slab


def check_slab(slab: Atoms) -> None:
    """Raise `SlabError` unless `slab` has surface atoms (tag 1) and no adsorbate atoms (tag 2)."""
    tags = slab.get_tags()
    if not (tags == SURFACE_TAG).any():
        raise SlabError(f"slab {slab.get_chemical_formula() or '(empty)'} has no surface atoms (tag 1): build it with "
                        "build_slabs() or tag the top layer 1 (tag_surface) before placing adsorbates")
    if (tags == ADSORBATE_TAG).any():
        raise SlabError(f"slab {slab.get_chemical_formula()} already holds adsorbate atoms (tag 2); "
                        "give the clean slab")


def _to_ase_slab(pmg_slab, settings: SlabSettings) -> Atoms:
    """A pymatgen `Slab` rotated to a along x / normal along +z, repeated to `min_ab`, tagged and fixed."""
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(pmg_slab)
    atoms.set_cell(atoms.cell.standard_form()[0], scale_atoms=True)
    atoms.wrap()
    lengths = atoms.cell.lengths()
    atoms = atoms.repeat((math.ceil(settings.min_ab / lengths[0]), math.ceil(settings.min_ab / lengths[1]), 1))
    atoms.pbc = True
    atoms.info.update(miller=tuple(int(i) for i in pmg_slab.miller_index), shift=round(float(pmg_slab.shift), 4))
    return tag_surface(atoms, settings.surface_depth)


def build_slabs(
    bulk: StructureLike, miller: Sequence[int] | None = None, *, max_miller: int = MAX_MILLER,
    settings: SlabSettings = SlabSettings(),
) -> list[Atoms]:
    """Every termination of `bulk` cut along `miller` (or along every distinct Miller index up to `max_miller`).

    Uses pymatgen `SlabGenerator` with OC20's settings (slab >= 7 A, vacuum >= 20 A, centred, primitive
    in-plane cell, no broken bonds across the cut); each slab is repeated in-plane to >= `settings.min_ab`
    Angstrom, tagged (surface 1 within 2 A of the top, subsurface 0) and its subsurface atoms fixed.

    Raises:
        SlabError: a bad Miller index, or no slab (pymatgen finds no termination without broken bonds).
    """
    from pymatgen.core.surface import SlabGenerator
    from pymatgen.io.ase import AseAtomsAdaptor

    conventional = load_bulk(bulk)
    millers = distinct_millers(conventional, max_miller) if miller is None else [tuple(int(i) for i in miller)]
    slabs = []
    for hkl in millers:
        if len(hkl) != 3 or not any(hkl):
            raise SlabError(f"Miller index {hkl} must be three integers, not all zero")
        generator = SlabGenerator(AseAtomsAdaptor.get_structure(conventional), hkl, settings.min_slab_size,
                                  settings.min_vacuum, lll_reduce=False, center_slab=True, primitive=True,
                                  max_normal_search=1)
        found = generator.get_slabs(tol=SLAB_TOLERANCE_A, max_broken_bonds=0, symmetrize=False)
        slabs += [_to_ase_slab(s, settings) for s in found]
    if not slabs:
        raise SlabError(f"no slab of {conventional.get_chemical_formula()} along {millers}: every termination breaks "
                        "bonds; try another Miller index")
    for slab in slabs:
        check_slab(slab)
    return slabs
