"""Batched evaluation: many structures as one graph per batch; the calculator's single code path.

`predict(structures, model=..., batch_size=...)` returns one `Prediction` per structure (energy eV,
forces eV/Angstrom, stress eV/Angstrom^3). `run_potential(potential, structures, graphs)` is the shared core:
`evaluate` (used by `predict`, by `EquiformerV2Calculator` (one structure) and by `relax_many`) turns its
tensors into `Prediction`s; `eqv2_calc.torchsim.EquiformerV2Model` hands them to TorchSim as they are.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from ase import Atoms
from ase.stress import full_3x3_to_voigt_6_stress

from .cpu_workers import CpuWorkers
from .graph import AtomicGraph, build_graph, reuse_graph
from .errors import InvalidStructureError
from .hub import ModelCard, load_model, warn_if_misfit
from .potential import Potential
from .structures import StructureLike, to_atoms_list
from .validation import check_structure, labelled, structure_labels

# The small model trained by us on EMT data and shipped inside the package (not DFT: a demo).
DEMO_MODEL = "eqV2-demo-EMT"
# Verlet skin (Angstrom) of the calculator's graph reuse: edges are searched to cutoff + skin and
# reused until an atom has moved skin / 2 (1 Angstrom holds ~20-50 MD steps of a metal at 300-1000 K).
# Off by default: our neighbour search costs 1-3 ms per call on a CPU, no more than filtering the stored
# candidate edges (benchmarks/bench_md.py), so reuse saves nothing there.
DEFAULT_SKIN = 0.0
# Table columns of a Voigt stress (`Prediction.stress`), eV/Angstrom^3
STRESS_COLUMNS = tuple(f"stress_{c}_eV_per_A3" for c in ("xx", "yy", "zz", "yz", "xz", "xy"))
# Structures per graph in `predict`.
DEFAULT_BATCH_SIZE = 16


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' picks CUDA when available, else the CPU; anything else is passed to torch.device."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was requested but torch sees no CUDA GPU; use device='cpu' or 'auto'")
    return device


def resolve_model(
    model: str | os.PathLike | ModelCard | Potential, device: str | torch.device = "auto",
    dtype: torch.dtype = torch.float32,
) -> Potential:
    """A `Potential` in eval mode on `device`/`dtype`, carrying its `card` (registry entry or none).

    `model`: a registered name or alias, `hf://` address, URL, checkpoint path, its `ModelCard`, or a
    `Potential` (moved, keeping its card: a model is looked up once, when it is loaded).
    """
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype={dtype} must be torch.float32 or torch.float64")
    device = resolve_device(device)
    if isinstance(model, Potential):
        return model.to(device=device, dtype=dtype).eval()
    return load_model(model, device=device, dtype=dtype)


@dataclass
class Prediction:
    """Model outputs for one structure.

    Attributes:
        energy: eV.
        forces: (N, 3) eV/Angstrom, without constraints applied; None from an energy-only (IS2RE direct) model.
        stress: (6,) Voigt (xx yy zz yz xz xy) eV/Angstrom^3, ASE sign convention; None when the model has
            no stress output, the structure has no periodic axis (a molecule), or (conservative models) it is
            not periodic along all three axes.
    """

    energy: float
    forces: np.ndarray | None
    stress: np.ndarray | None = None

    @property
    def fmax(self) -> float | None:
        """Largest force norm, eV/Angstrom (constraints not applied); None without forces."""
        return None if self.forces is None else float(np.linalg.norm(self.forces, axis=1).max())


class GraphBuilder:
    """Graphs of structures for a potential; with `skin > 0` the edges of the last graph are reused.

    With a skin (Angstrom) the neighbour search runs to cutoff + skin and is redone only when the
    atoms, cell or pbc change or an atom has moved more than skin / 2; in between the stored edges are
    filtered (`graph.reuse_graph`), giving exactly the graph `potential.make_graph` would build.

    Attributes:
        calls: graphs returned; builds: neighbour searches done.
    """

    def __init__(self, potential: Potential, skin: float = 0.0) -> None:
        if not (math.isfinite(skin) and skin >= 0):
            raise ValueError(f"skin={skin!r} must be a finite number of Angstrom >= 0")
        self.potential = potential
        self.skin = skin
        self.calls = 0
        self.builds = 0
        self._reference: AtomicGraph | None = None

    def __call__(self, structures: Atoms | Sequence[Atoms]) -> AtomicGraph:
        self.calls += 1
        config = self.potential.config
        if self.skin == 0:
            self.builds += 1
            return self.potential.make_graph(structures)
        args = (config.max_radius, config.max_neighbors, config.enforce_max_neighbors_strictly)
        if self._reference is not None:
            graph = reuse_graph(self._reference, structures, *args, max_displacement=self.skin / 2)
            if graph is not None:
                return graph
        self.builds += 1
        param = next(self.potential.parameters())
        # every pair within cutoff + skin: no neighbour cap on the reference
        self._reference = build_graph(
            structures, config.max_radius + self.skin, 0, dtype=param.dtype, device=param.device,
            num_elements=config.max_num_elements,
        )
        return reuse_graph(self._reference, structures, *args, max_displacement=math.inf)


def stress_defined(potential: Potential, pbc: Sequence[bool] | np.ndarray) -> bool:
    """Whether a structure periodic along `pbc` (3,) gets a stress from `potential`.

    A strain derivative (conservative models) needs a cell periodic along all three axes; a direct stress
    head answers for any periodic cell (slabs, wires), as in fairchem, but not for a molecule or cluster
    (no periodic axis: no stress).
    """
    periodic = np.any(pbc) if potential.config.direct_forces else np.all(pbc)
    return potential.config.predicts_stress and bool(periodic)


def run_potential(
    potential: Potential, structures: Sequence[Atoms], graphs: GraphBuilder | None = None
) -> dict[str, torch.Tensor]:
    """One model call on the graph of all `structures` (one graph, built on the model's device).

    The shared core of `evaluate` (predict, the calculator, `relax_many`) and of
    `eqv2_calc.torchsim.EquiformerV2Model`. Runs under `torch.no_grad()` (conservative models switch
    gradients back on for dE/dx themselves).

    Returns:
        The detached outputs on the model's device in its dtype: `energy` (B,) eV, `forces`
        (N, 3) eV/Angstrom (not from an energy-only model) and, when the model predicts it, `stress` (B, 3, 3) eV/Angstrom^3 (ASE sign).

    Raises:
        InvalidStructureError: a structure the graph or the model cannot take (see `build_graph`).
        FloatingPointError: the model returned a non-finite energy (the structure is named).
    """
    graph = (graphs or GraphBuilder(potential))(structures)
    with torch.no_grad():
        out = {name: value.detach() for name, value in potential(graph).items()}
    finite = torch.isfinite(out["energy"])
    if not bool(finite.all()):
        b = int(torch.nonzero(~finite)[0, 0])
        raise FloatingPointError(
            f"the model returned a non-finite energy for structure {b} ({structures[b].get_chemical_formula()}); "
            "check the structure and checkpoint"
        )
    return out


def evaluate(
    potential: Potential, structures: Sequence[Atoms], graphs: GraphBuilder | None = None
) -> list[Prediction]:
    """One model call on the graph of all `structures` (`run_potential`); a `Prediction` per structure.

    Raises:
        InvalidStructureError: a structure the graph or the model cannot take (see `build_graph`).
        FloatingPointError: the model returned a non-finite energy.
    """
    out = run_potential(potential, structures, graphs)
    energies = out["energy"].cpu().double().numpy()
    if "forces" in out:
        forces = np.split(out["forces"].cpu().double().numpy(), np.cumsum([len(a) for a in structures])[:-1])
    else:
        forces = [None] * len(structures)
    stress = out["stress"].cpu().double().numpy() if "stress" in out else None
    return [
        Prediction(float(energies[b]), forces[b],
                   full_3x3_to_voigt_6_stress(stress[b]) if stress_defined(potential, atoms.pbc) else None)
        for b, atoms in enumerate(structures)
    ]


def predict(
    structures: StructureLike | Iterable[StructureLike],
    model: str | os.PathLike | Potential = DEMO_MODEL,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device = "auto",
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
    labels: Sequence[str] | None = None,
    allow_untrained_elements: bool = False,
) -> list[Prediction]:
    """Energies, forces and stresses of many structures, `batch_size` structures per model call.

    Args:
        structures: `Atoms`, pymatgen `Structure`/`Molecule`, file paths (every frame), or an iterable of them.
        model: default the embedded demo model (EMT-trained, not DFT); a registered name, path or `Potential`.
        batch_size: structures per graph (lower it if memory runs out on large structures).
        device: "auto", "cpu", "cuda"; dtype: torch.float32 or torch.float64.
        progress: show a progress bar (on a terminal).
        labels: a name per structure used in error messages (e.g. "file.xyz:3"); default "structure i".
        allow_untrained_elements: compute elements outside the model's training elements instead of refusing.

    Returns:
        One `Prediction` per structure, in input order.

    Raises:
        InvalidStructureError: a structure the model cannot take (`eqv2_calc.validation`, `build_graph`),
            its label in the message.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    from tqdm.auto import tqdm

    atoms_list = to_atoms_list(structures)
    labels = structure_labels(labels, len(atoms_list))
    potential = resolve_model(model, device, dtype)
    entry = potential.card.entry
    for atoms, label in zip(atoms_list, labels):
        check_structure(atoms, entry, label, allow_untrained_elements)
    if entry is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("once")
            for atoms in atoms_list:
                warn_if_misfit(atoms, entry)
    results: list[Prediction] = []
    with (tqdm(total=len(atoms_list), unit="structure", disable=None if progress else True) as bar,
          CpuWorkers(potential) as workers):
        run = partial(workers.map, partial(evaluate, potential))
        for start in range(0, len(atoms_list), batch_size):
            batch = atoms_list[start : start + batch_size]
            results += evaluate_labelled(potential, batch, labels[start : start + batch_size], run)
            bar.update(len(batch))
    return results


def evaluate_labelled(potential: Potential, structures: Sequence[Atoms], labels: Sequence[str],
                      run: Callable[[Sequence[Atoms]], list[Prediction]] | None = None) -> list[Prediction]:
    """`evaluate` (or `run`, e.g. on CPU workers), with a structure's label put in front of an error it causes
    (found by evaluating the batch's structures one by one once the batch failed)."""
    try:
        return run(structures) if run is not None else evaluate(potential, structures)
    except (InvalidStructureError, FloatingPointError) as exc:
        if len(structures) == 1:
            raise labelled(exc, labels[0]) from exc
        for atoms, label in zip(structures, labels):
            evaluate_labelled(potential, [atoms], [label])
        raise
