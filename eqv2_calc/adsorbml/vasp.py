"""DFT hand-off of an AdsorbML screen: VASP inputs with OC20's settings for the top-k candidates and the
clean slab (ML+SP single points or ML+RX relaxations), and the collection of finished results.

Layout of a hand-off directory (`write_vasp_inputs`):

    DIR/eqv2_vasp.json               manifest: strategy, systems, ML energies, atom order of each POSCAR
    DIR/make_potcars.sh              builds every POTCAR from POTCAR.spec with your licensed PBE PAW set
    DIR/<system>/slab/               clean slab, relaxation (its energy references E_ads)
    DIR/<system>/rank<r>/            the r-th best valid ML candidate: single point (sp) or relaxation (rx)
        INCAR POSCAR KPOINTS POTCAR.spec eqv2_start.extxyz eqv2_placement.extxyz

INCAR tags are OC20's (fairchem-data-oc 1.0.2 `utils/vasp_flags.py`, VASP_FLAGS: RPBE, 350 eV, ...), with
NSW = 0 / IBRION = -1 for single points; k-points as OC20's `calculate_surface_k_points` (round(40 / |a|)
along a and b, 1 along c, Monkhorst-Pack); POTCARs are VASP's PBE PAW set, plain element names (ASE setups
"minimal", as OC20). POTCAR files are licensed and cannot be shipped: POTCAR.spec lists the elements in
POSCAR order. POSCAR atoms are grouped by element; the manifest keeps the order to map results back.

`collect_vasp(DIR)` reads vasprun.xml (or OUTCAR) through ASE. A run counts only when VASP finished it
(vasprun.xml closed by `</modeling>`, or OUTCAR holding VASP's final timing block); a relaxation must also
have reached |EDIFFG| on its free atoms. It reports AdsorbML's table: the DFT minimum over the top k of the
ML ranking against the best DFT energy found, k = 1..K (success: within 0.1 eV).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from ..errors import DFTHandoffError
from ..structures import write_structures
from .anomalies import detect_anomalies
from .report import _slug
from .screen import SystemScreen
from .slabs import ADSORBATE_TAG, SUBSURFACE_TAG

# OC20's INCAR tags for slabs and adsorbate+slab systems: fairchem-data-oc 1.0.2, fairchem/data/oc/utils/
# vasp_flags.py, VASP_FLAGS (ibrion, nsw, isif, ispin, isym, lreal, ediffg, symprec, encut, laechg, lwave,
# ncore, gga; its pp/xc "PBE" select the PBE POTCAR family, GGA = RP makes the functional RPBE).
OC20_INCAR: dict[str, object] = {
    "IBRION": 2, "NSW": 2000, "ISIF": 0, "ISPIN": 1, "ISYM": 0, "LREAL": "Auto", "EDIFFG": -0.03,
    "SYMPREC": 1e-10, "ENCUT": 350.0, "LAECHG": False, "LWAVE": False, "NCORE": 4, "GGA": "RP",
}
SINGLE_POINT_INCAR = {"NSW": 0, "IBRION": -1}  # ML+SP: energy of the ML-relaxed structure
POTCAR_FAMILY = "potpaw_PBE"
# OC20 surface k-point rule (fairchem-data-oc utils/vasp.py calculate_surface_k_points): round(40 / |a|_inf).
KPOINT_LENGTH_A = 40.0
# OC20 per-element gas-phase references, eV (RPBE; fairchem-core 2 run_adsorbml, from the OC20 SI).
OC20_GAS_REFERENCES_EV = {"H": -3.477, "O": -7.204, "C": -7.282, "N": -8.083}
SUCCESS_EV = 0.1  # AdsorbML dense_eval.py SUCCESS_THRESHOLD
STRATEGIES = ("sp", "rx")
MANIFEST = "eqv2_vasp.json"
START, PLACEMENT = "eqv2_start.extxyz", "eqv2_placement.extxyz"
RESULT_FILES = ("vasprun.xml", "OUTCAR", "OSZICAR", "CONTCAR")
_OUTCAR_DONE = "General timing and accounting"
_MAKE_POTCARS = """#!/bin/sh
# Build each POTCAR from its POTCAR.spec (VASP PBE PAW potentials, plain element names, as OC20 used).
# POTCARs are licensed by VASP Software GmbH and cannot be shipped; point VASP_PP_PATH at your copy.
set -e
cd "$(dirname "$0")"
: "${VASP_PP_PATH:?set VASP_PP_PATH to the folder that holds %s/}"
for spec in */*/POTCAR.spec; do
  dir=$(dirname "$spec")
  : > "$dir/POTCAR"
  while read -r element; do cat "$VASP_PP_PATH/%s/$element/POTCAR" >> "$dir/POTCAR"; done < "$spec"
done
""" % (POTCAR_FAMILY, POTCAR_FAMILY)


def _incar_value(value: object) -> str:
    if isinstance(value, bool):
        return ".TRUE." if value else ".FALSE."
    return str(value)


def surface_kpoints(atoms: Atoms) -> tuple[int, int, int]:
    """OC20's k-point mesh of a slab: round(40 A / |a|), round(40 A / |b|) (max-norm of the cell rows), 1."""
    a, b = (float(np.abs(atoms.cell[i]).max()) for i in (0, 1))
    return max(1, round(KPOINT_LENGTH_A / a)), max(1, round(KPOINT_LENGTH_A / b)), 1


def _species_order(atoms: Atoms) -> np.ndarray:
    """Permutation grouping atoms by element (elements in order of first appearance; stable within one)."""
    symbols = atoms.get_chemical_symbols()
    first = {s: i for i, s in reversed(list(enumerate(symbols)))}
    return np.array(sorted(range(len(symbols)), key=lambda i: (first[symbols[i]], i)))


def _write_calculation(directory: Path, atoms: Atoms, placement: Atoms, single_point: bool) -> list[int]:
    """INCAR, POSCAR, KPOINTS, POTCAR.spec and our extxyz copies in `directory`; returns the POSCAR order."""
    directory.mkdir(parents=True, exist_ok=True)
    order = _species_order(atoms)
    poscar = atoms[order]
    poscar.pbc = True
    if np.linalg.det(poscar.cell.array) < 0:  # VASP wants a right-handed cell (OC20 swaps a and b)
        poscar.set_cell(poscar.cell.array[[1, 0, 2]])
    incar = {**OC20_INCAR, **(SINGLE_POINT_INCAR if single_point else {})}
    (directory / "INCAR").write_text("".join(f"{k} = {_incar_value(v)}\n" for k, v in incar.items()))
    write_structures(directory / "POSCAR", poscar, format="vasp", direct=True, sort=False)
    k = surface_kpoints(poscar)
    (directory / "KPOINTS").write_text(
        f"OC20 surface mesh (40 A / cell length)\n0\nMonkhorst-Pack\n{k[0]} {k[1]} {k[2]}\n0 0 0\n")
    species = list(dict.fromkeys(poscar.get_chemical_symbols()))
    (directory / "POTCAR.spec").write_text("\n".join(species) + "\n")
    write_structures(directory / START, atoms, format="extxyz")
    write_structures(directory / PLACEMENT, placement, format="extxyz")
    return order.tolist()


def write_vasp_inputs(systems: Sequence[SystemScreen], directory: str | os.PathLike, top_k: int = 5,
                      strategy: str = "sp") -> Path:
    """VASP inputs for the `top_k` best valid candidates and the clean slab of each screened system.

    Args:
        systems: from `screen` / `run_adsorbml`.
        directory: the hand-off directory (created; see the module docstring for its layout).
        top_k: candidates per system (AdsorbML: k = 1..5).
        strategy: "sp" (ML+SP: single points on the ML-relaxed structures) or "rx" (ML+RX: DFT relaxations
            started from them). The clean slab is relaxed in both.

    Returns:
        The manifest path.

    Raises:
        DFTHandoffError: a calculation directory already holds results (nothing is written then).
        ValueError: bad `strategy` or `top_k`.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"DFT strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if top_k < 1:
        raise ValueError(f"top_k={top_k} must be at least 1")
    root = Path(directory)
    jobs, bases = [], []
    for system in systems:
        base = _slug(system.label)
        base = base if base not in bases else f"{base}_{len(bases)}"  # two terminations of one facet
        bases.append(base)
        jobs.append((base, "slab", system.slab_result.atoms, system.slab, None, None))
        for rank, c in enumerate(system.top(top_k), start=1):
            jobs.append((base, f"rank{rank}", c.atoms, c.placement.atoms, c, rank))
    finished = [f"{base}/{name}/{f}" for base, name, *_ in jobs for f in RESULT_FILES
                if (root / base / name / f).exists()]
    if finished:
        raise DFTHandoffError(f"{root} already holds DFT results ({', '.join(finished[:3])}"
                              f"{', ...' if len(finished) > 3 else ''}); refusing to overwrite: use another directory "
                              f"or collect them with `eqv2 adsorb --collect {root}`")
    calcs = []
    for base, name, atoms, placement, candidate, rank in jobs:
        single_point = candidate is not None and strategy == "sp"
        order = _write_calculation(root / base / name, atoms, placement, single_point)
        calcs.append({"dir": f"{base}/{name}", "system": base, "kind": "slab" if candidate is None else "candidate",
                      "rank": rank, "single_point": single_point, "order": order,
                      "ml_energy_eV": candidate.energy if candidate else None,
                      "ml_adsorption_energy_eV": candidate.adsorption_energy if candidate else None,
                      "site": candidate.placement.site.kind if candidate else None})
    labels = dict(zip(bases, (s.label for s in systems)))
    manifest = {"strategy": strategy, "top_k": top_k, "incar": OC20_INCAR, "potcar_family": POTCAR_FAMILY,
                "systems": labels, "calculations": calcs}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1))
    script = root / "make_potcars.sh"
    script.write_text(_MAKE_POTCARS)
    script.chmod(0o755)
    return root / MANIFEST


@dataclass
class DFTResult:
    """One calculation of a hand-off directory as collected.

    Attributes:
        dir: relative directory; status: "done", "not started", "unfinished", "not converged" or "unreadable: ...".
        energy: DFT energy (eV) when done; atoms: final structure in the screen's atom order, tags kept.
        anomalies: AdsorbML rules the DFT-relaxed structure breaks (relaxations only).
    """

    dir: str
    status: str
    energy: float | None = None
    atoms: Atoms | None = None
    anomalies: list[str] = field(default_factory=list)


def _finished_file(directory: Path) -> tuple[Path | None, str]:
    """The result file to read and the run's status ("done", "not started", "unfinished")."""
    xml, outcar = directory / "vasprun.xml", directory / "OUTCAR"
    if xml.exists() and xml.read_text(errors="replace").rstrip().endswith("</modeling>"):
        return xml, "done"
    if outcar.exists() and _OUTCAR_DONE in outcar.read_text(errors="replace"):
        return outcar, "done"
    if xml.exists() or outcar.exists():
        return None, "unfinished"
    return None, "not started"


def _read_calculation(root: Path, calc: dict, relax_fmax: float) -> DFTResult:
    from ase.io import read

    directory = root / calc["dir"]
    path, status = _finished_file(directory)
    if path is None:
        return DFTResult(calc["dir"], status)
    start = read(directory / START, format="extxyz")
    try:
        final = read(path, format="vasp-xml" if path.name == "vasprun.xml" else "vasp-out", index=-1)
        energy = float(final.get_potential_energy())
        forces = final.get_forces(apply_constraint=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure is reported, not raised
        return DFTResult(calc["dir"], f"unreadable: {type(exc).__name__}: {exc}")
    if len(final) != len(start):
        return DFTResult(calc["dir"], f"unreadable: {len(final)} atoms, the POSCAR had {len(start)}")
    back = np.argsort(calc["order"])
    atoms = start.copy()
    atoms.positions = final.positions[back]
    free = start.get_tags() != SUBSURFACE_TAG  # OC20 fixes exactly the tag-0 atoms
    if not calc["single_point"] and np.linalg.norm(forces[back][free], axis=1).max(initial=0.0) > relax_fmax:
        return DFTResult(calc["dir"], "not converged", energy, atoms)
    return DFTResult(calc["dir"], "done", energy, atoms)


@dataclass
class HandoffReport:
    """What `collect_vasp` found: the manifest and one `DFTResult` per calculation (manifest order)."""

    manifest: dict
    results: list[DFTResult]

    def lines(self) -> list[str]:
        """The per-system table (ML rank, ML energy, DFT energy and E_ads, status) and AdsorbML's top-k summary."""
        out = [f"strategy: ML+{self.manifest['strategy'].upper()}; OC20 INCAR; E_ads with OC20 gas references "
               "(RPBE: H -3.477, O -7.204, C -7.282, N -8.083 eV)"]
        by_dir = dict(zip((c["dir"] for c in self.manifest["calculations"]), self.results))
        for system, label in self.manifest["systems"].items():
            calcs = [c for c in self.manifest["calculations"] if c["system"] == system]
            slab = next(by_dir[c["dir"]] for c in calcs if c["kind"] == "slab")
            slab_energy = f", {slab.energy:.4f} eV" if slab.energy is not None else ""
            out.append(f"{label}: clean slab {slab.status}{slab_energy}")
            out.append(f"  {'ML rank':>7} {'site':<7} {'ML E (eV)':>11} {'DFT E (eV)':>12} {'DFT E_ads':>9}  status")
            dft = []
            for c in (c for c in calcs if c["kind"] == "candidate"):
                r = by_dir[c["dir"]]
                usable = r.status == "done" and not r.anomalies
                e_ads = "-"
                if usable and slab.status == "done":
                    symbols = np.array(r.atoms.get_chemical_symbols())[r.atoms.get_tags() == ADSORBATE_TAG]
                    if set(symbols) <= set(OC20_GAS_REFERENCES_EV):
                        e_ads = f"{r.energy - slab.energy - sum(OC20_GAS_REFERENCES_EV[s] for s in symbols):.3f}"
                status = r.status + (f" ({', '.join(r.anomalies)}: rejected)" if r.anomalies else "")
                energy = f"{r.energy:>12.4f}" if r.energy is not None else f"{'-':>12}"
                out.append(f"  {c['rank']:>7} {c['site'] or '':<7} {c['ml_energy_eV']:>11.4f} {energy} {e_ads:>9}  "
                           f"{status}")
                dft.append(r.energy if usable else None)
            out += _success_lines(dft)
        counts = {}
        for r in self.results:
            key = r.status.split(":")[0]
            counts[key] = counts.get(key, 0) + 1
        out.append("calculations: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
        return out


def _success_lines(dft: list[float | None]) -> list[str]:
    """AdsorbML's top-k table for one system: DFT energies in ML-rank order (None: not usable)."""
    done = [e for e in dft if e is not None]
    if not done:
        return ["  no finished valid DFT result yet"]
    best = min(done)
    lines = [f"  {'k':>3} {'min DFT E (eV)':>15} {'- best (eV)':>11} success (<= {SUCCESS_EV} eV)"]
    for k in range(1, len(dft) + 1):
        found = [e for e in dft[:k] if e is not None]
        if found:
            lines.append(f"  {k:>3} {min(found):>15.4f} {min(found) - best:>11.3f} "
                         f"{'yes' if min(found) - best <= SUCCESS_EV else 'no'}")
        else:
            lines.append(f"  {k:>3} {'-':>15} {'-':>11} no")
    missing = sum(e is None for e in dft)
    note = f"; {missing} of {len(dft)} not usable yet, so 'best' may still drop" if missing else ""
    lines.append(f"  best = lowest DFT energy among the {len(done)} usable candidates{note}")
    return lines


def collect_vasp(directory: str | os.PathLike) -> HandoffReport:
    """Read the finished VASP runs of a hand-off directory written by `write_vasp_inputs`.

    Relaxations (the slab; ML+RX candidates) count as done when their free atoms' forces are within
    |EDIFFG|; relaxed candidates are checked against AdsorbML's rules (with the DFT clean slab when done).

    Raises:
        DFTHandoffError: no manifest (not a hand-off directory) or an unreadable one.
    """
    root = Path(directory)
    try:
        manifest = json.loads((root / MANIFEST).read_text())
        calcs = manifest["calculations"]
    except FileNotFoundError:
        raise DFTHandoffError(f"{root} holds no {MANIFEST}: write it with `eqv2 adsorb ... --vasp {root}`") from None
    except (ValueError, KeyError) as exc:
        raise DFTHandoffError(f"{root / MANIFEST} is not an eqv2 VASP manifest: {exc}") from None
    relax_fmax = abs(float(manifest.get("incar", OC20_INCAR)["EDIFFG"]))
    results = [_read_calculation(root, c, relax_fmax) for c in calcs]
    slabs = {c["system"]: r for c, r in zip(calcs, results) if c["kind"] == "slab"}
    from ase.io import read

    for calc, result in zip(calcs, results):
        if calc["kind"] == "candidate" and not calc["single_point"] and result.status == "done":
            placement = read(root / calc["dir"] / PLACEMENT, format="extxyz")
            slab = slabs[calc["system"]]
            clean = slab.atoms if slab.status == "done" else None
            result.anomalies = detect_anomalies(placement, result.atoms, clean)
    return HandoffReport(manifest, results)
