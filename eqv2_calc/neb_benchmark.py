"""OC20NEB-style validation: a model's NEB started from DFT NEB trajectories, its barriers against DFT's.

OC20NEB (CC-BY-4.0) holds DFT NEBs as ASE trajectories named like `desorption_id_83_2409_9_111-4_neb1.0.traj`:
the bands of the DFT optimization one after the other, `IMAGES_PER_BAND` images each (end points included),
with energies. As CatTSunami's `run_validation` does, the first band (the DFT end points and initial images)
starts the model's NEB, run with its settings: BFGS, k = 1 eV/Angstrom^2, ASE's aseneb method (its `OCPNEB`
default), a first stage to fmax + 0.4 eV/Angstrom, then the climbing image to fmax. A barrier is the highest
image minus the initial state; a band is barrierless when its barrier is <= 0.1 eV or <= reaction energy + 0.1 eV;
a band succeeds when both DFT and the model find a barrier and they agree within 0.1 eV, or both find none.

Differences from `run_validation`: the DFT barrier comes from the trajectory's last band (run_validation reads
it from its mapping file, `Ea`, the same DFT NEB); all bands run together through `run_nebs` (run_validation
runs one `OCPNEB`, an ASE `DyNEB` that skips converged images, at a time); the two stages share `steps`
(there 200 + 300, the climbing stage only after a converged first stage: here too, but the first stage may use
more of the budget); no DFT single points on the model's transition states.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import NEBError
from .evaluation import plot_parity
from .files import staged_files
from .neb import NEBResult, run_nebs
from .potential import Potential
from .predict import DEMO_MODEL
from .relax import DEFAULT_FMAX, DEFAULT_STEPS
from .structures import read_file

IMAGES_PER_BAND = 10  # OC20NEB bands: 8 moving images and the two end points
# CatTSunami's run_validation settings (its README: --k 1 --fmax 0.05 --delta_fmax_climb 0.4; BFGS; OCPNEB's method)
BENCHMARK_SPRING, BENCHMARK_METHOD, BENCHMARK_OPTIMIZER = 1.0, "aseneb", "BFGS"
SUCCESS_EV = 0.1  # barrier within this of DFT's, eV
BARRIERLESS_EV = 0.1  # a barrier <= this (or <= reaction energy + this) counts as none, eV
OUTPUT_FILES = ("oc20neb.csv", "oc20neb.json", "parity.png")
_REACTION = re.compile(r"^(desorption|dissociation|transfer)_")


@dataclass
class BenchmarkReport:
    """Rows (one per trajectory), summary numbers and the files written."""

    rows: list[dict]
    summary: dict
    files: list[Path] = field(default_factory=list)

    def lines(self) -> list[str]:
        s = self.summary
        out = [f"{s['trajectories']} OC20NEB-style trajectories, model {s['model']}",
               f"converged NEBs            {s['converged_percent']:.0f}%",
               f"success within 0.1 eV     {s['success_percent']:.1f}% of all, "
               f"{s['success_converged_percent']:.1f}% of converged",
               f"barrier MAE (both barriered, {s['both_barriered']})  {s['barrier_mae_eV']:.3f} eV"]
        if self.files:
            out.append(f"wrote {', '.join(str(path) for path in self.files)}")
        return out


def barrierless(barrier: float, reaction_energy: float) -> bool:
    """CatTSunami's rule: no barrier when it is <= 0.1 eV or <= the reaction energy + 0.1 eV."""
    return barrier <= BARRIERLESS_EV or barrier <= reaction_energy + BARRIERLESS_EV


def read_dft_band(path: str | os.PathLike, images_per_band: int = IMAGES_PER_BAND) -> tuple[list, np.ndarray]:
    """The first band of a DFT NEB trajectory (the start) and the energies of its last band (eV).

    Raises:
        NEBError: fewer frames than one band, a frame count that is not a whole number of bands, or frames
            without energies.
    """
    frames = read_file(path)
    if len(frames) < images_per_band or len(frames) % images_per_band:
        raise NEBError(f"{path}: {len(frames)} frames are not whole bands of {images_per_band} images")
    try:
        energies = np.array([atoms.get_potential_energy() for atoms in frames[-images_per_band:]])
    except RuntimeError as exc:  # ASE: no calculator / no energy stored
        raise NEBError(f"{path}: the last band holds no DFT energies ({exc})") from exc
    start = frames[:images_per_band]
    for atoms in start:
        atoms.calc = None
    return start, energies


