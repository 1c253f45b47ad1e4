"""`eqv2` command line: thin argument parsing around the package's functions.

torch, ASE and the model are imported inside the commands that need them, so that
`eqv2 checkpoints list` answers in well under a second.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence

from . import __version__, hub
from .cliargs import positive_float, positive_int
from .errors import EquiformerV2Error


def _cmd_info(args: argparse.Namespace) -> int:
    from .checkpoint import load_potential

    potential = load_potential(hub.resolve_checkpoint(args.model))
    config = potential.config
    n_params = sum(p.numel() for p in potential.parameters())
    print(f"checkpoint   {args.model}")
    print(f"parameters   {n_params:,}")
    print(f"predicts     {', '.join(p for p in potential.implemented_properties if p != 'free_energy')}")
    print(f"graph        max_radius {config.max_radius} A, max_neighbors {config.max_neighbors} "
          f"({'strict' if config.enforce_max_neighbors_strictly else 'keeps degenerate shells'})")
    print(f"network      {config.num_layers} layers, lmax {config.lmax}, mmax {config.mmax}, "
          f"{config.sphere_channels} channels, {config.norm_type}")
    energy_norm = potential.normalizers.get("energy")
    print(f"energy offset {hub.energy_offset(energy_norm.mean if energy_norm else 0.0)}")
    if args.json:
        print(json.dumps(config.to_dict(), indent=2))
    return 0


def _model(args: argparse.Namespace) -> str:
    """`--model`, or the embedded demo model (imported here: the model modules import torch)."""
    from .predict import DEMO_MODEL

    return args.model or DEMO_MODEL


def _stepping_model(args: argparse.Namespace):
    """The model of `md` and `relax`, which call it step after step in this process: `_model(args)`, or with
    --compile that model loaded on --device with its network compiled (`Potential.compiled`)."""
    if not args.compile:
        return _model(args)
    from .predict import resolve_model

    potential = resolve_model(_model(args), args.device)
    potential.compiled = True
    return potential


def _read_inputs(paths: Sequence[str]) -> tuple[list, list[str]]:
    """Every frame of every file, and a 'file:index' label for each."""
    from .structures import read_file

    structures, labels = [], []
    for path in paths:
        frames = read_file(path)
        structures += frames
        labels += [f"{path}:{i}" for i in range(len(frames))]
    return structures, labels


def _labelled(label: str, run, *args, **kwargs):
    """`run(*args, **kwargs)` for one structure; an error about the structure gets its file:frame label."""
    from .errors import InvalidStructureError
    from .validation import labelled

    try:
        return run(*args, **kwargs)
    except (InvalidStructureError, FloatingPointError) as exc:
        raise labelled(exc, label) from exc


def _refuse_output_with_results(args: argparse.Namespace) -> None:
    if args.output:
        raise ValueError(f"-o/--output {args.output} is not used with --results: the results go to "
                         f"{args.results or 'DIR'}/results.csv and structures.extxyz; drop -o")


def _run_scaled(args: argparse.Namespace, structures: list, labels: list[str], task) -> int:
    """--results / --ray: a chunked, resumable run on model-holding workers (`eqv2_calc.scale`)."""
    from .scale import Job, run

    if not args.results:
        raise ValueError("--ray needs --results DIR, the folder the results are written to chunk by chunk")
    if getattr(args, "compile", False):
        raise ValueError("--compile compiles the model of this process; drop it with --results / --ray, whose "
                         "chunks run on models loaded by name")
    if not args.ray and (args.workers or args.cpus_per_worker != 1):
        raise ValueError("--workers and --cpus-per-worker need --ray; without it the chunks run in this process")
    job = Job(structures, labels, task, _model(args), chunk_size=args.chunk_size)
    try:
        summary = run(job, args.results, ray=args.ray, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                      device=args.device, max_retries=args.retries, progress=not args.quiet,
                      overwrite=args.overwrite)
    except KeyboardInterrupt:
        print(f"eqv2: interrupted; finished chunks are kept in {args.results}: run the same command to resume",
              file=sys.stderr)
        return 130
    print("\n".join(summary.lines()))
    return 0 if summary.status == "complete" and not summary.failed_structures else 1


def _cmd_predict(args: argparse.Namespace) -> int:
    import csv

    from .predict import STRESS_COLUMNS, predict
    from .relax import frozen_copy

    structures, labels = _read_inputs(args.structures)
    if args.results or args.ray:
        from .scale import predict_task

        _refuse_output_with_results(args)
        return _run_scaled(args, structures, labels, predict_task(args.batch_size, args.allow_untrained_elements))
    results = predict(structures, _model(args), batch_size=args.batch_size, device=args.device,
                      progress=not args.quiet, labels=labels, allow_untrained_elements=args.allow_untrained_elements)
    records = []
    for label, atoms, r in zip(labels, structures, results):
        record = {"structure": label, "formula": atoms.get_chemical_formula(), "natoms": len(atoms),
                  "energy": r.energy, "fmax": r.fmax}
        if r.stress is not None:
            record["stress"] = r.stress.tolist()
        records.append(record)
    structures = [frozen_copy(atoms, r.energy, r.forces, r.stress) for atoms, r in zip(structures, results)]
    if args.output and args.output.lower().endswith(".csv"):
        with open(args.output, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["structure", "formula", "natoms", "energy_eV", "fmax_eV_per_A", *STRESS_COLUMNS])
            for r in records:
                writer.writerow([r["structure"], r["formula"], r["natoms"], r["energy"],
                                 "" if r["fmax"] is None else r["fmax"],
                                 *r.get("stress", [""] * 6)])
    elif args.output:
        from .structures import write_structures

        write_structures(args.output, structures)
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    print(f"{'structure':<32} {'formula':<14} {'energy (eV)':>14} {'fmax (eV/A)':>12}")
    for r in records:
        fmax = "-" if r["fmax"] is None else f"{r['fmax']:.4f}"  # an energy-only model has no forces
        print(f"{r['structure']:<32} {r['formula']:<14} {r['energy']:>14.6f} {fmax:>12}")
    if args.output:
        print(f"wrote {args.output}")
    return 0


def _cmd_relax(args: argparse.Namespace) -> int:
    from .relax import plot_relaxation, relax, relax_many

    structures, labels = _read_inputs(args.structure)
    if args.results or args.ray:
        from .scale import relax_task

        _refuse_output_with_results(args)
        return _run_scaled(args, structures, labels, relax_task(args.fmax, args.steps, args.cell, args.batch_size,
                                                                args.allow_untrained_elements))
    if not args.output:
        raise ValueError("relax needs -o/--output FILE (or --results DIR for a chunked, resumable run)")
    if args.batch:
        results = relax_many(structures, _stepping_model(args), fmax=args.fmax, steps=args.steps, relax_cell=args.cell,
                             batch_size=args.batch_size, device=args.device, progress=not args.quiet, labels=labels,
                             allow_untrained_elements=args.allow_untrained_elements)
    else:
        from .calculator import EquiformerV2Calculator

        calc = EquiformerV2Calculator(_stepping_model(args), device=args.device,
                                      allow_untrained_elements=args.allow_untrained_elements)
        results = [_labelled(label, relax, atoms, calc, fmax=args.fmax, steps=args.steps, optimizer=args.optimizer,
                             relax_cell=args.cell, logfile=None if args.quiet else "-")
                   for label, atoms in zip(labels, structures)]
    from .structures import write_structures

    write_structures(args.output, [r.atoms for r in results])
    print(f"{'structure':<32} {'formula':<14} {'energy (eV)':>14} {'steps':>6} {'fmax (eV/A)':>12} converged")
    for label, r in zip(labels, results):
        print(f"{label:<32} {r.atoms.get_chemical_formula():<14} {r.energy:>14.6f} {r.steps:>6} {r.fmax:>12.4f} "
              f"{'yes' if r.converged else 'NO'}")
    print(f"wrote {args.output}")
    if args.plot:
        plot_relaxation(results, path=args.plot)
        print(f"plot: {args.plot}")
    return 0 if all(r.converged for r in results) else 1


def _cmd_md(args: argparse.Namespace) -> int:
    from .md import plot_md, run_md

    structures, labels = _read_inputs([args.structure])
    result = _labelled(labels[-1], run_md, structures[-1], _stepping_model(args), ensemble=args.ensemble,
                       temperature_K=args.temperature, timestep_fs=args.timestep, steps=args.steps,
                       trajectory=args.output, loginterval=args.loginterval,
                       logfile=args.log or ("-" if not args.quiet else None), pressure_GPa=args.pressure,
                       seed=args.seed, device=args.device, allow_untrained_elements=args.allow_untrained_elements)
    last = result.log[-1]
    print(f"final: E_tot {last.energy:.5f} eV, T {last.temperature_K:.1f} K; "
          f"energy change {1000 * result.energy_drift_eV_per_atom:+.3f} meV/atom; "
          f"{result.graph_builds} neighbour searches for {result.graph_calls} evaluations")
    print(f"trajectory: {args.output}")
    if args.plot:
        plot_md(result, path=args.plot)
        print(f"plot: {args.plot}")
    return 0


def _neb_settings(args: argparse.Namespace) -> dict:
    """--k, --method, --optimizer where given (the defaults differ between one NEB and --benchmark)."""
    return {name: getattr(args, name) for name in ("k", "method", "optimizer") if getattr(args, name) is not None}


def _cmd_neb(args: argparse.Namespace) -> int:
    if args.benchmark:
        if args.initial:
            raise ValueError("--benchmark DIR runs on the trajectories in DIR: drop INITIAL and FINAL")
        return _neb_benchmark(args)
    if not (args.initial and args.final):
        raise ValueError("neb needs INITIAL and FINAL structure files (or --benchmark DIR)")
    from .neb import check_end_points, interpolate_band, run_nebs
    from .potential import require_forces
    from .predict import resolve_model
    from .relax import relax_many
    from .structures import read_file

    initial, final = read_file(args.initial, -1)[0], read_file(args.final, -1)[0]
    check_end_points(initial, final, (args.initial, args.final))
    interpolate_band(initial, final, args.images, "linear")  # refuses --images < 1 before any model work
    potential = resolve_model(_model(args), args.device)  # loaded once, its card travels with it
    require_forces(potential.implemented_properties, "an NEB")
    common = {"device": args.device, "progress": not args.quiet,
              "allow_untrained_elements": args.allow_untrained_elements}
    if not args.no_relax_ends:
        ends = relax_many([initial, final], potential, fmax=args.fmax, steps=args.steps,
                          labels=[args.initial, args.final], **common)
        for path, r in zip((args.initial, args.final), ends):
            print(f"end point {path}: relaxed in {r.steps} steps to fmax {r.fmax:.3f} eV/A, E {r.energy:.4f} eV"
                  + ("" if r.converged else " (NOT converged)"))
        initial, final = ends[0].atoms, ends[1].atoms
    band = interpolate_band(initial, final, args.images, args.interpolation)
    result = run_nebs([band], potential, climb=args.climb, fmax=args.fmax, steps=args.steps, **_neb_settings(args),
                      **common)[0]
    paths = result.write(args.output, plot=args.plot)
    print(f"barrier {result.barrier_forward:.4f} eV forward, {result.barrier_reverse:.4f} eV reverse "
          f"(reaction energy {result.reaction_energy:+.4f} eV); TS image {result.ts_index} of {len(band) - 1}")
    print(f"{'converged' if result.converged else 'NOT converged'} in {result.steps} steps, NEB fmax "
          f"{result.fmax:.4f} eV/A{'' if result.climbed or not args.climb else ' (climbing stage not reached)'}")
    print(f"wrote {', '.join(str(path) for path in paths)}")
    return 0 if result.converged else 1


def _neb_benchmark(args: argparse.Namespace) -> int:
    from .neb_benchmark import benchmark_oc20neb

    report = benchmark_oc20neb(args.benchmark, _model(args), output_dir=args.output, fmax=args.fmax,
                               steps=args.steps, limit=args.limit, device=args.device, progress=not args.quiet,
                               **_neb_settings(args))
    print("\n".join(report.lines()))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate

    report = evaluate(args.data, _model(args), limit=args.limit, batch_size=args.batch_size, output_dir=args.output,
                      energy_kind=args.energy_kind, device=args.device, ray=args.ray, progress=not args.quiet)
    print("\n".join(report.lines()))
    if report.files:
        print(f"wrote {', '.join(str(path) for path in report.files)}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.output, _model(args), device=args.device)
    return 0


def _cmd_adsorb(args: argparse.Namespace) -> int:
    from .adsorbml import SlabSettings, run_adsorbml, summary_lines, write_results

    if args.list_adsorbates:
        from .adsorbml.adsorbates import library_table

        print("\n".join(library_table()))
        return 0
    if args.collect:
        from .adsorbml.vasp import collect_vasp

        report = collect_vasp(args.collect)
        print("\n".join(report.lines()))
        return 0 if any(r.status == "done" for r in report.results) else 1
    if args.systems and args.vasp:
        raise ValueError("--vasp writes VASP inputs of one --bulk/--adsorbate screen, not of --systems runs")
    if args.systems:
        return _adsorb_systems(args)
    if not (args.bulk and args.adsorbate):
        raise ValueError("adsorb needs --bulk and --adsorbate, or --systems FILE")
    settings = SlabSettings(min_slab_size=args.min_slab_size, min_ab=args.min_ab)
    systems = run_adsorbml(args.bulk, args.adsorbate, _model(args), miller=args.miller, max_miller=args.max_miller,
                           slab_settings=settings, binding_indices=args.binding_atoms, num_random=args.num_random,
                           fmax=args.fmax, steps=args.steps, optimizer=args.optimizer, batch_size=args.batch,
                           seed=args.seed, device=args.device, progress=not args.quiet, max_atoms=args.max_atoms)
    for line in summary_lines(systems, args.top_k):
        print(line)
    paths = write_results(systems, args.output, args.top_k, plot=args.plot)
    print(f"wrote {paths['csv']}, {paths['json']} and the top-{args.top_k} structures in {paths['top']}")
    if args.vasp:
        from .adsorbml.vasp import write_vasp_inputs

        manifest = write_vasp_inputs(systems, args.vasp, args.top_k, args.vasp_strategy)
        print(f"VASP inputs (ML+{args.vasp_strategy.upper()}, OC20 settings) in {args.vasp}: build the POTCARs with "
              f"{manifest.parent / 'make_potcars.sh'}, run VASP, then `eqv2 adsorb --collect {args.vasp}`")
    if args.plot:
        print(f"plot: {paths['figure']}")
    return 0 if any(s.best is not None for s in systems) else 1


def _cmd_reaction(args: argparse.Namespace) -> int:
    from .reactions import parse_reaction, reaction_table

    if args.list_reactions:
        print("\n".join(reaction_table()))
        return 0
    if not args.reaction or not (args.bulk or args.slab) or (args.bulk and args.slab):
        raise ValueError("reaction needs --reaction and one of --bulk (with --miller) or --slab")
    from .reactions.report import summary_lines, write_reaction
    from .hub import ModelCard
    from .reactions.workflow import check_force_model, run_reaction

    reaction = parse_reaction(args.reaction)  # bad reactions and models fail before any slab work
    check_force_model(ModelCard.of(_model(args)))
    slab = _reaction_slab(args)
    run = run_reaction(slab, reaction, _model(args), top_k=args.top_k, num_random=args.num_random,
                       n_initial=args.n_initial, n_final=args.n_final, n_images=args.images, fmax=args.fmax,
                       steps=args.steps, neb_fmax=args.neb_fmax, neb_steps=args.neb_steps, climb=not args.no_climb,
                       seed=args.seed, device=args.device, progress=not args.quiet, max_atoms=args.max_atoms)
    print("\n".join(summary_lines(run)))
    paths = write_reaction(run, args.output, plot=args.plot)
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0 if run.best is not None and run.best.result.converged else 1


def _reaction_slab(args: argparse.Namespace):
    """The slab of `eqv2 reaction`: --slab (its tags, or the top 2 A tagged as surface when it has none), or the
    first termination of --bulk cut along --miller."""
    from .adsorbml import SlabSettings, build_slabs, tag_surface
    from .structures import read_file

    if args.slab:
        slab = read_file(args.slab)[-1]
        return slab if (slab.get_tags() == 1).any() else tag_surface(slab)
    if not args.miller:
        raise ValueError("--bulk needs --miller H K L (the surface the reaction runs on)")
    slabs = build_slabs(args.bulk, args.miller, settings=SlabSettings(min_slab_size=args.min_slab_size,
                                                                        min_ab=args.min_ab))
    if len(slabs) > 1 and not args.quiet:
        print(f"eqv2: {len(slabs)} terminations along {tuple(args.miller)}; running on the first "
              f"(shift {slabs[0].info['shift']})", file=sys.stderr)
    return slabs[0]


def _adsorb_systems(args: argparse.Namespace) -> int:
    """`eqv2 adsorb --systems FILE`: one screen per row, chunked and resumable (results in --results or -o)."""
    from .scale.adsorb import adsorb_task, read_systems

    bulks, labels, skipped = read_systems(args.systems)
    for problem in skipped:
        print(f"eqv2: {problem}", file=sys.stderr)
    if not bulks:
        raise ValueError(f"{args.systems}: no row could be used")
    args.results = args.results or args.output
    task = adsorb_task(num_random=args.num_random, fmax=args.fmax, steps=args.steps, optimizer=args.optimizer,
                       batch_size=args.batch, seed=args.seed, min_slab_size=args.min_slab_size, min_ab=args.min_ab)
    return _run_scaled(args, bulks, labels, task) or int(bool(skipped))


def _size(entry: hub.ModelEntry) -> str:
    return f"{entry.size_bytes / 1e6:,.0f} MB" if entry.size_bytes else "?"


def _cmd_checkpoints_list(args: argparse.Namespace) -> int:
    entries = hub.load_registry().entries
    cached = {entry.name: hub.cached_file(entry) for entry in entries}
    if args.json:
        print(json.dumps([{"name": e.name, "aliases": list(e.aliases), "source": e.source.describe(),
                           "parameters_millions": e.parameters_millions, "size_bytes": e.size_bytes,
                           "outputs": list(e.outputs), "domain": e.domain, "license": e.license,
                           "supported": e.supported, "cached": str(cached[e.name] or "") or None}
                          for e in entries], indent=2))
        return 0
    print(f"{'name':<46} {'params':>6} {'size':>8}  {'outputs':<20} {'domain':<9} {'license':<26} cached")
    for e in entries:
        params = f"{e.parameters_millions:g}M" if e.parameters_millions else "?"
        name = e.name + ("" if e.supported else " *")
        print(f"{name:<46} {params:>6} {_size(e):>8}  {' '.join(e.outputs):<20} {e.domain:<9} {e.license:<26} "
              f"{'yes' if cached[e.name] else '-'}")
    if not all(e.supported for e in entries):
        print("* format not readable by eqv2_calc yet (see `eqv2 checkpoints info NAME`)")
    print(f"cache: {hub.cache_dir()} (set {hub.CACHE_ENV} to move it); "
          "Hugging Face files use the Hugging Face cache unless it is set")
    return 0


def _cmd_checkpoints_info(args: argparse.Namespace) -> int:
    e = hub.load_registry().get(args.name)
    reference = e.energy_reference
    rows = [
        ("name", e.name), ("aliases", ", ".join(e.aliases) or "-"), ("source", e.source.describe()),
        ("parameters", f"{e.parameters_millions:g}M" if e.parameters_millions else "?"), ("size", _size(e)),
        ("sha256", e.sha256 or "not published (see `eqv2 checkpoints verify`)"),
        ("license", f"{e.license}: {e.license_details}"), ("training data", e.training_data),
        ("outputs", ", ".join(e.outputs)), ("domain", f"{e.domain}: {hub.DOMAINS[e.domain]}"),
        ("energy", f"{reference['kind']}: {reference['description']}"),
        ("energy offset", hub.energy_offset(e.energy_mean_eV) if e.energy_mean_eV is not None
         else f"not recorded in the registry; `eqv2 info {e.name}` reads it from the file"),
    ]
    if "gas_phase_eV" in reference:
        refs = ", ".join(f"{el} {value:+.3f}" for el, value in reference["gas_phase_eV"].items())
        rows.append(("gas refs (eV)", f"{refs} ({reference.get('source', 'source not recorded')})"))
    rows += [("architecture", ", ".join(f"{k} {v}" for k, v in e.model_config.items())),
             ("readable", "yes" if e.supported else "not yet by eqv2_calc"), ("notes", e.notes),
             ("cached", str(hub.cached_file(e) or f"no (`eqv2 checkpoints download {e.name}`)"))]
    for key, value in rows:
        print(f"{key:<14} {value}")
    return 0


def _cmd_checkpoints_download(args: argparse.Namespace) -> int:
    print(hub.resolve_checkpoint(args.name, progress=not args.quiet))
    return 0


def _cmd_checkpoints_verify(args: argparse.Namespace) -> int:
    results = [r for r in hub.verify(args.names) if args.names or r.status != "not cached"]
    if not results:
        print("no registered checkpoint is cached yet")
    for r in results:
        detail = {"ok": "", "not cached": "", "unchecked": f"sha256 {r.actual} (no reference to compare)",
                  "mismatch": f"expected {r.expected}, found {r.actual}: delete it and download again"}[r.status]
        print(f"{r.name:<44} {r.status:<10} {r.path or ''} {detail}".rstrip())
    return 1 if any(r.status == "mismatch" for r in results) else 0


def _add_checkpoints_parser(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("checkpoints", help="registered EquiformerV2 checkpoints: list, info, download, verify")
    commands = group.add_subparsers(dest="checkpoints_command", required=True)
    listing = commands.add_parser("list", help="table of registered checkpoints (name, size, outputs, license, cached)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=_cmd_checkpoints_list)
    info = commands.add_parser("info", help="everything the registry knows about one checkpoint")
    info.add_argument("name", help="registered name or alias")
    info.set_defaults(func=_cmd_checkpoints_info)
    download = commands.add_parser("download", help="download into the cache (no-op when cached); prints the path")
    download.add_argument("name", help="registered name or alias, hf://owner/repo/file or URL")
    download.add_argument("--quiet", action="store_true", help="no progress bar")
    download.set_defaults(func=_cmd_checkpoints_download)
    verify = commands.add_parser("verify", help="re-hash cached checkpoints against their sha256")
    verify.add_argument("names", nargs="*", help="registered names (default: every cached one)")
    verify.set_defaults(func=_cmd_checkpoints_verify)


def _format_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    line: str | None = None) -> str:
    """One line per warning on stderr (`warnings.formatwarning` signature), without source lines."""
    return f"eqv2: {category.__name__}: {message}\n"


def _cmd_train(args: argparse.Namespace) -> int:
    import logging

    from .train import train

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(f"checkpoint: {train(args.config)}")
    return 0


def _cmd_data_emt(args: argparse.Namespace) -> int:
    from .data.emt import main as emt_main

    return emt_main(args.extra)


def _cmd_data_active(args: argparse.Namespace) -> int:
    from .data.active import main as active_main

    return active_main(args.extra)


def _cmd_data_neb(args: argparse.Namespace) -> int:
    from .data.neb_paths import main as neb_main

    return neb_main(args.extra)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="registered name, checkpoint file, hf:// address or URL "
                        "(default: the embedded demo model, trained on EMT labels, not DFT)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or step logs")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads of torch (default: torch's choice, "
                        "the cores; OMP_WAIT_POLICY=PASSIVE unless set: see docs/performance.md)")


def _add_compile_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compile", action="store_true", help="run the network through torch.compile: the first "
                        "step compiles (0.5-2 min for the demo model on a CPU), later steps of any size run faster "
                        "(1.2-1.7x for the demo model on 2 CPU cores; docs/performance.md)")


def _add_untrained_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-untrained-elements", action="store_true", help="compute structures with elements "
                        "the model was not trained on (refused by default for models whose registry entry lists them)")


def _add_scale_options(parser: argparse.ArgumentParser, results_note: str = "") -> None:
    group = parser.add_argument_group("scale out (chunked and resumable; docs/scale-out.md)")
    group.add_argument("--results", metavar="DIR", help="write results chunk by chunk into DIR (results.csv, "
                       "structures.extxyz, summary.json); running the same command again skips finished chunks, "
                       "and a DIR of another job (other model weights, structures or settings) is refused"
                       + results_note)
    group.add_argument("--overwrite", action="store_true", help="delete the results held in --results DIR and "
                       "start over (instead of refusing a DIR of another job)")
    group.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS", help="run on Ray workers: no ADDRESS "
                       "starts a local cluster, 'auto' joins the one on this machine, or HOST:PORT / ray://HOST:PORT "
                       "(put --ray after the files, or write --ray=ADDRESS); needs pip install 'eqv2-calc[ray]'")
    group.add_argument("--workers", type=int, help="model-holding Ray workers (default: one per GPU, else one per "
                       "--cpus-per-worker cores)")
    group.add_argument("--cpus-per-worker", type=int, default=1, help="cores (torch threads) per Ray worker "
                       "(default 1)")
    group.add_argument("--chunk-size", type=int, help="work items per chunk sent to a worker (default 32; 1 for "
                       "adsorb --systems)")
    group.add_argument("--retries", type=int, default=2, help="times a failed chunk is retried (default 2)")


def _version_text() -> str:
    """`eqv2 --version`: this package's version, and the torch and Python it runs with (torch not imported)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "not installed"
    return f"eqv2 {__version__} (eqv2_calc, torch {torch_version}, Python {sys.version.split()[0]})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eqv2", description="EquiformerV2 for ASE: run released eqV2 checkpoints.")
    parser.add_argument("--version", action="version", version=_version_text())
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="describe a checkpoint")
    info.add_argument("model", help="checkpoint file, registered name, hf://owner/repo/file or URL")
    info.add_argument("--json", action="store_true", help="also print the full model config as JSON")
    info.set_defaults(func=_cmd_info)
    predict = sub.add_parser("predict", help="energy, forces (and stress) of structures in any ASE-readable file")
    _add_model_options(predict)
    _add_untrained_option(predict)
    predict.add_argument("structures", nargs="+", help="structure files (xyz, extxyz, cif, POSCAR, traj, ...)")
    predict.add_argument("-o", "--output", help="write results: .csv (a table) or a structure file (extxyz with "
                         "energies, forces, stresses)")
    predict.add_argument("--batch-size", type=positive_int, default=16, help="structures per model call (default 16)")
    predict.add_argument("--json", action="store_true", help="machine-readable output")
    _add_scale_options(predict)
    predict.set_defaults(func=_cmd_predict)
    relax = sub.add_parser("relax", help="relax the structures of a file (ASE optimizer, or batched FIRE with --batch)")
    _add_model_options(relax)
    _add_untrained_option(relax)
    _add_compile_option(relax)
    relax.add_argument("structure", nargs="+", help="structure files; every frame is relaxed")
    relax.add_argument("-o", "--output", help="relaxed structures (extxyz unless the extension says); "
                       "not with --results, which writes its own")
    relax.add_argument("--fmax", type=positive_float, default=0.05, help="force threshold, eV/A (default 0.05)")
    relax.add_argument("--steps", type=positive_int, default=500, help="most optimizer steps per structure (default 500)")
    relax.add_argument("--cell", action="store_true", help="also relax the cell (needs a stress model)")
    relax.add_argument("--optimizer", default="BFGS", help="ASE optimizer name: BFGS, FIRE, LBFGS, ... (default BFGS)")
    relax.add_argument("--batch", action="store_true", help="relax all frames together with the batched FIRE")
    relax.add_argument("--batch-size", type=positive_int, default=32, help="structures per batch with --batch (default 32)")
    relax.add_argument("--plot", help="PNG of energy and max force per step")
    _add_scale_options(relax, "; relax runs the batched FIRE, --batch-size structures together")
    relax.set_defaults(func=_cmd_relax)
    md = sub.add_parser("md", help="molecular dynamics (NVE, NVT, NPT) of the last structure of a file")
    _add_model_options(md)
    _add_untrained_option(md)
    _add_compile_option(md)
    md.add_argument("structure", help="structure file (its last frame is used)")
    md.add_argument("-o", "--output", required=True, help="ASE trajectory file (.traj)")
    md.add_argument("--ensemble", default="nve", help="nve, nvt (Langevin), nvt-nose-hoover, nvt-bussi, npt")
    md.add_argument("--temperature", type=positive_float, default=300.0, help="K (default 300)")
    md.add_argument("--timestep", type=positive_float, default=1.0, help="fs (default 1)")
    md.add_argument("--steps", type=positive_int, default=100, help="number of steps (default 100)")
    md.add_argument("--pressure", type=float, default=0.0, help="NPT pressure, GPa (default 0)")
    md.add_argument("--loginterval", type=positive_int, default=10, help="log and trajectory interval in steps (default 10)")
    md.add_argument("--log", help="write the log to this file instead of stdout")
    md.add_argument("--seed", type=int, default=0, help="seed of the initial velocities / thermostat (default 0)")
    md.add_argument("--plot", help="PNG of energy and temperature against time")
    md.set_defaults(func=_cmd_md)
    adsorb = sub.add_parser("adsorb", help="AdsorbML: place an adsorbate on slabs of a bulk, relax all placements "
                            "in batches, rank them, adsorption energies and top-k structures for DFT")
    _add_model_options(adsorb)
    adsorb.add_argument("--bulk", help="bulk crystal file (CIF, POSCAR, ...); or --systems")
    adsorb.add_argument("--miller", type=int, nargs=3, metavar=("H", "K", "L"),
                        help="surface; default: every distinct one up to --max-miller")
    adsorb.add_argument("--max-miller", type=int, default=1, help="largest Miller index enumerated (default 1)")
    adsorb.add_argument("--adsorbate", help="OC20 name (*CO, *OH, *O2H, ...) or a molecule file; or --systems")
    adsorb.add_argument("--systems", metavar="CSV", help="many systems: a CSV with columns bulk, miller, adsorbate "
                        "(optional binding_atoms), one screen per row, best placement per row in DIR/results.csv "
                        "(DIR: --results, else -o); see docs/scale-out.md")
    adsorb.add_argument("--list-adsorbates", action="store_true",
                        help="list the built-in adsorbates (all OC20 ones) with their binding atoms, and exit")
    adsorb.add_argument("--binding-atoms", type=int, nargs="+", metavar="I",
                        help="0-based indices of the binding atom(s) of a molecule file")
    adsorb.add_argument("--top-k", type=int, default=5, help="best structures written for DFT (default 5)")
    adsorb.add_argument("--num-random", type=int, default=20, help="random placements per slab (default 20; "
                        "AdsorbML used 100)")
    adsorb.add_argument("--fmax", type=positive_float, default=0.05, help="force threshold, eV/A (default 0.05)")
    adsorb.add_argument("--steps", type=positive_int, default=300,
                        help="most optimizer steps per structure (default 300)")
    adsorb.add_argument("--optimizer", choices=("FIRE", "LBFGS"), default="FIRE",
                        help="batched optimizer of the relaxations (default FIRE; AdsorbML used LBFGS)")
    adsorb.add_argument("--batch", type=positive_int, default=32, help="structures relaxed together (default 32)")
    adsorb.add_argument("--max-atoms", type=int, help="atoms per model call (default: sized from the memory a "
                        "call needs; on a CPU at most 256)")
    adsorb.add_argument("--min-slab-size", type=float, default=7.0, help="slab thickness, A (default 7, OC20)")
    adsorb.add_argument("--min-ab", type=float, default=8.0, help="smallest in-plane cell length, A (default 8, OC20)")
    adsorb.add_argument("--seed", type=int, default=0, help="seed of the placements (default 0)")
    adsorb.add_argument("-o", "--output", default="adsorbml", help="output directory (default adsorbml)")
    adsorb.add_argument("--plot", action="store_true", help="also save adsorbml.png (energies and top structures)")
    adsorb.add_argument("--vasp", metavar="DIR", help="also write VASP inputs (OC20 settings) for the top-k and the "
                        "clean slab in DIR; never overwrites results")
    adsorb.add_argument("--vasp-strategy", choices=("sp", "rx"), default="sp",
                        help="AdsorbML DFT step: sp = single points (ML+SP, default), rx = relaxations (ML+RX)")
    adsorb.add_argument("--collect", metavar="DIR", help="read the finished VASP runs of a --vasp DIR and report "
                        "AdsorbML's success table against the ML ranking, then exit")
    _add_scale_options(adsorb)
    adsorb.set_defaults(func=_cmd_adsorb)
    reaction = sub.add_parser("reaction", help="transition states of a surface reaction after AdsorbML: place "
                              "reactants and products, relax them in batches, pair states atom to atom, NEBs of the "
                              "best pairs (docs/reactions.md)")
    _add_model_options(reaction)
    reaction.add_argument("--reaction", help="in OC20 adsorbate names: \"*CO -> *C + *O\", \"*OH + *H -> *OH2\", "
                          "\"*CO -> CO(g)\" (CatTSunami's 98: --list-reactions)")
    reaction.add_argument("--bulk", help="bulk crystal file (CIF, POSCAR, ...), cut along --miller")
    reaction.add_argument("--miller", type=int, nargs=3, metavar=("H", "K", "L"), help="surface of --bulk")
    reaction.add_argument("--slab", help="slab file instead of --bulk (tags 1 = surface; untagged: the top 2 A)")
    reaction.add_argument("--list-reactions", action="store_true", help="list CatTSunami's reactions, and exit")
    reaction.add_argument("--top-k", type=positive_int, default=3, help="NEBs run, on the best-ranked pairs of "
                          "states (default 3)")
    reaction.add_argument("--num-random", type=int, default=6, help="random placements per species (default 6; "
                          "AdsorbML used 100), besides one per heuristic site")
    reaction.add_argument("--n-initial", type=positive_int, default=3,
                          help="states kept on the side with one adsorbate (default 3)")
    reaction.add_argument("--n-final", type=positive_int, default=4,
                          help="states of the other side per kept state (default 4)")
    reaction.add_argument("--images", type=positive_int, default=5, help="moving images a band (default 5)")
    reaction.add_argument("--fmax", type=positive_float, default=0.05, help="relaxations: force threshold, eV/A "
                          "(default 0.05)")
    reaction.add_argument("--steps", type=positive_int, default=300, help="relaxations: most FIRE steps (default 300)")
    reaction.add_argument("--neb-fmax", type=positive_float, default=0.05, help="NEB force threshold, eV/A "
                          "(default 0.05)")
    reaction.add_argument("--neb-steps", type=positive_int, default=300, help="most NEB steps a band (default 300)")
    reaction.add_argument("--no-climb", action="store_true", help="no climbing image")
    reaction.add_argument("--max-atoms", type=int, help="atoms per model call (default: sized from memory)")
    reaction.add_argument("--min-slab-size", type=float, default=7.0, help="slab thickness, A (default 7, OC20)")
    reaction.add_argument("--min-ab", type=float, default=8.0, help="smallest in-plane cell length, A (default 8)")
    reaction.add_argument("--seed", type=int, default=0, help="seed of the placements (default 0)")
    reaction.add_argument("-o", "--output", default="reaction", help="output directory (default reaction)")
    reaction.add_argument("--plot", action="store_true", help="also save reaction.png (energy along each band, "
                          "barriers marked) and ts.png (the transition state)")
    reaction.set_defaults(func=_cmd_reaction)
    neb = sub.add_parser("neb", help="nudged elastic band between two structure files (batched images, climbing "
                         "image, plot), or --benchmark on OC20NEB trajectories; docs/neb.md")
    _add_model_options(neb)
    _add_untrained_option(neb)
    neb.add_argument("initial", nargs="?", help="initial state file (its last frame; extxyz, traj, POSCAR, ...)")
    neb.add_argument("final", nargs="?", help="final state file: the same atoms in the same order and cell")
    neb.add_argument("--images", type=int, default=7, help="moving images between the end points (default 7)")
    neb.add_argument("--climb", action=argparse.BooleanOptionalAction, default=True, help="climbing image after a "
                     "first stage converged to fmax + 0.4 eV/A (default on; --no-climb: plain NEB)")
    neb.add_argument("--fmax", type=positive_float, default=0.05, help="NEB force threshold, eV/A (default 0.05; "
                     "also of the end-point relaxations)")
    neb.add_argument("--steps", type=positive_int, default=500, help="most optimizer steps (default 500)")
    neb.add_argument("--k", type=positive_float, default=None, help="spring constant, eV/A^2 (default 0.1, ASE's; "
                     "1.0 with --benchmark, CatTSunami's)")
    neb.add_argument("--method", choices=("improvedtangent", "aseneb", "eb", "spline", "string"), default=None,
                     help="ASE NEB method (default improvedtangent; aseneb with --benchmark, as CatTSunami's OCPNEB)")
    neb.add_argument("--optimizer", choices=("FIRE", "BFGS", "LBFGS", "MDMin"), default=None,
                     help="ASE optimizer of the band (default FIRE; BFGS with --benchmark, as CatTSunami's validation)")
    neb.add_argument("--interpolation", choices=("idpp", "linear"), default="idpp",
                     help="initial band between the end points (default idpp)")
    neb.add_argument("--no-relax-ends", action="store_true", help="use the end points as given (default: relax "
                     "both with the model first, batched FIRE to --fmax)")
    neb.add_argument("-o", "--output", default="neb", help="output directory (default neb): band.extxyz, band.traj, "
                     "ts.extxyz, ts.traj, neb.json (with --benchmark: oc20neb.csv, oc20neb.json, parity.png)")
    neb.add_argument("--plot", action="store_true", help="also save neb.png: energy along the band with the barrier "
                     "and the transition state")
    neb.add_argument("--benchmark", metavar="DIR", help="run the model's NEB from the first band of every OC20NEB "
                     "trajectory (*.traj) in DIR and compare its barrier with the DFT band's last frames")
    neb.add_argument("--limit", type=positive_int, help="with --benchmark: only the first N trajectories")
    neb.set_defaults(func=_cmd_neb)
    evaluate = sub.add_parser("evaluate", help="OC20/OMat24 metrics of a model on a labelled dataset (fairchem LMDB, "
                              ".aselmdb, ASE db, extxyz); docs/datasets.md")
    _add_model_options(evaluate)
    evaluate.add_argument("--data", required=True, help="fairchem *.lmdb file or folder, .aselmdb, .db or ase.io file")
    evaluate.add_argument("--limit", type=int, help="evaluate only the first N structures")
    evaluate.add_argument("--batch-size", type=int, default=16, help="structures per model call (default 16)")
    evaluate.add_argument("-o", "--output", metavar="DIR", help="write metrics.json, structures.csv, parity.png")
    evaluate.add_argument("--energy-kind", choices=("adsorption", "total"), help="what the file's energies are "
                          "(default: guessed; OC20 LMDBs adsorption, OC22/ODAC LMDBs and ASE databases total)")
    evaluate.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS", help="through Ray workers (chunk "
                          "store in DIR/scale, resumable): no ADDRESS starts a local cluster, or 'auto' / HOST:PORT")
    evaluate.set_defaults(func=_cmd_evaluate)
    demo = sub.add_parser("demo", help="relax CO on Cu(111), MD of a Cu slab and a small *O/Cu(111) adsorbate "
                          "screen with the demo model; saves a plot")
    _add_model_options(demo)
    demo.add_argument("-o", "--output", default=".", help="directory of the plot (default: current directory)")
    demo.set_defaults(func=_cmd_demo)
    _add_checkpoints_parser(sub)
    train = sub.add_parser("train", help="train or fine-tune from a YAML config (see configs/demo_emt.yaml)")
    train.add_argument("config", help="training config (YAML); under torchrun it trains with DDP")
    train.set_defaults(func=_cmd_train)
    data = sub.add_parser("data", help="datasets: `eqv2 data emt OUT.db` builds an EMT-labelled one, "
                          "`eqv2 data active OUT.db` adds a model's own relaxations, `eqv2 data neb OUT.db` EMT's NEB paths")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    emt = data_commands.add_parser("emt", help="bulk, slabs and adsorbates labelled by ASE's EMT "
                                   "(its own options: eqv2 data emt --help)", add_help=False)
    emt.set_defaults(func=_cmd_data_emt, passes_through=True, own_parser="eqv2_calc.data.emt:build_parser")
    active = data_commands.add_parser("active", help="a model's own relaxations of fresh adsorbate systems, "
                                      "labelled by EMT (its own options: eqv2 data active --help)", add_help=False)
    active.set_defaults(func=_cmd_data_active, passes_through=True, own_parser="eqv2_calc.data.active:build_parser")
    neb_data = data_commands.add_parser("neb", help="EMT's NEB paths of adatom and vacancy hops "
                                   "(its own options: eqv2 data neb --help)", add_help=False)
    neb_data.set_defaults(func=_cmd_data_neb, passes_through=True, own_parser="eqv2_calc.data.neb_paths:build_parser")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passes_through", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    warnings.formatwarning = _format_warning
    try:
        from .threads import configure

        configure(getattr(args, "threads", None))  # before the command imports torch
        return args.func(args)
    # user-caused failures (bad files, names, options, devices): one line, no traceback
    except (EquiformerV2Error, OSError, ValueError, FloatingPointError, RuntimeError) as exc:
        print(f"eqv2: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
