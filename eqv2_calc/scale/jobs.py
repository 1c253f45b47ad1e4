"""Chunked jobs: many structures, one `Task`, split into numbered chunks of work.

A chunk's id is its position in the job, so the same job always splits the same way and a results
directory can tell which chunks are done. The job's fingerprint (task, parameters, model, dtype, chunk
size and every structure) decides whether a results directory belongs to it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from .tasks import Task


@dataclass(frozen=True)
class Chunk:
    """Structures `indices` (positions in the job) with their labels, sent to one worker as one request."""

    id: int
    indices: tuple[int, ...]
    labels: tuple[str, ...]
    structures: tuple[Atoms, ...]


@dataclass
class Job:
    """`task` on every structure, by chunks of `chunk_size` (default `task.chunk_size`), with the checkpoint
    `model` (registered name, address or path).

    Attributes:
        structures, labels: the inputs and one label per input (e.g. 'file.xyz:3'), same length.
        dtype: 'float32' or 'float64', the precision the workers run the model in.
    """

    structures: Sequence[Atoms]
    labels: Sequence[str]
    task: Task
    model: str
    chunk_size: int | None = None
    dtype: str = "float32"

    def __post_init__(self) -> None:
        self.chunk_size = self.chunk_size or self.task.chunk_size
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size={self.chunk_size} must be at least 1")
        if len(self.structures) != len(self.labels):
            raise ValueError(f"{len(self.structures)} structures but {len(self.labels)} labels")
        if not self.structures:
            raise ValueError("the job has no structures")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype={self.dtype!r} must be 'float32' or 'float64'")

    def chunks(self) -> list[Chunk]:
        size = self.chunk_size
        return [Chunk(k, tuple(range(start, min(start + size, len(self.structures)))),
                      tuple(self.labels[start : start + size]), tuple(self.structures[start : start + size]))
                for k, start in enumerate(range(0, len(self.structures), size))]

    def describe(self) -> dict:
        """What the job is, as JSON-able data (stored in the results directory)."""
        return {"task": self.task.name, "params": dict(self.task.params), "model": self.model,
                "dtype": self.dtype, "chunk_size": self.chunk_size, "structures": len(self.structures),
                "chunks": -(-len(self.structures) // self.chunk_size), "columns": list(self.task.columns)}

    def fingerprint(self) -> str:
        """sha256 of `describe()` and of every label, element, position, cell, pbc and constraint."""
        digest = hashlib.sha256(json.dumps(self.describe(), sort_keys=True).encode())
        for label, atoms in zip(self.labels, self.structures):
            digest.update(label.encode())
            for array in (atoms.numbers, atoms.positions, np.array(atoms.cell), atoms.pbc):
                digest.update(np.ascontiguousarray(array).tobytes())
            digest.update(repr([c.todict() for c in atoms.constraints]).encode())
        return digest.hexdigest()
