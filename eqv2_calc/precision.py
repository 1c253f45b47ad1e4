"""Matmul precision switches for inference: float32 (exact, the default), TF32 and bfloat16.

- ``"float32"``: IEEE float32 everywhere; what the golden parity tests check.
- ``"tf32"``: CUDA float32 matmuls use TensorFloat-32 tensor cores (10-bit mantissa inputs, float32
  accumulation; Ampere or newer). No effect on a CPU.
- ``"bfloat16"``: matmuls and linear layers run under `torch.autocast` in bfloat16 (8-bit mantissa),
  on CUDA or the CPU; reductions, norms and the force/stress derivatives stay float32.

The switch applies only while the model runs (`matmul_precision` restores torch's global flags on
exit), so one process can hold an exact and a fast calculator side by side.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

MATMUL_PRECISIONS = ("float32", "tf32", "bfloat16")


def check_precision(precision: str) -> str:
    """`precision` if it is one of `MATMUL_PRECISIONS`, else ValueError naming the choices."""
    if precision not in MATMUL_PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {', '.join(MATMUL_PRECISIONS)}")
    return precision


@contextmanager
def matmul_precision(precision: str, device: torch.device) -> Iterator[None]:
    """Run the enclosed model calls on `device` with `precision` (see the module docstring)."""
    check_precision(precision)
    if precision == "bfloat16":
        with _autocast(device, enabled=True, dtype=torch.bfloat16):
            yield
    elif precision == "tf32" and device.type == "cuda":
        saved = torch.backends.cuda.matmul.fp32_precision
        torch.backends.cuda.matmul.fp32_precision = "tf32"
        try:
            yield
        finally:
            torch.backends.cuda.matmul.fp32_precision = saved
    else:
        yield


def _autocast(device: torch.device, **kwargs) -> AbstractContextManager:
    """`torch.autocast` on `device`, or no-op where torch has no autocast (the `meta` device of the tests)."""
    if not torch.amp.is_autocast_available(device.type):
        return nullcontext()
    return torch.autocast(device_type=device.type, **kwargs)


def autocast_off(device: torch.device) -> AbstractContextManager:
    """Leave any enclosing autocast on `device` for the enclosed code (exact arithmetic)."""
    return _autocast(device, enabled=False)
