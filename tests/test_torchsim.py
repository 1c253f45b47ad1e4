"""The TorchSim model: TorchSim's own validator, equality with the calculator, FIRE, conventions, bad input."""

from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import add_adsorbate, bulk, fcc111, molecule
from ase.stress import voigt_6_to_full_3x3_stress

ts = pytest.importorskip("torch_sim", reason="TorchSim is an optional extra: pip install 'eqv2-calc[torchsim]'")

from torch_sim.models.interface import validate_model_outputs  # noqa: E402

from eqv2_calc import EquiformerV2Calculator  # noqa: E402
from eqv2_calc.errors import InvalidStructureError  # noqa: E402
from eqv2_calc.torchsim import EquiformerV2Model, fire_optimizer, memory_scaling  # noqa: E402
from test_examples import run_example  # noqa: E402

DATA = Path(__file__).parent / "data"
CPU = torch.device("cpu")


def hexagonal_slab(adsorbate: str = "CO", height: float = 1.9, site: str = "fcc") -> Atoms:
    """Pt(111) 2x2x3 + adsorbate: a hexagonal cell (non-symmetric matrix), fully periodic with vacuum."""
    slab = fcc111("Pt", size=(2, 2, 3), vacuum=5.0)
    ads = Atoms("CO", positions=[(0, 0, 0), (0, 0, 1.15)]) if adsorbate == "CO" else Atoms(adsorbate)  # C-down
    add_adsorbate(slab, ads, height, site)
    slab.pbc = True  # TorchSim 0.3 holds one pbc flag per batch: slabs come periodic with vacuum
    slab.rattle(0.03, seed=3)
    return slab


def sheared_bulk() -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.62, cubic=True)
    atoms.set_cell(atoms.cell.array @ np.array([[1.02, 0.05, 0.0], [0.0, 0.99, 0.03], [0.0, 0.0, 1.01]]),
                   scale_atoms=True)
    atoms.rattle(0.05, seed=1)
    return atoms


@pytest.fixture(scope="module")
def demo() -> EquiformerV2Model:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EquiformerV2Model(device=CPU)


@pytest.fixture(scope="module")
def demo_calc(demo: EquiformerV2Model) -> EquiformerV2Calculator:
    return EquiformerV2Calculator(demo.potential, device="cpu")


