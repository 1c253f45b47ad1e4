"""AdsorbML: slabs, adsorbate library, sites, placements, anomaly rules, references, a tiny screen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.data import covalent_radii

from eqv2_calc.adsorbml import (
    build_slabs, detect_anomalies, get_adsorbate, heuristic_sites, library_names, make_adsorbate, make_placements,
    random_sites, screen, summary_lines, tag_surface, write_results,
)
from eqv2_calc.adsorbml.anomalies import DESORBED, DISSOCIATED, INTERCALATED, SURFACE_CHANGED
from eqv2_calc.adsorbml.placement import INTERSTITIAL_GAP_A
from eqv2_calc.adsorbml.references import emt_gas_references, reference_scheme
from eqv2_calc.adsorbml.slabs import SlabSettings
from eqv2_calc.errors import AdsorbateError, SlabError, UnsupportedElementError
from eqv2_calc.hub import load_registry


def cu111(size: tuple[int, int, int] = (3, 3, 3)) -> Atoms:
    """An ASE Cu(111) slab tagged the OC20 way (top layer 1, the rest 0 and fixed), normal along +z."""
    slab = fcc111("Cu", size=size, a=3.59, vacuum=8.0)
    slab.pbc = True
    return tag_surface(slab)


def test_build_slabs_cuts_tags_and_fixes() -> None:
    slab = build_slabs(bulk("Cu", "fcc", a=3.59), (1, 1, 1), settings=SlabSettings(5.0, 8.0, 7.0))[0]
    tags = slab.get_tags()
    z = slab.positions[:, 2]
    assert slab.info["miller"] == (1, 1, 1) and slab.pbc.all()
    assert (slab.cell.lengths()[:2] >= 7.0).all() and np.allclose(slab.cell[:2, 2], 0.0)
    assert set(tags) == {0, 1} and z[tags == 1].min() > z[tags == 0].max()
    assert set(slab.constraints[0].get_indices()) == set(np.flatnonzero(tags == 0))


def test_fcc111_sites_are_top_bridge_fcc_and_hcp() -> None:
    slab = cu111()
    sites = heuristic_sites(slab)
    assert sorted(s.kind for s in sites) == ["bridge", "fcc", "hcp", "top"]
    all_sites = heuristic_sites(slab, unique=False)
    counts = {kind: sum(s.kind == kind for s in all_sites) for kind in ("top", "bridge", "fcc", "hcp")}
    assert counts == {"top": 9, "bridge": 27, "fcc": 9, "hcp": 9}  # 3x3 cell: 1, 3, 1, 1 per surface atom
    layer = fcc111("Cu", size=(3, 3, 3), a=3.59, vacuum=8.0).get_tags()  # ase.build: 1 top ... 3 bottom

    def layer_below(site) -> int:
        lateral = slab.positions[:, :2] - site.position[:2]
        frac = np.linalg.solve(slab.cell.array[:2, :2].T, lateral.T).T
        lateral = (frac - np.round(frac)) @ slab.cell.array[:2, :2]
        return int(layer[np.linalg.norm(lateral, axis=1) < 0.3].min())

    kinds = {s.kind: s for s in sites}
    assert layer_below(kinds["top"]) == 1 and layer_below(kinds["hcp"]) == 2 and layer_below(kinds["fcc"]) == 3


def test_site_enumeration_ignores_round_off_at_the_cell_edges() -> None:
    """Sites on a cell edge are counted once whichever side round-off puts them (scipy/numpy/BLAS differ)."""
    rng = np.random.default_rng(0)
    expected = {"top": 9, "bridge": 27, "fcc": 9, "hcp": 9}
    for shift in [(0.0, 0.0), (0.0, 1 / 3), (1 / 6, 1 / 3), (0.5, 1 / 3)] + [None] * 6:
        slab = cu111()
        if shift is None:  # +-1e-12 .. 3e-9 Angstrom of noise in x and y
            slab.positions[:, :2] += rng.choice([-1, 1], (len(slab), 2)) * rng.choice([1e-12, 1e-9, 3e-9], (len(slab), 2))
        else:
            slab.translate(shift[0] * slab.cell[0] + shift[1] * slab.cell[1])
        sites = heuristic_sites(slab, unique=False)
        assert {kind: sum(s.kind == kind for s in sites) for kind in expected} == expected, shift
        frac = np.array([np.linalg.solve(slab.cell.array.T, s.position)[:2] for s in sites])
        assert ((frac > -1e-9) & (frac < 1)).all()


def test_random_sites_lie_on_the_surface_in_the_cell() -> None:
    slab = cu111()
    sites = random_sites(slab, 25, np.random.default_rng(1))
    frac = np.array([np.linalg.solve(slab.cell.array.T, s.position)[:2] for s in sites])
    top = slab.positions[slab.get_tags() == 1, 2].max()
    assert len(sites) == 25 and ((frac >= 0) & (frac < 1)).all()
    assert np.allclose([s.position[2] for s in sites], top)


@pytest.mark.parametrize("name", ["*CO", "*CH3", "*OH2", "*OCH3", "*O"])
def test_placements_bind_through_the_binding_atom_without_overlap(name: str) -> None:
    slab = cu111()
    placements = make_placements(slab, get_adsorbate(name), num_random=6, seed=3)
    assert {p.mode for p in placements} == {"heuristic", "random"} and len(placements) == 10
    for p in placements:
        atoms, ads = p.atoms, p.atoms.get_tags() == 2
        z = atoms.positions[ads, 2]
        assert atoms.positions[p.binding_index, 2] <= z.min() + 1e-9  # binding atom nearest the surface
        assert atoms.positions[p.binding_index, 2] > slab.positions[:, 2].max()
        d = atoms.get_all_distances(mic=True)[np.ix_(ads, ~ads)]
        contact = covalent_radii[atoms.numbers[ads]][:, None] + covalent_radii[atoms.numbers[~ads]][None, :]
        margin = d - contact - INTERSTITIAL_GAP_A
        assert margin.min() == pytest.approx(0.0, abs=1e-6)  # no overlap, and lowered until it touches
        assert len(atoms.constraints[0].get_indices()) == (slab.get_tags() == 0).sum()
    again = make_placements(slab, get_adsorbate(name), num_random=6, seed=3)
    assert all(np.allclose(a.atoms.positions, b.atoms.positions) for a, b in zip(placements, again))


def test_library_molecules_point_their_binding_atom_down() -> None:
    assert len(library_names()) >= 18
    for name in library_names():
        ads = get_adsorbate(name)
        pos = ads.atoms.positions
        others = np.delete(pos, ads.binding_indices, axis=0)
        assert np.allclose(pos[ads.binding_indices[0]], 0.0) and np.allclose(pos[list(ads.binding_indices), 2], 0.0)
        assert not len(others) or (others[:, 2].max() > -0.05 and others[:, 2].min() > -0.4), name  # *CH4: tripod down; *COOH: flat
        if len(pos) > 1:
            d = ads.atoms.get_all_distances()
            assert 0.7 < d[d > 0].min() < 1.5, name  # the shortest bond: H-H of *H2, 0.74 A
    assert get_adsorbate("O2H").name == "*OOH" and get_adsorbate("*H2O").name == "*OH2"


def test_user_molecule_is_turned_binding_atom_down() -> None:
    water = molecule("H2O")
    ads = make_adsorbate(water, [0], "water")
    assert ads.atoms.positions[1:, 2].min() > 0.5 and np.allclose(ads.atoms.positions[0], 0.0)


def _co_on_top(height: float = 1.9) -> Atoms:
    slab = cu111()
    top = slab.positions[np.argmax(slab.positions[:, 2])]
    co = Atoms("CO", positions=[top + (0, 0, height), top + (0, 0, height + 1.15)], tags=[2, 2])
    return slab + co


def test_each_anomaly_rule_fires_on_its_case_only() -> None:
    initial = _co_on_top()
    assert detect_anomalies(initial, initial.copy()) == []
    desorbed = initial.copy()
    desorbed.positions[-2:, 2] += 5.0
    assert detect_anomalies(initial, desorbed) == [DESORBED]
    dissociated = initial.copy()
    dissociated.positions[-1] += (2.0, 0.0, -0.8)  # O leaves C but stays on the surface
    assert detect_anomalies(initial, dissociated) == [DISSOCIATED]
    reconstructed = initial.copy()
    surface = np.flatnonzero(initial.get_tags() == 1)
    far = surface[np.argmax(np.linalg.norm(initial.positions[surface, :2] - initial.positions[-2, :2], axis=1))]
    reconstructed.positions[far, 2] += 2.5  # a surface atom far from CO pops out of the surface
    assert detect_anomalies(initial, reconstructed) == [SURFACE_CHANGED]
    intercalated = initial.copy()
    hcp = next(site for site in heuristic_sites(cu111()) if site.kind == "hcp")  # a tag-0 atom right below
    intercalated.positions[-2:] = hcp.position + np.array([(0.0, 0.0, -0.5), (0.0, 0.0, 0.65)])  # C sinks in
    assert INTERCALATED in detect_anomalies(initial, intercalated)


def test_anomaly_verdicts_match_fairchem_data_oc() -> None:
    """Our verdicts equal fairchem-data-oc DetectTrajAnomaly's on stored cases (tools/make_anomaly_fixtures.py):
    *OH, *CO, *NH2, *CH3, *OOH, *CHO on Pt/Cu(111), intact, stretched just inside/outside the bond cutoff
    (radii + 0.6 A), broken, (almost) desorbed, surface changed, intercalated."""
    import json

    from ase.io import read

    data = Path(__file__).parent / "data"
    expected = json.loads((data / "anomaly_verdicts.json").read_text())
    initial: dict[str, Atoms] = {}
    found = {}
    for frame in read(data / "anomaly_cases.extxyz", index=":"):
        if frame.info["stage"] == "initial":
            initial[frame.info["system"]] = frame
        else:
            name = f"{frame.info['system']} {frame.info['case']}"
            found[name] = sorted(detect_anomalies(initial[frame.info["system"]], frame))
    assert len(found) == len(expected) == 132
    assert {k: v for k, v in found.items() if v != expected[k]} == {}


def test_reference_schemes() -> None:
    registry = load_registry()
    oc20 = reference_scheme(registry.get("EquiformerV2-31M-S2EF-OC20-All+MD"))
    assert oc20.direct and oc20.adsorption_energy(-1.2, 99.0, "CO") == -1.2
    demo = reference_scheme(registry.get("eqV2-demo-EMT"))
    refs = emt_gas_references()
    assert set(refs) == {"H", "C", "N", "O"} and not demo.direct
    assert demo.adsorption_energy(10.0, 8.0, ["C", "O"]) == pytest.approx(2.0 - refs["C"] - refs["O"])
    omat = reference_scheme(registry.get("EquiformerV2-31M-OMAT24-MP-sAlex"))
    assert omat.adsorption_energy(10.0, 8.0, ["O"]) is None
    with pytest.raises(UnsupportedElementError, match="S"):
        demo.adsorption_energy(10.0, 8.0, ["S"])


def test_bad_inputs_get_clear_errors() -> None:
    with pytest.raises(AdsorbateError, match="unknown adsorbate '\\*XY'"):
        get_adsorbate("*XY")
    with pytest.raises(AdsorbateError, match="no binding atom"):
        make_adsorbate(molecule("H2O"), [])
    with pytest.raises(AdsorbateError, match="index 5 is outside"):
        make_adsorbate(molecule("H2O"), [5])
    untagged = fcc111("Cu", size=(2, 2, 3), vacuum=8.0)
    untagged.set_tags(0)
    with pytest.raises(SlabError, match="no surface atoms"):
        heuristic_sites(untagged)
    with pytest.raises(SlabError, match="periodic"):
        build_slabs(molecule("H2O"), (1, 1, 1))
    with pytest.raises(UnsupportedElementError, match="Fe"):
        screen(tag_surface(fcc111("Fe", size=(2, 2, 3), a=3.6, vacuum=8.0)), "*O", progress=False, device="cpu")
    with pytest.raises(UnsupportedElementError, match="S"):
        screen(cu111((2, 2, 3)), make_adsorbate(Atoms("SH", positions=[(0, 0, 0), (0, 0, 1.34)]), [0]),
               progress=False, device="cpu")


def test_tiny_screen_ranks_and_writes_results(tmp_path) -> None:
    systems = screen(cu111((2, 2, 3)), "*O", num_random=2, steps=5, progress=False, device="cpu")
    system = systems[0]
    assert len(system.candidates) == 6  # top, bridge, fcc, hcp + 2 random
    ranked = system.ranked()
    assert [c.energy for c in ranked] == sorted(c.energy for c in ranked)
    assert all(c.adsorption_energy is not None for c in system.candidates)
    text = "\n".join(summary_lines(systems, top_k=2))
    assert "*O" in text and "EMT gas references" in text
    paths = write_results(systems, tmp_path, top_k=2)
    rows = paths["csv"].read_text().splitlines()
    assert len(rows) == 7 and rows[0].startswith("system,placement,mode,site,rank,valid")
    assert len(list(paths["top"].glob("*.POSCAR"))) == min(2, len(ranked))
    assert paths["figure"].stat().st_size > 10_000


def test_resolve_adsorbate_names_files_and_binding_atoms(tmp_path) -> None:
    from ase.io import write

    from eqv2_calc.adsorbml.adsorbates import resolve_adsorbate

    o_down = resolve_adsorbate("*CO", [1])
    assert o_down.binding_indices == (1,) and o_down.atoms.positions[0, 2] > 1.0  # C above O
    write(tmp_path / "nh3.xyz", molecule("NH3"))
    ammonia = resolve_adsorbate(str(tmp_path / "nh3.xyz"), [0])
    assert ammonia.symbols[0] == "N" and (ammonia.atoms.positions[1:, 2] > 0.3).all()
    with pytest.raises(AdsorbateError, match="no such file"):
        resolve_adsorbate(str(tmp_path / "missing.xyz"), [0])


def test_a_screen_looks_its_model_up_once(monkeypatch) -> None:
    """The model is resolved once: the loaded Potential carries its card (registry entry), which the input
    checks, the adsorption references and relax_many ask instead of the registry."""
    import eqv2_calc.hub.card as card_module
    from eqv2_calc.predict import DEMO_MODEL

    lookups = []
    real = card_module.find_entry
    monkeypatch.setattr(card_module, "find_entry", lambda model: lookups.append(model) or real(model))
    monkeypatch.setattr("eqv2_calc.hub.registry.find_entry", lambda model: pytest.fail(f"second lookup of {model}"))
    systems = screen(cu111((2, 2, 3)), "*O", num_random=0, steps=1, progress=False, device="cpu")
    assert lookups == [DEMO_MODEL]
    assert "EMT gas references" in systems[0].scheme.description  # the demo's card decided the references
