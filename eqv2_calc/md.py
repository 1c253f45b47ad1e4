"""Molecular dynamics on ASE's integrators with the calculator's Verlet-skin graph reuse.

`run_md(atoms, ensemble=..., temperature_K=..., timestep_fs=..., steps=...)` integrates with
VelocityVerlet (NVE), Langevin / Nose-Hoover chain / Bussi (NVT) or isotropic MTK (NPT) and logs
time, energies, temperature and pressure every `loginterval` steps. The neighbour search runs to
cutoff + skin and is redone only when an atom has moved more than skin / 2; the graphs, and so the
trajectory, are identical to a search at every step.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from ase import Atoms, units
from ase.md.md import MolecularDynamics
from ase.md.velocitydistribution import Stationary

try:  # ASE >= 3.28 renamed MaxwellBoltzmannDistribution
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

from .calculator import EquiformerV2Calculator
from .potential import Potential, require_forces
from .predict import DEFAULT_SKIN, DEMO_MODEL
from .structures import StructureLike, to_atoms

ENSEMBLES = ("nve", "nvt", "nvt-langevin", "nvt-nose-hoover", "nvt-bussi", "npt")
# Thermostat / barostat defaults: Langevin friction 0.01 / fs (ASE examples), thermostat time 100 fs,
# barostat time 1000 fs (the ~100 and ~1000 time steps recommended for Nose-Hoover chains / MTK).
DEFAULT_FRICTION_PER_FS = 0.01
DEFAULT_THERMOSTAT_FS = 100.0
DEFAULT_BAROSTAT_FS = 1000.0


@dataclass
class MDFrame:
    """One logged MD step: time (fs), energies (eV), temperature (K), pressure (GPa; None without stress)."""

    step: int
    time_fs: float
    energy: float
    potential_energy: float
    kinetic_energy: float
    temperature_K: float
    pressure_GPa: float | None


@dataclass
class MDResult:
    """Outcome of `run_md`: the final atoms, the log, and how often the graph was searched.

    Attributes:
        atoms: the final structure (its calculator attached).
        log: one `MDFrame` per `loginterval` steps, including step 0.
        graph_builds, graph_calls: neighbour searches done / model evaluations (the skin's saving).
    """

    atoms: Atoms
    log: list[MDFrame] = field(default_factory=list)
    graph_builds: int = 0
    graph_calls: int = 0

    @property
    def energy_drift_eV_per_atom(self) -> float:
        """Total energy change from the first to the last logged frame per atom (NVE conservation), eV."""
        return (self.log[-1].energy - self.log[0].energy) / len(self.atoms)


def _integrator(
    atoms: Atoms, ensemble: str, timestep_fs: float, temperature_K: float, friction_per_fs: float,
    thermostat_fs: float, barostat_fs: float, pressure_GPa: float, rng: np.random.Generator, **kwargs,
) -> MolecularDynamics:
    timestep = timestep_fs * units.fs
    if ensemble == "nve":
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet(atoms, timestep, **kwargs)
    if ensemble in ("nvt", "nvt-langevin"):
        from ase.md.langevin import Langevin

        # fixcm=False: ASE >= 3.28 deprecates the centre-of-mass fix (it biases the NVT sampling)
        return Langevin(atoms, timestep, temperature_K=temperature_K, friction=friction_per_fs / units.fs,
                        fixcm=False, rng=rng, **kwargs)
    if ensemble == "nvt-nose-hoover":
        from ase.md.nose_hoover_chain import NoseHooverChainNVT

        return NoseHooverChainNVT(atoms, timestep, temperature_K=temperature_K, tdamp=thermostat_fs * units.fs,
                                  **kwargs)
    if ensemble == "nvt-bussi":
        from ase.md.bussi import Bussi

        return Bussi(atoms, timestep, temperature_K=temperature_K, taut=thermostat_fs * units.fs, rng=rng, **kwargs)
    if ensemble == "npt":
        from ase.md.nose_hoover_chain import IsotropicMTKNPT

        return IsotropicMTKNPT(atoms, timestep, temperature_K=temperature_K, pressure_au=pressure_GPa * units.GPa,
                               tdamp=thermostat_fs * units.fs, pdamp=barostat_fs * units.fs, **kwargs)
    raise ValueError(f"unknown ensemble {ensemble!r}: use one of {', '.join(ENSEMBLES)}")


def run_md(
    atoms: StructureLike,
    model: str | os.PathLike | Potential | EquiformerV2Calculator = DEMO_MODEL,
    *,
    ensemble: str = "nve",
    temperature_K: float = 300.0,
    timestep_fs: float = 1.0,
    steps: int = 100,
    trajectory: str | os.PathLike | None = None,
    loginterval: int = 10,
    logfile: str | os.PathLike | None = None,
    pressure_GPa: float = 0.0,
    friction_per_fs: float = DEFAULT_FRICTION_PER_FS,
    thermostat_fs: float = DEFAULT_THERMOSTAT_FS,
    barostat_fs: float = DEFAULT_BAROSTAT_FS,
    skin: float = DEFAULT_SKIN,
    seed: int | None = 0,
    device: str | torch.device = "auto",
    allow_untrained_elements: bool = False,
) -> MDResult:
    """Run MD of one structure; the input is not modified.

    Args:
        atoms: `Atoms` (constraints apply; its momenta are kept when set), pymatgen structure, or file.
        model: default the embedded demo model (EMT-trained, not DFT); a name, path, `Potential` or an
            `EquiformerV2Calculator` (its own skin is then used).
        ensemble: "nve" (velocity Verlet), "nvt" = "nvt-langevin", "nvt-nose-hoover", "nvt-bussi",
            "npt" (isotropic MTK barostat + Nose-Hoover chain; needs stress).
        temperature_K: thermostat target and, when the atoms have no momenta, the Maxwell-Boltzmann
            temperature of the initial velocities, K.
        timestep_fs: fs; steps: number of time steps.
        trajectory: ASE trajectory file written every `loginterval` steps.
        logfile: text log (time, energies, temperature, pressure) every `loginterval` steps; "-" is stdout.
        pressure_GPa: NPT target pressure, GPa.
        friction_per_fs: Langevin friction, 1/fs. thermostat_fs, barostat_fs: relaxation times, fs.
        skin: Verlet skin of the graph reuse, Angstrom (0: new neighbour search every step).
        seed: seed of the initial velocities and stochastic thermostats (None: random).
        device: for a model given by name or path.
        allow_untrained_elements: for a model given by name or path: compute elements outside its training
            elements instead of refusing them.
    """
    if ensemble not in ENSEMBLES:
        raise ValueError(f"unknown ensemble {ensemble!r}: use one of {', '.join(ENSEMBLES)}")
    atoms = to_atoms(atoms)
    calc = model if isinstance(model, EquiformerV2Calculator) else EquiformerV2Calculator(
        model, device, skin=skin, allow_untrained_elements=allow_untrained_elements)
    atoms.calc = calc
    require_forces(calc.implemented_properties, "molecular dynamics")
    with_stress = "stress" in calc.implemented_properties and bool(atoms.pbc.all())
    if ensemble == "npt" and not with_stress:
        raise ValueError("NPT needs a stress-predicting model and a structure periodic along all three axes")
    rng = np.random.default_rng(seed)
    if not atoms.get_momenta().any() and temperature_K > 0:
        thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
        Stationary(atoms, preserve_temperature=len(atoms) > 1)  # one atom: 0/0 would make NaN momenta
    calls, builds = calc.graphs.calls, calc.graphs.builds
    dyn = _integrator(atoms, ensemble, timestep_fs, temperature_K, friction_per_fs, thermostat_fs, barostat_fs,
                      pressure_GPa, rng, trajectory=trajectory, loginterval=loginterval)
    result = MDResult(atoms)
    out = open(logfile, "w") if logfile not in (None, "-") else (sys.stdout if logfile == "-" else None)

    def log() -> None:
        epot, ekin = atoms.get_potential_energy(), atoms.get_kinetic_energy()
        pressure = None
        if with_stress:
            pressure = float(-np.trace(atoms.get_stress(voigt=False, include_ideal_gas=True)) / 3 / units.GPa)
        frame = MDFrame(dyn.nsteps, dyn.nsteps * timestep_fs, epot + ekin, epot, ekin, atoms.get_temperature(),
                        pressure)
        result.log.append(frame)
        if out is not None:
            if len(result.log) == 1:
                print(f"{'time_fs':>10} {'Etot_eV':>14} {'Epot_eV':>14} {'Ekin_eV':>12} {'T_K':>9} {'P_GPa':>9}",
                      file=out)
            p = f"{pressure:9.3f}" if pressure is not None else f"{'-':>9}"
            print(f"{frame.time_fs:10.1f} {frame.energy:14.5f} {frame.potential_energy:14.5f} "
                  f"{ekin:12.5f} {frame.temperature_K:9.2f} {p}", file=out, flush=True)

    dyn.attach(log, interval=loginterval)
    try:
        dyn.run(steps)
    finally:
        if out not in (None, sys.stdout):
            out.close()
        dyn.close()
    result.graph_calls = calc.graphs.calls - calls
    result.graph_builds = calc.graphs.builds - builds
    return result


def plot_md(result: MDResult, axes: tuple | None = None, path: str | os.PathLike | None = None):
    """Total / potential energy (eV) and temperature (K) against time (fs) from an `MDResult` log.

    Draws on `axes` (two matplotlib axes) or a new figure; saves a PNG to `path` when given. Returns the figure.
    """
    import matplotlib

    if axes is None:
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
    ax_e, ax_t = axes
    time = [f.time_fs for f in result.log]
    ax_e.plot(time, [f.energy for f in result.log], label="total")
    ax_e.plot(time, [f.potential_energy for f in result.log], label="potential")
    ax_e.set(xlabel="time (fs)", ylabel="energy (eV)", title="MD energy")
    ax_e.legend(fontsize="small")
    ax_t.plot(time, [f.temperature_K for f in result.log])
    ax_t.set(xlabel="time (fs)", ylabel="temperature (K)", title="MD temperature")
    fig = ax_e.figure
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
