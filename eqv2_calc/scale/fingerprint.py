"""What determines a job's numbers, as hashes: the model's weights, the structures' content, the settings.

A results directory stores these three parts (`job.json`); a re-run whose parts differ is another job.
- model weights: the registry's sha256 of a registered name or alias (all aliases give the same one);
  else the sha256 of the checkpoint file (cached by path, size and modification time in
  `<cache>/file_sha256.json`, so a multi-GB checkpoint is hashed once); of the state dict for a `Potential`;
  the address itself for an `hf://` address or URL that is not a local file (its content is not known
  before a worker downloads it).
- structures: elements, positions, cell, pbc, FixAtoms (and the info keys a task names), never labels or
  the path typed (`./job.extxyz` and `job.extxyz` are the same job).
- settings: the task, its parameters (fmax, steps, ...), dtype and chunk size.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from .. import hub
from ..potential import Potential

FILE_HASH_CACHE = "file_sha256.json"  # in hub.cache_dir()


def _hash_cache_path() -> Path:
    return hub.cache_dir() / FILE_HASH_CACHE


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file, read from the cache when its path, size and mtime match an entry there."""
    path = Path(path).expanduser().resolve()
    stat = path.stat()
    key, stamp = str(path), [stat.st_size, stat.st_mtime_ns]
    cache_path = _hash_cache_path()
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    held = cache.get(key) if isinstance(cache, dict) else None
    if isinstance(held, dict) and held.get("stamp") == stamp:
        return str(held["sha256"])
    digest = hub.sha256_file(path)
    cache = cache if isinstance(cache, dict) else {}
    cache[key] = {"stamp": stamp, "sha256": digest}
    try:  # a read-only cache only costs the next run a re-hash
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_name(f"{cache_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1))
        os.replace(tmp, cache_path)
    except OSError:
        pass
    return digest


def state_dict_sha256(potential: torch.nn.Module) -> str:
    """sha256 over the names, dtypes, shapes and values of every tensor of a module's state dict."""
    digest = hashlib.sha256()
    for name, tensor in sorted(potential.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def model_fingerprint(model: str | os.PathLike | Potential) -> str:
    """'sha256:<hex>' of the weights `model` stands for (see the module docstring), or 'address:<text>'."""
    if isinstance(model, Potential):
        return f"sha256:{state_dict_sha256(model)}"
    text = os.fspath(model)
    if Path(text).expanduser().is_file():
        return f"sha256:{file_sha256(text)}"
    entry = hub.load_registry().find(text) if not text.startswith((hub.HF_PREFIX, "https://", "http://")) else None
    if entry is None:
        return f"address:{text}"
    if entry.sha256:
        return f"sha256:{entry.sha256}"
    cached = hub.cached_file(entry)
    return f"sha256:{file_sha256(cached)}" if cached is not None else f"registered:{entry.name}"


def structures_fingerprint(structures: Iterable[Atoms], info_keys: Sequence[str] = ()) -> str:
    """sha256 of every structure's elements, positions, cell, pbc, constraints and `info[k]` for `info_keys`."""
    digest = hashlib.sha256()
    for atoms in structures:
        for array in (atoms.numbers.astype(np.int64), atoms.positions.astype(np.float64),
                      np.array(atoms.cell, dtype=np.float64), atoms.pbc.astype(bool)):
            digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(repr([c.todict() for c in atoms.constraints]).encode())
        digest.update(json.dumps([atoms.info.get(k) for k in info_keys], sort_keys=True, default=str).encode())
    return digest.hexdigest()