def calculator_results(atoms: Atoms, calc: EquiformerV2Calculator) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Energy (eV), forces (eV/A) and 3x3 stress (eV/A^3, None where the calculator gives none) of `atoms`."""
    atoms = atoms.copy()
    atoms.calc = calc
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    stress = calc.results.get("stress")
    return energy, forces, None if stress is None else voigt_6_to_full_3x3_stress(stress)


@pytest.fixture(scope="module")
def omat() -> EquiformerV2Model:
    """The OMat24-layout stand-in (direct forces and stress heads, max_neighbors 20), float32."""
    return EquiformerV2Model(DATA / "ckpt_omat_stress.pt", device=CPU)


def test_torchsim_validator_float32(omat: EquiformerV2Model) -> None:
    validate_model_outputs(omat, CPU, torch.float32)
    assert (omat.dtype, omat.device, omat.compute_stress) == (torch.float32, CPU, True)


@pytest.fixture(scope="module")
def demo64() -> EquiformerV2Model:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EquiformerV2Model(device=CPU, dtype=torch.float64)


def test_torchsim_validator_float64_demo(demo64: EquiformerV2Model) -> None:
    validate_model_outputs(demo64, CPU, torch.float64)
    assert (demo64.dtype, demo64.compute_stress) == (torch.float64, True)


def test_current_torchsim_state_conventions(demo64: EquiformerV2Model) -> None:
    """What the current TorchSim (0.6) validator adds: pbc as a (3,) tensor, a 1-atom system, an atom moved by
    lattice vectors, a molecule; batched vs single within its 1e-4."""
    def state(structures: list[Atoms]) -> SimpleNamespace:
        s = ts.io.atoms_to_state(structures, CPU, torch.float64)
        pbc = torch.tensor([bool(np.all(structures[0].pbc))] * 3)
        return SimpleNamespace(positions=s.positions, cell=s.cell, pbc=pbc, atomic_numbers=s.atomic_numbers,
                               system_idx=s.system_idx)

    si, mg, fe = bulk("Si", "diamond", a=5.43, cubic=True), bulk("Mg", "hcp", a=3.21, c=5.21), bulk("Fe", "bcc", a=2.87)
    batch = demo64(state([si, mg, fe]))
    start = 0
    for b, atoms in enumerate((si, mg, fe)):
        single = demo64(state([atoms]))
        assert single["energy"].shape == (1,) and single["stress"].shape == (1, 3, 3)
        assert torch.allclose(single["energy"], batch["energy"][b : b + 1], atol=1e-4)
        assert torch.allclose(single["forces"], batch["forces"][start : start + len(atoms)], atol=1e-4)
        start += len(atoms)
    shifted = state([si])
    shifted.positions = shifted.positions.clone()
    shifted.positions[0] += 3 * shifted.cell[0, :, 0]  # a lattice vector is a column of the cell
    moved = demo64(shifted)
    assert torch.allclose(moved["forces"], batch["forces"][: len(si)], atol=1e-4)
    assert torch.allclose(moved["stress"][0], batch["stress"][0], atol=1e-4)
    benzene = demo64(state([molecule("C6H6")]))
    assert benzene["forces"].shape == (12, 3) and torch.all(benzene["stress"] == 0)


def test_batch_equals_calculator_per_structure(demo: EquiformerV2Model, demo_calc: EquiformerV2Calculator) -> None:
    structures = [hexagonal_slab("CO"), sheared_bulk(), hexagonal_slab("O", 1.5, "hcp")]
    assert not np.allclose(structures[0].cell.array, structures[0].cell.array.T)  # rows != columns
    state = ts.io.atoms_to_state(structures, CPU, torch.float32)
    assert state.atomic_numbers.dtype == torch.int32
    out = demo(state)
    assert out["energy"].shape == (3,) and out["forces"].shape == (state.n_atoms, 3)
    assert out["stress"].shape == (3, 3, 3)
    assert all(v.dtype == torch.float32 and not v.requires_grad for v in out.values())
    start = 0
    for b, atoms in enumerate(structures):
        energy, forces, stress = calculator_results(atoms, demo_calc)
        assert float(out["energy"][b]) == pytest.approx(energy, abs=2e-4)
        assert np.abs(out["forces"][start : start + len(atoms)].numpy() - forces).max() < 2e-4
        assert np.abs(out["stress"][b].numpy() - stress).max() < 1e-5
        start += len(atoms)
    # under torch.no_grad() (users wrap inference in it) the conservative derivatives are unchanged, up to the
    # float32 round-off of multi-threaded sums (their order varies from call to call with 2+ threads)
    with torch.no_grad():
        again = demo(state)
    for key in ("energy", "forces", "stress"):
        torch.testing.assert_close(again[key], out[key], rtol=1e-6, atol=1e-6)


def test_stress_checkpoint_and_no_stress_checkpoint(omat: EquiformerV2Model) -> None:
    calc = EquiformerV2Calculator(omat.potential, device="cpu")
    structures = [sheared_bulk(), hexagonal_slab("O", 1.5, "hcp")]
    out = omat(ts.io.atoms_to_state(structures, CPU, torch.float32))
    for b, atoms in enumerate(structures):
        energy, _, stress = calculator_results(atoms, calc)
        assert float(out["energy"][b]) == pytest.approx(energy, abs=2e-4)
        assert np.abs(out["stress"][b].numpy() - stress).max() < 1e-5
    assert omat.memory_scales_with == "n_atoms"  # max_neighbors 20 caps the graph
    with pytest.raises(NotImplementedError, match="no stress output"):
        EquiformerV2Model(DATA / "ckpt_small.pt", device=CPU, compute_stress=True)
    small = EquiformerV2Model(DATA / "ckpt_small.pt", device=CPU)
    assert not small.compute_stress and "stress" not in small(ts.io.atoms_to_state(structures, CPU, torch.float32))


def test_memory_scaling_rule(demo: EquiformerV2Model) -> None:
    assert demo.memory_scales_with == "n_atoms_x_density"  # the demo graph is a pure 4.5 A radius
    assert memory_scaling(12.0, 20) == "n_atoms" and memory_scaling(6.0, 0) == "n_atoms_x_density"


def test_dict_state_and_per_axis_pbc(demo: EquiformerV2Model, demo_calc: EquiformerV2Calculator) -> None:
    """A plain dict (TorchSim 0.3 StateDict) and a (3,) pbc tensor (current TorchSim) with a mixed-pbc slab."""
    slab = hexagonal_slab("CO")
    slab.pbc = (True, True, False)
    state = {
        "positions": torch.tensor(slab.positions, dtype=torch.float32),
        "cell": torch.tensor(slab.cell.array.T, dtype=torch.float32).unsqueeze(0),
        "pbc": torch.tensor([True, True, False]),
        "atomic_numbers": torch.tensor(slab.numbers, dtype=torch.int32),
        "system_idx": torch.zeros(len(slab), dtype=torch.long),
    }
    out = demo(state)
    energy, forces, stress = calculator_results(slab, demo_calc)
    assert stress is None
    assert float(out["energy"][0]) == pytest.approx(energy, abs=2e-4)
    assert np.abs(out["forces"].numpy() - forces).max() < 2e-4
    assert torch.all(out["stress"] == 0)  # no strain derivative without a periodic cell (the calculator: none)
    with pytest.raises(TypeError, match="float64"):
        demo({**state, "positions": state["positions"].double()})


@pytest.mark.filterwarnings("ignore:Optimize has reached max steps")
def test_fire_relaxation_final_energies_match_calculator(demo_calc: EquiformerV2Calculator) -> None:
    """TorchSim's batched FIRE with a Verlet-skin graph cache: the final state's energies are the calculator's."""
    model = EquiformerV2Model(demo_calc.potential, device=CPU, skin=1.0)
    structures = [hexagonal_slab("O", 1.6, "fcc"), hexagonal_slab("CO", 2.0, "ontop")]
    final = ts.optimize(structures, model, optimizer=fire_optimizer(), max_steps=6,
                        convergence_fn=ts.generate_force_convergence_fn(0.05, include_cell_forces=False))
    relaxed = ts.io.state_to_atoms(final)
    assert model.graphs.builds < model.graphs.calls  # the cached edges were reused between steps
    for b, atoms in enumerate(relaxed):
        assert np.abs(atoms.positions - structures[b].positions).max() > 0.01  # it moved
        energy, _, _ = calculator_results(atoms, demo_calc)
        assert float(final.energy[b]) == pytest.approx(energy, abs=2e-4)


