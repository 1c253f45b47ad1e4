"""Reactions after AdsorbML: CatTSunami's 98 reactions, free-text parsing and balance, atom mappings, the pairing
rule, and `eqv2 reaction` end to end from a bulk CIF (files read back) and on bad input."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk, fcc111
from ase.io import read

from eqv2_calc.adsorbml import get_adsorbate, make_placements, tag_surface
from eqv2_calc.cli import main
from eqv2_calc.errors import ReactionError
from eqv2_calc.reactions import cattsunami_reactions, derive_mappings, parse_reaction
from eqv2_calc.reactions.equations import CATTSUNAMI_FILE
from eqv2_calc.reactions.frames import State, aligned_final, combine, pairs_within, travel
from eqv2_calc.structures import write_structures


def test_all_98_cattsunami_reactions_parse_by_name_and_balance() -> None:
    data = json.loads(CATTSUNAMI_FILE.read_text())
    assert "fairchem-applications-cattsunami 1.1.1" in data["source"] and data["license"].startswith("MIT")
    reactions = cattsunami_reactions()
    assert Counter(r.kind for r in reactions) == {"dissociation": 54, "transfer": 25, "desorption": 19}
    for entry, reaction in zip(data["reactions"], reactions):
        assert parse_reaction(reaction.name) == reaction
        assert parse_reaction(entry["source_text"]) == reaction  # CatTSunami's own text, e.g. "*H + *C*C -> *CH+ *C"
        before, after = reaction.symbols("reactants"), reaction.symbols("products")
        assert Counter(before) == Counter(after)
        for mapping in reaction.mappings:
            assert sorted(mapping) == list(range(len(before)))
            assert all(before[i] == after[j] for i, j in enumerate(mapping))


def test_derived_mappings_contain_every_cattsunami_mapping() -> None:
    """Our rule (element-preserving bijections keeping the most bonds) finds CatTSunami's hand-made mappings."""
    for reaction in cattsunami_reactions():
        if reaction.kind == "desorption" or len(reaction.symbols("reactants")) > 7:
            continue
        derived = derive_mappings(reaction.symbols("reactants"), reaction.bonds("reactants"),
                                  reaction.symbols("products"), reaction.bonds("products"))
        assert set(reaction.mappings) <= set(derived), reaction.name


def test_free_text_reactions_in_oc20_names() -> None:
    water = parse_reaction("*OH + *H -> *H2O")
    assert (water.kind, water.source, water.name) == ("association", "derived", "*OH + *H -> *OH2")
    symbols_in, symbols_out = water.symbols("reactants"), water.symbols("products")
    for mapping in water.mappings:  # the O of *OH stays bonded to its H
        o, h = symbols_in.index("O"), 1
        assert symbols_out[mapping[o]] == "O" and tuple(sorted((mapping[o], mapping[h]))) in water.bonds("products")
    co = parse_reaction("*CO -> CO(g)")
    assert (co.kind, co.reactants, co.products, co.gas) == ("desorption", ("*CO",), ("*CO",), "CO(g)")
    assert parse_reaction("CO -> C + O").name == "*CO -> *C + *O"
    assert parse_reaction("*CH3 -> *CH2 + *H").source == "CatTSunami"


@pytest.mark.parametrize("text, message", [
    ("*CO -> *C", r"do not balance \(O 1 -> 0\)"),
    ("*CO -> *C + *OH", r"do not balance \(H 0 -> 1\)"),
    ("*COO -> *CO + *O", r"unknown adsorbate '\*COO': closest: \*COOH"),
    ("*CO -> CO2(g)", r"CO2\(g\) is not the molecule \*CO"),
    ("*CO *C", "write one arrow"),
    ("*CH2 -> *C + *H + *H", "at most two"),
])
def test_bad_reactions_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ReactionError, match=message):
        parse_reaction(text)


def _slab():
    slab = fcc111("Cu", size=(3, 3, 3), a=3.59, vacuum=8.0)
    slab.pbc = True
    return tag_surface(slab)


def test_pairing_maps_atom_to_atom_and_aligns_the_final_state() -> None:
    """*OH -> *O + *H: the O of the final state sits where the O of the initial state was mapped; a final
    state built across the cell edge is moved to the images nearest the initial positions."""
    slab = _slab()
    reaction = parse_reaction("*OH -> *O + *H")
    oh = make_placements(slab, get_adsorbate("*OH"), num_random=0, seed=0)[0].atoms
    o = make_placements(slab, get_adsorbate("*O"), num_random=0, seed=0)
    h = make_placements(slab, get_adsorbate("*H"), num_random=0, seed=0)
    finals = [State(combine([a.atoms, b.atoms]), 0.0, (a.site.kind, b.site.kind)) for a in o for b in h]
    pairs = pairs_within([State(oh, 0.0, ("top",))], finals, reaction.mappings, 3.0)
    assert pairs and all(p.travel[1] <= 3.0 for p in pairs)
    best = pairs[0]
    assert best.final.atoms.get_chemical_symbols() == oh.get_chemical_symbols()
    moved = best.final.atoms.positions - oh.positions
    assert np.linalg.norm(moved, axis=1).max() == pytest.approx(best.travel[1], abs=1e-6)
    shifted = best.final.atoms.copy()
    shifted.positions[-2:] += slab.cell[0]  # the same state, one cell over
    again = aligned_final(oh, shifted, tuple(range(2)))
    assert np.allclose(again.positions, best.final.atoms.positions)
    assert travel(oh, shifted, reaction.mappings)[2] == pytest.approx(best.travel[1], abs=1e-6)


def _bulk_cif(tmp_path: Path) -> Path:
    cif = tmp_path / "Cu.cif"
    write_structures(cif, bulk("Cu", "fcc", a=3.59, cubic=True))
    return cif


