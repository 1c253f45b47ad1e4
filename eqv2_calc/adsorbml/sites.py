"""Adsorption sites on a tagged slab from a Delaunay triangulation of its surface atoms.

The surface atoms (tag 1) are tiled 3x3 in the a-b plane and triangulated in x-y (scipy `Delaunay`);
only triangles with a vertex in the central cell are kept, so the cell edges bias nothing (as fairchem's
random sites do). Heuristic sites are the atoms (top), edge midpoints (bridge)
and triangle centroids (hollow; fcc or hcp when a subsurface atom does or does not lie right below),
wrapped into the cell and merged with their periodic images (so a site on a cell edge is counted once,
whatever side round-off puts it on), then reduced to symmetry-distinct ones by their local environment. Random sites are uniform points on the
triangles. A site's z is interpolated between its surface atoms; the normal is +z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from ..errors import SlabError
from .slabs import SURFACE_TAG, check_slab

# Sites closer than this (Angstrom) after wrapping into the cell are one site.
SAME_SITE_A = 0.05
# Fractional coordinates this close below 1 wrap to 0 (a point on a cell edge belongs to the cell once).
WRAP_TOLERANCE = 1e-9
# A subsurface atom within this lateral distance (Angstrom) of a hollow is "below" it.
BELOW_A = 0.5
# Slab atoms within this distance (Angstrom) of a site make its environment fingerprint.
FINGERPRINT_RADIUS_A = 5.0
# Fingerprint distances are rounded to this (Angstrom) when comparing sites.
FINGERPRINT_RESOLUTION_A = 0.05
# Random sites are drawn this many times over before the ones outside the central cell are dropped
# (fairchem data/oc `get_random_sites_on_triangle` oversamples 2x).
RANDOM_OVERSAMPLING = 2


@dataclass(frozen=True)
class Site:
    """One adsorption site.

    Attributes:
        position: (3,) Cartesian position in Angstrom, on the surface (z interpolated between its atoms).
        kind: "top", "bridge", "fcc", "hcp" or "hollow" (a 3-fold hollow of unknown stacking), or "random".
        atoms: indices (into the slab) of the surface atoms the site sits on.
    """

    position: np.ndarray
    kind: str
    atoms: tuple[int, ...]


@dataclass(frozen=True)
class _Mesh:
    """The triangulated 3x3 tiling of the surface atoms.

    `points` (M, 3) positions in Angstrom (the first `central` ones in the cell itself), `index` (M,) slab
    index of each point, `triangles` (T, 3) point indices.
    """

    central: int
    points: np.ndarray
    index: np.ndarray
    triangles: np.ndarray


def _mesh(slab: Atoms) -> _Mesh:
    from scipy.spatial import Delaunay, QhullError

    check_slab(slab)
    surface = np.flatnonzero(slab.get_tags() == SURFACE_TAG)
    a, b = slab.cell[0], slab.cell[1]
    shifts = [i * a + j * b for i in (0, -1, 1) for j in (0, -1, 1)]  # central cell first
    points = np.concatenate([_wrap(slab, slab.positions[surface]) + s for s in shifts])
    index = np.tile(surface, len(shifts))
    try:
        triangles = Delaunay(points[:, :2]).simplices
    except QhullError as exc:
        raise SlabError(f"the surface atoms of {slab.get_chemical_formula()} cannot be triangulated "
                        f"(they lie on a line?): {str(exc).splitlines()[0]}") from exc
    central = triangles < len(surface)
    return _Mesh(len(surface), points, index, triangles[central.any(axis=1)])


def _in_central_cell(slab: Atoms, positions: np.ndarray) -> np.ndarray:
    """(K,) bool: the points' fractional a and b coordinates lie in [0, 1)."""
    frac = np.linalg.solve(slab.cell.array.T, positions.T).T[:, :2]
    tol = 1e-8
    return ((frac >= -tol) & (frac < 1 - tol)).all(axis=1)


def _wrap(slab: Atoms, positions: np.ndarray) -> np.ndarray:
    """(K, 3) `positions` (Angstrom) moved into the cell along a and b: fractional a, b in [0, 1), z kept."""
    frac = np.linalg.solve(slab.cell.array.T, positions.T).T
    frac[:, :2] -= np.floor(frac[:, :2])
    frac[:, :2][frac[:, :2] > 1 - WRAP_TOLERANCE] = 0.0
    return frac @ slab.cell.array


def _wrapped_unique(slab: Atoms, positions: np.ndarray) -> list[int]:
    """Indices of `positions` that are distinct sites after wrapping into the cell (first one kept)."""
    from ase.geometry import get_distances

    _, d = get_distances(positions, positions, cell=slab.cell, pbc=(True, True, False))
    keep: list[int] = []
    for i in range(len(positions)):
        if not keep or d[i, keep].min() >= SAME_SITE_A:
            keep.append(i)
    return keep


