"""NEB frame enumeration: ours (`eqv2_calc.reactions`) vs CatTSunami's (`AutoFrameDissociation`,
`AutoFrameDesorption` of fairchem-applications-cattsunami 1.1.1), side by side on EMT stand-in reactions.

Both start from the same relaxed AdsorbML placements of every species (stage 1 of `run_reaction`, the demo
model, shared and counted once) and use the same model (the embedded demo model, trained on EMT labels):

- ours: `run_reaction` (pairing rule, batched relaxations of the two-adsorbate states, IDPP bands);
- theirs: the AutoFrame class of the reaction, given our lowest valid reactant state (a dissociation takes
  one; ours then keeps one too) or our valid reactant states (a desorption: both sides start from 2), the valid product placements and their energies, and
  our calculator (`EquiformerV2Calculator`, ASE BFGS one structure at a time, as CatTSunami relaxes; calls
  counted); its own interpolation (linear + overlap correction).

The same budget: `--finals` final states per reactant state (theirs: n_pdt1_sites x n_pdt2_sites), then
NEBs of `--top-k` frame sets each (ours: the best-ranked pairs; theirs: its first ones, the order it makes
them: lowest product energies first) through `run_nebs` with the same settings. Reported: candidate frame
sets, NEBs converged, the lowest barrier, model evaluations (enumeration and NEB), seconds.

Runs in the main environment with fairchem-data-oc 1.0.2 and the CatTSunami wheel unpacked on PYTHONPATH
(no fairchem-core: `fairchem_stand_in`):

    pip download --no-deps fairchem-data-oc==1.0.2 fairchem-applications-cattsunami==1.1.1 -d WHEELS
    (cd SITE && for w in WHEELS/*.whl; do unzip -o -q $w; done)
    PYTHONPATH=SITE:. python benchmarks/reactions_vs_cattsunami.py \
        [--out benchmarks/results/reactions_vs_cattsunami.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from adsorbml_emt import SLAB, write_json

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = (("Cu", (1, 1, 1), "*OH -> *O + *H"), ("Pt", (1, 1, 1), "*NH -> *N + *H"),
           ("Pt", (1, 1, 1), "*CO -> *C + *O"), ("Cu", (1, 1, 1), "*CO -> CO(g)"))
NEB_FMAX, RELAX_FMAX, RELAX_STEPS = 0.05, 0.05, 200
DESORPTION_HEIGHT_A = 3.0  # CatTSunami's tests: z_desorption=3
DESORPTION_STATES = 2  # adsorbed states a desorption starts from, both sides


class CountingCalculator:
    """Our calculator, counting the structures it evaluates."""

    def __new__(cls, model, device):
        from eqv2_calc.calculator import EquiformerV2Calculator

        class Counted(EquiformerV2Calculator):
            calls = 0

            def calculate(self, *args, **kwargs):
                Counted.calls += 1
                super().calculate(*args, **kwargs)

        return Counted(model, device=device)


def theirs(run, text: str, calc, finals: int, n_images: int) -> list[list]:
    """CatTSunami's frame sets for the reaction of `run`, from its stage-1 states."""
    from fairchem.applications.cattsunami.core import Reaction
    from fairchem.applications.cattsunami.core.autoframe import AutoFrameDesorption, AutoFrameDissociation
    from fairchem.applications.cattsunami.databases import DESORPTION_REACTION_DB_PATH, DISSOCIATION_REACTION_DB_PATH
    from fairchem.data.oc.databases.pkls import ADSORBATE_PKL_PATH

    states = run.species_states
    reaction = run.reaction
    if reaction.kind == "desorption":
        db = Reaction(DESORPTION_REACTION_DB_PATH, ADSORBATE_PKL_PATH, reaction_str_from_db=text)
        reactant = states[reaction.reactants[0]]
        frames = AutoFrameDesorption(db, [s.atoms for s in reactant] + [reactant[-1].atoms],  # it skips the last
                                     [s.energy for s in reactant] + [reactant[-1].energy], DESORPTION_HEIGHT_A)
        return frames.get_neb_frames(calc, n_frames=n_images + 2, n_systems=DESORPTION_STATES, fmax=RELAX_FMAX,
                                     steps=RELAX_STEPS)
    db = Reaction(DISSOCIATION_REACTION_DB_PATH, ADSORBATE_PKL_PATH, reaction_str_from_db=text)
    p1, p2 = (states[name] for name in reaction.products)
    frames = AutoFrameDissociation(db, states[reaction.reactants[0]][0].atoms, [s.atoms for s in p1],
                                   [s.energy for s in p1], [s.atoms for s in p2], [s.energy for s in p2])
    side = max(1, int(round(finals ** 0.5)))
    sets, _ = frames.get_neb_frames(calc, n_frames=n_images + 2, n_pdt1_sites=side, n_pdt2_sites=side,
                                    fmax=RELAX_FMAX, steps=RELAX_STEPS)
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finals", type=int, default=4, help="final states per reactant state (theirs: the "
                        "nearest square, n_pdt1_sites = n_pdt2_sites)")
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--images", type=int, default=4, help="moving images a band")
    parser.add_argument("--neb-steps", type=int, default=150)
    parser.add_argument("--num-random", type=int, default=2)
    parser.add_argument("--systems", type=int, nargs="+", default=list(range(len(SYSTEMS))),
                        help="which of SYSTEMS to run (0-based)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "reactions_vs_cattsunami.json"))
    args = parser.parse_args()

    import fairchem_stand_in

    fairchem_stand_in.install()
    from ase.build import bulk

    from eqv2_calc.adsorbml import SlabSettings, build_slabs
    from eqv2_calc.data.emt import emt_lattice_constant
    from eqv2_calc.neb import run_nebs
    from eqv2_calc.predict import DEMO_MODEL, resolve_model
    from eqv2_calc.errors import ReactionError
    from eqv2_calc.reactions.workflow import run_reaction

    potential = resolve_model(DEMO_MODEL, "cpu")
    rows = []
    for metal, miller, text in (SYSTEMS[i] for i in args.systems):
        slab = build_slabs(bulk(metal, "fcc", a=emt_lattice_constant(metal)), miller, settings=SlabSettings(**SLAB))[0]
        label = f"{metal}{''.join(map(str, miller))} {text}"
        start = time.perf_counter()
        try:
            run = run_reaction(slab, text, potential, top_k=args.top_k, num_random=args.num_random, n_initial=DESORPTION_STATES if "(g)" in text else 1,
                               n_final=args.finals, n_images=args.images, neb_steps=args.neb_steps,
                               neb_fmax=NEB_FMAX, device="cpu", progress=False)
        except ReactionError as exc:
            rows.append({"system": label, "ours": {"error": str(exc)}, "cattsunami": {"error": "not run"}})
            print(f"  {label}: {exc}", flush=True)
            continue
        ours_seconds = time.perf_counter() - start
        ours = {"frame_sets": len(run.pairs), "nebs": len(run.bands),
                "converged": sum(b.result.converged for b in run.bands),
                "lowest_barrier_eV": run.best.result.barrier_forward,
                "evaluations_enumeration": run.evaluations["states"], "evaluations_neb": run.evaluations["neb"],
                "seconds": ours_seconds}
        calc = CountingCalculator(potential, "cpu")
        start = time.perf_counter()
        try:
            sets = theirs(run, text, calc, args.finals, args.images)
            enumeration_calls = type(calc).calls
            results = run_nebs([list(s) for s in sets[: args.top_k]], potential, fmax=NEB_FMAX,
                               steps=args.neb_steps, device="cpu", progress=False) if sets else []
            pool = [r for r in results if r.converged] or results
            theirs_row = {"frame_sets": len(sets), "nebs": len(results),
                          "converged": sum(r.converged for r in results),
                          "lowest_barrier_eV": min(r.barrier_forward for r in pool) if pool else None,
                          "evaluations_enumeration": enumeration_calls,
                          "evaluations_neb": sum(r.steps + 1 for r in results) * args.images,
                          "seconds": time.perf_counter() - start}
        except Exception as exc:  # their code asserts and raises on frames it does not like: report it
            theirs_row = {"error": f"{type(exc).__name__}: {exc}"}
        row = {"system": label, "stage1_evaluations": run.evaluations["placements"], "ours": ours,
               "cattsunami": theirs_row}
        rows.append(row)
        print(f"  {label}: ours {ours}, CatTSunami {theirs_row}", flush=True)

    print(f"\n{'system':<26} {'who':<10} {'sets':>4} {'conv':>5} {'lowest Ea':>9} {'evals enum':>10} "
          f"{'evals NEB':>9} {'time':>6}")
    for r in rows:
        for who, d in (("ours", r["ours"]), ("CatTSunami", r["cattsunami"])):
            if "error" in d:
                print(f"{r['system']:<26} {who:<10} {d['error']}")
                continue
            barrier = f"{d['lowest_barrier_eV']:>9.3f}" if d["lowest_barrier_eV"] is not None else f"{'-':>9}"
            print(f"{r['system']:<26} {who:<10} {d['frame_sets']:>4} {d['converged']}/{d['nebs']:<3} {barrier} "
                  f"{d['evaluations_enumeration']:>10} {d['evaluations_neb']:>9} {d['seconds']:>5.0f}s")
    write_json(args.out, {"settings": vars(args) | {"neb_fmax": NEB_FMAX, "slab": SLAB}}, rows)


if __name__ == "__main__":
    main()
