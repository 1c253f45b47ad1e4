"""What a model's energies mean for adsorption, and which elements it knows.

The registry entry's `energy_reference` decides the scheme (`eqv2 checkpoints info NAME`):

- kind "adsorption" (OC20 S2EF models): the model outputs the adsorption energy directly,
  E_ads = E_model(slab+adsorbate) (the clean slab and gas references are already subtracted);
- kind "total" (the demo model, OMat/OC22): E_ads = E(slab+adsorbate) - E(clean slab) - sum_i E_gas[element_i]
  over adsorbate atoms, both slab energies from the model. The demo model (trained on EMT) uses EMT
  gas-phase references built the OC20 way (H from H2, O from H2O - H2, C from CO - O, N from N2);
  other total-energy models need `gas_references` from the user (their functional's molecules).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from ..errors import UnsupportedElementError
from ..hub import ModelEntry
from ..predict import DEMO_MODEL
from ..validation import training_elements

# Gas-phase molecules of the EMT references, relaxed with BFGS to this force (eV/Angstrom) in a box of
# this size (Angstrom, non-periodic).
EMT_GAS_FMAX = 1e-3
EMT_GAS_BOX_A = 12.0


@lru_cache(maxsize=None)
def emt_gas_references() -> dict[str, float]:
    """Per-element gas-phase references from ASE EMT (eV): H = E(H2)/2, O = E(H2O) - E(H2), C = E(CO) - O,
    N = E(N2)/2, each molecule relaxed with EMT (the OC20 molecule set)."""
    from ase.build import molecule
    from ase.calculators.emt import EMT
    from ase.optimize import BFGS

    energies = {}
    for name in ("H2", "H2O", "CO", "N2"):
        gas = molecule(name, vacuum=EMT_GAS_BOX_A / 2)
        gas.calc = EMT()
        BFGS(gas, logfile=None).run(fmax=EMT_GAS_FMAX, steps=500)
        energies[name] = float(gas.get_potential_energy())
    oxygen = energies["H2O"] - energies["H2"]
    return {"H": energies["H2"] / 2, "O": oxygen, "C": energies["CO"] - oxygen, "N": energies["N2"] / 2}


@dataclass(frozen=True)
class ReferenceScheme:
    """How to turn model energies into adsorption energies.

    Attributes:
        direct: the model outputs adsorption energies (OC20); no clean slab or gas term is subtracted.
        gas_eV: per-element gas-phase references (eV) subtracted for total-energy models; None when unknown
            (then no adsorption energy is reported, only model energies).
        description: one line for reports.
    """

    direct: bool
    gas_eV: Mapping[str, float] | None
    description: str

    def adsorption_energy(self, energy: float, slab_energy: float, adsorbate_symbols: Iterable[str]) -> float | None:
        """E_ads in eV from the model energy of slab+adsorbate and of the clean slab (eV); None without references."""
        if self.direct:
            return energy
        if self.gas_eV is None:
            return None
        symbols = list(adsorbate_symbols)
        missing = sorted(set(symbols) - set(self.gas_eV))
        if missing:
            raise UnsupportedElementError(f"no gas-phase reference for {', '.join(missing)} "
                                          f"(references known for {', '.join(self.gas_eV)}); pass gas_references")
        return energy - slab_energy - sum(self.gas_eV[s] for s in symbols)


def reference_scheme(entry: ModelEntry | None, gas_references: Mapping[str, float] | None = None) -> ReferenceScheme:
    """The scheme of a registered model (`entry`), or of an unregistered one with user `gas_references` (eV)."""
    if entry is not None and entry.energy_reference["kind"] == "adsorption":
        return ReferenceScheme(True, None, f"{entry.name} outputs OC20 adsorption energies directly")
    if gas_references is not None:
        return ReferenceScheme(False, dict(gas_references), "E(slab+ads) - E(slab) - user gas references")
    if entry is not None and entry.name == DEMO_MODEL:
        return ReferenceScheme(False, emt_gas_references(),
                               "E(slab+ads) - E(slab) - EMT gas references (H2, H2O, CO, N2); demo model, not DFT")
    return ReferenceScheme(False, None, "total energies; no gas references for this model (pass gas_references)")


def known_elements(entry: ModelEntry | None) -> set[str] | None:
    """Elements the model was trained on (its registry entry's `elements`), else None (any Z below
    `max_num_elements`)."""
    known = training_elements(entry)
    return None if known is None else set(known)


def check_known_elements(symbols: Iterable[str], entry: ModelEntry | None, max_num_elements: int | None, what: str) -> None:
    """Raise `UnsupportedElementError` naming the elements of `what` that the model does not know.

    The demo model knows its training elements; other models every Z below `max_num_elements` (None: no check).
    """
    from ase.data import atomic_numbers

    symbols = set(symbols)
    known = known_elements(entry)
    if known is not None:
        unknown = sorted(symbols - known)
        detail = f"it was trained on {', '.join(sorted(known))}"
    elif max_num_elements is not None:
        unknown = sorted(s for s in symbols if atomic_numbers[s] >= max_num_elements)
        detail = f"it knows elements with Z < {max_num_elements}"
    else:
        return
    if unknown:
        name = entry.name if entry is not None else "the model"
        raise UnsupportedElementError(f"{what} contains {', '.join(unknown)}, which {name} does not know ({detail})")