def _layers(slab: Atoms) -> np.ndarray:
    """Heights (Angstrom) of the atomic layers, top first (atoms within 0.3 A of each other share one)."""
    z = np.sort(slab.positions[:, 2])[::-1]
    tops = [z[0]]
    for value in z[1:]:
        if tops[-1] - value > 0.3:
            tops.append(value)
    return np.array(tops)


def _hollow_kind(slab: Atoms, site: np.ndarray, vertices: np.ndarray) -> str:
    """"hcp" when the first layer below the hollow's atoms has an atom right below it, "fcc" when a deeper
    layer has, "hollow" otherwise (fcc(111) nomenclature)."""
    from ase.geometry import find_mic

    lateral = slab.positions - site
    lateral[:, 2] = 0.0
    lateral, _ = find_mic(lateral, slab.cell, pbc=(True, True, False))
    below = (np.linalg.norm(lateral[:, :2], axis=1) < BELOW_A) & (slab.positions[:, 2] < vertices[:, 2].min() - 0.3)
    if not below.any():
        return "hollow"
    layers = _layers(slab)
    top_layer = int(np.argmin(np.abs(layers - vertices[:, 2].mean())))
    depth = int(np.argmin(np.abs(layers - slab.positions[below, 2].max())))
    return "hcp" if depth == top_layer + 1 else "fcc"


def _fingerprint(slab: Atoms, position: np.ndarray) -> tuple:
    """Sorted (element, rounded distance) of the slab atoms near `position`: equal for equivalent sites."""
    from ase.geometry import get_distances

    _, d = get_distances(position[None], slab.positions, cell=slab.cell, pbc=(True, True, False))
    d = d[0]
    near = d < FINGERPRINT_RADIUS_A
    rounded = np.round(d[near] / FINGERPRINT_RESOLUTION_A).astype(int)
    return tuple(sorted(zip(slab.numbers[near].tolist(), rounded.tolist())))


def heuristic_sites(slab: Atoms, *, unique: bool = True) -> list[Site]:
    """Top, bridge and hollow sites of the surface atoms (tag 1) of `slab`.

    Args:
        slab: a tagged slab (`build_slabs`), surface normal along +z.
        unique: keep one site per distinct local environment (symmetry-equivalent sites share it).

    Raises:
        SlabError: no surface atoms, or ones that cannot be triangulated.
    """
    mesh = _mesh(slab)
    candidates: list[tuple[np.ndarray, str, tuple[int, ...]]] = []
    for i in range(mesh.central):
        candidates.append((mesh.points[i], "top", (int(mesh.index[i]),)))
    edges = {tuple(sorted((int(t[i]), int(t[(i + 1) % 3])))) for t in mesh.triangles for i in range(3)}
    for p, q in sorted(edges):
        candidates.append(((mesh.points[p] + mesh.points[q]) / 2, "bridge", (int(mesh.index[p]), int(mesh.index[q]))))
    for t in mesh.triangles:
        vertices = mesh.points[t]
        centre = vertices.mean(axis=0)
        candidates.append((centre, _hollow_kind(slab, centre, vertices), tuple(int(k) for k in mesh.index[t])))
    positions = _wrap(slab, np.array([c[0] for c in candidates]))
    sites = [Site(positions[i], candidates[i][1], candidates[i][2]) for i in _wrapped_unique(slab, positions)]
    if not unique:
        return sites
    seen: set[tuple] = set()
    distinct = []
    for site in sites:
        key = (site.kind, _fingerprint(slab, site.position))
        if key not in seen:
            seen.add(key)
            distinct.append(site)
    return distinct


def random_sites(slab: Atoms, n: int, rng: np.random.Generator) -> list[Site]:
    """`n` sites drawn uniformly over the triangles of the surface mesh (about evenly many per triangle).

    Points are sampled on every kept triangle (`(1-sqrt(r1)) A + sqrt(r1)(1-r2) B + sqrt(r1) r2 C`), those
    outside the central cell dropped, the rest shuffled and the first `n` returned.
    """
    if n < 0:
        raise ValueError(f"number of random sites {n} must be >= 0")
    if n == 0:
        return []
    mesh = _mesh(slab)
    per_triangle = math.ceil(RANDOM_OVERSAMPLING * n / len(mesh.triangles))
    sites: list[Site] = []
    while len(sites) < n:
        r1 = np.sqrt(rng.random((len(mesh.triangles), per_triangle, 1)))
        r2 = rng.random((len(mesh.triangles), per_triangle, 1))
        a, b, c = (mesh.points[mesh.triangles[:, k]][:, None, :] for k in range(3))
        points = ((1 - r1) * a + r1 * (1 - r2) * b + r1 * r2 * c).reshape(-1, 3)
        owners = np.repeat(np.arange(len(mesh.triangles)), per_triangle)
        inside = _in_central_cell(slab, points)
        order = rng.permutation(np.flatnonzero(inside))
        sites += [Site(points[i], "random", tuple(int(k) for k in mesh.index[mesh.triangles[owners[i]]]))
                  for i in order]
    return sites[:n]
