"""`evaluate(data, model)`: a checkpoint's errors on a labelled dataset (fairchem LMDB, .aselmdb, ASE db, extxyz).

S2EF data (energy + forces, maybe stress): one batched `predict` call per `batch_size` structures, the
metrics of `eqv2_calc.metrics`. IS2RE data (initial structure + relaxed energy): the model relaxes every
initial structure (batched FIRE, `relax_many`) and its energy at its own relaxed geometry is compared with
the DFT relaxed energy ``y_relaxed``; no DFT single point is run at the model's geometry, so a model that
finds a different (lower or higher) minimum than DFT is scored by its own energy there.

With `output_dir`: ``metrics.json`` (summary, per element, per tag, timings), ``structures.csv`` (one row per
structure) and ``parity.png``, written only after every structure was evaluated (no half-written results).
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.dataset import DatasetError
from .data.formats import DatasetSource, open_dataset
from .errors import EnergyReferenceError, EquiformerV2Error
from .files import staged_files
from .hub import ModelEntry, find_entry
from .metrics import IS2REMetrics, S2EFMetrics
from .potential import Potential
from .predict import DEFAULT_BATCH_SIZE, DEMO_MODEL, evaluate as evaluate_batch, resolve_model
from .relax import DEFAULT_FMAX, DEFAULT_STEPS

OUTPUT_FILES = ("metrics.json", "structures.csv", "parity.png")


@dataclass
class EvaluationReport:
    """What `evaluate` measured.

    Attributes:
        metrics: the summary (units in the key names; see `eqv2_calc.metrics`), with 'task', 'data',
            'model', 'energy_kind', 'measured' (what was compared) and 'timing' (read and model seconds,
            structures/s).
        rows: one dict per structure (its key in the file, formula, natoms, errors).
        files: paths written (empty without `output_dir`).
    """

    metrics: dict[str, Any]
    rows: list[dict[str, Any]]
    files: list[Path] = field(default_factory=list)

    def lines(self) -> list[str]:
        """A human-readable summary."""
        m = self.metrics
        out = [f"{m['task']} on {m['data']} ({m['structures']} structures, {m['energy_kind']} energies) "
               f"with {m['model']}"]
        if m["task"] == "s2ef":
            out.append(f"energy MAE {m['energy_mae_eV']:.4f} eV ({m['energy_mae_meV_per_atom']:.2f} meV/atom); "
                       f"force MAE {m['forces_mae_eV_per_A']:.4f} eV/A, cosine {m['forces_cos']:.4f}; "
                       f"EFwT {100 * m['efwt']:.1f} %")
            if "stress_mae_eV_per_A3" in m:
                out.append(f"stress MAE {m['stress_mae_eV_per_A3']:.5f} eV/A^3 ({m['stress_mae_GPa']:.3f} GPa) on "
                           f"{m['stress_structures']} structures")
            for name in ("per_element", "per_tag"):
                parts = [f"{key} {g['forces_mae_eV_per_A']:.4f}" for key, g in m[name].items()]
                out.append(f"force MAE {name.replace('_', ' ')} (eV/A): {', '.join(parts)}")
        else:
            out.append(f"relaxed-energy MAE {m['relaxed_energy_mae_eV']:.4f} eV; EwT {100 * m['ewt']:.1f} %; "
                       f"{100 * m['converged']:.0f} % of relaxations converged")
        timing = m["timing"]
        out.append(f"read {timing['read_structures_per_s']:.1f} structures/s, model "
                   f"{timing['model_structures_per_s']:.2f} structures/s")
        out.append(f"measured: {m['measured']}")
        return out


def check_energy_kind(data_kind: str, entry: ModelEntry | None, model_name: str) -> str:
    """Refuse to compare a model's energies with labels of another reference; return a note on what is compared.

    Raises:
        EnergyReferenceError: the registry says the model predicts adsorption energies and the data holds
            total energies, or the other way round.
    """
    model_kind = entry.energy_reference["kind"] if entry is not None else None
    if model_kind in ("adsorption", "total") and model_kind != data_kind:
        raise EnergyReferenceError(
            f"{model_name} predicts {model_kind} energies but the data holds {data_kind} energies "
            "(OC20 S2EF/IS2RE: DFT total minus clean-slab and gas-phase references); they cannot be compared "
            "without per-system references. Evaluate a checkpoint of the same kind, or pass energy_kind / "
            "--energy-kind if the file's energies are not what was guessed")
    if model_kind is None or model_kind not in ("adsorption", "total"):
        warnings.warn(f"the energy reference of {model_name} is {model_kind or 'not registered'}; its energies are "
                      f"compared with the data's {data_kind} energies as they are", stacklevel=3)
        return f"model energies ({model_kind or 'unregistered reference'}) vs {data_kind} energies, as they are"
    return f"{model_kind} energies vs {data_kind} energies"


def evaluate(
    data: str | os.PathLike,
    model: str | os.PathLike | Potential = DEMO_MODEL,
    *,
    limit: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    output_dir: str | os.PathLike | None = None,
    energy_kind: str | None = None,
    device: str | torch.device = "auto",
    dtype: torch.dtype = torch.float32,
    ray: str | None = None,
    fmax: float = DEFAULT_FMAX,
    steps: int = DEFAULT_STEPS,
    progress: bool = True,
) -> EvaluationReport:
    """Errors of `model` on the labelled structures of `data`, as OC20 / OMat24 report them.

    Args:
        data: fairchem ``*.lmdb`` file or folder, ``.aselmdb``, ``.db`` or an ase.io file (`open_dataset`).
        model: registered name, checkpoint path, hf:// address, URL or a `Potential` (default: the demo model).
        limit: evaluate only the first `limit` structures (must not exceed the file's count).
        batch_size: structures per model call (S2EF) or relaxed together (IS2RE).
        output_dir: folder for metrics.json, structures.csv, parity.png (created; files replaced).
        energy_kind: "adsorption" or "total", what the file's energies are (None: guessed, see `open_dataset`).
        device, dtype: where and in which precision the model runs.
        ray: run through the scale-out layer (`eqv2_calc.scale`): 'local', 'auto' or an address; the chunk
            store goes to ``output_dir/scale`` (resumable) and the selected structures are held in memory.
        fmax, steps: IS2RE relaxations: force threshold (eV/Angstrom) and most FIRE steps.
        progress: show a progress bar.

    Raises:
        FileNotFoundError, DatasetError: unreadable data or a structure without the needed labels (file and key).
        EnergyReferenceError: model and data energies have different references (see `check_energy_kind`).
        ValueError: bad `limit` / `batch_size`, or `ray` without `output_dir` or with a `Potential` object.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    if limit is not None and limit < 1:
        raise ValueError(f"limit={limit} must be at least 1")
    if ray is not None and (output_dir is None or isinstance(model, Potential)):
        raise ValueError("ray needs output_dir (for its chunk store) and a model name or path (not an object)")
    start = time.perf_counter()
    source = open_dataset(data, energy_kind=energy_kind)
    open_s = time.perf_counter() - start  # ase.io files are read whole here
    try:
        if limit is not None and limit > len(source):
            raise DatasetError(f"{source.path}: limit {limit} is beyond the data, which holds {len(source)} "
                               f"structures (the last is {source.key(len(source) - 1)})")
        count = len(source) if limit is None else limit
        model_name = "Potential object" if isinstance(model, Potential) else str(model)
        if ray is None:
            potential, entry = resolve_model(model, device, dtype)
        else:  # the workers load their own copies
            potential, entry = None, find_entry(model)
        measured = check_energy_kind(source.energy_kind, entry, model_name)
        if source.task == "is2re":
            measured += ("; IS2RE: the model relaxes each initial structure (batched FIRE, fmax "
                         f"{fmax} eV/A, at most {steps} steps) and its energy at its own relaxed geometry is "
                         "compared with y_relaxed (no DFT single point at the model's geometry)")
        run = _run_scaled if ray is not None else _run_local
        metrics, keys, (read_s, model_s) = run(source, count, potential, model, batch_size=batch_size, fmax=fmax,
                                               steps=steps, ray=ray, output_dir=output_dir, progress=progress,
                                               device=device, dtype=dtype)
    finally:
        source.close()
    summary = {"task": source.task, "data": str(source.path), "format": source.format, "model": model_name,
               "energy_kind": source.energy_kind, "measured": measured, **metrics.summary(),
               "timing": _timing(count, open_s + read_s, model_s)}
    rows = [{**key, **row} for key, row in zip(keys, metrics.rows)]
    report = EvaluationReport(summary, rows)
    if output_dir is not None:
        report.files = _write_outputs(Path(output_dir), report, metrics.parity())
    return report


def _key(source: DatasetSource, index: int, atoms) -> dict[str, Any]:
    return {"index": index, "key": source.key(index), "sid": atoms.info.get("sid", ""),
            "fid": atoms.info.get("fid", ""), "formula": atoms.get_chemical_formula(), "natoms": len(atoms)}


def _timing(count: int, read_s: float, model_s: float) -> dict[str, float]:
    return {"read_s": read_s, "model_s": model_s, "read_structures_per_s": count / max(read_s, 1e-9),
            "model_structures_per_s": count / max(model_s, 1e-9)}


def _run_local(source: DatasetSource, count: int, potential: Potential, model: Any, *, batch_size: int, fmax: float,
               steps: int, progress: bool, **_: Any):
    """Read `batch_size` structures, evaluate them, accumulate; the file is streamed, never held whole."""
    from tqdm.auto import tqdm

    from .relax import relax_many

    metrics = S2EFMetrics() if source.task == "s2ef" else IS2REMetrics()
    keys, read_s, model_s = [], 0.0, 0.0
    with tqdm(total=count, unit="structure", desc="evaluate", disable=None if progress else True) as bar:
        for start in range(0, count, batch_size):
            t0 = time.perf_counter()
            batch = source[start : min(start + batch_size, count)]
            t1 = time.perf_counter()
            if source.task == "s2ef":
                predictions = evaluate_batch(potential, batch)
                model_s += time.perf_counter() - t1
                for atoms, p in zip(batch, predictions):
                    metrics.add(atoms, p.energy, p.forces, p.stress)
            else:
                results = relax_many(batch, potential, fmax=fmax, steps=steps, batch_size=batch_size, progress=False)
                model_s += time.perf_counter() - t1
                for atoms, r in zip(batch, results):
                    metrics.add(atoms, r.energy, r.energies[0], r.converged, r.steps)
            read_s += t1 - t0
            keys += [_key(source, start + i, atoms) for i, atoms in enumerate(batch)]
            bar.update(len(batch))
    return metrics, keys, (read_s, model_s)


def _run_scaled(source: DatasetSource, count: int, potential: None, model: Any, *, batch_size: int, fmax: float,
                steps: int, ray: str, output_dir: str | os.PathLike, progress: bool, device: Any, dtype: torch.dtype,
                **_: Any):
    """Through `eqv2_calc.scale` (Ray workers): predictions land in output_dir/scale, then are scored here."""
    from ase.io import read

    from .scale import Job, predict_task, relax_task, run

    t0 = time.perf_counter()
    structures = source[:count]
    read_s = time.perf_counter() - t0
    task = predict_task(batch_size) if source.task == "s2ef" else relax_task(fmax, steps, False, batch_size)
    job = Job(structures, [source.key(i) for i in range(count)], task, str(model),
              dtype="float64" if dtype == torch.float64 else "float32")
    t1 = time.perf_counter()
    summary = run(job, Path(output_dir) / "scale", ray=ray, device=str(device), progress=progress)
    model_s = time.perf_counter() - t1
    if summary.status != "complete" or summary.failed_structures:
        raise EquiformerV2Error("the scaled run did not finish: " + "; ".join(summary.lines()[1:-1] or [summary.status])
                                + "; run the same command again to resume")
    frames = {int(a.info["index"]): a for a in read(Path(output_dir) / "scale" / "structures.extxyz", index=":")}
    table = {}
    if source.task == "is2re":
        with open(Path(output_dir) / "scale" / "results.csv", newline="") as handle:
            table = {int(row["index"]): row for row in csv.DictReader(handle)}
    metrics = S2EFMetrics() if source.task == "s2ef" else IS2REMetrics()
    for i, atoms in enumerate(structures):
        done = frames[i]
        if source.task == "s2ef":
            stress = done.calc.results.get("stress")
            metrics.add(atoms, done.get_potential_energy(), done.calc.results["forces"], stress)
        else:  # the relax task keeps no initial energy
            metrics.add(atoms, done.get_potential_energy(), None, table[i]["converged"] == "True",
                        int(table[i]["steps"]))
    keys = [_key(source, i, atoms) for i, atoms in enumerate(structures)]
    return metrics, keys, (read_s, model_s)


def _write_outputs(directory: Path, report: EvaluationReport, parity: dict[str, tuple[np.ndarray, np.ndarray]]
                   ) -> list[Path]:
    """metrics.json, structures.csv and parity.png, written into a temporary folder and moved in together."""
    table = io.StringIO()
    columns = list(dict.fromkeys(key for row in report.rows for key in row))
    writer = csv.DictWriter(table, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(report.rows)
    with staged_files(directory, OUTPUT_FILES) as staged:
        (staged / "metrics.json").write_text(json.dumps(report.metrics, indent=2))
        (staged / "structures.csv").write_text(table.getvalue())
        plot_parity(parity, staged / "parity.png", title=f"{report.metrics['model']} on {report.metrics['data']}")
    return [directory / name for name in OUTPUT_FILES]


def plot_parity(parity: dict[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike, title: str = ""):
    """Predicted against reference values, one panel per quantity ('energy' eV, 'forces' eV/Angstrom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(parity), figsize=(4.2 * len(parity), 4), layout="constrained", squeeze=False)
    units = {"energy": "eV", "forces": "eV/Å", "relaxed energy": "eV", "barrier": "eV"}
    for ax, (name, (ref, pred)) in zip(axes[0], parity.items()):
        ax.scatter(ref, pred, s=12 if len(ref) < 1000 else 3, alpha=0.5, linewidths=0)
        if len(ref):
            low, high = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
            ax.plot([low, high], [low, high], color="k", lw=0.8)
            ax.set_title(f"{name}: MAE {np.abs(pred - ref).mean():.4f} {units.get(name, '')}")
        ax.set(xlabel=f"reference {name} ({units.get(name, '')})", ylabel=f"predicted {name} ({units.get(name, '')})")
    fig.suptitle(title, fontsize="small")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
