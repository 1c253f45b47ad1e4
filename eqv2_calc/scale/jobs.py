"""Chunked jobs: many structures, one `Task`, split into numbered chunks of work.

A chunk's id is its position in the job, so the same job always splits the same way and a results
directory can tell which chunks are done. The job's fingerprint (`fingerprint.py`: the model's weights, the
structures' content, the task and its settings) decides whether a results directory belongs to it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from ase import Atoms

from .fingerprint import model_fingerprint, structures_fingerprint
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

    def settings(self) -> dict:
        """The task and everything that sets its numbers besides the model and structures (JSON-able)."""
        return {"task": self.task.name, "params": dict(self.task.params), "dtype": self.dtype,
                "chunk_size": self.chunk_size}

    @cached_property
    def parts(self) -> dict[str, str]:
        """Hashes of what determines the results: 'model weights', 'structures' and 'settings'
        (the checkpoint file is hashed once per process; see `fingerprint.model_fingerprint`)."""
        settings = json.dumps(self.settings(), sort_keys=True).encode()
        return {"model weights": model_fingerprint(self.model),
                "structures": structures_fingerprint(self.structures, self.task.info_keys),
                "settings": hashlib.sha256(settings).hexdigest()}

    def describe(self) -> dict:
        """What the job is, as JSON-able data (stored in the results directory as job.json)."""
        return {**self.settings(), "model": self.model, "structures": len(self.structures),
                "chunks": -(-len(self.structures) // self.chunk_size), "columns": list(self.task.columns),
                "fingerprint": self.fingerprint(), "parts": self.parts}

    def fingerprint(self) -> str:
        """sha256 of `parts`: equal for two jobs that compute the same numbers."""
        return hashlib.sha256(json.dumps(self.parts, sort_keys=True).encode()).hexdigest()
