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
import warnings
from collections.abc import Sequence
from pathlib import Path

from ase.io import write

from ..errors import ResultsDirError
from .jobs import Chunk, Job
from .tasks import ItemResult

BASE_COLUMNS = ("index", "structure", "chunk", "formula", "natoms")


def _atomic_write(path: Path, data: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(data)
    os.replace(tmp, path)


class ResultStore:
    """The results directory `directory` of `job` (created, or checked against the job it holds)."""

    def __init__(self, directory: str | os.PathLike, job: Job) -> None:
        self.directory = Path(directory)
        self.chunk_dir = self.directory / "chunks"
        self.columns = (*BASE_COLUMNS, *job.task.columns, "error")
        description = {**job.describe(), "fingerprint": job.fingerprint()}
        manifest = self.directory / "job.json"
        if manifest.is_file():
            held = json.loads(manifest.read_text())
            if held.get("fingerprint") != description["fingerprint"]:
                differences = [f"{key} {held.get(key)!r} there, {value!r} now" for key, value in description.items()
                               if key not in ("fingerprint", "columns") and held.get(key) != value]
                raise ResultsDirError(
                    f"{self.directory} holds the results of another job ({'; '.join(differences) or 'other structures'}"
                    "); give a new results directory, or delete this one to start over")
        elif self.directory.exists() and any(self.directory.iterdir()):
            raise ResultsDirError(f"{self.directory} exists and is not an eqv2 results directory (no job.json); "
                                  "give a new or empty directory")
        self.chunk_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(manifest, json.dumps(description, indent=2))

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
        with warnings.catch_warnings():  # info dicts (e.g. ASE's adsorbate_info) do not fit in extxyz
            warnings.filterwarnings("ignore", message="Skipping unhashable information")
            if frames:
                write(text, frames, format="extxyz")
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
