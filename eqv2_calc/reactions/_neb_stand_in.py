"""Stand-in for eqv2_calc.neb (issue 28 part 1, built on another branch) until it is merged: ASE's NEB image
by image through the calculator, same call signatures. Deleted when eqv2_calc.neb arrives."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.mep import NEB
from ase.optimize import FIRE

from ..calculator import EquiformerV2Calculator
from ..relax import frozen_copy


@dataclass
class NEBResult:
    images: list[Atoms]
    energies: np.ndarray
    converged: bool
    steps: int
    fmax: float

    @property
    def ts_index(self) -> int:
        return int(np.argmax(self.energies))

    @property
    def ts(self) -> Atoms:
        return self.images[self.ts_index]

    @property
    def barrier_forward(self) -> float:
        return float(self.energies.max() - self.energies[0])

    @property
    def barrier_reverse(self) -> float:
        return float(self.energies.max() - self.energies[-1])


def interpolate_band(initial: Atoms, final: Atoms, n_images: int, method: str = "idpp") -> list[Atoms]:
    images = [initial.copy() for _ in range(n_images + 1)] + [final.copy()]
    for image in images:
        image.calc = None
    NEB(images).interpolate(method=method, mic=True, apply_constraint=False)
    return images


def run_nebs(bands, model, *, climb=True, fmax=0.05, steps=500, device="auto", progress=True, **_) -> list[NEBResult]:
    calc = EquiformerV2Calculator(model, device=device)
    out = []
    for band in bands:
        images = [a.copy() for a in band]
        for image in images:
            image.calc = calc
        neb = NEB(images, climb=climb, method="improvedtangent", allow_shared_calculator=True)
        opt = FIRE(neb, logfile=None)
        converged = opt.run(fmax=fmax, steps=steps)
        frozen = [frozen_copy(a, a.get_potential_energy(), a.get_forces(apply_constraint=False), None) for a in images]
        out.append(NEBResult(frozen, np.array([a.get_potential_energy() for a in frozen]), bool(converged),
                             opt.nsteps, float(np.sqrt((neb.get_forces() ** 2).sum(axis=1).max()))))
    return out
