"""`Potential`: an EquiformerV2 network with its output normalizers and element references.

It maps an `AtomicGraph` to physical outputs: energy (eV), forces (eV/Angstrom) and, when the
network has a stress head, stress (eV/Angstrom^3, 3x3, ASE sign convention).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from ase import Atoms
from torch import nn

from .errors import EnergyOnlyModelError
from .graph import AtomicGraph, build_graph
from .hub.card import IN_CODE, ModelCard
from .model import EquiformerV2, EquiformerV2Config
from .precision import check_precision, matmul_precision

# Change of basis from (l=0, l=1, l=2) irreps of a rank-2 tensor to its 9 Cartesian components
# (row-major 3x3); row b is irrep component b (fairchem common/utils.py cg_change_mat(2)).
_S3, _S2, _S6 = 3**-0.5, 2**-0.5, 6**-0.5
RANK2_CHANGE_OF_BASIS = (
    (_S3, 0, 0, 0, _S3, 0, 0, 0, _S3),
    (0, 0, 0, 0, 0, _S2, 0, -_S2, 0),
    (0, 0, -_S2, 0, 0, 0, _S2, 0, 0),
    (0, _S2, 0, -_S2, 0, 0, 0, 0, 0),
    (0, 0, _S2, 0, 0, 0, _S2, 0, 0),
    (0, _S2, 0, _S2, 0, 0, 0, 0, 0),
    (-_S6, 0, 0, 0, 2 * _S6, 0, 0, 0, -_S6),
    (0, 0, 0, 0, 0, _S2, 0, _S2, 0),
    (-_S2, 0, 0, 0, 0, 0, 0, 0, _S2),
)

# The dimension of each network input (atomic numbers, edge index, edge vectors, batch, atoms per structure) that
# counts atoms, edges or structures: marked dynamic for `torch.compile`, so other sizes reuse the compiled code.
# The structure count is also unbacked: dynamo would otherwise specialise a count of 1 (one structure, the
# calculator's case) and compile again for the first batch.
_SIZE_DIMS = (0, 1, 0, 0, 0)
# Inductor settings of `Potential.compiled`. Its C++ (CPU) code vectorizes loop tails with masked loads and stores;
# in torch 2.13 that gave wrong energies and forces (off by up to 1e16, or a corrupted heap) once the blocks and
# the energy head were compiled as one graph (AVX2 and AVX-512 alike, gcc 12); scalar tails are right.
INDUCTOR_OPTIONS = {"cpp.enable_loop_tail_vec": False}


def _call_network(model: EquiformerV2, weights: dict[str, torch.Tensor], *inputs: torch.Tensor
                  ) -> dict[str, torch.Tensor]:
    """`model(*inputs)` with its parameters taken from `weights` (name -> tensor): what `Potential.compiled`
    compiles."""
    return torch.func.functional_call(model, weights, inputs)


def require_forces(implemented_properties: Sequence[str], task: str) -> None:
    """Raise `EnergyOnlyModelError` when a model (or calculator) with these `implemented_properties`
    has no forces and `task` (e.g. "relax") needs them."""
    if "forces" not in implemented_properties:
        raise EnergyOnlyModelError(
            f"{task} needs forces, but this model predicts only an energy (an IS2RE direct model: its energy is "
            "the relaxed energy of the input structure, not a potential energy surface); use it with "
            "`eqv2 predict` / `predict()` or `eqv2 evaluate` on IS2RE data, or pick an S2EF model for this"
        )


@dataclass(frozen=True)
class Normalizer:
    """Training-target normalization: physical = raw * rmsd + mean."""

    mean: float = 0.0
    rmsd: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and math.isfinite(self.rmsd)):
            raise ValueError(f"normalizer mean={self.mean} rmsd={self.rmsd} must be finite")


class Potential(nn.Module):
    """EquiformerV2 + de-normalization; `forward(graph)` returns physical outputs.

    Args:
        model: the network.
        normalizers: per raw output name (`energy`, `forces`, `stress_isotropic`,
            `stress_anisotropic`, `stress`), how to undo the training normalization.
        element_references: `(Z_max+1,)` energies (eV) added per atom of element Z, or None.

    Attributes:
        precision: matmul precision of the network ("float32", exact and the default; "tf32" or
            "bfloat16": see `eqv2_calc.precision`), checked when set.
        card: the model as it was named (`hub.ModelCard`: its registry entry, or none for an unregistered file
            or a Potential made in code), set by `hub.load_model`; workflows ask it instead of the registry.
        compiled: the `torch.compile` backend the network runs through, or None (eager PyTorch, the default).
            Set True (inductor, torch's default backend), a backend name (e.g. "eager", "aot_eager": dynamo's
            capture without code generation) or False / None. The atom, edge and structure counts are dynamic, so
            one compilation serves single structures and batches of every size (a structure of one atom or one
            edge compiles once more). The first call compiles (26-113 s for the demo model on 2 CPU cores): see
            docs/performance.md for what it costs and gives.
    """

    def __init__(
        self,
        model: EquiformerV2,
        normalizers: dict[str, Normalizer] | None = None,
        element_references: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.normalizers = dict(normalizers or {})
        if element_references is None:
            element_references = torch.zeros(model.config.max_num_elements)
        self.register_buffer("element_references", element_references.clone(), persistent=False)
        self.register_buffer("change_of_basis", torch.tensor(RANK2_CHANGE_OF_BASIS), persistent=False)
        self.precision = "float32"
        self.card = ModelCard(IN_CODE)
        self.compiled = None

    @property
    def precision(self) -> str:
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        self._precision = check_precision(value)

    @property
    def compiled(self) -> str | None:
        return self._compiled_backend

    @compiled.setter
    def compiled(self, backend: bool | str | None) -> None:
        self._compiled_backend = "inductor" if backend is True else (backend or None)
        options = INDUCTOR_OPTIONS if self._compiled_backend == "inductor" else None
        # a function of the model, not a wrapper holding it: copies of this Potential run their own network
        self._network = None if self._compiled_backend is None else torch.compile(
            _call_network, backend=self._compiled_backend, options=options)

    def _run_network(self, graph: AtomicGraph, edge_vec: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw network outputs for `graph` with edge vectors `edge_vec` `(E, 3)`, in `self.precision`."""
        inputs = (graph.atomic_numbers, graph.edge_index, edge_vec, graph.batch, graph.natoms)
        with matmul_precision(self.precision, edge_vec.device):
            if not self.compiled:
                raw = self.model(*inputs)
            else:
                for tensor, dim in zip(inputs, _SIZE_DIMS):
                    torch._dynamo.maybe_mark_dynamic(tensor, dim)
                torch._dynamo.decorators.mark_unbacked(graph.natoms, 0)
                # In eval mode the weights enter detached: a compiled backward (conservative forces) would otherwise
                # compute every weight's gradient, as it cannot know that only the positions' is asked for.
                weights = {name: w if self.training else w.detach() for name, w in self.model.named_parameters()}
                raw = self._network(self.model, weights, *inputs)
        return {name: value.to(edge_vec.dtype) for name, value in raw.items()}

    @property
    def config(self) -> EquiformerV2Config:
        return self.model.config

    @property
    def implemented_properties(self) -> list[str]:
        if not self.config.predicts_forces:
            return ["energy", "free_energy"]
        props = ["energy", "free_energy", "forces"]
        return props + ["stress"] if self.config.predicts_stress else props

    def make_graph(self, atoms: Atoms | Sequence[Atoms]) -> AtomicGraph:
        """Graph of one or several structures with this model's cutoff, neighbour cap and tie rule."""
        c = self.config
        param = next(self.parameters())
        return build_graph(
            atoms, c.max_radius, c.max_neighbors, c.enforce_max_neighbors_strictly,
            dtype=param.dtype, device=param.device, num_elements=c.max_num_elements,
        )

    def _denormalize(self, name: str, value: torch.Tensor) -> torch.Tensor:
        norm = self.normalizers.get(name)
        return value if norm is None else value * norm.rmsd + norm.mean

    def forward(self, graph: AtomicGraph, *, create_graph: bool = False) -> dict[str, torch.Tensor]:
        """Energy `(B,)` eV, forces `(N, 3)` eV/Angstrom, stress `(B, 3, 3)` eV/Angstrom^3 (if predicted);
        an energy-only model (`config.energy_only`) returns the energy alone.

        Conservative models (`direct_forces=False`) differentiate the energy: forces = -dE/dx and
        stress = (1/V) dE/d(strain); `create_graph=True` keeps that derivative differentiable
        (for training on forces).

        Device-clean and sync-free: every tensor stays on the graph's device and nothing is read back
        to the host, so a GPU's queue stays full (tests/test_device_clean.py runs it on `meta`).
        Input checks (elements beyond the model's range included) happen on the host in
        `make_graph` / `build_graph`.
        """
        if not self.config.predicts_forces:
            return {"energy": self._energy(self._run_network(graph, graph.edge_vectors()), graph)}
        if self.config.direct_forces:
            raw = self._run_network(graph, graph.edge_vectors())
            out = {"energy": self._energy(raw, graph), "forces": self._denormalize("forces", raw["forces"])}
            if "stress_isotropic" in raw:
                irreps = raw["energy"].new_zeros(graph.num_graphs, 9)
                irreps[:, 0:1] = self._denormalize("stress_isotropic", raw["stress_isotropic"])
                irreps[:, 4:9] = self._denormalize("stress_anisotropic", raw["stress_anisotropic"])
                out["stress"] = (irreps @ self.change_of_basis.to(irreps.dtype)).reshape(-1, 3, 3)
            elif "stress" in raw:
                out["stress"] = self._denormalize("stress", raw["stress"]).reshape(-1, 3, 3)
            return out
        return self._conservative(graph, create_graph)

    def _energy(self, raw: dict[str, torch.Tensor], graph: AtomicGraph) -> torch.Tensor:
        energy = self._denormalize("energy", raw["energy"])
        return energy.index_add(0, graph.batch, self.element_references.to(energy.dtype)[graph.atomic_numbers])

    def _conservative(self, graph: AtomicGraph, create_graph: bool) -> dict[str, torch.Tensor]:
        with torch.enable_grad():
            pos = graph.pos.detach().requires_grad_(True)
            strain = torch.zeros_like(graph.cell).requires_grad_(True)
            symmetric = 0.5 * (strain + strain.transpose(1, 2))
            strained_pos = pos + torch.bmm(pos.unsqueeze(1), symmetric[graph.batch]).squeeze(1)
            strained_cell = graph.cell + torch.bmm(graph.cell, symmetric)
            edge_vec = graph.edge_vectors(strained_pos, strained_cell)
            raw = self._run_network(graph, edge_vec)
            energy = self._energy(raw, graph)
            d_pos, d_strain = torch.autograd.grad(energy.sum(), (pos, strain), create_graph=create_graph)
        volume = torch.linalg.det(graph.cell).abs().view(-1, 1, 1)
        out = {"energy": energy, "forces": -d_pos, "stress": d_strain / volume}
        return out if create_graph else {k: v.detach() for k, v in out.items()}
