"""Deterministic pseudo-random weights for golden tests (pure numpy, no torch).

Every parameter tensor of a model is drawn from its own generator,
``np.random.default_rng(zlib.crc32(name.encode()))``, where ``name`` is the
fairchem state-dict key WITHOUT any ``module.`` prefix (e.g.
``backbone.blocks.0.ga.so2_conv_1.fc_m0.weight`` for hydra models,
``blocks.0.ga.so2_conv_1.fc_m0.weight`` for the deprecated single class).

Rule (values are float32):

* name ends with ``affine_weight``, or a 1-D tensor whose name ends with
  ``weight`` (LayerNorm weights): ``1 + 0.2 * normal``
* name ends with ``bias``: ``0.1 * normal``
* anything else (Linear weights, embeddings, ``alpha_dot``, SO3_LinearV2
  weights of shape (L+1, out, in), ``energy_lin_ref`` ...):
  ``normal / sqrt(shape[-1])``

Only parameters (``model.named_parameters()``) are drawn; buffers (SO3 grid
matrices, index maps, Gaussian offsets ...) keep the values fairchem computes.
With this rule none of the golden networks blew up (energies and forces stay
O(0.1-10)), so no extra scale factor is applied.

``tools/make_golden.py`` uses this module to build the golden checkpoints and
our tests use it to rebuild the eqV2_31M weights from
``tests/data/params_eqV2_31M.json``.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["seeded_tensor", "seeded_state_dict", "strip_module_prefix"]


def seeded_tensor(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Draw the deterministic float32 tensor for parameter ``name``."""
    shape = tuple(int(s) for s in shape)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    normal = rng.standard_normal(shape)
    if name.endswith("affine_weight") or (len(shape) == 1 and name.endswith("weight")):
        out = 1.0 + 0.2 * normal
    elif name.endswith("bias"):
        out = 0.1 * normal
    else:
        fan_in = shape[-1] if len(shape) > 0 else 1
        out = normal / np.sqrt(max(fan_in, 1))
    return np.asarray(out, dtype=np.float32)


def strip_module_prefix(name: str) -> str:
    """Remove any leading ``module.`` prefixes (DataParallel / DDP)."""
    while name.startswith("module."):
        name = name[len("module.") :]
    return name


def seeded_state_dict(params: list[tuple[str, list[int]]]) -> dict[str, np.ndarray]:
    """Draw every parameter of ``params`` (a list of ``(name, shape)``).

    Names are used as given (expected without ``module.`` prefix); the
    returned dict is keyed by the same names.
    """
    return {name: seeded_tensor(name, tuple(shape)) for name, shape in params}
