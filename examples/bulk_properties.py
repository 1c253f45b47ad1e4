"""Equation of state, elastic tensor and phonon band structure of a bulk metal with matcalc and EquiformerV2.

    python examples/bulk_properties.py [--element Cu] [--materials-model NAME | none] [--max-strain 0.04]
        [--small] [-o DIR]

matcalc 0.7 (`pip install "eqv2-calc[properties]"`: matcalc and phonopy) drives an ordinary ASE calculator through a cell relaxation,
a Birch-Murnaghan equation of state, a strain-stress fit of the elastic tensor and finite-displacement
phonons (phonopy). Three calculators run the same recipe on an fcc metal:

- the embedded demo model (trained on EMT labels: a demo, not DFT);
- ASE's EMT, the demo model's teacher, as the reference it should reproduce;
- a materials checkpoint by name (default EquiformerV2-31M-OMAT24-MP-sAlex), when it can be loaded: the OMat24
  files are gated on Hugging Face (accept the license, `huggingface-cli login`), so without network or access
  the model is skipped with the reason; `--materials-model none` skips it, a file path works too.

The demo model was trained on strains of +-4 % only; over matcalc's default +-10 % EoS range its energy-volume
curve flattens (Au stretched by 10 %: 0.22 eV/atom against EMT's 0.54), so the EoS here scans +-4 %
(`--max-strain`). Prints a table and writes bulk_properties.png (phonon bands of every model on one plot).
`--small`: fewer EoS points, strains and band points, a 2x2x2 phonon supercell (the test's size).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase.build import bulk
from ase.calculators.calculator import Calculator
from ase.calculators.emt import EMT

MATERIALS_MODEL = "EquiformerV2-31M-OMAT24-MP-sAlex"
RELAX_FMAX = 1e-3  # eV/Angstrom, for the relaxation every property starts from
# High-symmetry points of the fcc Brillouin zone, Cartesian, in units of 2 pi / a (a: cubic lattice constant),
# and the path Gamma-X-W-K-Gamma-L (Setyawan and Curtarolo, Comput. Mater. Sci. 49, 299 (2010)).
FCC_POINTS = {"$\\Gamma$": (0, 0, 0), "X": (0, 1, 0), "W": (0.5, 1, 0), "K": (0.75, 0.75, 0), "L": (0.5, 0.5, 0.5)}
FCC_PATH = ("$\\Gamma$", "X", "W", "K", "$\\Gamma$", "L")


def properties(calc: Calculator, element: str, max_strain: float, small: bool) -> dict:
    """Lattice constant (A), bulk moduli (GPa), C11/C12/C44 (GPa) and the phonon band structure of fcc `element`."""
    from matcalc import ElasticityCalc, EOSCalc, PhononCalc, RelaxCalc

    relaxed = RelaxCalc(calc, fmax=RELAX_FMAX, relax_cell=True).calc(bulk(element, "fcc"))["final_structure"]
    eos = EOSCalc(calc, relax_structure=False, allow_shape_change=False, max_abs_strain=max_strain,
                  n_points=5 if small else 11).calc(relaxed)
    strains = {"norm_strains": (-0.01, 0.01), "shear_strains": (-0.02, 0.02)} if small else {}
    # r2_min off: matcalc averages R^2 over all 36 strain-stress components, and the zero ones of a cubic
    # crystal score 0 (EMT itself gets a mean R^2 of 0.33)
    elastic = ElasticityCalc(calc, relax_structure=False, units_GPa=True, r2_min=-1.0, **strains).calc(relaxed)
    phonons = PhononCalc(calc, relax_structure=False, supercell_matrix=np.diag([2, 2, 2] if small else [4, 4, 4]),
                         write_phonon=False).calc(relaxed)["phonon"]
    a = (4 * relaxed.volume / len(relaxed)) ** (1 / 3)
    run_fcc_bands(phonons, a, npoints=11 if small else 51)
    tensor = np.asarray(elastic["elastic_tensor"].voigt)
    return {
        "a": a,
        "B_eos": eos["bulk_modulus_bm"], "B_vrh": elastic["bulk_modulus_vrh"],
        "C11": tensor[0, 0], "C12": tensor[0, 1], "C44": tensor[3, 3],
        "bands": phonons.band_structure,
    }


def run_fcc_bands(phonons, a: float, npoints: int) -> None:
    """Phonon bands along `FCC_PATH`, the q-points given in the reduced coordinates of phonopy's primitive cell."""
    from phonopy.phonon.band_structure import get_band_qpoints_and_path_connections

    to_reduced = np.asarray(phonons.primitive.cell) / a  # q_reduced = cell @ q_cartesian / (2 pi)
    path = [[list(to_reduced @ np.array(FCC_POINTS[label], dtype=float)) for label in FCC_PATH]]
    qpoints, connections = get_band_qpoints_and_path_connections(path, npoints=npoints)
    phonons.run_band_structure(qpoints, path_connections=connections, labels=list(FCC_PATH))


