"""The forward pass is device-clean and sync-free, proven on PyTorch's `meta` device (no GPU needed).

A `meta` tensor has a shape and no data: running `Potential.forward` with the model and graph on `meta`
under `DeviceGuard` fails if any op mixes in or creates a tensor on another device (the CPU) or reads a
value back to the host (`.item()`, `int(t)`, `bool(t)`, `.nonzero()`, boolean masks, `bincount`, ...).
Those are exactly the things that stall a GPU's queue or break CUDA-graph capture.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from ase import Atoms

from conftest import DATA, golden_potential, structure
from device_guard import DeviceGuard, SyncCounter
from eqv2_calc.checkpoint import config_from_fairchem
from eqv2_calc.errors import InvalidStructureError
from eqv2_calc.model import EquiformerV2, EquiformerV2Config, StressHeadConfig
from eqv2_calc.model.heads import EnergyHead
from eqv2_calc.potential import Normalizer, Potential

TINY = dict(
    num_layers=1, sphere_channels=8, attn_hidden_channels=8, num_heads=2, attn_alpha_channels=4,
    attn_value_channels=4, ffn_hidden_channels=8, edge_channels=8, lmax_list=[2], mmax_list=[1],
    grid_resolution=8, max_radius=5.0, max_neighbors=12, layout="hydra",
)
BUILT = {
    "conservative_envelope": dict(direct_forces=False, use_cutoff_envelope=True),
    "stress_edge_level_full_tensor": dict(stress_head=StressHeadConfig(decompose=False, edge_level_mlp=True,
                                                                        use_source_target_embedding=False)),
    "stress_extensive_edge_level": dict(stress_head=StressHeadConfig(extensive=True, edge_level_mlp=True,
                                                                      avg_num_nodes=10.0)),
    "gate_grid_mlp_mean": dict(use_gate_act=True, use_grid_mlp=True, energy_reduce="mean", norm_type="layer_norm"),
}


def _built(options: dict) -> Potential:
    model = EquiformerV2(EquiformerV2Config(**{**TINY, **options}))
    return Potential(model, {"energy": Normalizer(0.1, 2.0), "forces": Normalizer(0.0, 1.5)}).eval()


def _eqv2_31m() -> Potential:
    """The real-size OC20 31M network (random init; on `meta` its size costs nothing)."""
    config, _ = config_from_fairchem(json.loads((DATA / "params_eqV2_31M.json").read_text())["config"])
    return Potential(EquiformerV2(config)).eval()


def _structures() -> list[Atoms]:
    return [structure("cu111_co_pbc_ttt"), structure("nacl_rocksalt"), structure("h2o_molecule")]


def _on_meta(potential: Potential):
    """(potential, graph of `_structures()`) moved to `meta`; the graph is built on the host first."""
    graph = potential.make_graph(_structures())
    return potential.to("meta"), graph.to("meta")


POTENTIALS = {
    **{name: (lambda name=name: copy.deepcopy(golden_potential(name)))
       for name in ("small", "small_variants", "small_gate", "small_s2act", "omat_stress", "dens")},
    **{name: (lambda options=options: _built(options)) for name, options in BUILT.items()},
    "eqV2_31M": _eqv2_31m,
}


@pytest.mark.parametrize("name", sorted(POTENTIALS))
def test_forward_on_meta_is_device_clean_and_sync_free(name: str) -> None:
    potential, graph = _on_meta(POTENTIALS[name]())
    with torch.no_grad(), DeviceGuard("meta"):
        out = potential(graph)
    assert out["energy"].shape == (3,) and out["forces"].shape == (graph.pos.shape[0], 3)
    assert all(v.device.type == "meta" for v in out.values())
    assert ("stress" in out) == potential.config.predicts_stress


@pytest.mark.parametrize("precision", ["bfloat16", "tf32"])
def test_reduced_precisions_on_meta(precision: str) -> None:
    """autocast does not exist on `meta`: the precision switch must skip it there instead of failing."""
    potential, graph = _on_meta(copy.deepcopy(golden_potential("omat_stress")))
    potential.precision = precision
    with torch.no_grad(), DeviceGuard("meta"):
        assert potential(graph)["stress"].device.type == "meta"


def test_conservative_training_step_on_meta() -> None:
    """Forces as -dE/dx with create_graph, then a loss on them back to the weights: all on the device."""
    potential, graph = _on_meta(_built(BUILT["conservative_envelope"]))
    with DeviceGuard("meta"):
        out = potential(graph, create_graph=True)
        loss = out["energy"].square().sum() + out["forces"].square().sum() + out["stress"].square().sum()
        loss.backward()
    assert all(p.grad is not None and p.grad.device.type == "meta" for p in potential.parameters() if p.requires_grad)


def test_guard_catches_a_host_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check has teeth: a value read back inside the forward fails it."""
    forward = EnergyHead.forward

    def with_sync(self, x, batch, natoms):
        if int(natoms.max()) > 10**6:  # a data-dependent branch, as a range check would be
            raise ValueError
        return forward(self, x, batch, natoms)

    monkeypatch.setattr(EnergyHead, "forward", with_sync)
    potential, graph = _on_meta(_built({}))
    with pytest.raises((AssertionError, RuntimeError), match="host|meta"), torch.no_grad(), DeviceGuard("meta"):
        potential(graph)


def test_guard_catches_a_cpu_tensor(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check has teeth: a tensor created on the default device inside the forward fails it."""
    forward = EnergyHead.forward

    def with_cpu_tensor(self, x, batch, natoms):
        return forward(self, x, batch, natoms) * torch.ones(natoms.shape[0])

    monkeypatch.setattr(EnergyHead, "forward", with_cpu_tensor)
    potential, graph = _on_meta(_built({}))
    with pytest.raises(AssertionError, match="on cpu"), torch.no_grad(), DeviceGuard("meta"):
        potential(graph)


def test_element_range_is_checked_on_the_host() -> None:
    """The range check left the forward; building the graph refuses the element instead."""
    potential = golden_potential("small_s2act")  # max_num_elements 84
    with pytest.raises(InvalidStructureError, match=r"atomic number 92 \(U\), beyond the elements this model embeds \(Z = 1..83\)"):
        potential.make_graph(Atoms("CuU", positions=[[0, 0, 0], [0, 0, 2.5]]))


def test_graph_build_syncs_only_for_the_search_sizes() -> None:
    """build_graph reads Atoms on the host and then waits on the device only for data-dependent sizes: two
    per group of 64 target atoms (the box prefilter and the pairs inside the cutoff), the padded row width,
    the tie search and the final edge count (docs/gpu.md)."""
    structures = _structures()
    potential = golden_potential("small")
    potential.make_graph(structures)
    with SyncCounter() as counter:
        potential.make_graph(structures)
    assert set(counter.ops) <= {"nonzero", "_local_scalar_dense"}, counter.ops
    assert counter.total <= sum(2 * -(-len(atoms) // 64) + 3 for atoms in structures)
