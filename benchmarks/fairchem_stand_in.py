"""A stand-in for `fairchem.core.scripts.download_large_files`, the one fairchem-core module that
fairchem-data-oc 1.0.2 imports (in `core/bulk.py`, only to download the bulk database).

Benchmarks call `install()` before `import fairchem.data.oc`; the package never imports fairchem.
"""

from __future__ import annotations

import sys
import types

MODULE = "fairchem.core.scripts.download_large_files"


def _download_file_group(*args, **kwargs) -> None:
    raise RuntimeError("offline stand-in for fairchem-core: the bulk database cannot be downloaded here; "
                       "build Bulk/Slab objects from ase.Atoms instead")


def install() -> None:
    """Register the stand-in modules (no-op when fairchem-core itself is importable)."""
    try:
        import fairchem.core.scripts.download_large_files  # noqa: F401
        return
    except ImportError:
        pass
    import fairchem

    parts = MODULE.split(".")
    for depth in range(2, len(parts) + 1):
        name = ".".join(parts[:depth])
        module = sys.modules.get(name) or types.ModuleType(name)
        module.__path__ = []  # a package, so the next level imports
        sys.modules[name] = module
        setattr(sys.modules[".".join(parts[: depth - 1])] if depth > 2 else fairchem, parts[depth - 1], module)
    sys.modules[MODULE].download_file_group = _download_file_group