def plot_bands(results: dict[str, dict], element: str, path: Path) -> None:
    """All models' phonon dispersions (THz) along the same path, one colour per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for (name, result), color in zip(results.items(), ("C0", "k", "C3")):
        bands = result["bands"]
        for i, (distances, frequencies) in enumerate(zip(bands.distances, bands.frequencies)):
            lines = ax.plot(distances, frequencies, color=color, lw=1.2 if name != "EMT" else 0.8,
                            ls="--" if name == "EMT" else "-")
            if i == 0:
                lines[0].set_label(name)
    distances = next(iter(results.values()))["bands"].distances
    ticks = [d[0] for d in distances] + [distances[-1][-1]]
    ax.set_xticks(ticks, FCC_PATH)
    ax.set_xlim(ticks[0], ticks[-1])
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("frequency (THz)")
    ax.set_title(f"fcc {element} phonons (matcalc + phonopy)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--element", default="Cu", help="an fcc metal EMT knows: Cu Ag Au Ni Pd Pt Al")
    parser.add_argument("--materials-model", default=MATERIALS_MODEL, help="name or path; 'none' skips it")
    parser.add_argument("--max-strain", type=float, default=0.04, help="EoS volumetric strain range (+-)")
    parser.add_argument("--small", action="store_true")
    parser.add_argument("-o", "--output-dir", type=Path, default=Path("."))
    args = parser.parse_args(argv)

    import torch

    from eqv2_calc import EquiformerV2Calculator
    from eqv2_calc.errors import DownloadError
    from eqv2_calc.predict import DEMO_MODEL

    calculators = {"demo model": EquiformerV2Calculator(DEMO_MODEL, device="cpu", dtype=torch.float64),
                   "EMT": EMT()}
    if args.materials_model.lower() != "none":
        try:
            calculators[args.materials_model] = EquiformerV2Calculator(args.materials_model, dtype=torch.float64)
        except DownloadError as error:
            print(f"skipped {args.materials_model}: {error}")
    results = {}
    for name, calc in calculators.items():
        results[name] = properties(calc, args.element, args.max_strain, args.small)
    print(f"fcc {args.element}: lattice constant (A), bulk modulus from the EoS (+-{args.max_strain:.0%}) and from "
          "the elastic tensor, elastic constants (GPa), highest phonon frequency (THz)")
    print(f"{'model':<34} {'a':>7} {'B_EoS':>7} {'B_VRH':>7} {'C11':>7} {'C12':>7} {'C44':>7} {'nu_max':>7}")
    for name, r in results.items():
        nu_max = max(float(np.max(f)) for f in r["bands"].frequencies)
        print(f"{name:<34} {r['a']:>7.4f} {r['B_eos']:>7.1f} {r['B_vrh']:>7.1f} {r['C11']:>7.1f} {r['C12']:>7.1f} "
              f"{r['C44']:>7.1f} {nu_max:>7.2f}")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    path = args.output_dir / "bulk_properties.png"
    plot_bands(results, args.element, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
