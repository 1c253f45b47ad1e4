"""Structures evaluated side by side on CPU threads, one PyTorch intra-op thread each.

On a CPU, PyTorch's intra-op threads split every operation of a model call. The graphs `relax_many` evaluates
(a few hundred atoms) make small operations, and the threads spend much of a call waking each other (or,
with OMP_WAIT_POLICY=PASSIVE, sleeping): one call on two 98-atom slabs with CO took 0.76-1.02 s on 2
threads (demo model, PASSIVE, 2 cores). Two Python threads evaluating one slab each, with one intra-op
thread, took 0.48-0.57 s for the pair: PyTorch releases the GIL inside its kernels, and autograd runs a
backward on its calling thread. Results are those of evaluating each group alone (float round-off aside).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch
from ase import Atoms

from .potential import Potential

T = TypeVar("T")


def split_by_atoms(structures: Sequence[Atoms], parts: int) -> list[list[Atoms]]:
    """`structures` cut into at most `parts` consecutive groups of about equal atom counts (none empty)."""
    total = sum(len(a) for a in structures)
    groups: list[list[Atoms]] = [[]]
    done = 0
    for atoms in structures:
        if groups[-1] and len(groups) < parts and done >= total * len(groups) / parts:
            groups.append([])
        groups[-1].append(atoms)
        done += len(atoms)
    return groups


class CpuWorkers:
    """While open (`with CpuWorkers(potential) as workers:`), `workers.map(run, structures)` splits a list of
    structures over `count` threads (default: PyTorch's thread count, e.g. from `--threads`), each calling `run`
    (e.g. `partial(predict.evaluate, potential)`) on its share, and PyTorch runs one intra-op thread (its thread
    count is restored on exit). On a GPU, or with one thread, it is `run(structures)`."""

    def __init__(self, potential: Potential, count: int | None = None) -> None:
        on_cpu = next(potential.parameters()).device.type == "cpu"
        self.potential = potential
        self.count = (count or torch.get_num_threads()) if on_cpu else 1
        self._pool: ThreadPoolExecutor | None = None
        self._saved_threads = 0

    def __enter__(self) -> CpuWorkers:
        if self.count > 1:
            self._saved_threads = torch.get_num_threads()
            torch.set_num_threads(1)
            self._pool = ThreadPoolExecutor(self.count, thread_name_prefix="eqv2-cpu")
        return self

    def __exit__(self, *exc_info) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
            torch.set_num_threads(self._saved_threads)

    def map(self, run: Callable[[Sequence[Atoms]], list[T]], structures: Sequence[Atoms]) -> list[T]:
        """`run`'s results for `structures` (one per structure), in order; `run`'s errors propagate."""
        if self._pool is None or len(structures) < 2:
            return run(structures)
        groups = split_by_atoms(structures, self.count)
        return [p for group in self._pool.map(run, groups) for p in group]
