"""Nudged elastic bands: `run_nebs` takes ASE's steps, bands batched equal bands alone, `eqv2 neb` end to end,
and the OC20NEB-style benchmark on EMT-made trajectories."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from ase.io import read, write
from ase.mep import NEB
from ase.optimize import BFGS, FIRE, LBFGS

from eqv2_calc.calculator import EquiformerV2Calculator
from eqv2_calc.cpu_workers import CpuWorkers
from eqv2_calc.errors import EnergyOnlyModelError, NEBError
from eqv2_calc.hub import load_model
from eqv2_calc.neb import interpolate_band, run_nebs
from eqv2_calc.potential import Potential
from eqv2_calc.predict import DEMO_MODEL
from eqv2_calc.relax import relax_many
from neb_systems import hop_ends, write_emt_neb_trajectory
from test_cli import eqv2_in_process


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: the image-by-image ASE reference is far slower with 2 threads on a shared machine."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def demo() -> Potential:
    return load_model(DEMO_MODEL, device="cpu")


@pytest.fixture(scope="module")
def o_hop(demo: Potential) -> tuple:
    """O hopping between hollow sites of Cu(100) 2x2x2, end points relaxed with the demo model."""
    relaxed = relax_many(hop_ends("O/Cu(100)"), demo, fmax=0.02, progress=False)
    return relaxed[0].atoms, relaxed[1].atoms


def ase_neb(images, potential: Potential, optimizer, *, climb: bool, fmax: float, steps: int, k: float = 0.1,
            method: str = "improvedtangent", dtype=torch.float32) -> NEB:
    """ASE's NEB, the calculator on each image, run as `run_nebs` documents: a first stage to fmax + 0.4, then
    the climbing image on the same optimizer."""
    for image in images:
        image.calc = EquiformerV2Calculator(potential, device="cpu", dtype=dtype)
    neb = NEB(images, k=k, climb=False, method=method)
    opt = optimizer(neb, logfile=None)
    if climb and opt.run(fmax=fmax + 0.4, steps=steps):
        neb.climb = True
        opt.run(fmax=fmax, steps=steps - opt.nsteps)
    elif not climb:
        opt.run(fmax=fmax, steps=steps)
    neb.nsteps = opt.nsteps
    return neb


def test_run_nebs_equals_ase_neb_with_the_calculator(demo: Potential, o_hop: tuple) -> None:
    """FIRE, climbing image, demo model in float32 as users run it: same barrier (<= 1 meV), same TS (<= 0.01 A),
    same steps; fixed atoms stay put."""
    band = interpolate_band(*o_hop, 3)
    ours = run_nebs([band], demo, fmax=0.05, steps=200, device="cpu", progress=False)[0]
    reference_images = interpolate_band(*o_hop, 3)
    neb = ase_neb(reference_images, demo, FIRE, climb=True, fmax=0.05, steps=200)
    energies = np.array([image.get_potential_energy() for image in reference_images])
    assert ours.converged and ours.climbed and ours.steps == neb.nsteps and ours.fmax < 0.05
    assert abs(ours.barrier_forward - (energies.max() - energies[0])) <= 1e-3
    assert ours.ts_index == int(np.argmax(energies))
    assert np.abs(ours.ts.positions - reference_images[ours.ts_index].positions).max() <= 0.01
    assert 0.02 < ours.barrier_forward < 0.5 and len(ours.fmaxes) == ours.steps + 1
    fixed = band[0].constraints[0].index
    for image in ours.images:
        assert np.array_equal(image.positions[fixed], band[0].positions[fixed])
        assert image.get_potential_energy() == pytest.approx(ours.energies[list(ours.images).index(image)])
    assert np.array_equal(band[1].positions, interpolate_band(*o_hop, 3)[1].positions)  # input not modified


@pytest.mark.parametrize("optimizer, method", [(BFGS, "aseneb"), (LBFGS, "eb")])
def test_other_optimizers_and_methods_take_ase_steps(demo: Potential, o_hop: tuple, optimizer, method: str) -> None:
    """Five steps of BFGS / LBFGS with the aseneb / eb projections (float64: quasi-Newton steps amplify round-off)."""
    ours = run_nebs([interpolate_band(*o_hop, 2)], demo, climb=False, fmax=1e-4, steps=5, k=0.5, method=method,
                    optimizer=optimizer.__name__, device="cpu", dtype=torch.float64, progress=False)[0]
    images = interpolate_band(*o_hop, 2)
    ase_neb(images, demo, optimizer, climb=False, fmax=1e-4, steps=5, k=0.5, method=method, dtype=torch.float64)
    assert ours.steps == 5 and not ours.converged
    for mine, theirs in zip(ours.images, images):
        assert np.abs(mine.positions - theirs.positions).max() < 1e-8
        assert mine.get_potential_energy() == pytest.approx(theirs.get_potential_energy(), abs=1e-8)


def test_bands_together_equal_each_band_alone(demo: Potential, o_hop: tuple, monkeypatch) -> None:
    """Two bands of different sizes, in chunks of at most 30 atoms per model call, as each alone (float64); the
    end points are evaluated once, the moving images once per step."""
    cu_hop = [r.atoms for r in relax_many(hop_ends("Cu/Cu(100)"), demo, fmax=0.02, progress=False)]
    bands = [interpolate_band(*o_hop, 3), interpolate_band(*cu_hop, 2)]
    settings = {"fmax": 0.05, "steps": 15, "device": "cpu", "dtype": torch.float64, "progress": False}
    calls = []
    run_map = CpuWorkers.map
    monkeypatch.setattr(CpuWorkers, "map", lambda self, run, structures: calls.append(
        sum(len(a) for a in structures)) or run_map(self, run, structures))
    together = run_nebs(bands, demo, max_atoms=30, **settings)
    monkeypatch.undo()
    assert max(calls) <= 30
    assert sum(calls) == sum(len(b[0]) * (2 + (len(b) - 2) * (r.steps + 1)) for b, r in zip(bands, together))
    for band, mixed in zip(bands, together):
        alone = run_nebs([band], demo, **settings)[0]
        assert mixed.steps == alone.steps and mixed.converged == alone.converged
        assert np.allclose(mixed.energies, alone.energies, atol=1e-7)
        assert np.abs(mixed.ts.positions - alone.ts.positions).max() < 1e-6


def test_bad_bands_are_refused(o_hop: tuple) -> None:
    initial, final = o_hop
    with pytest.raises(NEBError, match="at least 1 moving image"):
        interpolate_band(initial, final, 0)
    with pytest.raises(NEBError, match="has 9 atoms and the final state 8"):
        interpolate_band(initial, final[:-1], 3)
    swapped = final[[8, 1, 2, 3, 4, 5, 6, 7, 0]]
    with pytest.raises(NEBError, match="atom 0 is Cu in the initial state and O in the final.*another order"):
        interpolate_band(initial, swapped, 3)
    stretched = final.copy()
    stretched.cell[0, 0] += 0.1
    with pytest.raises(NEBError, match="cells of the initial and final states differ"):
        interpolate_band(initial, stretched, 3)
    periodic = final.copy()
    periodic.pbc = True
    with pytest.raises(NEBError, match="periodicity differs"):
        interpolate_band(initial, periodic, 3)
    with pytest.raises(NEBError, match="unknown interpolation"):
        interpolate_band(initial, final, 3, method="spline")
    with pytest.raises(NEBError, match="both end points and at least 1 moving image"):
        run_nebs([[initial, final]], progress=False)
    with pytest.raises(NEBError, match="unknown NEB method"):
        run_nebs([interpolate_band(initial, final, 1)], method="dimer", progress=False)


def energy_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Potential declares energy only, as an IS2RE (energy-only) checkpoint would."""
    monkeypatch.setattr(Potential, "implemented_properties", property(lambda self: ["energy", "free_energy"]))


