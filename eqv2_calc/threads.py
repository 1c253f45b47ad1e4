"""CPU threads of the `eqv2` command: OpenMP threads that sleep instead of spinning, and `--threads N`.

PyTorch's OpenMP threads spin-wait between parallel regions. On a machine where another process holds a
core, a spinning thread waits for one that is not scheduled: `get_forces` of a 29-atom slab with the demo
model took 3.4-6.7 s instead of 0.17 s with 2 threads beside one busy process, and 0.21-0.29 s with
`OMP_WAIT_POLICY=PASSIVE` (benchmarks/bench_under_load.py). OpenMP reads the variable when torch is loaded,
so the command line sets it before importing torch, unless the user set it. Library users set it
themselves before `import torch` (docs/performance.md).
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
DEFAULT_WAIT_POLICY = "PASSIVE"


def configure(threads: int | None = None) -> None:
    """Set `OMP_WAIT_POLICY=PASSIVE` unless the user chose a policy, and with `threads` the torch (and
    OpenMP) threads of this process. Call before torch is imported for the wait policy to take effect."""
    if threads is not None and threads < 1:
        raise ValueError(f"--threads {threads} must be at least 1")
    os.environ.setdefault(WAIT_POLICY_ENV, DEFAULT_WAIT_POLICY)
    if threads is None:
        return
    os.environ["OMP_NUM_THREADS"] = str(threads)  # also for processes started from here
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