def _row(path: Path, dft: np.ndarray, ml: NEBResult) -> dict:
    match = _REACTION.match(path.name)
    ea_dft, rxn_dft = float(dft.max() - dft[0]), float(dft[-1] - dft[0])
    flat_dft, flat_ml = barrierless(ea_dft, rxn_dft), barrierless(ml.barrier_forward, ml.reaction_energy)
    error = ml.barrier_forward - ea_dft
    return {"trajectory": path.name, "reaction": match.group(1) if match else "", "natoms": len(ml.images[0]),
            "E_a_dft_eV": ea_dft, "E_a_ml_eV": ml.barrier_forward, "error_eV": error,
            "E_rxn_dft_eV": rxn_dft, "E_rxn_ml_eV": ml.reaction_energy, "barrierless_dft": flat_dft,
            "barrierless_ml": flat_ml, "converged_ml": ml.converged, "steps": ml.steps, "fmax_ml": ml.fmax,
            "success": bool((not flat_dft and not flat_ml and abs(error) <= SUCCESS_EV) or (flat_dft and flat_ml))}


def summarize(rows: list[dict], model_name: str) -> dict:
    """Shares in percent (converged, success of all and of the converged ones) and the barrier MAE, eV."""
    converged = [r for r in rows if r["converged_ml"]]
    barriered = [r for r in rows if not (r["barrierless_dft"] or r["barrierless_ml"])]

    def percent(part: list, whole: list) -> float:
        return 100.0 * len(part) / len(whole) if whole else float("nan")

    return {"model": model_name, "trajectories": len(rows),
            "converged_percent": percent(converged, rows),
            "success_percent": percent([r for r in rows if r["success"]], rows),
            "success_converged_percent": percent([r for r in converged if r["success"]], converged),
            "both_barriered": len(barriered),
            "barrier_mae_eV": float(np.mean([abs(r["error_eV"]) for r in barriered])) if barriered else float("nan")}


def benchmark_oc20neb(
    directory: str | os.PathLike,
    model: str | os.PathLike | Potential = DEMO_MODEL,
    *,
    output_dir: str | os.PathLike | None = None,
    fmax: float = DEFAULT_FMAX,
    steps: int = DEFAULT_STEPS,
    k: float = BENCHMARK_SPRING,
    method: str = BENCHMARK_METHOD,
    optimizer: str = BENCHMARK_OPTIMIZER,
    images_per_band: int = IMAGES_PER_BAND,
    limit: int | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> BenchmarkReport:
    """Run a model's NEB from the first band of every `*.traj` in `directory` (sorted by name) and compare its
    barriers with the DFT bands' (see the module docstring).

    With `output_dir`: writes `oc20neb.csv` (a row per trajectory), `oc20neb.json` (summary and rows) and
    `parity.png` (model against DFT barrier), all moved in together once written.

    Raises:
        NEBError: no trajectories in `directory`, or one that is not whole bands with energies.
    """
    paths = sorted(Path(directory).glob("*.traj"))[:limit]
    if not paths:
        raise NEBError(f"{directory}: no *.traj files (OC20NEB trajectories) found")
    starts, dft = zip(*(read_dft_band(path, images_per_band) for path in paths))
    results = run_nebs(list(starts), model, fmax=fmax, steps=steps, k=k, method=method, optimizer=optimizer,
                       device=device, progress=progress)
    rows = [_row(path, energies, result) for path, energies, result in zip(paths, dft, results)]
    model_name = "(the given Potential)" if isinstance(model, Potential) else str(model)
    report = BenchmarkReport(rows, summarize(rows, model_name))
    if output_dir is not None:
        report.files = _write(Path(output_dir), report)
    return report


def _write(directory: Path, report: BenchmarkReport) -> list[Path]:
    table = io.StringIO()
    writer = csv.DictWriter(table, list(report.rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(report.rows)
    dft = np.array([r["E_a_dft_eV"] for r in report.rows])
    ml = np.array([r["E_a_ml_eV"] for r in report.rows])
    with staged_files(directory, OUTPUT_FILES) as staged:
        (staged / OUTPUT_FILES[0]).write_text(table.getvalue())
        (staged / OUTPUT_FILES[1]).write_text(json.dumps({"summary": report.summary, "rows": report.rows}, indent=2))
        plot_parity({"barrier": (dft, ml)}, staged / OUTPUT_FILES[2],
                    title=f"{report.summary['model']}: NEB barriers against DFT")
    return [directory / name for name in OUTPUT_FILES]
