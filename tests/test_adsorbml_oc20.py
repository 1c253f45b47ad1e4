"""OC20 fidelity: the adsorbate library (from fairchem-data-oc's database), bidentates, flipped slabs, the Voronoi
surface rule, spread random sites."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import fcc111

from eqv2_calc.adsorbml import get_adsorbate, library_names, make_placements, tag_surface
from eqv2_calc.adsorbml.adsorbates import OC20_FILE
from eqv2_calc.errors import AdsorbateError

BIDENTATE = ("*CH2*O", "*C*C", "*CH*CH", "*CHO*CHO", "*CH2*CH2", "*N*NH", "*N*NO")


def test_every_oc20_adsorbate_is_in_the_library_with_its_source() -> None:
    data = json.loads(OC20_FILE.read_text())
    assert "fairchem-data-oc 1.0.2" in data["source"] and data["license"].startswith("MIT")
    names = [e["name"] for e in data["adsorbates"]]
    assert len(names) == 86 and [e["index"] for e in data["adsorbates"]] == list(range(86))
    assert library_names()[:86] == names and "*NNH" in library_names()
    for name in ("*OCH2CH3", "*NH2N(CH3)2", "CH2*CO", "*ONNO2"):
        assert get_adsorbate(name).name == name
    assert sorted(n for n in names if len(get_adsorbate(n).binding_indices) == 2) == sorted(BIDENTATE)


def test_co_binds_carbon_down_and_old_names_still_work() -> None:
    co = get_adsorbate("CO")
    assert co.name == "*CO" and co.symbols == ["C", "O"] and co.binding_indices == (0,)
    assert np.allclose(co.atoms.positions[0], 0.0) and np.allclose(co.atoms.positions[1, :2], 0.0)
    assert co.atoms.positions[1, 2] == pytest.approx(1.1662, abs=1e-3)  # the OC20 geometry
    assert get_adsorbate("*O2H").name == "*OOH" and get_adsorbate("H2O").name == "*OH2"
    assert get_adsorbate("*OCH3").symbols[get_adsorbate("*OCH3").binding_indices[0]] == "O"


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(AdsorbateError, match=r"unknown adsorbate '\*OCH2CH'.*closest: \*OCH2CH3"):
        get_adsorbate("*OCH2CH")


@pytest.mark.parametrize("name", ["*CH2*CH2", "*N*NO"])
def test_bidentate_adsorbates_face_the_surface_with_both_binding_atoms(name: str) -> None:
    slab = fcc111("Cu", size=(3, 3, 3), a=3.59, vacuum=8.0)
    slab.pbc = True
    ads = get_adsorbate(name)
    placements = make_placements(tag_surface(slab), ads, num_random=4, seed=1)
    assert placements
    for p in placements:
        start = p.atoms.positions[len(slab):]
        z_binding = start[list(ads.binding_indices), 2]
        others = np.delete(start, list(ads.binding_indices), axis=0)[:, 2]
        # within the 20 degree wobble of flat, and the rest of the molecule above both
        assert abs(z_binding[0] - z_binding[1]) <= np.sin(np.pi / 9) * 1.5 + 1e-6
        assert others.min() > z_binding.min() - 1e-6


def test_list_adsorbates_command(capsys) -> None:
    from eqv2_calc.cli import main

    assert main(["adsorb", "--list-adsorbates"]) == 0
    out = capsys.readouterr().out
    assert all(f"\n{name} " in out for name in library_names()) and "88 adsorbates" in out


def test_flipped_slab_puts_the_bottom_termination_on_top() -> None:
    from eqv2_calc.adsorbml.slabs import _flipped

    slab = fcc111("Cu", size=(2, 2, 3), a=3.6, vacuum=6.0)
    bottom = slab.positions[:, 2] < slab.positions[:, 2].min() + 0.1
    slab.symbols[bottom] = "Au"  # a slab whose bottom differs from its top
    flipped = _flipped(slab)
    z = flipped.positions[:, 2]
    assert set(flipped[z > z.max() - 0.1].get_chemical_symbols()) == {"Au"}
    assert np.linalg.det(flipped.cell.array) > 0 and np.allclose(flipped.cell[:2, 2], 0.0)
    assert np.allclose(np.sort(flipped.get_all_distances(mic=True).ravel()),
                       np.sort(slab.get_all_distances(mic=True).ravel()), atol=1e-6)


def test_voronoi_rule_tags_exposed_second_layer_atoms() -> None:
    from ase.build import bulk, fcc110

    slab = fcc110("Cu", size=(1, 1, 4), a=3.6, vacuum=6.0)
    slab.pbc = True
    by_height = tag_surface(slab.copy(), depth=0.5).get_tags()
    with_bulk = tag_surface(slab.copy(), depth=0.5, bulk=bulk("Cu", "fcc", a=3.6)).get_tags()
    z = slab.positions[:, 2]
    second = np.abs(z - (z.max() - 1.27)) < 0.1  # the exposed second row of fcc(110)
    assert not by_height[second].any() and with_bulk[second].all() and with_bulk.sum() == by_height.sum() + 1


def test_random_sites_are_spread_over_the_cell() -> None:
    from eqv2_calc.adsorbml import random_sites
    from eqv2_calc.adsorbml.placement import spread_sites

    slab = fcc111("Cu", size=(4, 4, 3), a=3.59, vacuum=8.0)
    slab.pbc = True
    slab = tag_surface(slab)
    pool = random_sites(slab, 80, np.random.default_rng(0))

    def closest(sites) -> float:
        frac = np.array([np.linalg.solve(slab.cell.array.T, s.position)[:2] for s in sites])
        delta = frac[:, None] - frac[None]
        delta -= np.round(delta)
        d = np.linalg.norm(delta @ slab.cell.array[:2, :2], axis=-1)
        return d[~np.eye(len(sites), dtype=bool)].min()

    spread = spread_sites(slab, pool, 20, np.random.default_rng(0))
    assert len({id(s) for s in spread}) == 20 and all(any(s is p for p in pool) for s in spread)
    assert closest(spread) > 1.5 * closest(pool[:20])
