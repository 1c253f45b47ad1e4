"""A restricted unpickler for fairchem LMDB values (pickled torch_geometric ``Data``), and their fields.

Unpickling runs whatever callable a pickle names, so a downloaded LMDB could execute code. `loads` only
resolves the globals these files need; any other one (``os.system``, ``builtins.eval``, a class of some
package) raises `UnsafePickleError` before anything is called:

- ``torch_geometric.data.data.Data`` / ``DataEdgeAttr`` / ``DataTensorAttr`` and
  ``torch_geometric.data.storage.GlobalStorage`` map to inert stand-ins that only keep their pickled
  state (a dict). torch_geometric itself is never imported, so it need not be installed.
- tensors: ``torch._utils._rebuild_tensor_v2`` (checked: a real storage, integer size and stride, no
  hooks kept) and ``torch.storage._load_from_bytes``, whose bytes are read with
  ``torch.load(weights_only=True)`` (torch's own restricted loader) instead of torch's unrestricted one.
- ``collections.OrderedDict``, ``copyreg._reconstructor`` (protocol 0/1 pickles; only for the stand-ins),
  and numpy arrays and scalars (``numpy.core.multiarray._reconstruct`` / ``scalar``,
  ``numpy.core.numeric._frombuffer``, ``ndarray``, ``dtype``; ``numpy._core`` for numpy 2).

Old torch_geometric (< 2.0) pickled a ``Data`` with its fields in ``__dict__``; newer versions keep them
in ``_store`` (a ``GlobalStorage`` whose ``_mapping`` holds them). `data_fields` reads both.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from ..errors import EquiformerV2Error


class UnsafePickleError(EquiformerV2Error, pickle.UnpicklingError):
    """A pickle asks for a class or function outside the allowed list (it was not called)."""


class _Stub:
    """Stand-in for a torch_geometric class: keeps the pickled state, runs no code of its own."""

    state: dict

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"{type(self).__name__} state is a {type(state).__name__}, not a dict")
        self.state = state


class PygData(_Stub):
    """Stand-in for ``torch_geometric.data.data.Data``."""


class PygStorage(_Stub):
    """Stand-in for ``torch_geometric.data.storage.GlobalStorage`` (fields in ``state['_mapping']``)."""


class _PygMarker(_Stub):
    """Stand-in for the attribute-class markers PyG 2 stores on a Data (``DataEdgeAttr``, ``DataTensorAttr``)."""


_STUBS = (PygData, PygStorage, _PygMarker)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_ignored: Any) -> torch.Tensor:
    """``torch._utils._rebuild_tensor_v2`` without requires_grad, backward hooks or metadata."""
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise pickle.UnpicklingError(f"a tensor's storage is a {type(storage).__name__}")
    numbers = [offset, *size, *stride]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
        raise pickle.UnpicklingError(f"a tensor has offset {offset!r}, size {size!r}, stride {stride!r}")
    return torch._utils._rebuild_tensor(storage, offset, tuple(size), tuple(stride))


def _storage_from_bytes(data: Any) -> Any:
    """A tensor storage saved by ``torch.save`` inside the pickle, read by torch's weights-only loader."""
    if not isinstance(data, bytes):
        raise pickle.UnpicklingError(f"a tensor storage is a {type(data).__name__}, not bytes")
    return torch.load(io.BytesIO(data), weights_only=True)


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` (protocol 0/1 objects), only for the torch_geometric stand-ins."""
    if cls not in _STUBS or base is not object or state is not None:
        raise pickle.UnpicklingError(f"copyreg._reconstructor({cls!r}, {base!r}, ...) is not allowed")
    return object.__new__(cls)


def _numpy_core(name: str) -> Any:
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:
        from numpy.core import multiarray, numeric
    return getattr(numeric if name == "_frombuffer" else multiarray, name)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_geometric.data.data", "Data"): PygData,
    ("torch_geometric.data.data", "DataEdgeAttr"): _PygMarker,
    ("torch_geometric.data.data", "DataTensorAttr"): _PygMarker,
    ("torch_geometric.data.storage", "GlobalStorage"): PygStorage,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("collections", "OrderedDict"): OrderedDict,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("builtins", "object"): object,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric")
_NUMPY_FUNCTIONS = ("_reconstruct", "scalar", "_frombuffer")  # _frombuffer: arrays in pickle protocol 5
_NUMPY_DTYPES = ("numpy.dtypes",)  # numpy 2 pickles dtypes as numpy.dtypes.Float64DType etc.


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module in _NUMPY_CORE and name in _NUMPY_FUNCTIONS:
            return _numpy_core(name)
        if module in _NUMPY_DTYPES and name.endswith("DType"):
            import numpy.dtypes

            found = getattr(numpy.dtypes, name, None)
            if isinstance(found, type) and issubclass(found, np.dtype):
                return found
        raise UnsafePickleError(f"the pickle asks for {module}.{name}, which is not a torch_geometric Data, "
                                "tensor or numpy class; refused without calling it (only fairchem LMDB values "
                                "are read)")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("the pickle holds a persistent reference (not a fairchem LMDB value)")


def loads(data: bytes) -> Any:
    """Unpickle `data` allowing only the classes of fairchem LMDB values (see the module docstring).

    Raises:
        UnsafePickleError: the pickle names a global outside the allowed list (nothing was called).
        pickle.UnpicklingError: a malformed pickle or an allowed class given bad arguments.
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except (UnsafePickleError, pickle.UnpicklingError):
        raise
    except Exception as exc:  # truncated data, wrong arguments to an allowed callable, ...
        raise pickle.UnpicklingError(f"{type(exc).__name__}: {exc}") from exc


def data_fields(value: Any) -> dict[str, Any]:
    """The fields of an unpickled ``Data`` (PyG >= 2: ``_store._mapping``; older: the instance ``__dict__``).

    Raises:
        TypeError: `value` is not a torch_geometric ``Data``.
    """
    if not isinstance(value, PygData):
        raise TypeError(f"the value is a {type(value).__module__}.{type(value).__name__}, not a torch_geometric Data")
    store = value.state.get("_store")
    if isinstance(store, PygStorage):
        mapping = store.state.get("_mapping", {})
        return dict(mapping) if isinstance(mapping, dict) else {}
    return {key: item for key, item in value.state.items() if not key.startswith("_")}
