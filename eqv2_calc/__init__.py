"""eqv2_calc: a standalone EquiformerV2 that loads the released fairchem 1.x checkpoints.

`eqv2_calc.load_model(name_or_path, device="cpu", dtype=torch.float32)` returns a ready-to-run
`Potential` from a registered model name (see `eqv2 checkpoints list`), `hf://` address, URL or file.
`EquiformerV2Calculator` is the ASE calculator (`from eqv2_calc import EquiformerV2Calculator`).
Workflows: `predict` (batched energies/forces/stresses), `relax` (any ASE optimizer), `relax_many`
(batched FIRE), `run_md` (ASE integrators with Verlet-skin graph reuse), `interpolate_band` and `run_nebs`
(nudged elastic bands, many at once), `NEBResult`. They are imported lazily so
that `import eqv2_calc` stays free of torch.
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import Any

__version__ = "0.2.0"  # the one place the version is set (pyproject.toml reads it); see CHANGELOG.md
__all__ = ["EquiformerV2Calculator", "NEBResult", "evaluate", "interpolate_band", "load_model", "predict", "relax",
           "relax_many", "run_md", "run_nebs"]

# public name -> submodule that defines it
_LAZY = {"EquiformerV2Calculator": "calculator", "evaluate": "evaluation", "interpolate_band": "neb",
         "load_model": "hub", "NEBResult": "neb", "predict": "predict",
         "relax": "relax", "relax_many": "relax", "run_md": "md", "run_nebs": "neb"}


class _Package(types.ModuleType):
    """`eqv2_calc.predict` / `.relax` stay the functions after their submodules are imported.

    Importing `eqv2_calc.predict` (the module) normally rebinds the package attribute `predict` to the
    module; here that binding is skipped, so the lazy `__getattr__` keeps returning the function. Use
    `from eqv2_calc.predict import ...` (or `sys.modules`) to reach the modules themselves.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if not (name in _LAZY and isinstance(value, types.ModuleType)):
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'eqv2_calc' has no attribute {name!r}")
