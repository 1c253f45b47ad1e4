"""`EquiformerV2Model`: EquiformerV2 as a TorchSim model (`torch_sim.models.interface.ModelInterface`).

TorchSim (PyPI `torch-sim-atomistic`, an optional extra: `pip install "eqv2-calc[torchsim]"`) runs batched
FIRE / cell relaxations, MD integrators and autobatchers over any `ModelInterface`. `forward(state)` takes the
whole batched state and evaluates it as ONE graph on the model's device through `predict.run_potential`, the
code path of `predict`, `relax_many` and `EquiformerV2Calculator`, so the numbers equal the calculator's.

TorchSim conventions handled here (TorchSim 0.3.0 and the current 0.6 release):

- `state.cell` holds the lattice vectors as COLUMNS (ASE's rows are `cell.mT`);
- `state.pbc` is one bool (0.3.0), a (3,) bool tensor (0.6) or a (n_systems, 3) one;
- `atomic_numbers` arrive as int32, `system_idx` as int64; `state` may also be a plain dict (0.3.0 `StateDict`);
- outputs: `energy` (n_systems,) eV, `forces` (n_atoms, 3) eV/Angstrom, `stress` (n_systems, 3, 3)
  eV/Angstrom^3 with ASE's sign (positive = tensile), detached, in the model's dtype, on its device;
  a system not periodic along all three axes gets a zero stress from conservative models (there is no
  cell to strain), as the calculator gives none.
"""

from __future__ import annotations

import math
import os
from importlib.metadata import version
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from ase import Atoms

from .errors import InvalidStructureError
from .graph import _check_positions, check_atomic_numbers
from .potential import Potential, require_forces
from .predict import DEFAULT_SKIN, DEMO_MODEL, GraphBuilder, resolve_model, run_potential, stress_defined

try:
    import torch_sim as ts
    from torch_sim.models.interface import ModelInterface
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "eqv2_calc.torchsim needs TorchSim: pip install 'eqv2-calc[torchsim]' (PyPI package torch-sim-atomistic)"
    ) from error

__all__ = ["EquiformerV2Model", "fire_optimizer", "in_flight_autobatcher", "memory_scaling", "optimize_max_steps"]

# Number density (atoms / Angstrom^3) of dense condensed matter (fcc Cu 0.085, Fe 0.085, Ni 0.091,
# diamond 0.176 atoms/A^3; ~0.1 as a round value), used to tell whether `max_neighbors` caps the graph.
DENSE_NUMBER_DENSITY = 0.1


def memory_scaling(max_radius: float, max_neighbors: int) -> str:
    """TorchSim's `memory_scales_with` for a graph of cutoff `max_radius` (Angstrom) and neighbour cap.

    "n_atoms" when the cap binds in dense matter (a fixed number of edges per atom: every released eqV2
    checkpoint, r = 6-12 Angstrom with 20 neighbours), else "n_atoms_x_density" (a radius graph: the demo
    model, 4.5 Angstrom with a cap of 500).
    """
    neighbours_in_sphere = DENSE_NUMBER_DENSITY * 4.0 / 3.0 * math.pi * max_radius**3
    return "n_atoms" if 0 < max_neighbors < neighbours_in_sphere else "n_atoms_x_density"


