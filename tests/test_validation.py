"""Structures a model cannot answer for are refused, not silently computed (eqv2_calc.validation)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from eqv2_calc import predict, relax
from eqv2_calc.calculator import EquiformerV2Calculator
from eqv2_calc.errors import InvalidStructureError, UnsupportedElementError
from eqv2_calc.md import run_md
from eqv2_calc.predict import DEMO_MODEL
from eqv2_calc.relax import relax_many
from eqv2_calc.structures import read_file, to_atoms

# a disordered fcc CuAu: the face centres are half Cu, half Au; one corner site is 70 % occupied
DISORDERED_CIF = """data_CuAu
_cell_length_a 3.8
_cell_length_b 3.8
_cell_length_c 3.8
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Cu1 Cu 0 0 0 1.0
Au1 Au 0.5 0.5 0 0.5
Cu2 Cu 0.5 0.5 0 0.5
Au2 Au 0.5 0 0.5 1.0
Au3 Au 0 0.5 0.5 0.7
"""


@pytest.fixture(scope="module")
def demo() -> EquiformerV2Calculator:
    return EquiformerV2Calculator(DEMO_MODEL, device="cpu")


def test_demo_model_refuses_elements_it_was_not_trained_on(demo) -> None:
    iron = bulk("Fe")
    iron.calc = demo
    with pytest.raises(UnsupportedElementError, match=r"Fe, which eqV2-demo-EMT was not trained on.*allow_untrained"):
        iron.get_potential_energy()
    with pytest.raises(UnsupportedElementError, match="frames.xyz:1 contains S"):
        predict([bulk("Cu"), bulk("S", "sc", a=2.5)], DEMO_MODEL, labels=["frames.xyz:0", "frames.xyz:1"],
                device="cpu", progress=False)
    with pytest.raises(UnsupportedElementError, match="Co"):
        relax(bulk("Co"), DEMO_MODEL, device="cpu", steps=1)
    with pytest.raises(UnsupportedElementError, match="structure 1 contains Fe"):
        relax_many([bulk("Cu"), bulk("Fe")], DEMO_MODEL, device="cpu", steps=1, progress=False)
    with pytest.raises(UnsupportedElementError, match="Fe"):
        run_md(bulk("Fe", cubic=True), DEMO_MODEL, steps=1, device="cpu")
    iron.calc = EquiformerV2Calculator(DEMO_MODEL, device="cpu", allow_untrained_elements=True)
    assert np.isfinite(iron.get_potential_energy())
    assert np.isfinite(predict(bulk("Fe"), DEMO_MODEL, device="cpu", progress=False,
                               allow_untrained_elements=True)[0].energy)


def test_atoms_closer_than_half_their_radii_are_refused(demo) -> None:
    pair = Atoms("Cu2", positions=[(0, 0, 0), (0, 0, 0.1)], cell=[10, 10, 10], pbc=True)
    pair.calc = demo
    with pytest.raises(InvalidStructureError, match=r"atoms Cu0-Cu1 are 0.100 A apart"):
        pair.get_potential_energy()
    tiny = bulk("Cu", "sc", a=1.0)  # an atom 1 A from its own periodic image
    tiny.calc = demo
    with pytest.raises(InvalidStructureError, match=r"Cu0-Cu0 \(one with a periodic image"):
        tiny.get_potential_energy()
    water = molecule("H2O")  # 0.97 A O-H, 1.5 A H-H: fine
    water.calc = demo
    assert np.isfinite(water.get_potential_energy())


def test_partially_occupied_sites_are_refused_with_the_site_named(tmp_path) -> None:
    path = tmp_path / "CuAu.cif"
    path.write_text(DISORDERED_CIF)
    with pytest.raises(InvalidStructureError, match=r"partially occupied site 1 \(Au 0.5, Cu 0.5\).*site 4 \(Au 0.7\)"):
        read_file(path)
    pytest.importorskip("pymatgen")
    from pymatgen.core import Structure

    with pytest.warns(UserWarning):  # pymatgen notes the CIF's missing symmetry operations
        structure = Structure.from_str(DISORDERED_CIF, fmt="cif")
    with pytest.raises(InvalidStructureError, match=r"partially occupied site 1 \(Cu:0.5, Au:0.5\)"):
        to_atoms(structure)


def test_direct_stress_model_gives_no_stress_without_a_cell() -> None:
    from pathlib import Path

    calc = EquiformerV2Calculator(Path(__file__).parent / "data" / "ckpt_omat_stress.pt", device="cpu")
    assert calc.potential.config.direct_forces and "stress" in calc.implemented_properties
    water = molecule("H2O")
    water.calc = calc
    water.get_potential_energy()
    assert "stress" not in calc.results
    crystal = bulk("Cu")
    crystal.calc = calc
    assert crystal.get_stress().shape == (6,)
