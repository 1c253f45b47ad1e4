"""How many atoms one model call may take: a batch sized from the memory it will need.

A conservative EquiformerV2 call keeps its autograd graph until the forces are out; that graph grows with
the edges of the batch, each holding per layer and channel values on the S2 grid. `bytes_per_edge`
estimates it from the config, `max_batch_atoms` turns a memory budget into atoms per model call, and
`relax_many` fills its batches up to that many atoms.

Calibration (demo model: 3 layers, 32 channels, float32, CPU, Cu(111) slabs of 98 atoms with 36 edges per
atom): on 8x8 grids, peak RSS of 1, 4 and 8 structures per call 0.89, 2.28, 4.16 GB, i.e. 133 kB per edge;
on 24x24 grids, 470 kB per edge (one structure per call). Per edge, layer and channel that is
`BYTES_PER_EDGE_CHANNEL` = 946 bytes outside the grid plus `BYTES_PER_EDGE_GRID_VALUE` = 6.86 bytes per point
of the edge grid.
"""

from __future__ import annotations

import torch
from ase import Atoms

from .potential import Potential

BYTES_PER_EDGE_CHANNEL, BYTES_PER_EDGE_GRID_VALUE = 946.0, 6.86  # float32; see the module docstring
# Memory for the activations of one model call: on a CPU a fixed budget that keeps a default screen under
# 4 GB with the process itself (~0.7 GB with torch and the demo model); on a GPU a share of the free memory.
CPU_BATCH_BYTES = 2.0e9
GPU_FREE_FRACTION = 0.6
# More atoms per call than this are slower per atom on a CPU (memory-bound: 7, 12 and 20 ms per atom at 98, 392
# and 784 atoms per call, demo model, 1 thread).
CPU_MAX_BATCH_ATOMS = 256


def bytes_per_edge(potential: Potential) -> float:
    """Estimated bytes that one edge costs a forces call (autograd graph included)."""
    config = potential.config
    lat, long = config.grid_shape(edges=True)
    channels = max(config.sphere_channels, config.attn_hidden_channels)
    itemsize = next(potential.parameters()).element_size()
    per_channel = BYTES_PER_EDGE_CHANNEL + BYTES_PER_EDGE_GRID_VALUE * lat * long
    return per_channel * itemsize / 4 * config.num_layers * channels


def edges_per_atom(potential: Potential, sample: Atoms) -> float:
    """Edges per atom of the model's graph of `sample` (a structure like the ones to be batched)."""
    graph = potential.make_graph([sample])
    return graph.edge_index.shape[1] / max(len(sample), 1)


def memory_budget(device: torch.device) -> float:
    """Bytes one model call may use for its activations on `device`."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return GPU_FREE_FRACTION * free
    available = _available_memory()
    return min(CPU_BATCH_BYTES, 0.5 * available) if available else CPU_BATCH_BYTES


def _available_memory() -> float | None:
    """MemAvailable of /proc/meminfo in bytes (Linux), else None."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def max_batch_atoms(potential: Potential, sample: Atoms, device: torch.device | None = None) -> int:
    """Atoms per model call that fit the memory budget of `device` (default: the model's), at least those of
    `sample`; on a CPU at most `CPU_MAX_BATCH_ATOMS` unless `sample` alone is larger."""
    device = device or next(potential.parameters()).device
    per_atom = bytes_per_edge(potential) * edges_per_atom(potential, sample)
    atoms = int(memory_budget(device) // max(per_atom, 1.0))
    if device.type != "cuda":
        atoms = min(atoms, CPU_MAX_BATCH_ATOMS)
    return max(atoms, len(sample))


def estimated_bytes(potential: Potential, sample: Atoms, atoms: int) -> float:
    """Estimated activation bytes of one call on `atoms` atoms of structures like `sample`."""
    return bytes_per_edge(potential) * edges_per_atom(potential, sample) * atoms
