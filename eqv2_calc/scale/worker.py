"""The model-holding worker: loads a checkpoint once, then runs `Task`s on chunks of structures.

The same class runs in-process (`LocalExecutor`) and as a Ray actor (`RayExecutor`). A chunk the model
refuses as a whole (an invalid structure, a non-finite energy) is redone one structure at a time, so
one bad structure costs only its own row: it comes back as an error string instead of a result.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from ase import Atoms

from ..calculator import EquiformerV2Calculator
from ..errors import EquiformerV2Error, WorkerError
from .tasks import ItemResult, Task

# Errors a structure (not the worker) causes: the chunk is retried item by item.
STRUCTURE_ERRORS = (EquiformerV2Error, ValueError, FloatingPointError)


class ModelWorker:
    """Holds one model (an `EquiformerV2Calculator`: potential, registry entry, device; loaded in `__init__`)
    and serves `run(task, structures)` requests.

    A model that cannot be loaded does not raise here (a Ray actor that raises in `__init__` only says
    that it died): `load_error` holds the reason and `run` refuses work.
    """

    def __init__(self, model: str, device: str = "auto", dtype: str = "float32", threads: int | None = None) -> None:
        if threads is not None:
            torch.set_num_threads(threads)
        self.model = model
        self.calculator: EquiformerV2Calculator | None = None
        self.load_error: str | None = None
        try:
            self.calculator = EquiformerV2Calculator(model, device=device, dtype=getattr(torch, dtype))
        except Exception as exc:  # reported to the driver, which raises WorkerError
            self.load_error = f"{type(exc).__name__}: {exc}"

    def ready(self) -> str | None:
        """None when the model is loaded, else why it could not be."""
        return self.load_error

    def run(self, task: Task, structures: Sequence[Atoms]) -> list[ItemResult | str]:
        """One `(row, Atoms)` per structure, or an error string for a structure the model refused."""
        if self.calculator is None:
            raise WorkerError(f"this worker could not load {self.model}: {self.load_error}")
        try:
            return list(task(self.calculator, structures))
        except STRUCTURE_ERRORS as exc:
            if len(structures) == 1:
                return [f"{type(exc).__name__}: {exc}"]
        return [item for atoms in structures for item in self.run(task, [atoms])]
