"""`Potential.compiled`: one torch.compile graph for every structure size, numbers unchanged.

Dynamo's capture and guards decide recompilation; the "aot_eager" backend runs them (and AOTAutograd's
traces of the forward and of the force derivative) without inductor's code generation, which takes
minutes on a CPU (benchmarks/bench_compile.py measures inductor).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from torch._dynamo.utils import counters

from eqv2_calc.calculator import EquiformerV2Calculator
from eqv2_calc.model import attention
from eqv2_calc.potential import Potential
from eqv2_calc.predict import evaluate
from test_model import seeded_potential
from test_predict import DEMO_LIKE, slab_with_co

# DEMO_LIKE at its smallest (one block, 8 channels, 3 A cutoff): a 2,048-atom cell's call takes seconds.
TINY = DEMO_LIKE | dict(num_layers=1, sphere_channels=8, attn_hidden_channels=8, attn_alpha_channels=4,
                        attn_value_channels=4, ffn_hidden_channels=8, edge_channels=8, max_radius=3.0)


def sizes() -> list[Atoms]:
    """A slab with CO, a molecule and fcc Cu cells: 6 to 2,048 atoms, 30 to 24,576 edges (TINY cutoff)."""
    methanol = molecule("CH3OH")
    methanol.center(vacuum=4.0)
    cells = [bulk("Cu", "fcc", a=3.6, cubic=True) * (n, n, n) for n in (2, 8)]
    for cell in cells:
        cell.rattle(0.02, seed=1)
    return [slab_with_co(), methanol, *cells]


def compiled_copy(potential: Potential) -> Potential:
    """The same network and weights behind `torch.compile` ("aot_eager"), dynamo's caches and counters cleared."""
    fast = Potential(potential.model, potential.normalizers, potential.element_references).eval()
    fast.compiled = "aot_eager"
    torch._dynamo.reset()
    counters.clear()
    return fast


@pytest.mark.parametrize("direct_forces", [False, True], ids=["conservative", "direct"])
def test_compiled_network_takes_every_size_without_recompiling(direct_forces: bool,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first call, other atom, edge and structure counts (single structures and batches) reuse the
    captured graph, with no graph break; energies and forces equal the eager ones to float32 round-off. Direct
    forces run under no_grad, where the CPU attention cuts the edges in chunks: 1 for the small structures, 6 for
    the large cell (chunks of 4,096 here, fewer small ops for the eager reference), none while compiling."""
    monkeypatch.setitem(attention.EDGE_CHUNK, "cpu", 4096)
    eager = seeded_potential(**TINY | {"direct_forces": direct_forces}).float()
    fast = compiled_copy(eager)
    structures = sizes()
    calls = [[atoms] for atoms in structures] + [structures[:3]]
    results = [evaluate(fast, calls[0])]
    assert counters["stats"]["unique_graphs"] == 1
    results += [evaluate(fast, call) for call in calls[1:]]
    assert counters["frames"]["total"] == 1 and counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"]
    for call, compiled in zip(calls, results):
        for a, b in zip(evaluate(eager, call), compiled):
            scale = max(1.0, abs(a.energy))
            assert b.energy == pytest.approx(a.energy, abs=1e-6 * scale)
            assert np.abs(b.forces - a.forces).max() <= 1e-5 * max(1.0, np.abs(a.forces).max())


def test_compiled_network_in_train_mode_gives_weight_gradients() -> None:
    """In eval mode the compiled network's weights enter detached (no weight gradients to compute); in train mode
    they do not, and a training step's weight gradients equal eager ones."""
    eager = seeded_potential(**TINY | {"direct_forces": True}).float().train()
    fast = compiled_copy(eager).train()
    graph = eager.make_graph(slab_with_co())
    gradients = []
    for potential in (eager, fast):
        eager.model.zero_grad()
        potential(graph)["forces"].square().sum().backward()
        gradients.append({name: torch.zeros_like(w) if w.grad is None else w.grad.clone()
                          for name, w in eager.model.named_parameters()})  # None: eager's unused weights
    assert sum(bool(grad.any()) for grad in gradients[0].values()) > 10
    for name, grad in gradients[0].items():
        assert torch.allclose(gradients[1][name], grad, rtol=1e-4, atol=1e-6), name


def test_calculator_compile_option() -> None:
    """`EquiformerV2Calculator(compile=True)` sets the potential's backend (inductor), False switches it off, None
    (the default) keeps a `Potential`'s own."""
    potential = seeded_potential(**TINY).float()
    assert EquiformerV2Calculator(potential, device="cpu").potential.compiled is None
    assert EquiformerV2Calculator(potential, device="cpu", compile=True).potential.compiled == "inductor"
    assert EquiformerV2Calculator(potential, device="cpu").potential.compiled == "inductor"
    assert EquiformerV2Calculator(potential, device="cpu", compile=False).potential.compiled is None
