"""Malformed `Atoms` through every entry point: finite numbers or an `EquiformerV2Error` naming the problem,
never a raw exception, never NaN. The list and its outcomes are in docs/troubleshooting.md ("Malformed input")."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from eqv2_calc import predict
from eqv2_calc.calculator import EquiformerV2Calculator
from eqv2_calc.errors import EquiformerV2Error
from eqv2_calc.predict import DEMO_MODEL
from eqv2_calc.relax import relax_many
from test_cli import eqv2_in_process

FINITE = None  # the expected outcome of a structure the model answers


def _pair(**changes) -> Atoms:
    """Two Cu atoms 2.55 A apart in a 6 A cubic cell, periodic; `changes` are set on the copy."""
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [1.8, 1.8, 0]], cell=[6.0, 6.0, 6.0], pbc=True)
    for name, value in changes.items():
        setattr(atoms, name, value)
    return atoms


def _numbers(z: int) -> Atoms:
    atoms = _pair()
    atoms.numbers[0] = z
    return atoms


def _position(value: list[float], pbc: bool = True) -> Atoms:
    atoms = _pair(pbc=pbc)
    atoms.positions[1] += value
    return atoms


def _cell(rows: list[list[float]], pbc=True) -> Atoms:
    return _pair(cell=np.array(rows, dtype=float), pbc=pbc)


def _unreduced_fcc() -> Atoms:
    """Bulk Cu in a valid but badly skewed cell (a2 + 40 a1, a3 + 40 a2): lattice planes 0.05 A apart."""
    atoms = bulk("Cu", "fcc", a=3.6)
    cell = atoms.cell.array.copy()
    cell[1] += 40 * cell[0]
    cell[2] += 40 * cell[1]
    atoms.set_cell(cell)
    return atoms


def _float32() -> Atoms:
    return Atoms("Cu2", positions=np.array([[0, 0, 0], [1.8, 1.8, 0]], np.float32),
                 cell=np.eye(3, dtype=np.float32) * 6.0, pbc=True)


# name -> (structure, expected: FINITE or a regex of the error message); the table of docs/troubleshooting.md
CASES: dict[str, tuple[Callable[[], Atoms], str | None]] = {
    "Z=119": (lambda: _numbers(119), r"atomic number 119, which is no element: atomic numbers run 1..118"),
    "Z=0": (lambda: _numbers(0), r"atomic number 0, which is no element \(0 is ASE's dummy atom X\)"),
    "Z=-1": (lambda: _numbers(-1), r"atomic number -1, which is no element"),
    "NaN position": (lambda: _position([math.nan, 0, 0]), r"atom 1 has a NaN or infinite position"),
    "inf position": (lambda: _position([0, 0, math.inf]), r"atom 1 has a NaN or infinite position"),
    "NaN cell": (lambda: _cell([[6, 0, 0], [0, 6, 0], [0, 0, math.nan]]), r"cell contains NaN or infinite"),
    "inf cell, no pbc": (lambda: _cell([[6, math.inf, 0], [0, 6, 0], [0, 0, 6]], pbc=False),
                         r"cell contains NaN or infinite"),
    "flat cell, periodic": (lambda: _cell([[6, 0, 0], [0, 6, 0], [0, 0, 0]]),
                            r"lattice vector 2 is zero but the structure is periodic along it"),
    "flat cell, slab pbc": (lambda: _cell([[6, 0, 0], [0, 6, 0], [0, 0, 0]], pbc=[True, True, False]), FINITE),
    "parallel vectors": (lambda: _cell([[6, 0, 0], [12, 0, 0], [0, 0, 6]]), r"the cell is degenerate"),
    "nearly parallel vectors": (lambda: _cell([[6, 0, 0], [6, 1e-3, 0], [0, 0, 6]]),
                                r"\(one with a periodic image of the other\) are 0.001 A apart"),
    "H in a 0.05 A cell": (lambda: Atoms("H", cell=[0.05] * 3, pbc=True),
                           r"\(one with a periodic image of the other\) are 0.050 A apart"),
    "H in a 0.7 A cell (3,375 images)": (lambda: Atoms("H", cell=[0.7] * 3, pbc=True), FINITE),
    "unreduced skewed cell": (_unreduced_fcc, r"needs 2\d\d,\d\d\d periodic images of the cell .*niggli_reduce"),
    "atom 9,000 A outside the cell": (lambda: _position([5000, -3000, 8000]), FINITE),
    "atom 9,000 A away, no pbc": (lambda: _position([5000, -3000, 8000], pbc=False), FINITE),
    "atom 1e39 A away (beyond float32)": (lambda: _position([1e39, 0, 0], pbc=False),
                                          r"atom 1 has a NaN or infinite position"),
    "float32 arrays": (_float32, FINITE),
    "mixed pbc": (lambda: _pair(pbc=[True, False, True]), FINITE),
    "overlapping atoms": (lambda: _position([-1.8, -1.8, 0]), r"atoms Cu0-Cu1 are 0.000 A apart"),
    "no atoms": (lambda: Atoms(), r"has no atoms"),
}
# The TorchSim model has no distance check (it runs every MD step): it answers overlapping atoms, and cells
# too thin for their atoms meet the image limit of graph building instead
TORCHSIM_OUTCOMES = {"overlapping atoms": FINITE, "nearly parallel vectors": r"\d periodic images of the cell",
                     "H in a 0.05 A cell": r"5,929,741 periodic images of the cell"}


@pytest.fixture(scope="module")
def calc() -> EquiformerV2Calculator:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EquiformerV2Calculator(DEMO_MODEL, device="cpu")


def _outcome(run: Callable[[], tuple[float, np.ndarray]]) -> str | None:
    """None for finite numbers, else the message of the EquiformerV2Error (any other exception fails the test)."""
    try:
        energy, forces = run()
    except EquiformerV2Error as exc:
        assert str(exc), "an error without a message"
        return str(exc)
    assert np.isfinite(energy) and np.isfinite(forces).all(), f"non-finite output: {energy}, {forces}"
    return None


def _check(outcome: str | None, expected: str | None) -> None:
    if expected is None:
        assert outcome is None, f"refused: {outcome}"
    else:
        assert outcome is not None, "answered instead of refusing"
        assert re.search(expected, outcome), outcome


def _through_calculator(atoms: Atoms, calc: EquiformerV2Calculator) -> tuple[float, np.ndarray]:
    atoms.calc = calc
    return atoms.get_potential_energy(), atoms.get_forces()


def _through_predict(atoms: Atoms) -> tuple[float, np.ndarray]:
    result = predict(atoms, DEMO_MODEL, device="cpu", progress=False)[0]
    return result.energy, result.forces


def _through_relax_many(atoms: Atoms) -> tuple[float, np.ndarray]:
    result = relax_many([atoms], DEMO_MODEL, steps=1, device="cpu", progress=False)[0]
    return result.energy, result.atoms.get_forces()


@pytest.mark.parametrize("name", CASES)
@pytest.mark.filterwarnings("ignore")
def test_python_entry_points(name: str, calc: EquiformerV2Calculator) -> None:
    make, expected = CASES[name]
    _check(_outcome(lambda: _through_calculator(make(), calc)), expected)
    _check(_outcome(lambda: _through_predict(make())), expected)
    _check(_outcome(lambda: _through_relax_many(make())), expected)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.filterwarnings("ignore")
def test_torchsim_model(name: str, calc: EquiformerV2Calculator) -> None:
    """The state is built by hand: TorchSim's own `atoms_to_state` already fails on Z=119 and on no atoms."""
    pytest.importorskip("torch_sim", reason="TorchSim is an optional extra")
    from eqv2_calc.torchsim import EquiformerV2Model

    atoms = CASES[name][0]()
    expected = TORCHSIM_OUTCOMES.get(name, CASES[name][1])
    model = EquiformerV2Model(calc.potential, device="cpu")
    state = {"positions": torch.tensor(atoms.positions, dtype=torch.float32),
             "cell": torch.tensor(atoms.cell.array.T[None], dtype=torch.float32),
             "atomic_numbers": torch.tensor(atoms.numbers, dtype=torch.long),
             "system_idx": torch.zeros(len(atoms), dtype=torch.long),
             "pbc": torch.tensor(atoms.pbc)}

    def run() -> tuple[float, np.ndarray]:
        out = model(state)
        return float(out["energy"][0]), out["forces"].numpy()

    _check(_outcome(run), expected)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.filterwarnings("ignore")
