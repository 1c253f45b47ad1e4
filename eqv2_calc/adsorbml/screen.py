"""The AdsorbML screen: place an adsorbate every way on one or more slabs, relax everything in batches
with `relax_many`, drop the physically invalid results, rank the rest and compute adsorption energies.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from functools import partial
from dataclasses import dataclass, field

import torch
from ase import Atoms

from ..batching import estimated_bytes, max_batch_atoms
from ..calculator import EquiformerV2Calculator
from ..cpu_workers import CpuWorkers
from ..hub import ModelCard, ModelEntry
from ..potential import Potential, require_forces
from ..predict import DEMO_MODEL, evaluate, resolve_model
from ..relax import DEFAULT_RELAX_BATCH, RelaxResult, relax_many
from ..structures import StructureLike
from .adsorbates import Adsorbate, resolve_adsorbate
from .anomalies import detect_anomalies
from .placement import Placement, make_placements
from .references import ReferenceScheme, check_known_elements, reference_scheme
from .slabs import SlabSettings, build_slabs, check_slab

# Relaxation settings of the screen: force threshold (eV/Angstrom) and most FIRE steps. AdsorbML used
# fmax 0.02 and 300 steps (EquiformerV2 paper, section D.3); 0.05 is enough to rank on a CPU.
SCREEN_FMAX = 0.05
SCREEN_STEPS = 300
# The batched optimizer of the screen. AdsorbML relaxed with LBFGS ("LBFGS" here: ASE's); FIRE is the default
# because on the demo model's flat CO/Cu(111) surface the 25 LBFGS relaxations took over 25 min against 15.6
# for FIRE (LBFGS stops in shallow minima or wanders: one placement 16 steps, another 133 against FIRE's 90).
SCREEN_OPTIMIZER = "FIRE"
# Optimizer steps assumed per relaxation in the plan's time estimate: the default *CO on Cu(111) screen with
# the demo model took 1843 evaluations for its 25 relaxations (FIRE, 2026-11-30; benchmarks/bench_screen.py).
TYPICAL_SCREEN_STEPS = 75
DEFAULT_NUM_RANDOM = 20  # random placements per slab on a CPU; AdsorbML used 100 (placement.ADSORBML_NUM_RANDOM)


@dataclass
class Candidate:
    """One relaxed placement.

    Attributes:
        index: position among the system's placements.
        placement: the initial structure, site and mode.
        result: the relaxation (final `atoms`, `energy` in eV, `converged`, `steps`, `fmax`).
        anomalies: names of the AdsorbML rules it breaks (`anomalies.ANOMALIES`); empty when valid.
        adsorption_energy: eV (see `references.ReferenceScheme`), None without references.
    """

    index: int
    placement: Placement
    result: RelaxResult
    anomalies: list[str]
    adsorption_energy: float | None

    @property
    def valid(self) -> bool:
        return not self.anomalies

    @property
    def energy(self) -> float:
        """Model energy of the relaxed slab+adsorbate, eV."""
        return self.result.energy

    @property
    def atoms(self) -> Atoms:
        return self.result.atoms


@dataclass
class SystemScreen:
    """The screen of one adsorbate on one slab.

    Attributes:
        slab: the clean slab as built (tags 0/1); slab_result: its relaxation with the same model.
        adsorbate: what was placed; scheme: how adsorption energies were computed.
        candidates: every placement that could be made, in placement order.
    """

    slab: Atoms
    slab_result: RelaxResult
    adsorbate: Adsorbate
    scheme: ReferenceScheme
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def label(self) -> str:
        """e.g. "Cu36 (1,1,1) *CO"."""
        miller = self.slab.info.get("miller")
        surface = f" ({','.join(map(str, miller))})" if miller else ""
        surface += " bottom" if self.slab.info.get("top") is False else ""
        return f"{self.slab.get_chemical_formula()}{surface} {self.adsorbate.name}"

    def ranked(self) -> list[Candidate]:
        """Valid candidates, lowest model energy first."""
        return sorted((c for c in self.candidates if c.valid), key=lambda c: c.energy)

    def top(self, k: int) -> list[Candidate]:
        """The `k` lowest-energy valid candidates (the ones AdsorbML sends to DFT)."""
        return self.ranked()[:k]

    @property
    def best(self) -> Candidate | None:
        ranked = self.ranked()
        return ranked[0] if ranked else None


def screen(
    slabs: Atoms | Sequence[Atoms],
    adsorbate: Adsorbate | Atoms | str | os.PathLike,
    model: str | os.PathLike | Potential | EquiformerV2Calculator = DEMO_MODEL,
    *,
    binding_indices: Sequence[int] | None = None,
    num_random: int = DEFAULT_NUM_RANDOM,
    heuristic: bool = True,
    fmax: float = SCREEN_FMAX,
    steps: int = SCREEN_STEPS,
    optimizer: str = SCREEN_OPTIMIZER,
    batch_size: int = DEFAULT_RELAX_BATCH,
    seed: int = 0,
    gas_references: Mapping[str, float] | None = None,
    device: str | torch.device = "auto",
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
    max_atoms: int | None = None,
) -> list[SystemScreen]:
    """Screen `adsorbate` on each slab: placements, one batched relaxation of all of them (and of the clean
    slabs), anomaly detection against the relaxed clean slab, adsorption energies, ranking.

    Args:
        slabs: tagged slabs (`build_slabs`, or your own with tags 0/1, normal along +z, FixAtoms only).
        adsorbate: a library name ("*CO"), an `Adsorbate`, or a molecule (`Atoms`/file) with `binding_indices`.
        model: registered name, checkpoint file, `Potential` or `EquiformerV2Calculator` (its model, device and
            dtype are used); default: the EMT-trained demo model.
        num_random, heuristic: placements per slab (see `placement.make_placements`).
        fmax, steps, optimizer, batch_size: `relax_many` settings (eV/Angstrom, optimizer steps, "LBFGS" or
            "FIRE", structures per batch).
        seed: placements are reproducible for a seed.
        gas_references: per-element gas-phase energies (eV) for a total-energy model the package has none for.
        device, dtype, progress: as for `relax_many`; with `progress` the plan (slab atoms, placements, batch,
            device, a time estimate) is printed to stderr first.
        max_atoms: atoms per model call; default from the memory a call needs (`batching.max_batch_atoms`),
            which keeps a CPU screen under 4 GB (a batch of 32 placements of a 98-atom slab took 8 GB).

    Returns:
        One `SystemScreen` per slab, in order.

    Raises:
        SlabError, AdsorbateError, UnsupportedElementError: bad slab, adsorbate or an element the model lacks.
    """
    slabs = [slabs] if isinstance(slabs, Atoms) else list(slabs)
    ads = resolve_adsorbate(adsorbate, binding_indices)
    for slab in slabs:
        check_slab(slab)
    if isinstance(model, EquiformerV2Calculator):
        potential = model.potential
        device, dtype = model.device, next(potential.parameters()).dtype
    else:
        if not isinstance(model, Potential):  # fail on unknown elements before loading (and downloading) it
            model = ModelCard.of(model)
            entry = model.entry
            _check_inputs(ads, slabs, entry, entry.model_config.get("max_num_elements") if entry else None)
        potential = resolve_model(model, device, dtype)
    entry = potential.card.entry
    _check_inputs(ads, slabs, entry, potential.config.max_num_elements)
    require_forces(potential.implemented_properties, "AdsorbML screening (it relaxes every placement)")
    scheme = reference_scheme(entry, gas_references)
    placements = [make_placements(slab, ads, num_random=num_random, heuristic=heuristic, seed=seed + i)
                  for i, slab in enumerate(slabs)]
    structures = slabs + [p.atoms for group in placements for p in group]
    sample = max(structures, key=len)
    max_atoms = max_atoms or max_batch_atoms(potential, sample)
    if progress:
        print(screen_plan(potential, slabs, placements, batch_size, max_atoms, steps), file=sys.stderr, flush=True)
    results = relax_many(structures, potential, fmax=fmax, steps=steps, optimizer=optimizer, batch_size=batch_size,
                         device=device, dtype=dtype, progress=progress, max_atoms=max_atoms)
    out, start = [], len(slabs)
    for slab, slab_result, group in zip(slabs, results, placements):
        system = SystemScreen(slab, slab_result, ads, scheme)
        for index, (placement, result) in enumerate(zip(group, results[start : start + len(group)])):
            anomalies = detect_anomalies(placement.atoms, result.atoms, slab_result.atoms)
            e_ads = scheme.adsorption_energy(result.energy, slab_result.energy, ads.symbols)
            system.candidates.append(Candidate(index, placement, result, anomalies, e_ads))
        start += len(group)
        out.append(system)
    return out


def screen_plan(potential: Potential, slabs: Sequence[Atoms], placements: Sequence[Sequence[Placement]],
                batch_size: int, max_atoms: int, steps: int) -> str:
    """What a screen is about to do, for people: slab atoms, placements, batch, device, estimated memory of a
    model call and time (a second step of a full batch of the largest structure, timed now, scaled to every
    relaxation taking `TYPICAL_SCREEN_STEPS` steps; at most `steps`)."""
    structures = [*slabs, *(p.atoms for group in placements for p in group)]
    sample = max(structures, key=len)
    per_batch = max(1, min(batch_size, max_atoms // len(sample), len(structures)))
    device = next(potential.parameters()).device
    batch = [sample] * per_batch
    with CpuWorkers(potential) as workers:  # as relax_many evaluates a step
        run = partial(evaluate, potential)
        workers.map(run, batch)  # the first call pays one-time costs (allocator, threads, caches)
        start = time.perf_counter()
        workers.map(run, batch)
        per_atom_s = (time.perf_counter() - start) / (per_batch * len(sample))
    total_atoms = sum(len(a) for a in structures)
    typical_s = per_atom_s * total_atoms * min(steps, TYPICAL_SCREEN_STEPS)
    slab_text = ", ".join(f"{slab.get_chemical_formula()} ({len(slab)} atoms)" for slab in slabs)
    return (f"plan: {len(slabs)} slab(s) {slab_text}; {sum(map(len, placements))} placements + {len(slabs)} clean "
            f"slab(s) = {len(structures)} relaxations; up to {per_batch} per model call ({per_batch * len(sample)} "
            f"atoms, ~{estimated_bytes(potential, sample, per_batch * len(sample)) / 1e9:.1f} GB) on {device}; "
            + (f"about {_duration(typical_s)} at up to {steps} steps each" if steps <= TYPICAL_SCREEN_STEPS else
               f"about {_duration(typical_s)} at {TYPICAL_SCREEN_STEPS} steps each (at most "
               f"{_duration(per_atom_s * total_atoms * steps)} at {steps} steps)"))


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _check_inputs(ads: Adsorbate, slabs: Sequence[Atoms], entry: ModelEntry | None,
                  max_num_elements: int | None) -> None:
    check_known_elements(ads.symbols, entry, max_num_elements, f"adsorbate {ads.name}")
    for slab in slabs:
        check_known_elements(slab.get_chemical_symbols(), entry, max_num_elements, f"slab {slab.get_chemical_formula()}")


def run_adsorbml(
    bulk: StructureLike,
    adsorbate: Adsorbate | Atoms | str | os.PathLike,
    model: str | os.PathLike | Potential = DEMO_MODEL,
    *,
    miller: Sequence[int] | None = None,
    max_miller: int = 1,
    slab_settings: SlabSettings = SlabSettings(),
    **screen_kwargs,
) -> list[SystemScreen]:
    """The whole AdsorbML workflow from a bulk crystal: slabs along `miller` (or every distinct Miller index
    up to `max_miller`), then `screen` (its keyword arguments pass through)."""
    slabs = build_slabs(bulk, miller, max_miller=max_miller, settings=slab_settings)
    return screen(slabs, adsorbate, model, **screen_kwargs)