def test_a_model_without_forces_is_refused(demo: Potential, o_hop: tuple, monkeypatch) -> None:
    energy_only(monkeypatch)
    with pytest.raises(EnergyOnlyModelError, match="an NEB needs forces"):
        run_nebs([interpolate_band(*o_hop, 1)], demo, progress=False)


def test_cli_neb_writes_band_ts_and_plot(tmp_path, capsys) -> None:
    """Two POSCAR files as users write them; the end points are relaxed first; every file is read back."""
    initial, final = hop_ends("O/Cu(100)")
    write(tmp_path / "initial.POSCAR", initial, format="vasp")
    write(tmp_path / "final.POSCAR", final, format="vasp")
    out = tmp_path / "neb"
    run = eqv2_in_process(capsys, "neb", str(tmp_path / "initial.POSCAR"), str(tmp_path / "final.POSCAR"),
                          "--images", "3", "--climb", "-o", str(out), "--plot", "--quiet")
    assert run.returncode == 0, run.stderr
    assert "barrier" in run.stdout and "converged in" in run.stdout
    summary = json.loads((out / "neb.json").read_text())
    for name in ("band.extxyz", "band.traj"):
        band = read(out / name, index=":")
        assert len(band) == 5
        energies = [atoms.get_potential_energy() for atoms in band]
        assert np.allclose(energies, summary["energies_eV"])
        assert band[0].constraints and len(band[0].constraints[0].index) == 4  # POSCAR's fixed layer kept
    for name in ("ts.extxyz", "ts.traj"):
        ts = read(out / name)
        assert ts.get_potential_energy() == pytest.approx(max(summary["energies_eV"]))
    assert summary["barrier_forward_eV"] == pytest.approx(max(summary["energies_eV"]) - summary["energies_eV"][0])
    assert summary["converged"] and (out / "neb.png").stat().st_size > 10_000
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("problem, message", [
    ("atoms", "has 9 atoms and the"), ("order", "atom 0 is Cu in the"), ("cell", "cells of the"),
    ("images", "n_images=0"), ("forces", "an NEB needs forces"),
])
def test_cli_neb_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, monkeypatch, problem, message) -> None:
    initial, final = hop_ends("O/Cu(100)")
    if problem == "atoms":
        final = final + final[-1:]
    elif problem == "order":
        final = final[[8, 1, 2, 3, 4, 5, 6, 7, 0]]
    elif problem == "cell":
        final.cell[2, 2] += 1.0
    elif problem == "forces":
        energy_only(monkeypatch)
    write(tmp_path / "initial.extxyz", initial)
    write(tmp_path / "final.traj", final)
    out = tmp_path / "neb"
    run = eqv2_in_process(capsys, "neb", str(tmp_path / "initial.extxyz"), str(tmp_path / "final.traj"), "-o",
                          str(out), "--images", "0" if problem == "images" else "3", "--quiet")
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if "ModelNotice" not in line]
    assert len(lines) == 1 and lines[0].startswith("eqv2: error:") and message in lines[0], run.stderr
    assert not out.exists()