def test_bad_input_names_the_system(demo: EquiformerV2Model) -> None:
    structures = [bulk("Cu", "fcc", a=3.6), bulk("Pt", "fcc", a=3.9, cubic=True)]
    state = ts.io.atoms_to_state(structures, CPU, torch.float32)
    numbers = state.atomic_numbers.clone()
    numbers[2] = 99
    with pytest.raises(InvalidStructureError, match="system 1 .*atomic number 99"):
        demo({**_fields(state), "atomic_numbers": numbers})
    positions = state.positions.clone()
    positions[3, 1] = float("nan")
    with pytest.raises(InvalidStructureError, match="system 1 .*atom 2 has a NaN"):
        demo({**_fields(state), "positions": positions})
    three_cells = torch.cat([state.cell, state.cell[:1]])  # system 2 of 3 has no atoms
    with pytest.raises(InvalidStructureError, match="system 2 .*has no atoms"):
        demo({**_fields(state), "cell": three_cells})


def _fields(state) -> dict:
    return {name: getattr(state, name) for name in ("positions", "cell", "pbc", "atomic_numbers", "system_idx")}


def test_clear_import_error_without_torchsim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_sim.models.interface", None)
    monkeypatch.delitem(sys.modules, "eqv2_calc.torchsim")
    with pytest.raises(ImportError, match=r"eqv2-calc\[torchsim\]"):
        importlib.import_module("eqv2_calc.torchsim")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_torchsim_relax_example_small(capsys: pytest.CaptureFixture) -> None:
    run_example("torchsim_relax.py", "--small", "--device", "cpu")
    out = capsys.readouterr().out
    assert "relaxed 2 systems with TorchSim" in out
    assert "CO@Cu(111)-ontop" in out and "CO@Pd(111)-ontop" in out