SMALL = ["--min-slab-size", "4", "--min-ab", "5", "--num-random", "0", "--n-initial", "1", "--n-final", "2",
         "--steps", "10", "--images", "2", "--neb-steps", "6", "--device", "cpu", "--quiet"]


def test_reaction_command_end_to_end_from_a_bulk_cif(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code = main(["reaction", "--bulk", str(_bulk_cif(tmp_path)), "--miller", "1", "1", "1", "--reaction",
                 "*OH -> *O + *H", "--top-k", "2", "-o", str(out), "--plot", *SMALL])
    assert code in (0, 1)  # 1: the lowest-barrier band did not converge in 6 steps
    printed = capsys.readouterr().out
    assert "*OH -> *O + *H" in printed and "lowest barrier" in printed
    summary = json.loads((out / "reaction.json").read_text())
    assert summary["reaction"] == "*OH -> *O + *H" and 1 <= len(summary["bands"]) <= 2
    for record in summary["bands"]:
        images = read(out / record["files"] / "band.extxyz", ":")
        assert len(read(out / record["files"] / "band.traj", ":")) == len(images)
        assert len(images) == 4 and len(record["energies_eV"]) == 4
        energies = [a.get_potential_energy() for a in images]
        assert np.allclose(energies, record["energies_eV"], atol=1e-4)
        assert record["barrier_forward_eV"] == pytest.approx(max(energies) - energies[0], abs=1e-4)
        assert images[0].get_chemical_symbols()[-2:] == ["O", "H"] and (images[0].get_tags()[-2:] == 2).all()
    best = summary["bands"][summary["best_band"]]
    ts = read(out / "ts.extxyz")
    assert ts.get_potential_energy() == pytest.approx(max(best["energies_eV"]), abs=1e-4)
    assert np.allclose(read(out / "ts.traj").positions, ts.positions)
    assert ts.get_forces().shape == (len(ts), 3)
    assert (out / "reaction.png").stat().st_size > 0 and (out / "ts.png").stat().st_size > 0


@pytest.mark.parametrize("args, message", [
    (["--bulk", "CIF", "--miller", "1", "1", "1", "--reaction", "*CO -> *C"], r"do not balance \(O 1 -> 0\)"),
    (["--bulk", "CIF", "--miller", "1", "1", "1", "--reaction", "*COO -> *CO + *O"], r"closest: \*COOH"),
    (["--bulk", "CIF", "--miller", "1", "1", "1", "--reaction", "*CO -> *C + *O", "--model",
      "EquiformerV2-IS2RE-ODAC"], r"EquiformerV2-IS2RE-ODAC: a reaction \(relaxations and NEBs\) needs forces"),
    (["--miller", "1", "1", "1", "--reaction", "*CO -> *C + *O"], "one of --bulk"),
    (["--bulk", "CIF", "--reaction", "*CO -> *C + *O"], "--bulk needs --miller"),
])
def test_reaction_command_bad_input_one_line_exit_2_nothing_written(tmp_path: Path, capsys, args, message) -> None:
    out = tmp_path / "out"
    cif = str(_bulk_cif(tmp_path))
    assert main(["reaction", *[cif if a == "CIF" else a for a in args], "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("eqv2: error:") and re.search(message, err[0]), err
    assert not out.exists()


def test_list_reactions(capsys) -> None:
    assert main(["reaction", "--list-reactions"]) == 0
    out = capsys.readouterr().out
    assert "*CO -> *C + *O" in out and "*OH + *CH2 -> *O + *CH3" in out and "*CO -> CO(g)" in out
    assert "98 reactions of CatTSunami" in out


def test_desorption_final_state_is_the_molecule_off_the_surface() -> None:
    """CatTSunami's desorption: the final state is the relaxed adsorbate moved 3 A along the normal, relaxed,
    still off the surface; the band starts from the adsorbed state with the same atoms in the same order."""
    from eqv2_calc.reactions.frames import DESORPTION_HEIGHT_A, is_adsorbed
    from eqv2_calc.reactions.workflow import run_reaction

    slab = fcc111("Cu", size=(2, 2, 3), a=3.59, vacuum=8.0)
    slab.pbc = True
    run = run_reaction(tag_surface(slab), "*CO -> CO(g)", num_random=0, n_initial=1, top_k=1, n_images=2, steps=8,
                       neb_steps=3, device="cpu", progress=False)
    (band,) = run.bands
    first, last = band.result.images[0], band.result.images[-1]
    assert is_adsorbed(first) and not is_adsorbed(last)
    assert first.get_chemical_symbols() == last.get_chemical_symbols()
    lift = last.positions[-2:, 2].mean() - first.positions[-2:, 2].mean()
    assert lift > DESORPTION_HEIGHT_A - 1.0


def test_reaction_command_on_an_untagged_slab_file(tmp_path: Path, capsys) -> None:
    """--slab FILE: a slab written by ASE without tags gets its top 2 A tagged as surface (and the rest fixed)."""
    slab_file = tmp_path / "cu111.extxyz"
    slab = fcc111("Cu", size=(2, 2, 3), a=3.59, vacuum=8.0)
    slab.pbc = True
    slab.set_tags(0)
    write_structures(slab_file, slab)
    out = tmp_path / "out"
    assert main(["reaction", "--slab", str(slab_file), "--reaction", "*CO -> CO(g)", "--top-k", "1", "-o", str(out),
                 *SMALL[4:]]) in (0, 1)
    summary = json.loads((out / "reaction.json").read_text())
    assert summary["kind"] == "desorption" and summary["slab"] == "Cu12"
    assert len(read(out / summary["bands"][0]["files"] / "band.traj", ":")) == 4
