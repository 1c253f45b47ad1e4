"""The default screen's batch is sized from memory, and its plan is printed before it starts."""

from __future__ import annotations

from ase.build import bulk

from eqv2_calc.adsorbml import SlabSettings, build_slabs, screen
from eqv2_calc.adsorbml.adsorbates import resolve_adsorbate
from eqv2_calc.adsorbml.placement import make_placements
from eqv2_calc.adsorbml.screen import TYPICAL_SCREEN_STEPS, screen_plan
from eqv2_calc.batching import CPU_MAX_BATCH_ATOMS, max_batch_atoms
from eqv2_calc.predict import DEMO_MODEL, resolve_model


def test_plan_names_slab_placements_batch_device_and_time(capsys):
    [slab] = build_slabs(bulk("Cu", "fcc", a=3.6, cubic=True), (1, 1, 1),
                         settings=SlabSettings(min_slab_size=4.0, min_ab=5.0))
    potential = resolve_model(DEMO_MODEL, "cpu")
    placements = make_placements(slab, resolve_adsorbate("*CO"), num_random=1, seed=0)
    max_atoms = max_batch_atoms(potential, placements[0].atoms)
    assert len(placements[0].atoms) <= max_atoms <= CPU_MAX_BATCH_ATOMS
    plan = screen_plan(potential, [slab], [placements], 32, max_atoms, 300)
    assert f"Cu12 ({len(slab)} atoms); {len(placements)} placements + 1 clean slab(s)" in plan
    assert f"up to {len(placements) + 1} per model call" in plan and "on cpu" in plan
    assert f" at {TYPICAL_SCREEN_STEPS} steps each (at most " in plan
    screen(slab, "*O", potential, num_random=0, steps=1, device="cpu", progress=True)
    assert "plan: 1 slab(s)" in capsys.readouterr().err
