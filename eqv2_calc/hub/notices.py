"""What a user should know about a model: its notice (domain, energy meaning, license) and domain warnings."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from ..errors import DomainWarning, ModelNotice
from .registry import DOMAINS, ModelEntry

if TYPE_CHECKING:
    from ase import Atoms

# A periodic direction whose largest atom-free gap is wider than this counts as vacuum. It lies above the
# interlayer gaps of layered bulk crystals (graphite 3.35 A) and below slab vacuum (OC20 slabs were made
# with pymatgen SlabGenerator(min_vacuum_size=20.0), fairchem.data.oc core/slab.py).
VACUUM_GAP_A = 6.0

_NOTIFIED: set[str] = set()
_MISFIT_WARNED: set[tuple[str, str]] = set()


def notice_text(entry: ModelEntry) -> str:
    """What a user should know before trusting the numbers: domain, energy meaning, license."""
    return (f"{entry.name} is {DOMAINS[entry.domain]}; training data: {entry.training_data}. Outputs: "
            f"{', '.join(entry.outputs)}; energy kind: {entry.energy_reference['kind']}. License: {entry.license} "
            f"({entry.license_details}). More: `eqv2 checkpoints info {entry.name}`")


def show_notice_once(entry: ModelEntry) -> None:
    """Issue the `ModelNotice` of `entry` the first time it is loaded in this process."""
    if entry.name not in _NOTIFIED:
        _NOTIFIED.add(entry.name)
        warnings.warn(notice_text(entry), ModelNotice, stacklevel=3)


def structure_kind(atoms: Atoms) -> str:
    """Classify `atoms` as "bulk" (periodic in 3D, no vacuum), "slab" (one open direction) or "molecule".

    A direction is open when it is not periodic or when the atoms leave an empty gap wider than
    `VACUUM_GAP_A` (Angstrom) across the cell along it.
    """
    import numpy as np

    cell = np.asarray(atoms.cell.array, dtype=float)
    volume = abs(np.linalg.det(cell))
    open_directions = 0
    for axis in range(3):
        if not atoms.pbc[axis] or volume < 1e-9:
            open_directions += 1
            continue
        others = cell[[a for a in range(3) if a != axis]]
        height = volume / np.linalg.norm(np.cross(others[0], others[1]))  # plane spacing along this axis
        frac = np.sort(atoms.get_scaled_positions(wrap=True)[:, axis])
        gaps = np.diff(np.concatenate([frac, frac[:1] + 1.0]))
        open_directions += bool(gaps.max() * height > VACUUM_GAP_A)
    return ("bulk", "slab")[open_directions] if open_directions < 2 else "molecule"


_MISFITS = {
    ("catalysis", "bulk"): ("was trained on catalyst surfaces with adsorbates, but this structure is periodic in "
                            "3D without a vacuum gap (a bulk crystal?); for bulk materials use an OMat24/MPtrj "
                            "model such as 'EquiformerV2-31M-OMAT24-MP-sAlex'"),
    ("bulk", "slab"): ("was trained on bulk crystals, but this structure has vacuum along one cell vector (a "
                       "slab?); for adsorbates on surfaces an OC20 model such as "
                       "'EquiformerV2-31M-S2EF-OC20-All+MD' fits better"),
    ("bulk", "molecule"): ("was trained on bulk crystals, but this structure is open in two or more directions "
                           "(a molecule or cluster?); such structures were not in its training data"),
}


def misfit_message(atoms: Atoms, entry: ModelEntry) -> str | None:
    """Why `atoms` does not fit the training domain of `entry`, or None when it looks fine."""
    if len(atoms) == 0 or entry.domain not in ("catalysis", "bulk"):
        return None
    reason = _MISFITS.get((entry.domain, structure_kind(atoms)))
    return f"{entry.name} {reason}" if reason else None


def warn_if_misfit(atoms: Atoms, entry: ModelEntry) -> None:
    """`DomainWarning` when `atoms` clearly does not fit `entry` (once per model and kind of misfit)."""
    message = misfit_message(atoms, entry)
    if message is not None and (entry.name, message) not in _MISFIT_WARNED:
        _MISFIT_WARNED.add((entry.name, message))
        warnings.warn(message, DomainWarning, stacklevel=3)
