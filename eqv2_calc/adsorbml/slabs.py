"""Slabs from a bulk crystal, cut, tagged and constrained as OC20 does (fairchem `data/oc/core/slab.py`).

A slab is an `ase.Atoms` with the surface in the a-b plane (a along x, b in the x-y plane, the surface
normal along +z), vacuum above and below, pbc True along all axes, tags 0 (subsurface, fixed by FixAtoms)
and 1 (surface, free), and `info["miller"]`, `info["shift"]`, `info["top"]` (False: the flipped bottom)
describing the cut.
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
# OC20's Voronoi surface rule (fairchem data/oc slab.py): pymatgen VoronoiNN tolerance; an atom above the
# slab's centre of mass whose weighted Voronoi coordination is below its element's lowest bulk value is surface.
VORONOI_TOL = 0.1


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


def tag_surface(slab: Atoms, depth: float = SURFACE_DEPTH_A, bulk: Atoms | None = None) -> Atoms:
    """Tag surface atoms 1 and the rest 0; fix tag 0 atoms. Modifies and returns `slab` (normal along +z).

    Surface atoms (OC20's rule): within `depth` Angstrom (along z) of the topmost atom, and, when the `bulk`
    the slab was cut from is given, any atom above the slab's centre of mass that is under-coordinated
    (weighted Voronoi coordination below the lowest of its element in the bulk), as on open facets where
    second-layer atoms are exposed.
    """
    exposed = _under_coordinated(slab, bulk, depth) if bulk is not None else np.zeros(len(slab), dtype=bool)
    return _set_tags(slab, depth, exposed)


def _set_tags(slab: Atoms, depth: float, exposed: np.ndarray) -> Atoms:
    """Tag 1 the atoms within `depth` of the top and the `exposed` ones ((N,) bool), 0 the rest; fix tag 0."""
    z = slab.positions[:, 2]
    tags = np.where((z >= z.max() - depth) | exposed, SURFACE_TAG, SUBSURFACE_TAG)
    slab.set_tags(tags)
    slab.set_constraint(FixAtoms(mask=tags == SUBSURFACE_TAG))
    return slab


def _coordination(atoms: Atoms, indices) -> list[float]:
    """Weighted Voronoi coordination numbers (pymatgen VoronoiNN) of `indices`; inf where Voronoi fails."""
    from pymatgen.analysis.local_env import VoronoiNN
    from pymatgen.io.ase import AseAtomsAdaptor

    structure = AseAtomsAdaptor.get_structure(atoms)
    voronoi = VoronoiNN(tol=VORONOI_TOL)
    out = []
    for i in indices:
        try:
            out.append(round(voronoi.get_cn(structure, int(i), use_weights=True), 5))
        except RuntimeError:  # a degenerate Voronoi cell: OC20 counts the atom as surface
            out.append(-np.inf)
    return out


def _under_coordinated(slab: Atoms, bulk: Atoms, depth: float) -> np.ndarray:
    """(N,) bool: atoms deeper than `depth` below the top but above the centre of mass, less coordinated than
    any bulk atom of their element (bulk coordination: one site per symmetry orbit)."""
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    z = slab.positions[:, 2]
    candidates = np.flatnonzero((z < z.max() - depth) & (z > slab.get_center_of_mass()[2]))
    mask = np.zeros(len(slab), dtype=bool)
    if not len(candidates):
        return mask
    orbits = SpacegroupAnalyzer(AseAtomsAdaptor.get_structure(bulk)).get_symmetrized_structure().equivalent_indices
    representatives = [orbit[0] for orbit in orbits]
    lowest: dict[str, float] = {}
    for i, cn in zip(representatives, _coordination(bulk, representatives)):
        lowest[bulk[i].symbol] = min(lowest.get(bulk[i].symbol, np.inf), cn)
    for i, cn in zip(candidates, _coordination(slab, candidates)):
        mask[i] = cn < lowest.get(slab[i].symbol, -np.inf)
    return mask


def check_slab(slab: Atoms) -> None:
    """Raise `SlabError` unless `slab` has surface atoms (tag 1) and no adsorbate atoms (tag 2)."""
    tags = slab.get_tags()
    if not (tags == SURFACE_TAG).any():
        raise SlabError(f"slab {slab.get_chemical_formula() or '(empty)'} has no surface atoms (tag 1): build it with "
                        "build_slabs() or tag the top layer 1 (tag_surface) before placing adsorbates")
    if (tags == ADSORBATE_TAG).any():
        raise SlabError(f"slab {slab.get_chemical_formula()} already holds adsorbate atoms (tag 2); "
                        "give the clean slab")


def _flipped(atoms: Atoms) -> Atoms:
    """`atoms` (normal along +z) turned upside down by a 180 degree rotation about x (a proper rotation, so a
    chiral crystal keeps its hand); b and c are negated to keep the cell right-handed with c pointing up."""
    out = atoms.copy()
    out.rotate(180, "x", rotate_cell=True, center="COM")
    out.set_cell(out.cell.array * np.array([[1.0], [-1.0], [-1.0]]))
    out.set_cell(out.cell.standard_form()[0], scale_atoms=True)
    out.wrap()
    out.center(axis=2)
    return out


def _to_ase_slab(pmg_slab, bulk: Atoms, settings: SlabSettings, top: bool = True) -> Atoms:
    """A pymatgen `Slab` rotated to a along x / normal along +z (upside down when not `top`), repeated to
    `min_ab`, tagged (height and Voronoi rules against `bulk`) and fixed."""
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(pmg_slab)
    atoms.set_cell(atoms.cell.standard_form()[0], scale_atoms=True)
    atoms.wrap()
    if not top:
        atoms = _flipped(atoms)
    atoms.pbc = True
    exposed = _under_coordinated(atoms, bulk, settings.surface_depth)  # on the small cell: cheaper, same result
    lengths = atoms.cell.lengths()
    repeats = (math.ceil(settings.min_ab / lengths[0]), math.ceil(settings.min_ab / lengths[1]), 1)
    atoms = atoms.repeat(repeats)  # whole copies of the cell, one after another
    atoms.info.update(miller=tuple(int(i) for i in pmg_slab.miller_index), shift=round(float(pmg_slab.shift), 4),
                      top=top)
    return _set_tags(atoms, settings.surface_depth, np.tile(exposed, repeats[0] * repeats[1]))


def build_slabs(
    bulk: StructureLike, miller: Sequence[int] | None = None, *, max_miller: int = MAX_MILLER,
    settings: SlabSettings = SlabSettings(),
) -> list[Atoms]:
    """Every termination of `bulk` cut along `miller` (or along every distinct Miller index up to `max_miller`).

    Uses pymatgen `SlabGenerator` with OC20's settings (slab >= 7 A, vacuum >= 20 A, centred, primitive
    in-plane cell, no broken bonds across the cut); a slab whose bottom differs from its top (no inversion,
    mirror or screw axis relating them) is also returned upside down (`info["top"]` False), as OC20 does.
    Each slab is repeated in-plane to >= `settings.min_ab` Angstrom, tagged (surface 1: within 2 A of the
    top, or under-coordinated above the centre of mass; subsurface 0) and its subsurface atoms fixed.

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
        for found in generator.get_slabs(tol=SLAB_TOLERANCE_A, max_broken_bonds=0, symmetrize=False):
            slabs.append(_to_ase_slab(found, conventional, settings))
            if not found.is_symmetric():  # the bottom is another termination: OC20 adds it flipped
                slabs.append(_to_ase_slab(found, conventional, settings, top=False))
    if not slabs:
        raise SlabError(f"no slab of {conventional.get_chemical_formula()} along {millers}: every termination breaks "
                        "bonds; try another Miller index")
    for slab in slabs:
        check_slab(slab)
    return slabs
