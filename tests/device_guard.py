"""Dispatch-level checks of the GPU rules without a GPU (used by tests/test_device_clean.py and
benchmarks/gpu_check.py).

`DeviceGuard(device)`: every aten op of the enclosed code must take and return tensors on `device` only
(a CPU tensor mixed into a `meta` forward, or one created on the default device, raises) and must not be
one that reads a value back to the host (`SYNC_OPS`, `is_host_sync`). On `meta` any data read fails anyway
(`.item()`, `.cpu()`, `.tolist()`); the guard names the op.

`SyncCounter()`: counts the ops that would make the host wait on a CUDA device, on any device (also the
CPU), by name, e.g. to count the host syncs of one graph construction.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

aten = torch.ops.aten
# Ops whose result size or value the host needs, so on CUDA they wait for the device to finish.
SYNC_OPS = {
    aten._local_scalar_dense.default,  # .item(), int(t), float(t), bool(t)
    aten.is_nonzero.default,
    aten.equal.default,
    aten.nonzero.default,
    aten.nonzero_static.default,
    aten.masked_select.default,
    aten.bincount.default,  # CUDA reads max(index) to size the output
    aten._unique2.default,
    aten.unique_dim.default,
    aten.unique_consecutive.default,
    aten._assert_async.default,
}


def is_host_sync(func, args: tuple, kwargs: dict) -> bool:
    """True for an op that waits on the device: `SYNC_OPS`, boolean-mask indexing, `repeat_interleave`
    without `output_size`, and copies from the device to the host."""
    if func in SYNC_OPS:
        return True
    if func in (aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default):
        indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
        return any(i is not None and i.dtype == torch.bool for i in indices)
    if func in (aten.repeat_interleave.Tensor, aten.repeat_interleave.self_Tensor):
        return kwargs.get("output_size") is None
    if func in (aten._to_copy.default, aten.copy_.default):
        source = args[1] if func is aten.copy_.default else args[0]
        target = args[0].device if func is aten.copy_.default else kwargs.get("device", source.device)
        return source.device.type != "cpu" and torch.device(target).type == "cpu"
    return False


class DeviceGuard(TorchDispatchMode):
    """Raise AssertionError on an op that touches a tensor off `device` or syncs with the host."""

    def __init__(self, device: str | torch.device = "meta") -> None:
        super().__init__()
        self.device = torch.device(device)

    def _check(self, func, tensors, what: str) -> None:
        for t in tensors:
            if isinstance(t, torch.Tensor) and t.device != self.device:
                raise AssertionError(f"{func}: {what} tensor of shape {tuple(t.shape)} on {t.device}, not {self.device}")

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if is_host_sync(func, args, kwargs):
            raise AssertionError(f"{func} reads a value back to the host")
        self._check(func, tree_flatten((args, kwargs))[0], "input")
        out = func(*args, **kwargs)
        self._check(func, tree_flatten(out)[0], "output")
        return out


class SyncCounter(TorchDispatchMode):
    """Count the ops of the enclosed code that would make the host wait on a CUDA device (`is_host_sync`)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if is_host_sync(func, args, kwargs):
            self.ops[str(func.overloadpacket.__name__)] += 1
        return func(*args, **kwargs)