class EquiformerV2Model(ModelInterface):
    """EquiformerV2 for TorchSim's batched optimizers, integrators and autobatchers.

    Args:
        model: default the embedded demo model (EMT-trained, a demo, not DFT); a registered name or alias,
            `hf://` address, URL, checkpoint path, or a `Potential`.
        device: "auto" (CUDA when available), "cpu", "cuda" or a `torch.device`.
        dtype: torch.float32 (the checkpoints' training precision) or torch.float64; TorchSim builds its
            states in this dtype (`initialize_state(system, model.device, model.dtype)`).
        compute_forces: return `forces`.
        compute_stress: return `stress`; default: whether the checkpoint predicts stress. True on a
            checkpoint without a stress head raises `NotImplementedError` here (as TorchSim's FairChem
            model does).
        skin: Verlet skin of the neighbour search in Angstrom (0: a fresh search every call); the graph
            is identical either way (see `predict.GraphBuilder`).
        precision: matmul precision of the network ("float32", "tf32" or "bfloat16", see
            `eqv2_calc.precision`).

    Example:
        >>> import torch_sim as ts  # doctest: +SKIP
        >>> model = EquiformerV2Model(device="cpu")
        >>> relaxed = ts.optimize(atoms_list, model, optimizer=fire_optimizer(),
        ...     convergence_fn=ts.generate_force_convergence_fn(0.05, include_cell_forces=False))
    """

    def __init__(
        self,
        model: str | os.PathLike | Potential = DEMO_MODEL,
        *,
        device: str | torch.device = "auto",
        dtype: torch.dtype = torch.float32,
        compute_forces: bool = True,
        compute_stress: bool | None = None,
        skin: float = DEFAULT_SKIN,
        precision: str = "float32",
    ) -> None:
        super().__init__()
        self.potential = resolve_model(model, device, dtype)
        self.potential.precision = precision
        config = self.potential.config
        if compute_forces:
            require_forces(self.potential.implemented_properties, "compute_forces=True (TorchSim relaxation and MD)")
        if compute_stress is None:
            compute_stress = config.predicts_stress
        elif compute_stress and not config.predicts_stress:
            raise NotImplementedError(
                "compute_stress=True, but this checkpoint has no stress output (a direct-force model without a "
                "stress head); use compute_stress=False or a checkpoint that predicts stress (e.g. OMat24/MPtrj)"
            )
        param = next(self.potential.parameters())
        self._device = param.device
        self._dtype = param.dtype
        self._compute_forces = bool(compute_forces)
        self._compute_stress = bool(compute_stress)
        self._memory_scales_with = memory_scaling(config.max_radius, config.max_neighbors)
        self.graphs = GraphBuilder(self.potential, skin)

    def forward(self, state: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Energy (n_systems,) eV, forces (n_atoms, 3) eV/Angstrom, stress (n_systems, 3, 3) eV/Angstrom^3.

        Args:
            state: a TorchSim `SimState` (or a dict with `positions`, `cell` (column vectors),
                `atomic_numbers`, `system_idx` and optionally `pbc`, default True), in the model's dtype.

        Raises:
            InvalidStructureError: an element the model does not know, NaN positions, an empty system,
                an inconsistent system index; the message names the system.
            TypeError: the state's dtype is not the model's.
        """
        structures = self.state_to_atoms(state)
        out = run_potential(self.potential, structures, self.graphs)
        results = {"energy": out["energy"]}
        if self._compute_forces:
            results["forces"] = out["forces"]
        if self._compute_stress:
            defined = [stress_defined(self.potential, atoms.pbc) for atoms in structures]
            mask = torch.tensor(defined, device=out["stress"].device).view(-1, 1, 1)
            results["stress"] = torch.where(mask, out["stress"], torch.zeros_like(out["stress"]))
        return results

    def state_to_atoms(self, state: Any) -> list[Atoms]:
        """The systems of a TorchSim state as ASE `Atoms` (row-vector cells), checked system by system."""
        get = state.get if isinstance(state, Mapping) else lambda name, default=None: getattr(state, name, default)
        positions, cell, numbers = get("positions"), get("cell"), get("atomic_numbers")
        if positions is None or cell is None or numbers is None:
            raise InvalidStructureError("the state needs positions, cell and atomic_numbers")
        if positions.dtype != self._dtype:
            raise TypeError(
                f"the state is in {positions.dtype} but the model in {self._dtype}; build the state with "
                f"dtype=model.dtype (TorchSim's runners do) or use EquiformerV2Model(dtype={positions.dtype})"
            )
        cell = cell.view(-1, 3, 3)
        n_systems, n_atoms = cell.shape[0], positions.shape[0]
        system_idx = get("system_idx")
        system_idx = (torch.zeros(n_atoms, dtype=torch.long) if system_idx is None else system_idx).long().cpu()
        if system_idx.shape != (n_atoms,) or numbers.shape != (n_atoms,):
            raise InvalidStructureError(
                f"positions {tuple(positions.shape)}, atomic_numbers {tuple(numbers.shape)} and system_idx "
                f"{tuple(system_idx.shape)} disagree on the number of atoms"
            )
        if n_atoms and (int(system_idx.min()) < 0 or int(system_idx.max()) >= n_systems):
            raise InvalidStructureError(f"system_idx holds values outside 0..{n_systems - 1} ({n_systems} cells)")
        if n_atoms and bool((system_idx[1:] < system_idx[:-1]).any()):
            raise InvalidStructureError("system_idx must be sorted: the atoms of each system consecutive")
        counts = torch.bincount(system_idx, minlength=n_systems).tolist()
        pbc = _pbc_per_system(get("pbc", True), n_systems)
        positions = positions.detach().cpu().double().numpy()
        rows = cell.detach().mT.cpu().double().numpy()  # TorchSim's column vectors -> ASE's rows
        numbers = numbers.detach().cpu().long().numpy()
        max_z = self.potential.config.max_num_elements
        structures, start = [], 0
        for b, count in enumerate(counts):
            what = f"system {b} of the batch ({n_systems} systems)"
            if count == 0:
                raise InvalidStructureError(f"{what} has no atoms")
            z = numbers[start : start + count]
            check_atomic_numbers(z, what, max_z)
            pos = positions[start : start + count]
            _check_positions(pos, what)
            structures.append(Atoms(numbers=z, positions=pos, cell=rows[b], pbc=pbc[b]))
            start += count
        return structures


def _pbc_per_system(pbc: bool | list | torch.Tensor, n_systems: int) -> np.ndarray:
    """(n_systems, 3) bool from TorchSim's pbc: one bool (0.3.0), (3,) (0.6) or (n_systems, 3)."""
    flags = torch.as_tensor(pbc, dtype=torch.bool).cpu()
    if flags.ndim == 0 or flags.shape == (3,):
        return flags.expand(n_systems, 3).numpy()
    if flags.shape == (n_systems, 3):
        return flags.numpy()
    raise InvalidStructureError(f"pbc of shape {tuple(flags.shape)}: expected a bool, (3,) or ({n_systems}, 3)")


def fire_optimizer() -> Any:
    """TorchSim's FIRE for `ts.optimize(..., optimizer=...)`: `ts.Optimizer.fire` (0.4+), `ts.optimizers.fire` (0.3)."""
    return ts.Optimizer.fire if hasattr(ts, "Optimizer") else ts.optimizers.fire


def in_flight_autobatcher(model: EquiformerV2Model, systems: Sequence[Atoms], max_systems: int) -> Any:
    """A `ts.InFlightAutoBatcher` that keeps about `max_systems` of `systems` in flight.

    For CPU runs (TorchSim's own `autobatcher=True` measures CUDA memory and refuses a CPU model) or to
    fix the batch size: `max_memory_scaler` is the sum of the `max_systems` largest per-system metrics
    of the model's `memory_scales_with`, computed as TorchSim does ("n_atoms": atoms; "n_atoms_x_density":
    atoms^2 / cell volume in nm^3).
    """
    if max_systems < 1:
        raise ValueError(f"max_systems={max_systems} must be at least 1")
    if model.memory_scales_with == "n_atoms":
        metrics = [float(len(atoms)) for atoms in systems]
    else:
        metrics = [len(atoms) ** 2 / (abs(atoms.cell.volume) / 1000.0) for atoms in systems]
    largest = sorted(metrics, reverse=True)[:max_systems]
    return ts.InFlightAutoBatcher(model, memory_scales_with=model.memory_scales_with,
                                  max_memory_scaler=sum(largest) * (1 + 1e-6))


def optimize_max_steps(steps: int, n_systems: int, in_flight: int) -> int:
    """`max_steps` for `ts.optimize` that lets every one of `n_systems` systems take up to `steps` steps.

    TorchSim >= 0.6 counts steps per system. 0.3-0.5 count the steps of the whole run: past `max_steps` each
    swap period shrinks to one step while a system may stay for `max_steps // steps_between_swaps` swaps, so
    systems of later batches would get only a few steps; there the budget is `steps` per batch of `in_flight`
    systems (a system that does not converge may then take more than `steps`).
    """
    major, minor = (int(part) for part in version("torch-sim-atomistic").split(".")[:2])
    return steps if (major, minor) >= (0, 6) else steps * math.ceil(n_systems / max(in_flight, 1))