def test_benchmark_on_oc20neb_layout_made_with_emt(tmp_path, capsys) -> None:
    """Trajectories named and laid out as OC20NEB's (EMT as DFT); the table, summary and parity plot read back."""
    data = tmp_path / "oc20neb"
    data.mkdir()
    names = ["desorption_id_1_11_0_100-1_neb1.0.traj", "dissociation_id_2_22_0_100-2_neb1.0.traj"]
    dft = [write_emt_neb_trajectory(data / name, *hop_ends(hop), steps=60)
           for name, hop in zip(names, ("O/Cu(100)", "Cu/Cu(100)"))]
    frames = read(data / names[0], index=":")
    assert len(frames) % 10 == 0 and len(frames) > 10
    out = tmp_path / "bench"
    run = eqv2_in_process(capsys, "neb", "--benchmark", str(data), "-o", str(out), "--steps", "10", "--quiet")
    assert run.returncode == 0, run.stderr
    assert "success within 0.1 eV" in run.stdout
    with open(out / "oc20neb.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["trajectory"] for r in rows] == names and [r["reaction"] for r in rows] == ["desorption", "dissociation"]
    for row, energies in zip(rows, dft):
        assert float(row["E_a_dft_eV"]) == pytest.approx(energies.max() - energies[0])
        assert float(row["error_eV"]) == pytest.approx(float(row["E_a_ml_eV"]) - float(row["E_a_dft_eV"]))
    summary = json.loads((out / "oc20neb.json").read_text())["summary"]
    assert summary["trajectories"] == 2 and (out / "parity.png").stat().st_size > 5_000
    empty = eqv2_in_process(capsys, "neb", "--benchmark", str(tmp_path), "-o", str(tmp_path / "none"))
    assert empty.returncode == 2 and "no *.traj files" in empty.stderr and not (tmp_path / "none").exists()
