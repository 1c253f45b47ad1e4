"""Periodic radius graphs: the only module of eqv2_calc that knows about periodic images.

The graph reproduces fairchem-core 1.10 (``AtomsToGraphs.convert`` -> ``radius_graph_pbc`` ->
``get_pbc_distances`` as called by ``GraphModelMixin.generate_graph``) edge for edge on CPU in float32:

* Input conversion: ``cell = atoms.get_cell(complete=True)``; positions are wrapped into the cell along the
  periodic axes only (``ase.geometry.wrap_positions(..., pbc=atoms.pbc, eps=0)``, in float64) and then cast.
* Images: along each periodic axis ``k`` the search covers ``-n_k..n_k`` cells with
  ``n_k = ceil(r * ||a_l x a_m|| / V)`` (evaluated in the working dtype exactly as fairchem does); non-periodic
  axes get 0. The image shifts are ``cell^T @ unit_cell`` computed with ``torch.bmm`` on the same full
  ``(3, n_cells)`` grid that fairchem builds, so every shift has the same bits.
* A pair (target i, source j, image c) is a candidate when ``d2 <= r*r`` and ``d2 > 1e-4`` with
  ``d2 = sum((pos_i - (pos_j + shift_c))**2)`` summed as ``(dx*dx + dy*dy) + dz*dz`` (the order of
  ``torch.sum(..., dim=1)`` in fairchem), so near-ties resolve identically.
* Edges whose vector ``pos[j] - pos[i] + shift`` is exactly zero are removed (``get_pbc_distances``); the
  ``d2 > 1e-4`` rule above already excludes every such pair.
* ``max_neighbors`` per target atom, on squared distances:

  - non-strict: keep every candidate with ``d2 <= d2_(k+1) + 0.01`` where ``d2_(k+1)`` is the
    ``(max_neighbors+1)``-th smallest ``d2`` of that atom (atoms with at most ``max_neighbors`` candidates keep all);
    this rule does not depend on any ordering;
  - strict: keep exactly the ``max_neighbors`` nearest.

Tie-breaking in strict mode (how fairchem decides which members of a degenerate shell survive):
fairchem writes each atom's candidate ``d2`` values, in candidate order (source atom j ascending, then image
index c ascending in ``cartesian_prod`` order, i.e. first lattice axis slowest), into row i of a
``(num_atoms, W)`` float tensor padded with ``+inf``, where ``W`` is the largest candidate count of any atom in
the batch, calls ``torch.sort(..., dim=1)`` with the default ``stable=False`` and keeps the first
``max_neighbors`` columns. On x86 CPUs (torch 2.x built with AVX2/AVX-512 kernels) an unstable float sort goes to
x86-simd-sort's ``keyvalue_qsort`` (bitonic networks + quicksort; ``std::sort`` on CPUs without those kernels),
one row at a time. That sort is NOT stable: the order of equal keys depends on the whole row content and on the
padded width ``W`` (and in principle on the kernel torch dispatches to), so there is no simple rule such as
"lower j first" (``stable=True`` picks differently in 7 of the 52 golden test graphs, e.g. unrattled fcc Cu,
where 2 of the 24 third-shell atoms are kept). This module reproduces the choice by building the identical padded
row (same ``d2`` bits, same order, same width ``W``) and calling the same ``torch.sort`` on it. Only rows in
which a tie straddles the cut (``max_neighbors``-th smallest == ``(max_neighbors+1)``-th smallest) are sorted;
every other row has a unique answer, found with ``torch.topk``. CPU rows are sorted independently, so sorting a
subset of rows changes nothing. The result matches fairchem on the same torch build and device for a single
structure (checked against fairchem 1.10 with AVX-512, AVX2 and default CPU kernels). For a batch, ``W`` and the
image grid are per structure here, whereas fairchem uses batch-wide maxima; so a batch graph here equals the
concatenation of single-structure graphs (fairchem's batched tie choices may differ from its single ones).

Search strategy: instead of fairchem's all-pairs x all-images tensor, target atoms are processed in spatially
compact groups (sorted by a Cartesian bin key). For each group only source images inside the group's bounding
box grown by ``r`` (+ a small safety margin) are evaluated, in sub-chunks bounded in size, so memory stays
bounded and most far pairs are never formed. The kept candidates are then put back into fairchem's order; the
squared distances of all evaluated pairs are computed with fairchem's arithmetic, so the result is identical.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import ase
import numpy as np
import torch
from ase.data import chemical_symbols
from ase.geometry import complete_cell, wrap_positions

from eqv2_calc.errors import InvalidStructureError

__all__ = ["AtomicGraph", "build_graph", "check_atoms", "check_image_count", "radius_graph_pbc", "reuse_graph"]

# fairchem constants: self-image exclusion on d^2 (0.01 Angstrom) and degeneracy tolerance of the
# non-strict max_neighbors rule (Angstrom^2).
_SELF_IMAGE_D2 = 0.0001
_DEGENERACY_TOLERANCE = 0.01
# Extra margin (Angstrom) of the bounding-box prefilter; only makes the prefilter more conservative.
_PREFILTER_MARGIN = 0.01
# Upper bound on the number of (target, source image) pairs evaluated at once (sets peak memory: a few
# float tensors of this many elements).
_PAIR_CHUNK = 1 << 22
# Number of target atoms per spatial group.
_GROUP_SIZE = 64
# Relative volume |det(cell)| / (|a||b||c|) below which a cell counts as degenerate.
_MIN_RELATIVE_VOLUME = 1e-8
# Atomic numbers of the elements: 1 (H) .. 118 (Og), ASE's table (0 is its dummy atom "X").
MAX_ATOMIC_NUMBER = len(chemical_symbols) - 1
# Most periodic cells one structure's neighbour search may span (the (2n+1) images per periodic axis, multiplied).
# The primitive fcc Cu cell (lattice planes 2.08 A apart) needs 13^3 = 2,197 at the 12 A cutoff of the released
# models; 100,000 leaves room for any reduced cell of a real crystal, and refuses (instead of running out of memory
# or time) a cell whose planes are a fraction of an Angstrom apart: wrong units, nearly parallel lattice vectors.
MAX_IMAGE_CELLS = 100_000


@dataclass
class AtomicGraph:
    """A batch of atomic structures with its radius graph.

    Attributes:
        pos: (N, 3) Cartesian positions in Angstrom, wrapped into the cell along periodic axes.
        atomic_numbers: (N,) long atomic numbers.
        cell: (B, 3, 3) cell in Angstrom, rows are lattice vectors (``atoms.get_cell(complete=True)``).
        pbc: (B, 3) bool periodicity per lattice axis.
        natoms: (B,) long number of atoms per structure.
        batch: (N,) long structure index of each atom.
        edge_index: (2, E) long; row 0 = source j (the neighbour), row 1 = target i (the centre atom);
            global atom indices.
        cell_offsets: (E, 3) integer-valued image shift of the source atom in lattice units, same dtype as pos.
    """

    pos: torch.Tensor
    atomic_numbers: torch.Tensor
    cell: torch.Tensor
    pbc: torch.Tensor
    natoms: torch.Tensor
    batch: torch.Tensor
    edge_index: torch.Tensor
    cell_offsets: torch.Tensor

    @property
    def num_graphs(self) -> int:
        """Number of structures B in the batch."""
        return int(self.natoms.shape[0])

    def edge_vectors(self, pos: torch.Tensor | None = None, cell: torch.Tensor | None = None) -> torch.Tensor:
        """(E, 3) edge vectors ``pos[j] + cell_offsets @ cell[batch[j]] - pos[i]`` in Angstrom.

        Differentiable w.r.t. ``pos`` (N, 3) and ``cell`` (B, 3, 3); they default to the graph's own tensors.
        """
        pos = self.pos if pos is None else pos
        cell = self.cell if cell is None else cell
        return _edge_vectors(pos, cell, self.batch, self.edge_index, self.cell_offsets)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> AtomicGraph:
        """Copy to ``device``; floating tensors (pos, cell, cell_offsets) are also cast to ``dtype``."""

        def float_(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype)

        def other(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device)

        return AtomicGraph(
            pos=float_(self.pos),
            atomic_numbers=other(self.atomic_numbers),
            cell=float_(self.cell),
            pbc=other(self.pbc),
            natoms=other(self.natoms),
            batch=other(self.batch),
            edge_index=other(self.edge_index),
            cell_offsets=float_(self.cell_offsets),
        )


def _edge_vectors(
    pos: torch.Tensor,
    cell: torch.Tensor,
    batch: torch.Tensor,
    edge_index: torch.Tensor,
    cell_offsets: torch.Tensor,
) -> torch.Tensor:
    """(E, 3) ``pos[j] - pos[i] + (cell_offsets @ cell)`` with the arithmetic of fairchem ``get_pbc_distances``."""
    source, target = edge_index
    vectors = pos[source] - pos[target]
    edge_cell = cell[batch[source]]
    offsets = cell_offsets.view(-1, 1, 3).bmm(edge_cell).view(-1, 3)
    return vectors + offsets


def _check_radius(max_radius: float) -> None:
    if not math.isfinite(max_radius) or max_radius <= 0:
        raise InvalidStructureError(f"max_radius must be a positive finite number of Angstrom, got {max_radius!r}")


def _check_cell(cell: np.ndarray, pbc: np.ndarray, what: str) -> None:
    """Raise if a periodic axis has a zero lattice vector or the completed cell is degenerate.

    Args:
        cell: (3, 3) float64 cell (rows are lattice vectors).
        pbc: (3,) bool periodicity.
        what: name of the structure used in messages.
    """
    if not np.all(np.isfinite(cell)):
        raise InvalidStructureError(f"{what}: the cell contains NaN or infinite entries")
    lengths = np.linalg.norm(cell, axis=1)
    for axis in range(3):
        if pbc[axis] and lengths[axis] == 0.0:
            raise InvalidStructureError(
                f"{what}: lattice vector {axis} is zero but the structure is periodic along it (pbc={pbc.tolist()})"
            )
    if np.all(lengths > 0):
        relative_volume = abs(np.linalg.det(cell)) / np.prod(lengths)
        if relative_volume < _MIN_RELATIVE_VOLUME:
            raise InvalidStructureError(
                f"{what}: the cell is degenerate (lattice vectors are coplanar, volume "
                f"{abs(np.linalg.det(cell)):.3g} A^3); pbc={pbc.tolist()}"
            )


def _check_positions(pos: np.ndarray | torch.Tensor, what: str) -> None:
    """Raise naming the first atom (index within its structure) whose (3,) position is not finite."""
    finite = np.isfinite(np.asarray(pos)).all(axis=1)
    if not finite.all():
        bad = int(np.nonzero(~finite)[0][0])
        value = np.asarray(pos)[bad].tolist()
        raise InvalidStructureError(f"{what}: atom {bad} has a NaN or infinite position {value}")


def check_atomic_numbers(numbers: np.ndarray, what: str, num_elements: int | None = None) -> None:
    """Raise naming the first atom whose atomic number is no element (outside 1..118) or, when `num_elements`
    (a model's ``max_num_elements``) is given, one the model has no embedding for (Z >= num_elements).

    Args:
        numbers: (N,) integer atomic numbers.
        what: name of the structure used in messages.
    """
    numbers = np.asarray(numbers)
    bad = (numbers < 1) | (numbers > MAX_ATOMIC_NUMBER)
    if bad.any():
        i = int(np.argmax(bad))
        dummy = " (0 is ASE's dummy atom X)" if numbers[i] == 0 else ""
        raise InvalidStructureError(
            f"{what}: atom {i} has atomic number {int(numbers[i])}, which is no element{dummy}: atomic numbers run "
            f"1..{MAX_ATOMIC_NUMBER}"
        )
    if num_elements is not None and (numbers >= num_elements).any():
        i = int(np.argmax(numbers >= num_elements))
        raise InvalidStructureError(
            f"{what}: atom {i} has atomic number {int(numbers[i])} ({chemical_symbols[numbers[i]]}), beyond the "
            f"elements this model embeds (Z = 1..{num_elements - 1})"
        )


def check_atoms(atoms: ase.Atoms, what: str = "structure", num_elements: int | None = None) -> None:
    """Raise if no graph can be built from `atoms`: no atoms, an atomic number that is no element (or beyond
    `num_elements`), a NaN or infinite position or cell entry, a zero lattice vector along a periodic axis, a
    degenerate cell. The checks of `build_graph`, for callers that look at a structure before (`validation`).

    Raises:
        InvalidStructureError: naming `what` and the problem.
    """
    if len(atoms) == 0:
        raise InvalidStructureError(f"{what} has no atoms")
    check_atomic_numbers(atoms.numbers, what, num_elements)
    pbc = np.array(atoms.pbc, dtype=bool)
    raw_cell = np.array(atoms.cell.array, dtype=np.float64)
    _check_cell(raw_cell, pbc, what)
    _check_cell(complete_cell(raw_cell), pbc, what)
    _check_positions(np.array(atoms.positions, dtype=np.float64), what)


def check_image_count(cell: np.ndarray, pbc: np.ndarray, max_radius: float, what: str) -> None:
    """Raise if finding every neighbour within `max_radius` needs an image grid (``-n_k..n_k`` cells along each
    periodic axis, `_num_images`) of more than `MAX_IMAGE_CELLS` cells, naming the closest lattice planes.

    Args:
        cell: (3, 3) completed cell in Angstrom (rows are lattice vectors), not degenerate.
        pbc: (3,) bool periodicity.
        max_radius: cutoff in Angstrom.
        what: name of the structure used in messages.
    """
    cell = np.asarray(cell, dtype=np.float64)
    reps = _num_images(torch.from_numpy(cell), torch.from_numpy(np.asarray(pbc, dtype=bool)), max_radius)
    count = math.prod(2 * n + 1 for n in reps)
    if count <= MAX_IMAGE_CELLS:
        return
    areas = [np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])) for k in range(3)]
    spacing = [abs(np.linalg.det(cell)) / area for area in areas]
    axis = int(np.argmax(reps))
    raise InvalidStructureError(
        f"{what}: finding every neighbour within {max_radius:g} A needs {count:,} periodic images of the cell "
        f"(more than {MAX_IMAGE_CELLS:,}): its lattice planes along axis {axis} are {spacing[axis]:.3g} A apart. "
        "Check the cell (units? nearly parallel lattice vectors?) or give a reduced one (ase.build.niggli_reduce)"
    )


def _num_images(cell: torch.Tensor, pbc: torch.Tensor, max_radius: float) -> list[int]:
    """Image repetitions per lattice axis, ``ceil(r * ||a_l x a_m|| / V)`` (0 along non-periodic axes).

    Evaluated with fairchem's tensor operations in the cell's dtype so that the image grid (and with it the
    code path ``torch.bmm`` takes for the shifts) is the same.
    """
    cell = cell.view(1, 3, 3)
    cross_a2a3 = torch.cross(cell[:, 1], cell[:, 2], dim=-1)
    cell_vol = torch.sum(cell[:, 0] * cross_a2a3, dim=-1, keepdim=True)
    crosses = (
        cross_a2a3,
        torch.cross(cell[:, 2], cell[:, 0], dim=-1),
        torch.cross(cell[:, 0], cell[:, 1], dim=-1),
    )
    inv_min_dist = torch.stack([torch.norm(cross / cell_vol, p=2, dim=-1) for cross in crosses], dim=-1)
    # one read of the 3 + 3 values (a host read when the cell is on the host, as in `build_graph`)
    needed = torch.ceil(max_radius * inv_min_dist).view(3).tolist()
    return [int(n) if periodic else 0 for n, periodic in zip(needed, pbc.view(3).tolist())]


def _image_shifts(cell: torch.Tensor, reps: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Image grid and its Cartesian shifts.

    Returns:
        unit_cell: (C, 3) integer-valued lattice offsets, first axis slowest (``torch.cartesian_prod`` order).
        shifts: (C, 3) Cartesian shifts in Angstrom, ``cell^T @ unit_cell`` via ``torch.bmm`` as in fairchem.
    """
    axes = [torch.arange(-n, n + 1, device=cell.device, dtype=cell.dtype) for n in reps]
    unit_cell = torch.cartesian_prod(*axes)
    num_cells = unit_cell.shape[0]
    shifts = torch.bmm(cell.view(1, 3, 3).transpose(1, 2), unit_cell.t().reshape(1, 3, num_cells))
    return unit_cell, shifts[0].t()


def _spatial_order(pos: torch.Tensor, bin_size: float) -> torch.Tensor:
    """(N,) permutation that lists atoms bin by bin on a Cartesian grid of spacing ``bin_size``."""
    bins = torch.floor((pos - pos.min(dim=0).values) / bin_size).long()
    extent = bins.max(dim=0).values + 1
    key = (bins[:, 0] * extent[1] + bins[:, 1]) * extent[2] + bins[:, 2]
    return torch.argsort(key, stable=True)


def _candidate_pairs(
    pos: torch.Tensor, images: torch.Tensor, max_radius: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All (target, source image) pairs with ``1e-4 < d2 <= r*r``, in fairchem candidate order.

    Args:
        pos: (N, 3) positions of one structure.
        images: (N*C, 3) source positions ``pos[j] + shift[c]`` flattened with index ``j*C + c``.
        max_radius: cutoff in Angstrom.

    Returns:
        target: (M,) long target atom index i, sorted ascending.
        flat: (M,) long source image index ``j*C + c``, ascending within each target.
        d2: (M,) squared distances, computed exactly like fairchem.
    """
    num_atoms = pos.shape[0]
    reach = max_radius * (1.0 + 1e-5) + _PREFILTER_MARGIN
    order = _spatial_order(pos, max(max_radius / 2.0, 1.0))
    images_xyz = images.t().contiguous()
    pos_xyz = pos.t().contiguous()
    targets, flats, dists = [], [], []
    for start in range(0, num_atoms, _GROUP_SIZE):
        group = order[start : start + _GROUP_SIZE]
        group_pos = pos[group]
        low = group_pos.min(dim=0).values - reach
        high = group_pos.max(dim=0).values + reach
        near = torch.nonzero(((images >= low) & (images <= high)).all(dim=1)).view(-1)
        if near.numel() == 0:
            continue
        near_xyz = images_xyz[:, near]
        step = max(1, _PAIR_CHUNK // near.numel())
        for sub in range(0, group.numel(), step):
            sub_group = group[sub : sub + step]
            sub_xyz = pos_xyz[:, sub_group]
            # (dx*dx + dy*dy) + dz*dz with dx = pos_i - (pos_j + shift): fairchem's rounding, term by term.
            diff = sub_xyz[0, :, None] - near_xyz[0, None, :]
            d2 = diff * diff
            for axis in (1, 2):
                torch.sub(sub_xyz[axis, :, None], near_xyz[axis, None, :], out=diff)
                d2 += diff.mul_(diff)
            keep = (d2 <= max_radius * max_radius) & (d2 > _SELF_IMAGE_D2)
            row, col = torch.nonzero(keep, as_tuple=True)
            targets.append(sub_group[row])
            flats.append(near[col])
            dists.append(d2[row, col])
    if not targets:
        empty = torch.empty(0, dtype=torch.long, device=pos.device)
        return empty, empty, torch.empty(0, dtype=pos.dtype, device=pos.device)
    target = torch.cat(targets)
    # Each target's candidates form one contiguous block already in ascending ``flat`` order (row-major
    # nonzero); move the blocks into target order without a sort.
    counts = _counts(target, num_atoms)
    row_start = torch.cumsum(counts, dim=0) - counts
    position = torch.arange(target.numel(), device=target.device)
    block_start = torch.ones_like(target, dtype=torch.bool)
    block_start[1:] = target[1:] != target[:-1]
    first = torch.cummax(torch.where(block_start, position, 0), dim=0).values
    dest = row_start[target] + position - first
    perm = torch.empty_like(dest)
    perm[dest] = position
    return target[perm], torch.cat(flats)[perm], torch.cat(dists)[perm]


def _counts(index: torch.Tensor, size: int) -> torch.Tensor:
    """(size,) long occurrences of each value of ``index``: ``bincount`` without its read-back of the maximum."""
    return torch.zeros(size, dtype=torch.long, device=index.device).index_add_(0, index, torch.ones_like(index))


def _max_neighbors_mask(
    target: torch.Tensor, d2: torch.Tensor, num_atoms: int, max_neighbors: int, strict: bool
) -> torch.Tensor | None:
    """Boolean mask over candidates that implements fairchem's ``get_max_neighbors_mask`` for one structure.

    ``target`` must be sorted ascending with candidates in fairchem order within each target. Returns None when
    every candidate is kept.
    """
    counts = _counts(target, num_atoms)
    width = int(counts.max())  # host sync: the padded row width
    if max_neighbors <= 0 or width <= max_neighbors:
        return None
    row_start = torch.cumsum(counts, dim=0) - counts
    slot = target * width + torch.arange(target.numel(), device=target.device) - row_start[target]
    padded = torch.full((num_atoms * width,), math.inf, dtype=d2.dtype, device=d2.device)
    padded.index_copy_(0, slot, d2)
    padded = padded.view(num_atoms, width)
    # The (max_neighbors+1) smallest values of each row; they do not depend on any tie order.
    smallest = torch.topk(padded, max_neighbors + 1, dim=1, largest=False, sorted=True).values
    if not strict:
        threshold = smallest[:, max_neighbors] + _DEGENERACY_TOLERANCE
        return d2 <= threshold[target]
    last_kept = smallest[:, max_neighbors - 1]
    mask = d2 <= last_kept[target]
    # Rows where a tie straddles the cut: fairchem's choice comes from its unstable sort of the padded row,
    # so sort exactly those rows (same content, same width) the same way.
    tied = torch.nonzero((last_kept == smallest[:, max_neighbors]) & torch.isfinite(last_kept)).view(-1)
    if tied.numel() > 0:
        is_tied = torch.zeros(num_atoms, dtype=torch.bool, device=target.device)
        is_tied[tied] = True
        mask &= ~is_tied[target]
        sorted_idx = torch.sort(padded[tied], dim=1).indices[:, :max_neighbors]
        mask[(sorted_idx + row_start[tied].view(-1, 1)).view(-1)] = True
    return mask


def _radius_graph_single(
    pos: torch.Tensor,
    cell: torch.Tensor,
    reps: list[int],
    max_radius: float,
    max_neighbors: int,
    strict: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Edges of one structure with local indices: edge_index (2, E) [source; target], cell_offsets (E, 3).

    ``reps``: image repetitions per lattice axis (``_num_images``).
    """
    unit_cell, shifts = _image_shifts(cell, reps)
    images = (pos[:, None, :] + shifts[None, :, :]).reshape(-1, 3)
    target, flat, d2 = _candidate_pairs(pos, images, max_radius)
    return _selected_edges(pos.shape[0], unit_cell, target, flat, d2, max_neighbors, strict)


def _selected_edges(
    num_atoms: int,
    unit_cell: torch.Tensor,
    target: torch.Tensor,
    flat: torch.Tensor,
    d2: torch.Tensor,
    max_neighbors: int,
    strict: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``max_neighbors`` to one structure's candidates (``_candidate_pairs`` output) of ``num_atoms`` atoms.

    Returns edge_index (2, E) [source; target] with local indices and cell_offsets (E, 3).
    """
    num_cells = unit_cell.shape[0]
    mask = _max_neighbors_mask(target, d2, num_atoms, max_neighbors, strict)
    if mask is not None:
        kept = torch.nonzero(mask).view(-1)  # host sync: the number of edges
        target, flat = target.index_select(0, kept), flat.index_select(0, kept)
    # fairchem's get_pbc_distances also drops edges whose vector is exactly zero; every candidate has
    # d2 > 1e-4 (|vector| >= 0.01 Angstrom), so that rule never removes one and costs no pass here.
    source = torch.div(flat, num_cells, rounding_mode="floor")
    return torch.stack((source, target)), unit_cell[flat % num_cells]


def radius_graph_pbc(
    pos: torch.Tensor,
    cell: torch.Tensor,
    pbc: torch.Tensor,
    natoms: torch.Tensor,
    max_radius: float,
    max_neighbors: int,
    enforce_max_neighbors_strictly: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Radius graph of a batch of (possibly periodic) structures, identical to fairchem 1.10 per structure.

    Args:
        pos: (N, 3) positions in Angstrom, already wrapped along periodic axes (see ``build_graph``).
        cell: (B, 3, 3) cells in Angstrom, rows are lattice vectors; must be non-degenerate where periodic.
        pbc: (B, 3) bool periodicity per structure and axis (may differ between structures).
        natoms: (B,) long atom counts; atoms of structure b are consecutive in ``pos``.
        max_radius: cutoff r in Angstrom (pairs with ``d^2 <= r^2``).
        max_neighbors: neighbours kept per target atom; ``<= 0`` keeps all (as in fairchem).
        enforce_max_neighbors_strictly: True keeps exactly ``max_neighbors`` nearest (fairchem tie order, see the
            module docstring); False keeps all within the (max_neighbors+1)-th squared distance + 0.01 A^2.

    Returns:
        edge_index: (2, E) long, row 0 = source j, row 1 = target i, global indices; edges of structure b come
            after those of structure b-1, and within a structure in fairchem order (target, source, image).
        cell_offsets: (E, 3) integer-valued image shift of the source atom, dtype of ``pos``.
    """
    _check_radius(max_radius)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise InvalidStructureError(f"pos must have shape (N, 3), got {tuple(pos.shape)}")
    cell = cell.view(-1, 3, 3)
    pbc = pbc.view(-1, 3).bool()
    natoms = natoms.view(-1)
    if int(natoms.sum()) != pos.shape[0]:
        raise InvalidStructureError(f"natoms sums to {int(natoms.sum())} but pos holds {pos.shape[0]} atoms")
    if not (cell.shape[0] == pbc.shape[0] == natoms.shape[0]):
        raise InvalidStructureError(
            f"cell, pbc and natoms disagree on the number of structures: {cell.shape[0]}, {pbc.shape[0]}, "
            f"{natoms.shape[0]}"
        )
    counts = natoms.tolist()
    reps = []
    start = 0
    for b, count in enumerate(counts):
        what = f"structure {b}"
        if count <= 0:
            raise InvalidStructureError(f"{what} has no atoms")
        _check_cell(cell[b].detach().cpu().double().numpy(), pbc[b].cpu().numpy(), what)
        _check_positions(pos[start : start + count].detach().cpu(), what)
        start += count
        check_image_count(cell[b].detach().cpu().double().numpy(), pbc[b].cpu().numpy(), max_radius, what)
        reps.append(_num_images(cell[b].detach().to(pos.dtype), pbc[b], max_radius))
    return _radius_graph_batch(pos, cell, counts, reps, max_radius, max_neighbors, enforce_max_neighbors_strictly)


def _radius_graph_batch(
    pos: torch.Tensor,
    cell: torch.Tensor,
    counts: list[int],
    reps: list[list[int]],
    max_radius: float,
    max_neighbors: int,
    strict: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``radius_graph_pbc`` of checked input whose atom ``counts`` and image ``reps`` per structure the host knows;
    its only host syncs are the data-dependent sizes of the neighbour search."""
    edge_indices, offsets = [], []
    start = 0
    for b, count in enumerate(counts):
        edge_index, cell_offsets = _radius_graph_single(
            pos[start : start + count].detach(), cell[b].detach().to(pos.dtype), reps[b], max_radius, max_neighbors,
            strict,
        )
        edge_indices.append(edge_index + start)
        offsets.append(cell_offsets)
        start += count
    return torch.cat(edge_indices, dim=1), torch.cat(offsets, dim=0)


def build_graph(
    atoms: ase.Atoms | Sequence[ase.Atoms],
    max_radius: float,
    max_neighbors: int,
    enforce_max_neighbors_strictly: bool = True,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    num_elements: int | None = None,
) -> AtomicGraph:
    """Convert one or several ASE structures to an ``AtomicGraph`` (the fairchem ``AtomsToGraphs`` conversion).

    Args:
        atoms: an ``ase.Atoms`` or a sequence of them (each with its own cell and pbc).
        max_radius: cutoff in Angstrom.
        max_neighbors: neighbours kept per atom (``<= 0``: no limit).
        enforce_max_neighbors_strictly: see ``radius_graph_pbc``.
        dtype: floating dtype of pos / cell / cell_offsets (float32 reproduces fairchem).
        device: device the graph is built on and returned on.
        num_elements: when given, atomic numbers must be below it (a model's ``max_num_elements``).

    Raises:
        InvalidStructureError: empty structure, NaN/inf positions or cell, zero lattice vector along a periodic
            axis, degenerate cell, a cell needing more than ``MAX_IMAGE_CELLS`` images, non-positive cutoff, an
            atomic number that is no element or is beyond ``num_elements``.
    """
    _check_radius(max_radius)
    nodes, host_cells = _nodes(atoms, dtype, device, num_elements)
    counts = [len(a) for a in ([atoms] if isinstance(atoms, ase.Atoms) else atoms)]
    for b, (cell, pbc) in enumerate(host_cells):
        check_image_count(cell.double().numpy(), pbc.numpy(), max_radius, _structure_name(b, len(host_cells)))
    reps = [_num_images(cell, pbc, max_radius) for cell, pbc in host_cells]
    nodes.edge_index, nodes.cell_offsets = _radius_graph_batch(
        nodes.pos, nodes.cell, counts, reps, max_radius, max_neighbors, enforce_max_neighbors_strictly
    )
    return nodes


def _nodes(
    atoms: ase.Atoms | Sequence[ase.Atoms], dtype: torch.dtype, device: torch.device | str,
    num_elements: int | None = None,
) -> tuple[AtomicGraph, list[tuple[torch.Tensor, torch.Tensor]]]:
    """The checked, wrapped node tensors of ``build_graph`` with an empty edge set, on ``device``, and each
    structure's (cell (3, 3) in ``dtype``, pbc (3,)) on the host.

    All host data goes up in one pinned, non-blocking copy per tensor on CUDA (a copy from pageable memory
    would wait for the device's queue)."""
    structures = [atoms] if isinstance(atoms, ase.Atoms) else list(atoms)
    if not structures:
        raise InvalidStructureError("no structures given")
    positions, numbers, cells, pbcs, natoms = [], [], [], [], []
    for b, struct in enumerate(structures):
        what = _structure_name(b, len(structures))
        check_atoms(struct, what, num_elements)
        pbc = np.array(struct.pbc, dtype=bool)
        cell = complete_cell(np.array(struct.get_cell(), dtype=np.float64))
        pos = np.array(struct.get_positions(), dtype=np.float64)
        positions.append(torch.from_numpy(wrap_positions(pos, cell, pbc=pbc, eps=0)).to(dtype))
        _check_positions(positions[-1], f"{what} (in {dtype})")  # a finite float64 may overflow float32 (3.4e38 A)
        numbers.append(torch.from_numpy(np.array(struct.get_atomic_numbers(), dtype=np.int64)))
        cells.append(torch.from_numpy(cell).to(dtype))
        pbcs.append(torch.from_numpy(pbc))
        natoms.append(len(struct))
    device = torch.device(device)
    natoms_t = _upload(torch.tensor(natoms, dtype=torch.long), device)
    graph = AtomicGraph(
        pos=_upload(torch.cat(positions), device),
        atomic_numbers=_upload(torch.cat(numbers), device),
        cell=_upload(torch.stack(cells), device),
        pbc=_upload(torch.stack(pbcs), device),
        natoms=natoms_t,
        batch=torch.repeat_interleave(torch.arange(len(natoms), device=device), natoms_t, output_size=sum(natoms)),
        edge_index=torch.empty(2, 0, dtype=torch.long, device=device),
        cell_offsets=torch.empty(0, 3, dtype=dtype, device=device),
    )
    return graph, list(zip(cells, pbcs))


def _structure_name(b: int, count: int) -> str:
    """How messages name structure `b` of a batch of `count`: "structure b", or "structure" when alone."""
    return f"structure {b}" if count > 1 else "structure"


def _upload(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` (host) on ``device``; to CUDA from pinned memory without blocking the host."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def reuse_graph(
    reference: AtomicGraph,
    atoms: ase.Atoms | Sequence[ase.Atoms],
    max_radius: float,
    max_neighbors: int,
    enforce_max_neighbors_strictly: bool,
    max_displacement: float,
) -> AtomicGraph | None:
    """``build_graph(atoms, max_radius, ...)`` from the edges of an earlier graph (Verlet-skin reuse).

    ``reference`` must be ``build_graph(old_atoms, max_radius + skin, 0)`` (every pair within the larger
    cutoff) of the same structures. When no atom has moved more than ``max_displacement = skin / 2``
    (Angstrom) since then, every pair now within ``max_radius`` is among its edges; they are mapped to
    the current wrapped positions (an atom re-wrapped across a cell face changes its edges' cell offsets),
    filtered with fairchem's distance arithmetic, put in fairchem's order and given the same
    ``max_neighbors`` selection (tie rule included), so the result equals ``build_graph`` edge for edge.

    Returns None when the structures differ from the reference (atom count, elements, cell, pbc) or an
    atom moved too far: the caller builds a new reference.
    """
    nodes, _ = _nodes(atoms, reference.pos.dtype, reference.pos.device)
    same = (
        torch.equal(nodes.natoms, reference.natoms)
        and torch.equal(nodes.atomic_numbers, reference.atomic_numbers)
        and torch.equal(nodes.cell, reference.cell)
        and torch.equal(nodes.pbc, reference.pbc)
    )
    if not same:
        return None
    delta = nodes.pos - reference.pos
    atom_cell = nodes.cell[nodes.batch]
    fractional = torch.linalg.solve(atom_cell.transpose(1, 2), delta.unsqueeze(-1)).squeeze(-1)
    jumps = torch.round(fractional) * nodes.pbc[nodes.batch]
    moved = delta - torch.bmm(jumps.unsqueeze(1), atom_cell).squeeze(1)
    if float(torch.linalg.vector_norm(moved, dim=1).max()) > max_displacement:
        return None
    source, target = reference.edge_index
    offsets = reference.cell_offsets + jumps[target] - jumps[source]
    edge_struct = nodes.batch[target]
    edge_indices, cell_offsets = [], []
    start = 0
    for b, count in enumerate(nodes.natoms.tolist()):
        in_b = edge_struct == b
        edge_index, offset = _reselected_edges(
            nodes.pos[start : start + count], nodes.cell[b], nodes.pbc[b], source[in_b] - start,
            target[in_b] - start, offsets[in_b], max_radius, max_neighbors, enforce_max_neighbors_strictly,
        )
        edge_indices.append(edge_index + start)
        cell_offsets.append(offset)
        start += count
    nodes.edge_index, nodes.cell_offsets = torch.cat(edge_indices, dim=1), torch.cat(cell_offsets)
    return nodes


def _reselected_edges(
    pos: torch.Tensor,
    cell: torch.Tensor,
    pbc: torch.Tensor,
    source: torch.Tensor,
    target: torch.Tensor,
    offsets: torch.Tensor,
    max_radius: float,
    max_neighbors: int,
    strict: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``_radius_graph_single`` restricted to given candidate (source, target, offset) triples of one structure."""
    reps = _num_images(cell, pbc, max_radius)
    unit_cell, shifts = _image_shifts(cell, reps)
    reach = torch.tensor(reps, dtype=offsets.dtype, device=offsets.device)
    inside = (offsets.abs() <= reach).all(dim=1)
    source, target, offsets = source[inside], target[inside], offsets[inside]
    # index of the offset in the image grid, first lattice axis slowest (``torch.cartesian_prod`` order)
    digits = (offsets + reach).long()
    widths = [2 * n + 1 for n in reps]
    image = (digits[:, 0] * widths[1] + digits[:, 1]) * widths[2] + digits[:, 2]
    flat = source * unit_cell.shape[0] + image
    order = torch.argsort(target * (pos.shape[0] * unit_cell.shape[0]) + flat)
    target, flat, image, source = target[order], flat[order], image[order], source[order]
    # (dx*dx + dy*dy) + dz*dz with dx = pos_i - (pos_j + shift): the arithmetic of ``_candidate_pairs``
    diff = pos[target] - (pos[source] + shifts[image])
    d2 = diff * diff
    d2 = (d2[:, 0] + d2[:, 1]) + d2[:, 2]
    keep = (d2 <= max_radius * max_radius) & (d2 > _SELF_IMAGE_D2)
    return _selected_edges(pos.shape[0], unit_cell, target[keep], flat[keep], d2[keep], max_neighbors, strict)