def test_eqv2_predict(name: str, tmp_path, capsys: pytest.CaptureFixture) -> None:
    """`eqv2 predict FILE` on the structure written as extxyz: a table of finite numbers (exit 0), or one line
    on stderr (exit 2). Structures ASE cannot write (Z=119) or read back as given are skipped."""
    from ase.io import read, write

    atoms, expected = CASES[name][0](), CASES[name][1]
    path = tmp_path / "in.extxyz"
    try:
        write(path, atoms)
        back = read(path)
    except Exception:
        pytest.skip("ASE cannot write or read this structure as extxyz")
    if len(back) != len(atoms) or not np.array_equal(back.numbers, atoms.numbers):
        pytest.skip("extxyz does not keep this structure")
    result = eqv2_in_process(capsys, "predict", str(path), "--quiet")
    if result.returncode == 0:
        energies = [float(line.split()[-2]) for line in result.stdout.splitlines()[1:]]
        assert energies and np.isfinite(energies).all(), result.stdout
        assert expected is None, f"answered instead of refusing: {result.stdout}"
    else:
        assert result.returncode == 2 and result.stderr.startswith("eqv2: error: "), result
        assert len(result.stderr.splitlines()) == 1, result.stderr
        _check(result.stderr, expected)


def test_docs_list_every_case() -> None:
    """docs/troubleshooting.md's table of malformed input names every case of this file, and no other."""
    from snippets import REPO

    text = (REPO / "docs" / "troubleshooting.md").read_text()
    table = text.split("### Malformed input")[1].split("\n## ")[0]
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[1:] == list(CASES)
