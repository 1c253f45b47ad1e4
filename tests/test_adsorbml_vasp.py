"""DFT hand-off round trip: VASP inputs with OC20's settings, EMT results faked as vasprun.xml, collection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import fcc111
from ase.calculators.emt import EMT
from ase.io import read

from eqv2_calc.adsorbml import Candidate, SystemScreen, get_adsorbate, make_placements, tag_surface
from eqv2_calc.adsorbml.references import ReferenceScheme
from eqv2_calc.adsorbml.vasp import MANIFEST, collect_vasp, write_vasp_inputs
from eqv2_calc.errors import DFTHandoffError
from eqv2_calc.relax import relax


@pytest.fixture(scope="module")
def screened() -> SystemScreen:
    """*O on a small Cu(111), 'screened' with EMT (fast stand-in for the model), three placements."""
    slab = fcc111("Cu", size=(2, 2, 3), a=3.59, vacuum=6.0)
    slab.pbc = True
    slab = tag_surface(slab)
    system = SystemScreen(slab, relax(slab, EMT(), fmax=0.05), get_adsorbate("*O"),
                          ReferenceScheme(False, None, "EMT stand-in"))
    for i, p in enumerate(make_placements(slab, system.adsorbate, num_random=0, seed=0)[:3]):
        system.candidates.append(Candidate(i, p, relax(p.atoms, EMT(), fmax=0.05), [], None))
    return system


def _vasprun(path: Path, atoms: Atoms, energy: float, forces: np.ndarray, finished: bool = True) -> None:
    """A minimal vasprun.xml (what ASE's reader needs) holding one ionic step."""
    vec = lambda rows: "".join(f"<v>{' '.join(f'{x:.8f}' for x in r)}</v>" for r in rows)  # noqa: E731
    crystal = f'<crystal><varray name="basis">{vec(atoms.cell.array)}</varray></crystal>'
    positions = f'<varray name="positions">{vec(atoms.get_scaled_positions())}</varray>'
    species = "".join(f"<rc><c>{s}</c><c>1</c></rc>" for s in atoms.get_chemical_symbols())
    text = (f'<?xml version="1.0"?><modeling><kpoints><varray name="kpointlist"><v>0 0 0</v></varray>'
            f'<varray name="weights"><v>1</v></varray></kpoints><atominfo><array name="atoms"><set>{species}</set>'
            f'</array></atominfo><structure name="initialpos">{crystal}{positions}</structure><calculation>'
            f'<scstep><energy><i name="e_fr_energy">{energy}</i><i name="e_0_energy">{energy}</i></energy></scstep>'
            f'<structure>{crystal}{positions}</structure><varray name="forces">{vec(forces)}</varray>'
            f'<energy><i name="e_fr_energy">{energy}</i><i name="e_0_energy">{energy}</i></energy></calculation>')
    path.write_text(text + ("</modeling>\n" if finished else ""))


def _fake_vasp(directory: Path, single_point: bool, finished: bool = True) -> float:
    """'Run VASP' in `directory` with EMT: a single point or a relaxation of its POSCAR; returns the energy."""
    atoms = read(directory / "POSCAR")
    if single_point:
        atoms.calc = EMT()
    else:
        atoms = relax(atoms, EMT(), fmax=0.02, steps=300).atoms
    energy = float(atoms.get_potential_energy())
    _vasprun(directory / "vasprun.xml", atoms, energy, atoms.get_forces(apply_constraint=False), finished)
    return energy


@pytest.mark.parametrize("strategy", ["sp", "rx"])
def test_vasp_round_trip(screened: SystemScreen, tmp_path: Path, strategy: str, capsys) -> None:
    from eqv2_calc.cli import main

    write_vasp_inputs([screened], tmp_path, top_k=3, strategy=strategy)
    base = tmp_path / "Cu12_O"
    assert sorted(p.name for p in base.iterdir()) == ["rank1", "rank2", "rank3", "slab"]
    incar = (base / "rank1" / "INCAR").read_text()
    assert "GGA = RP" in incar and "ENCUT = 350.0" in incar and "EDIFFG = -0.03" in incar
    assert ("NSW = 0" in incar) == (strategy == "sp") and "NSW = 2000" in (base / "slab" / "INCAR").read_text()
    assert (base / "rank1" / "KPOINTS").read_text().splitlines()[3] == "8 9 1"  # round(40 A / max-norm of a, b)
    assert (base / "rank1" / "POTCAR.spec").read_text().split() == ["Cu", "O"]
    poscar = read(base / "rank1" / "POSCAR")
    assert np.allclose(poscar.positions, screened.top(1)[0].atoms.positions) and poscar.constraints

    energies = {name: _fake_vasp(base / name, strategy == "sp" and name != "slab")
                for name in ("slab", "rank1", "rank2")}
    _fake_vasp(base / "rank3", strategy == "sp", finished=False)
    report = collect_vasp(tmp_path)
    status = {r.dir.split("/")[1]: r for r in report.results}
    assert status["rank3"].status == "unfinished" and status["rank3"].energy is None
    for name, energy in energies.items():
        assert status[name].status == "done" and status[name].energy == pytest.approx(energy, abs=1e-6)
        assert status[name].anomalies == []
    assert np.allclose(status["rank1"].atoms.get_tags(), screened.top(1)[0].atoms.get_tags())
    text = "\n".join(report.lines())
    assert "  1 " in text and "unfinished" in text and "1 unfinished" in text

    before = (base / "rank1" / "INCAR").read_text()
    with pytest.raises(DFTHandoffError, match="refusing to overwrite"):
        write_vasp_inputs([screened], tmp_path, top_k=3, strategy=strategy)
    assert (base / "rank1" / "INCAR").read_text() == before and (base / "rank1" / "vasprun.xml").exists()

    assert main(["adsorb", "--collect", str(tmp_path)]) == 0
    assert "Cu12 " in capsys.readouterr().out


def test_collect_refuses_a_directory_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(DFTHandoffError, match=MANIFEST):
        collect_vasp(tmp_path)


def test_cli_hand_off_from_a_bulk_cif_reads_back(tmp_path: Path, capsys) -> None:
    """The user's path: a bulk CIF that the CLI cuts into a slab (pymatgen's `bulk_wyckoff` column, empty on
    the adsorbate), `--vasp DIR`, VASP results in every folder, then `--collect DIR` reads every file back."""
    from ase.build import bulk

    from eqv2_calc.cli import main
    from eqv2_calc.structures import write_structures

    cif = tmp_path / "Pt.cif"
    write_structures(cif, bulk("Pt", "fcc", a=3.92, cubic=True))
    handoff = tmp_path / "vasp"
    assert main(["adsorb", "--bulk", str(cif), "--miller", "1", "1", "1", "--adsorbate", "*O", "--top-k", "3",
                 "--num-random", "3", "--steps", "5", "--min-slab-size", "4", "--min-ab", "5", "--device", "cpu",
                 "--quiet", "-o", str(tmp_path / "out"), "--vasp", str(handoff)]) == 0
    calculations = sorted(p.parent for p in handoff.rglob("POSCAR"))
    assert len(calculations) == 4  # the top 3 and the clean slab
    for directory in calculations:
        for name in ("eqv2_start.extxyz", "eqv2_placement.extxyz"):
            if (directory / name).exists():
                assert len(read(directory / name)) == len(read(directory / "POSCAR"))
        _fake_vasp(directory, single_point=True)
    capsys.readouterr()
    assert main(["adsorb", "--collect", str(handoff)]) == 0
    report = capsys.readouterr().out
    assert "unreadable" not in report and "invalid literal" not in report
