"""Results directory of a chunked job: written chunk by chunk, so a re-run resumes where it stopped.

Layout (`DIR`):
    job.json              what the job is and its fingerprint (a re-run must match it)
    chunks/000012.csv     table rows of chunk 12; its presence marks the chunk done
    chunks/000012.extxyz  structures of chunk 12 (energy eV, forces eV/A; info 'index' and 'structure')
    results.csv           all rows in input order (rebuilt from the chunk files after every run)
    structures.extxyz     all structures in input order (structures that failed are missing)
    summary.json          what the last run did: chunks skipped, retried, failed, and why

Every file is written to a temporary name and renamed, so an interrupt never leaves half a chunk, and
a chunk already on disk is never written again.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import ResultsDirError
from ..structures import write_structures
from .jobs import Chunk, Job
from .tasks import ItemResult

BASE_COLUMNS = ("index", "structure", "chunk", "formula", "natoms")


def _atomic_write(path: Path, data: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(data)
    os.replace(tmp, path)


PART_NAMES = {"model weights": "the model's weights", "structures": "the structures",
              "settings": "the settings"}
RESULT_FILES = ("results.csv", "structures.extxyz", "summary.json", "job.json")


def _differences(held: dict, description: dict) -> list[str]:
    """What differs between the job stored in a directory (`held`, its job.json) and this one, for people."""
    parts = held.get("parts")
    if not isinstance(parts, dict):
        return ["the directory was written by an older eqv2-calc that did not record the model's weights"]
    now = description["parts"]
    out = []
    if parts.get("model weights") != now["model weights"]:
        same_name = held.get("model") == description["model"]
        out.append(f"model weights: {held.get('model')!r} there was {parts.get('model weights')}, "
                   f"{description['model']!r} now is {now['model weights']}"
                   + (" (the checkpoint was replaced)" if same_name else ""))
    if parts.get("structures") != now["structures"]:
        counts = (held.get("structures"), description["structures"])
        out.append(f"structures: {counts[0]} there, {counts[1]} now" if counts[0] != counts[1] else
                   f"structures: {counts[1]} both, with other elements, positions, cells or constraints")
    if parts.get("settings") != now["settings"]:
        keys = ("task", "dtype", "chunk_size")
        changed = [f"{k} {held.get(k)!r} there, {description[k]!r} now" for k in keys if held.get(k) != description[k]]
        params, new = held.get("params") or {}, description["params"]
        changed += [f"{k} {params.get(k)!r} there, {new.get(k)!r} now" for k in sorted({*params, *new})
                    if params.get(k) != new.get(k)]
        out.append(f"settings: {'; '.join(changed) or 'other settings'}")
    return out


class ResultStore:
    """The results directory `directory` of `job`: created, or checked against the job it holds.

    A directory of another job is refused (`ResultsDirError` saying what differs) and left untouched,
    unless `overwrite`, which first deletes the results it holds. A non-empty folder that is not a
    results directory is always refused.
    """

    def __init__(self, directory: str | os.PathLike, job: Job, *, overwrite: bool = False) -> None:
        self.directory = Path(directory)
        self.chunk_dir = self.directory / "chunks"
        self.columns = (*BASE_COLUMNS, *job.task.columns, "error")
        description = job.describe()
        manifest = self.directory / "job.json"
        if manifest.is_file():
            held = json.loads(manifest.read_text())
            if overwrite:
                self._clear()
            elif held.get("fingerprint") != description["fingerprint"]:
                raise ResultsDirError(
                    f"{self.directory} holds the results of another job: {'; '.join(_differences(held, description))}"
                    f". Nothing was changed there. Give a new directory (--results NEWDIR), or start over in this "
                    "one (--overwrite; run_job(..., overwrite=True)), which deletes its results")
        elif self.directory.exists() and any(self.directory.iterdir()):
            raise ResultsDirError(f"{self.directory} exists and is not an eqv2 results directory (no job.json); "
                                  "give a new or empty directory")
        self.chunk_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(manifest, json.dumps(description, indent=2))

    def _clear(self) -> None:
        """Delete the results of the job held here (chunk files and merged files), nothing else."""
        if self.chunk_dir.is_dir():
            for path in self.chunk_dir.glob("[0-9]*.*"):
                path.unlink()
        for name in RESULT_FILES:
            (self.directory / name).unlink(missing_ok=True)

    def _path(self, chunk_id: int, suffix: str) -> Path:
        return self.chunk_dir / f"{chunk_id:06d}{suffix}"

    def done(self) -> set[int]:
        """Ids of the chunks whose results are on disk."""
        return {int(p.stem) for p in self.chunk_dir.glob("[0-9]*.csv")}

    def write(self, chunk: Chunk, results: Sequence[ItemResult | str]) -> bool:
        """Store one chunk (`results` as `ModelWorker.run` returns them); False if it was already stored."""
        if self._path(chunk.id, ".csv").exists():
            return False
        table, frames = io.StringIO(), []
        writer = csv.DictWriter(table, self.columns, lineterminator="\n")
        writer.writeheader()
        for index, label, atoms, result in zip(chunk.indices, chunk.labels, chunk.structures, results, strict=True):
            row = {"index": index, "structure": label, "chunk": chunk.id, "formula": atoms.get_chemical_formula(),
                   "natoms": len(atoms)}
            if isinstance(result, str):
                row["error"] = result
            else:
                values, final = result
                row.update(values)
                if final is not None:
                    final.info.update(index=index, structure=label)
                    frames.append(final)
            writer.writerow(row)
        text = io.StringIO()
        if frames:
            write_structures(text, frames, format="extxyz")
        _atomic_write(self._path(chunk.id, ".extxyz"), text.getvalue())
        _atomic_write(self._path(chunk.id, ".csv"), table.getvalue())  # last: marks the chunk done
        return True

    def merge(self) -> list[tuple[str, str]]:
        """Write results.csv and structures.extxyz from the stored chunks; the (label, error) of failed rows."""
        ids = sorted(self.done())
        rows = []
        for chunk_id in ids:
            with open(self._path(chunk_id, ".csv"), newline="") as handle:
                rows += list(csv.DictReader(handle))
        table = io.StringIO()
        writer = csv.DictWriter(table, self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        _atomic_write(self.directory / "results.csv", table.getvalue())
        _atomic_write(self.directory / "structures.extxyz",
                      "".join(self._path(i, ".extxyz").read_text() for i in ids))
        return [(row["structure"], row["error"]) for row in rows if row["error"]]

    def write_summary(self, summary: dict) -> None:
        _atomic_write(self.directory / "summary.json", json.dumps(summary, indent=2))
