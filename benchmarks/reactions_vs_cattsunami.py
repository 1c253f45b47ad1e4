"""NEB frame enumeration: ours (`eqv2_calc.reactions`) vs CatTSunami's (`AutoFrameDissociation`,
`AutoFrameTransfer`, `AutoFrameDesorption` of fairchem-applications-cattsunami 1.1.1), side by side on EMT
stand-in reactions (2x2 slabs; 3x3 for a transfer, `reactions_emt.TRANSFER_SLAB`).

Both start from the same relaxed AdsorbML placements of every species (stage 1 of `run_reaction`, the demo
model, shared and counted once) and use the same model (the embedded demo model, trained on EMT labels):

- ours: `run_reaction` (pairing rule, batched relaxations of the two-adsorbate states, IDPP bands);
- theirs: the AutoFrame class of the reaction, given our lowest valid reactant state (a dissociation takes
  one; ours then keeps one too), our valid reactant states (a desorption: both sides start from 2), or the
  valid placements of both reactants (a transfer: it joins and relaxes them itself; both sides keep
  `--initials` initial states), the valid product placements and their energies, and our calculator
  (`EquiformerV2Calculator`, ASE BFGS one structure at a time, as CatTSunami relaxes; calls counted); its own
  interpolation (linear + overlap correction). A transfer's distances are those of CatTSunami's own test
  (tests/applications/cattsunami/tests/test_autoframe_transfer.py): `TRANSFER_DISTANCES_A`.

The same budget: `--finals` final states per reactant state (theirs: n_pdt1_sites x n_pdt2_sites, or
n_final_frames_per_initial for a transfer), then NEBs of `--top-k` frame sets each (ours: the best-ranked
pairs; theirs: its first ones, the order it makes them: lowest product energies first) through `run_nebs`
with the same settings. Reported: candidate frame sets, NEBs converged, the lowest barrier, model evaluations
(enumeration and NEB), seconds. CatTSunami's optimizer logs are silenced.

Runs in the main environment with fairchem-data-oc 1.0.2 and the CatTSunami wheel unpacked on PYTHONPATH
(no fairchem-core: `fairchem_stand_in`):

    pip download --no-deps fairchem-data-oc==1.0.2 fairchem-applications-cattsunami==1.1.1 -d WHEELS
    (cd SITE && for w in WHEELS/*.whl; do unzip -o -q $w; done)
    PYTHONPATH=SITE:. python benchmarks/reactions_vs_cattsunami.py [--systems 4] \
        [--out benchmarks/results/reactions_vs_cattsunami.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import pickle
import time
from pathlib import Path

from adsorbml_emt import SLAB, write_json
from reactions_emt import TRANSFER_SLAB, reaction_slab

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = (("Cu", (1, 1, 1), "*OH -> *O + *H"), ("Pt", (1, 1, 1), "*NH -> *N + *H"),
           ("Pt", (1, 1, 1), "*CO -> *C + *O"), ("Cu", (1, 1, 1), "*CO -> CO(g)"),
           ("Cu", (1, 1, 1), "*H + *C*C -> *CH + *C"))
NEB_FMAX, RELAX_FMAX, RELAX_STEPS = 0.05, 0.05, 200
DESORPTION_STATES = 2  # adsorbed states a desorption starts from, both sides
# AutoFrameTransfer's r_traverse_max, r_react_max, r_react_min (Angstrom) as CatTSunami's test passes them.
TRANSFER_DISTANCES_A = (5.0, 4.0, 1.5)


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


def their_reaction(db_path: str, text: str):
    """CatTSunami's `Reaction` for `text` from its database at `db_path` (its texts differ from ours at most in
    spaces: `*H + *C*C -> *CH+ *C`)."""
    from fairchem.applications.cattsunami.core import Reaction
    from fairchem.data.oc.databases.pkls import ADSORBATE_PKL_PATH

    with open(db_path, "rb") as handle:
        entries = pickle.load(handle)
    index = next(i for i, e in enumerate(entries) if e["reaction"].replace(" ", "") == text.replace(" ", ""))
    return Reaction(db_path, ADSORBATE_PKL_PATH, reaction_id_from_db=index)


def theirs(run, text: str, calc, finals: int, initials: int, n_images: int) -> list[list]:
    """CatTSunami's frame sets for the reaction of `run`, from its stage-1 states."""
    from fairchem.applications.cattsunami.core.autoframe import (AutoFrameDesorption, AutoFrameDissociation,
                                                                 AutoFrameTransfer)
    from fairchem.applications.cattsunami.databases import (DESORPTION_REACTION_DB_PATH,
                                                            DISSOCIATION_REACTION_DB_PATH, TRANSFER_REACTION_DB_PATH)

    from eqv2_calc.reactions.frames import DESORPTION_HEIGHT_A

    states = run.species_states
    reaction = run.reaction
    if reaction.kind == "desorption":
        db = their_reaction(DESORPTION_REACTION_DB_PATH, text)
        reactant = states[reaction.reactants[0]]
        frames = AutoFrameDesorption(db, [s.atoms for s in reactant] + [reactant[-1].atoms],  # it skips the last
                                     [s.energy for s in reactant] + [reactant[-1].energy], DESORPTION_HEIGHT_A)
        return frames.get_neb_frames(calc, n_frames=n_images + 2, n_systems=DESORPTION_STATES, fmax=RELAX_FMAX,
                                     steps=RELAX_STEPS)
    if reaction.kind == "transfer":
        db = their_reaction(TRANSFER_REACTION_DB_PATH, text)
        sides = [states[name] for name in reaction.reactants + reaction.products]
        systems = [[s.atoms for s in side] for side in sides]
        energies = [[s.energy for s in side] for side in sides]
        frames = AutoFrameTransfer(db, systems[0], systems[1], energies[0], energies[1], systems[2], energies[2],
                                   systems[3], energies[3], *TRANSFER_DISTANCES_A)
        sets, _ = frames.get_neb_frames(calc, n_frames=n_images + 2, n_initial_frames=initials,
                                        n_final_frames_per_initial=finals, fmax=RELAX_FMAX, steps=RELAX_STEPS)
        return sets
    db = their_reaction(DISSOCIATION_REACTION_DB_PATH, text)
    p1, p2 = (states[name] for name in reaction.products)
    frames = AutoFrameDissociation(db, states[reaction.reactants[0]][0].atoms, [s.atoms for s in p1],
                                   [s.energy for s in p1], [s.atoms for s in p2], [s.energy for s in p2])
    side = max(1, int(round(finals ** 0.5)))
    sets, _ = frames.get_neb_frames(calc, n_frames=n_images + 2, n_pdt1_sites=side, n_pdt2_sites=side,
                                    fmax=RELAX_FMAX, steps=RELAX_STEPS)
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finals", type=int, default=4, help="final states per reactant state (theirs: a "
                        "dissociation's nearest square, n_pdt1_sites = n_pdt2_sites; a transfer's "
                        "n_final_frames_per_initial)")
    parser.add_argument("--initials", type=int, default=2, help="initial states of a transfer, both sides")
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
    from eqv2_calc.errors import ReactionError
    from eqv2_calc.neb import run_nebs
    from eqv2_calc.predict import DEMO_MODEL, resolve_model
    from eqv2_calc.reactions.equations import parse_reaction
    from eqv2_calc.reactions.workflow import run_reaction

    potential = resolve_model(DEMO_MODEL, "cpu")
    initials = {"desorption": DESORPTION_STATES, "transfer": args.initials}
    rows = []
    for metal, miller, text in (SYSTEMS[i] for i in args.systems):
        kind = parse_reaction(text).kind
        slab = reaction_slab(metal, miller, kind)
        label = f"{metal}{''.join(map(str, miller))} {text}"
        start = time.perf_counter()
        try:
            run = run_reaction(slab, text, potential, top_k=args.top_k, num_random=args.num_random,
                               n_initial=initials.get(kind, 1), n_final=args.finals, n_images=args.images,
                               neb_steps=args.neb_steps, neb_fmax=NEB_FMAX, device="cpu", progress=False)
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
            with contextlib.redirect_stdout(io.StringIO()):  # its BFGS logs every step
                sets = theirs(run, text, calc, args.finals, args.initials, args.images)
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

    print(f"\n{'system':<30} {'who':<10} {'sets':>4} {'conv':>5} {'lowest Ea':>9} {'evals enum':>10} "
          f"{'evals NEB':>9} {'time':>6}")
    for r in rows:
        for who, d in (("ours", r["ours"]), ("CatTSunami", r["cattsunami"])):
            if "error" in d:
                print(f"{r['system']:<30} {who:<10} {d['error']}")
                continue
            barrier = f"{d['lowest_barrier_eV']:>9.3f}" if d["lowest_barrier_eV"] is not None else f"{'-':>9}"
            print(f"{r['system']:<30} {who:<10} {d['frame_sets']:>4} {d['converged']}/{d['nebs']:<3} {barrier} "
                  f"{d['evaluations_enumeration']:>10} {d['evaluations_neb']:>9} {d['seconds']:>5.0f}s")
    write_json(args.out, {"settings": vars(args) | {"neb_fmax": NEB_FMAX, "slab": SLAB, "transfer_slab": TRANSFER_SLAB,
                                                    "transfer_distances_A": TRANSFER_DISTANCES_A}}, rows)


if __name__ == "__main__":
    main()
