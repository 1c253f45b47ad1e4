"""AdsorbML screens at scale: a systems file (one bulk / Miller index / adsorbate per row) as a chunked job.

Systems file: CSV with a header and the columns
    bulk          bulk crystal file (CIF, POSCAR, ...), relative to the systems file's folder
    miller        three integers: "1 1 1", "1,1,1", "(1,1,1)" or "111"
    adsorbate     OC20 name (*CO, *OH, ...) or a molecule file (relative like `bulk`)
    binding_atoms optional: 0-based indices of the binding atom(s) of a molecule file, e.g. "0" or "0 1"
Each row is one work item: its bulk `Atoms` carry the row in `info["adsorbml_system"]`, and a worker runs
`eqv2_calc.adsorbml.run_adsorbml` on it (every termination of the cut, heuristic + random placements, one
batched relaxation). A row that cannot be read is reported and left out; the other rows run.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from ase import Atoms

from ..adsorbml import SlabSettings, run_adsorbml
from ..adsorbml.adsorbates import resolve_adsorbate
from ..adsorbml.screen import DEFAULT_NUM_RANDOM, SCREEN_FMAX, SCREEN_OPTIMIZER, SCREEN_STEPS, Candidate
from ..adsorbml.slabs import MIN_AB_A, MIN_SLAB_SIZE_A
from ..calculator import EquiformerV2Calculator
from ..errors import EquiformerV2Error, InvalidStructureError
from ..relax import DEFAULT_RELAX_BATCH
from ..structures import read_file
from .tasks import ItemResult, Task

REQUIRED_COLUMNS = ("bulk", "miller", "adsorbate")
SYSTEM_KEY = "adsorbml_system"
# Table columns of one system: energies in eV; "best" is the lowest adsorption energy over every valid
# placement on every termination (the lowest total energy when the model has no adsorption-energy scheme).
ADSORB_COLUMNS = ("slabs", "placements", "valid", "best_slab", "best_mode", "best_site", "best_energy_eV",
                  "best_adsorption_energy_eV", "best_converged")


def _miller(text: str) -> tuple[int, int, int]:
    compact = re.fullmatch(r"(-?\d){3}", text.strip())  # "111", "1-10"
    digits = re.findall(r"-?\d" if compact else r"-?\d+", text)
    if len(digits) != 3 or not any(int(d) for d in digits):
        raise ValueError(f"miller {text!r} must be three integers, not all zero (e.g. '1 1 1')")
    return int(digits[0]), int(digits[1]), int(digits[2])


def _row_system(row: dict[str, str], folder: Path) -> tuple[Atoms, str]:
    """The bulk of one row, carrying the row in its info, and the row's label."""
    missing = [c for c in REQUIRED_COLUMNS if not (row.get(c) or "").strip()]
    if missing:
        raise ValueError(f"empty {', '.join(missing)}")
    miller = _miller(row["miller"])
    bulk_path = folder / row["bulk"].strip()
    adsorbate = row["adsorbate"].strip()
    if (folder / adsorbate).is_file():
        adsorbate = str((folder / adsorbate).resolve())
    binding = [int(i) for i in re.findall(r"-?\d+", row.get("binding_atoms") or "")] or None
    resolve_adsorbate(adsorbate, binding)  # AdsorbateError now rather than on a worker
    bulk = read_file(bulk_path, index=-1)[0]
    bulk.info[SYSTEM_KEY] = {"miller": list(miller), "adsorbate": adsorbate, "binding_atoms": binding}
    label = f"{row['bulk'].strip()} ({','.join(map(str, miller))}) {row['adsorbate'].strip()}"
    return bulk, label + (f" binding {' '.join(map(str, binding))}" if binding else "")


