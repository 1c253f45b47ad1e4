"""Metrics as OC20 and OMat24 report them, accumulated one structure at a time (constant memory).

S2EF (Chanussot et al. 2021, fairchem's evaluator with ``eval_on_free_atoms``): force metrics over the
free atoms (not in a `FixAtoms`); a structure without constraints counts every atom.
- energy MAE (eV, and meV/atom: |dE| / natoms averaged over structures);
- force MAE (eV/Angstrom, over every Cartesian component of the free atoms);
- force cosine (cosine similarity of predicted and reference force vectors per free atom, averaged;
  ``x.y / max(|x||y|, 1e-8)`` as torch's ``cosine_similarity``);
- EFwT: share of structures with |dE| < 0.02 eV and every force-component error < 0.03 eV/Angstrom;
- stress MAE over the 9 components of the 3x3 stress (eV/Angstrom^3 and GPa), on structures with stress;
- per element and per tag (OC20: 0 subsurface, 1 surface, 2 adsorbate): force MAE and cosine.
IS2RE (relaxed from the initial structure by the model): relaxed-energy MAE and EwT (|dE| < 0.02 eV).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms
from ase.data import chemical_symbols
from ase.stress import voigt_6_to_full_3x3_stress
from ase.units import GPa

ENERGY_THRESHOLD_EV = 0.02  # EFwT / EwT energy threshold (OC20)
FORCE_THRESHOLD_EV_PER_A = 0.03  # EFwT force threshold, per component (OC20)
COSINE_EPS = 1e-8
PARITY_SAMPLE = 100_000  # force components kept for the parity plot


def free_mask(atoms: Atoms) -> np.ndarray:
    """True for atoms not fixed by a `FixAtoms` constraint, shape (natoms,)."""
    mask = np.ones(len(atoms), dtype=bool)
    for constraint in atoms.constraints:
        if isinstance(constraint, FixAtoms):
            mask[constraint.get_indices()] = False
    return mask


def _cosines(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(pred, axis=1) * np.linalg.norm(ref, axis=1)
    return (pred * ref).sum(axis=1) / np.maximum(norms, COSINE_EPS)


class _Group:
    """Running sums of force errors of a group of atoms (an element, a tag, all)."""

    def __init__(self) -> None:
        self.atoms = 0
        self.abs_error = 0.0
        self.cosine = 0.0

    def add(self, errors: np.ndarray, cosines: np.ndarray) -> None:
        self.atoms += len(cosines)
        self.abs_error += float(np.abs(errors).sum())
        self.cosine += float(cosines.sum())

    def summary(self) -> dict:
        n = max(self.atoms, 1)
        return {"atoms": self.atoms, "forces_mae_eV_per_A": self.abs_error / (3 * n), "forces_cos": self.cosine / n}


class S2EFMetrics:
    """Accumulates structure-by-structure errors; `summary()` gives the metrics of the module docstring."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.energy = ([], [])  # reference, predicted (eV)
        self.forces = ([], [])  # sampled force components for the parity plot (eV/Angstrom)
        self._seen = 0  # force components added so far
        self._stride = 1
        self.all = _Group()
        self.elements: dict[int, _Group] = defaultdict(_Group)
        self.tags: dict[int, _Group] = defaultdict(_Group)
        self.stress_abs = []

    def add(self, atoms: Atoms, energy: float, forces: np.ndarray, stress: np.ndarray | None) -> dict:
        """Compare one prediction (eV, eV/Angstrom (N, 3), Voigt eV/Angstrom^3 or None) with the labels of `atoms`.

        Returns the structure's row (also kept in `rows`).
        """
        labels = atoms.calc.results
        de = abs(energy - labels["energy"])
        mask = free_mask(atoms)
        ref_f, pred_f = labels["forces"][mask], np.asarray(forces)[mask]
        errors = pred_f - ref_f
        cosines = _cosines(pred_f, ref_f)
        self.all.add(errors, cosines)
        for group, keys in ((self.elements, atoms.numbers[mask]), (self.tags, atoms.get_tags()[mask])):
            for key in np.unique(keys):
                select = keys == key
                group[int(key)].add(errors[select], cosines[select])
        max_error = float(np.abs(errors).max()) if len(errors) else 0.0
        row = {"energy_ref_eV": labels["energy"], "energy_pred_eV": energy, "energy_abs_error_eV": de,
               "energy_abs_error_meV_per_atom": 1000 * de / len(atoms),
               "forces_mae_eV_per_A": float(np.abs(errors).mean()) if len(errors) else 0.0,
               "forces_cos": float(cosines.mean()) if len(cosines) else 1.0,
               "efwt": bool(de < ENERGY_THRESHOLD_EV and max_error < FORCE_THRESHOLD_EV_PER_A)}
        if "stress" in labels and stress is not None:
            error = np.abs(voigt_6_to_full_3x3_stress(stress) - voigt_6_to_full_3x3_stress(labels["stress"]))
            self.stress_abs.append(float(error.mean()))
            row["stress_mae_eV_per_A3"] = self.stress_abs[-1]
        self.rows.append(row)
        self.energy[0].append(labels["energy"])
        self.energy[1].append(energy)
        self._sample_forces(ref_f.reshape(-1), pred_f.reshape(-1))
        return row

    def _sample_forces(self, ref: np.ndarray, pred: np.ndarray) -> None:
        """Keep every `_stride`-th force component; halve the sample (double the stride) past PARITY_SAMPLE."""
        take = (self._seen + np.arange(len(ref))) % self._stride == 0
        self._seen += len(ref)
        self.forces[0].append(ref[take])
        self.forces[1].append(pred[take])
        if sum(len(block) for block in self.forces[0]) > PARITY_SAMPLE:
            self.forces = tuple([np.concatenate(part)[::2]] for part in self.forces)
            self._stride *= 2

    def summary(self) -> dict:
        """Metrics over every structure added (units in the key names)."""
        rows = self.rows
        out = {"structures": len(rows),
               "energy_mae_eV": float(np.mean([r["energy_abs_error_eV"] for r in rows])),
               "energy_mae_meV_per_atom": float(np.mean([r["energy_abs_error_meV_per_atom"] for r in rows])),
               "free_atoms": self.all.atoms,
               "forces_mae_eV_per_A": self.all.summary()["forces_mae_eV_per_A"],
               "forces_cos": self.all.summary()["forces_cos"],
               "efwt": float(np.mean([r["efwt"] for r in rows]))}
        if self.stress_abs:
            mae = float(np.mean(self.stress_abs))
            out.update(stress_structures=len(self.stress_abs), stress_mae_eV_per_A3=mae, stress_mae_GPa=mae / GPa)
        out["per_element"] = {chemical_symbols[z]: g.summary() for z, g in sorted(self.elements.items())}
        out["per_tag"] = {str(tag): g.summary() for tag, g in sorted(self.tags.items())}
        return out

    def parity(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Reference and predicted values for parity plots: 'energy' (eV) and 'forces' (eV/Angstrom, sampled)."""
        forces = tuple(np.concatenate(part) if part else np.zeros(0) for part in self.forces)
        return {"energy": (np.array(self.energy[0]), np.array(self.energy[1])), "forces": forces}


class IS2REMetrics:
    """Relaxed-energy errors of model relaxations started from the initial structures."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, atoms: Atoms, relaxed_energy: float, initial_energy: float | None, converged: bool,
            steps: int) -> dict:
        """One model relaxation of `atoms` (energies in eV) against ``atoms.info['relaxed_energy']`` (y_relaxed);
        `initial_energy` (the model's at the initial structure, None if unknown) is compared with ``y_init``."""
        reference = atoms.info["relaxed_energy"]
        de = abs(relaxed_energy - reference)
        row = {"relaxed_energy_ref_eV": reference, "relaxed_energy_pred_eV": relaxed_energy,
               "relaxed_energy_abs_error_eV": de, "ewt": bool(de < ENERGY_THRESHOLD_EV), "converged": converged,
               "steps": steps}
        if initial_energy is not None and atoms.calc is not None and "energy" in atoms.calc.results:
            row["initial_energy_pred_eV"] = initial_energy
            row["initial_energy_ref_eV"] = atoms.calc.results["energy"]
            row["initial_energy_abs_error_eV"] = abs(initial_energy - row["initial_energy_ref_eV"])
        self.rows.append(row)
        return row

    def summary(self) -> dict:
        rows = self.rows
        out = {"structures": len(rows),
               "relaxed_energy_mae_eV": float(np.mean([r["relaxed_energy_abs_error_eV"] for r in rows])),
               "ewt": float(np.mean([r["ewt"] for r in rows])),
               "converged": float(np.mean([r["converged"] for r in rows]))}
        initial = [r["initial_energy_abs_error_eV"] for r in rows if "initial_energy_abs_error_eV" in r]
        if initial:
            out["initial_energy_mae_eV"] = float(np.mean(initial))
        return out

    def parity(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {"relaxed energy": (np.array([r["relaxed_energy_ref_eV"] for r in self.rows]),
                                   np.array([r["relaxed_energy_pred_eV"] for r in self.rows]))}
