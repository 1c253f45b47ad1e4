"""`EquiformerV2Calculator`: the ASE calculator, the only bridge between ASE and the model."""

from __future__ import annotations

import os

import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from .hub import warn_if_misfit
from .potential import Potential
from .predict import DEFAULT_SKIN, DEMO_MODEL, GraphBuilder, evaluate, resolve_device, resolve_model
from .validation import check_structure

__all__ = ["DEMO_MODEL", "EquiformerV2Calculator", "as_calculator", "resolve_device"]

# Changes after which the structure-vs-training-domain check runs again (positions alone do not count).
_STRUCTURE_CHANGES = frozenset({"numbers", "cell", "pbc"})


class EquiformerV2Calculator(Calculator):
    """ASE calculator for EquiformerV2 checkpoints.

    Args:
        model: default: the embedded demo model (trained on EMT labels, a demo, not DFT); or
            a registered model name or alias (`eqv2 checkpoints list`; downloaded and cached on
            first use), `hf://owner/repo/file`, a URL, the path of a fairchem 1.x EquiformerV2
            checkpoint, or a `Potential`.
        device: "auto" (CUDA if available), "cpu", "cuda" or any torch device.
        dtype: torch.float32 (the precision the checkpoints were trained in) or torch.float64.
        skin: Verlet skin in Angstrom (0 disables): the neighbour search runs to cutoff + skin and is
            reused while no atom has moved more than skin / 2, as in MD or relaxations; the graph (and so
            every result) is identical to a fresh search.
        precision: matmul precision of the network: "float32" (default, exact), "tf32" (CUDA tensor
            cores; no effect on a CPU) or "bfloat16" (autocast; see `eqv2_calc.precision` and docs/performance.md for
            the measured accuracy).
        allow_untrained_elements: compute structures holding elements outside the model's training
            elements (registry entries that list them, e.g. the demo model) instead of refusing them.
        compile: True: run the network through `torch.compile` (inductor; `Potential.compiled`): the first
            call compiles (0.5-2 min for the demo model on a CPU), later calls of any structure size reuse it and
            run faster (1.2-1.7x for the demo model on 2 CPU cores; docs/performance.md). Same numbers to float32
            round-off. False: eager PyTorch. None (default): as the model is (a `Potential`'s own `compiled`;
            eager for a model given by name or path).

    Results: `energy` and `free_energy` (eV), `forces` (eV/Angstrom; not from an energy-only IS2RE direct
    model, whose `implemented_properties` then hold the energies alone) and, when the checkpoint
    predicts it, `stress` (Voigt order xx yy zz yz xz xy, eV/Angstrom^3, ASE sign convention): not for a
    structure without a periodic axis, and from conservative models only for one periodic along all three.

    Refused with `InvalidStructureError` (`eqv2_calc.validation`): elements the model was not trained on
    (`UnsupportedElementError`, unless `allow_untrained_elements`), and atoms closer than half their
    covalent radii sum.
    Forces are the model's direct prediction; constraints such as FixAtoms are applied by ASE
    when you call `atoms.get_forces()` (as with any ASE calculator).

    A registered model shows its license and domain once per process (`ModelNotice`) and warns
    (`DomainWarning`) when a structure clearly does not fit its training data, e.g. a bulk crystal
    given to an OC20 surface model.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self,
        model: str | os.PathLike | Potential = DEMO_MODEL,
        device: str | torch.device = "auto",
        dtype: torch.dtype = torch.float32,
        skin: float = DEFAULT_SKIN,
        precision: str = "float32",
        allow_untrained_elements: bool = False,
        compile: bool | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.allow_untrained_elements = allow_untrained_elements
        self.device = resolve_device(device)
        self.potential = resolve_model(model, self.device, dtype)
        self.potential.precision = precision
        if compile is not None:
            self.potential.compiled = compile
        self.graphs = GraphBuilder(self.potential, skin)
        self.implemented_properties = list(self.potential.implemented_properties)

    def calculate(self, atoms: Atoms | None = None, properties=None, system_changes=all_changes) -> None:
        super().calculate(atoms, properties or ["energy"], system_changes)
        entry = self.potential.card.entry
        check_structure(self.atoms, entry, "structure", self.allow_untrained_elements)
        if entry is not None and _STRUCTURE_CHANGES.intersection(system_changes):
            warn_if_misfit(self.atoms, entry)
        result = evaluate(self.potential, [self.atoms], self.graphs)[0]
        self.results = {"energy": result.energy, "free_energy": result.energy}
        if result.forces is not None:
            self.results["forces"] = result.forces
        if result.stress is not None:
            self.results["stress"] = result.stress


def as_calculator(model: str | os.PathLike | Potential | Calculator = DEMO_MODEL,
                  device: str | torch.device = "auto", **kwargs) -> Calculator:
    """`model` itself when it is already an ASE calculator, else an `EquiformerV2Calculator(model, device, **kwargs)`."""
    return model if isinstance(model, Calculator) else EquiformerV2Calculator(model, device=device, **kwargs)
