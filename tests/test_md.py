"""MD: ensembles run, logs make sense, and the Verlet skin gives the same trajectory as a search per step."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, fcc111
from ase.io import read

from eqv2_calc.md import run_md
from eqv2_calc.potential import Potential
from test_predict import demo_like_potential


@pytest.fixture(scope="module")
def potential() -> Potential:
    return demo_like_potential()


@pytest.mark.parametrize("ensemble", ["nve", "nvt", "nvt-bussi"])
def test_skin_gives_the_same_trajectory(potential: Potential, ensemble: str) -> None:
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=5.0)
    runs = [run_md(slab, potential, ensemble=ensemble, temperature_K=800, steps=30, loginterval=5, skin=skin,
                   device="cpu") for skin in (0.0, 1.0)]
    assert runs[0].graph_builds == runs[0].graph_calls == 31
    assert runs[1].graph_builds < 5 and runs[1].graph_calls == 31
    # same edges, other order: float32 sums may differ in the last digit, nothing more
    assert np.abs(runs[0].atoms.positions - runs[1].atoms.positions).max() < 1e-7
    assert [f.energy for f in runs[0].log] == pytest.approx([f.energy for f in runs[1].log], rel=1e-6)


def test_nve_conserves_energy_and_writes_trajectory(potential: Potential, tmp_path) -> None:
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=5.0)
    log = tmp_path / "md.log"
    result = run_md(slab, potential, ensemble="nve", temperature_K=300, timestep_fs=1.0, steps=40, loginterval=10,
                    trajectory=tmp_path / "md.traj", logfile=log, device="cpu")
    assert [f.step for f in result.log] == [0, 10, 20, 30, 40]
    assert abs(result.energy_drift_eV_per_atom) < 1e-3
    assert len(read(tmp_path / "md.traj", index=":")) == 5
    assert "T_K" in log.read_text().splitlines()[0]
    assert result.log[0].pressure_GPa is None  # a slab: no pressure
    assert not slab.get_momenta().any()  # the input is not modified


def test_npt_and_nose_hoover_log_pressure(potential: Potential) -> None:
    crystal = bulk("Cu", "fcc", a=3.6, cubic=True)
    npt = run_md(crystal, potential, ensemble="npt", temperature_K=300, steps=10, loginterval=5, device="cpu")
    assert all(f.pressure_GPa is not None and np.isfinite(f.pressure_GPa) for f in npt.log)
    nh = run_md(crystal, potential, ensemble="nvt-nose-hoover", temperature_K=300, steps=10, loginterval=5, device="cpu")
    assert len(nh.log) == 3
    with pytest.raises(ValueError, match="unknown ensemble"):
        run_md(crystal, potential, ensemble="nvx")