def read_systems(path: str | os.PathLike) -> tuple[list[Atoms], list[str], list[str]]:
    """Bulks (each with its row in `info["adsorbml_system"]`), their labels, and one 'row N: why' per row
    left out (unreadable bulk, bad Miller index, unknown adsorbate).

    Raises:
        InvalidStructureError: the file is missing, has no header with bulk, miller and adsorbate, or no rows.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidStructureError(f"{path}: no such systems file")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle, skipinitialspace=True)
        columns = [c.strip() for c in reader.fieldnames or []]
        if not set(REQUIRED_COLUMNS) <= set(columns):
            raise InvalidStructureError(f"{path}: the header must name the columns {', '.join(REQUIRED_COLUMNS)} "
                                        f"(optional binding_atoms); found {', '.join(columns) or 'none'}")
        rows = list(reader)
    bulks, labels, problems = [], [], []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        try:
            if None in row:  # csv.DictReader's key of the fields beyond the header's
                raise ValueError(f"{len(columns) + len(row[None])} fields but {len(columns)} columns; quote a "
                                 'value holding commas ("1,1,1") or write it with spaces (1 1 1)')
            bulk, label = _row_system({k.strip(): v for k, v in row.items()}, path.parent)
        except (EquiformerV2Error, ValueError) as exc:
            problems.append(f"{path}: row {line} skipped: {exc}")
            continue
        bulks.append(bulk)
        labels.append(f"row {line}: {label}")
    if not bulks and not problems:
        raise InvalidStructureError(f"{path}: the systems file has no rows")
    return bulks, labels, problems


def _best(candidates: list[tuple[int, Candidate]]) -> tuple[int, Candidate] | None:
    valid = [(k, c) for k, c in candidates if c.valid]
    if not valid:
        return None
    by_adsorption = all(c.adsorption_energy is not None for _, c in valid)
    return min(valid, key=lambda kc: kc[1].adsorption_energy if by_adsorption else kc[1].energy)


def adsorb_items(calc: EquiformerV2Calculator, bulks: list[Atoms], *, num_random: int, fmax: float, steps: int,
                 optimizer: str, batch_size: int, seed: int, min_slab_size: float,
                 min_ab: float) -> list[ItemResult]:
    """`run_adsorbml` on each bulk of a chunk; one row per system and its best relaxed structure."""
    settings = SlabSettings(min_slab_size=min_slab_size, min_ab=min_ab)
    out: list[ItemResult] = []
    for bulk in bulks:
        system = bulk.info[SYSTEM_KEY]
        screens = run_adsorbml(bulk, system["adsorbate"], calc, miller=system["miller"], slab_settings=settings,
                               binding_indices=system["binding_atoms"], num_random=num_random, fmax=fmax,
                               steps=steps, optimizer=optimizer, batch_size=batch_size, seed=seed, progress=False)
        candidates = [(k, c) for k, s in enumerate(screens) for c in s.candidates]
        row = {"slabs": len(screens), "placements": len(candidates), "valid": sum(c.valid for _, c in candidates)}
        best = _best(candidates)
        if best is None:
            out.append((row, None))
            continue
        k, c = best
        row.update(best_slab=screens[k].label, best_mode=c.placement.mode, best_site=c.placement.site.kind,
                   best_energy_eV=c.energy, best_adsorption_energy_eV=c.adsorption_energy,
                   best_converged=c.result.converged)
        out.append((row, c.atoms))
    return out


def adsorb_task(num_random: int = DEFAULT_NUM_RANDOM, fmax: float = SCREEN_FMAX, steps: int = SCREEN_STEPS,
                optimizer: str = SCREEN_OPTIMIZER, batch_size: int = DEFAULT_RELAX_BATCH, seed: int = 0,
                min_slab_size: float = MIN_SLAB_SIZE_A, min_ab: float = MIN_AB_A) -> Task:
    """AdsorbML screens of systems from `read_systems` (settings as in `eqv2_calc.adsorbml.screen`); one system
    per chunk by default, as a system already fills batches with its placements."""
    return Task(adsorb_items, ADSORB_COLUMNS,
                {"num_random": num_random, "fmax": fmax, "steps": steps, "optimizer": optimizer,
                 "batch_size": batch_size, "seed": seed, "min_slab_size": min_slab_size, "min_ab": min_ab},
                chunk_size=1, info_keys=(SYSTEM_KEY,))
