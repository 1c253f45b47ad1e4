"""`eqv2` command line end to end (as a subprocess, like a user runs it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from ase.build import bulk
from ase.io import write

from conftest import DATA

CHECKPOINT = str(DATA / "ckpt_omat_stress.pt")


def eqv2(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eqv2_calc.cli", *args], capture_output=True, text=True, check=False)


def eqv2_in_process(capsys: pytest.CaptureFixture, *args: str) -> subprocess.CompletedProcess:
    """`eqv2 ARGS` through `cli.main` in this process (no torch start per call); stdout/stderr captured."""
    from eqv2_calc.cli import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(["eqv2", *args], code, out.out, out.err)


def test_info() -> None:
    result = eqv2("info", CHECKPOINT, "--json")
    assert result.returncode == 0, result.stderr
    assert "energy, forces, stress" in result.stdout
    assert '"lmax_list": [\n    4\n  ]' in result.stdout


def test_predict_table_and_json(tmp_path) -> None:
    path = tmp_path / "cu.extxyz"
    write(path, [bulk("Cu", "fcc", a=3.6), bulk("NaCl", "rocksalt", a=5.6)])
    table = eqv2("predict", "--model", CHECKPOINT, "--device", "cpu", str(path))
    assert table.returncode == 0, table.stderr
    assert "Cu" in table.stdout and "ClNa" in table.stdout
    records = json.loads(eqv2("predict", "--model", CHECKPOINT, "--json", str(path)).stdout)
    assert [r["formula"] for r in records] == ["Cu", "ClNa"]
    assert len(records[0]["stress"]) == 6


def test_errors_are_reported_without_traceback(tmp_path) -> None:
    missing = eqv2("info", str(tmp_path / "missing.pt"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    empty = tmp_path / "empty.xyz"
    write(empty, bulk("Cu") [[]])
    bad = eqv2("predict", "--model", CHECKPOINT, str(empty))
    assert bad.returncode == 2 and "no atoms" in bad.stderr


def _slab_file(tmp_path):
    from ase.build import add_adsorbate, fcc111, molecule

    slab = fcc111("Cu", size=(2, 2, 2), vacuum=5.0)
    add_adsorbate(slab, molecule("CO")[::-1], 1.9, "ontop")  # C-down: ase lists O first
    path = tmp_path / "slabs.extxyz"
    write(path, [slab, slab])
    return path


def test_predict_reads_cif_poscar_and_writes_csv_and_extxyz(tmp_path) -> None:
    from ase.io import read

    write(tmp_path / "cu.cif", bulk("Cu", "fcc", a=3.6))
    write(tmp_path / "POSCAR", bulk("NaCl", "rocksalt", a=5.6), format="vasp")
    files = [str(tmp_path / "cu.cif"), str(tmp_path / "POSCAR")]
    csv_run = eqv2("predict", "--model", CHECKPOINT, "--quiet", *files, "-o", str(tmp_path / "out.csv"))
    assert csv_run.returncode == 0, csv_run.stderr
    rows = (tmp_path / "out.csv").read_text().splitlines()
    assert rows[0].startswith("structure,formula,natoms,energy_eV") and len(rows) == 3
    xyz_run = eqv2("predict", "--model", CHECKPOINT, "--quiet", *files, "-o", str(tmp_path / "out.extxyz"))
    assert xyz_run.returncode == 0, xyz_run.stderr
    frames = read(tmp_path / "out.extxyz", index=":")
    assert [a.get_chemical_formula() for a in frames] == ["Cu", "ClNa"]
    assert frames[1].get_forces().shape == (2, 3)


def test_relax_and_md_commands(tmp_path) -> None:
    from ase.io import read

    slabs = _slab_file(tmp_path)
    for extra in ([], ["--batch"]):
        out = tmp_path / "relaxed.extxyz"
        run = eqv2("relax", "--model", CHECKPOINT, "--quiet", str(slabs), "-o", str(out), "--steps", "3",
                   "--plot", str(tmp_path / "relax.png"), *extra)
        assert run.returncode == 1, run.stderr  # 3 steps of a random model: written, reported, not converged
        assert len(read(out, index=":")) == 2 and "NO" in run.stdout and (tmp_path / "relax.png").stat().st_size
    write(tmp_path / "POSCAR", bulk("Cu", "fcc", a=3.6, cubic=True), format="vasp")
    md = eqv2("md", "--model", CHECKPOINT, str(tmp_path / "POSCAR"), "--ensemble", "nvt", "--temperature", "300",
              "--steps", "4", "--loginterval", "2", "-o", str(tmp_path / "md.traj"), "--plot", str(tmp_path / "md.png"))
    assert md.returncode == 0, md.stderr
    assert "T_K" in md.stdout and len(read(tmp_path / "md.traj", index=":")) == 3
    assert (tmp_path / "md.png").stat().st_size > 0


def test_bad_files_get_one_line_errors(tmp_path, capsys) -> None:
    (tmp_path / "unknown.xyz").write_text("1\n\nXx 0 0 0\n")
    (tmp_path / "garbage.cif").write_text("this is not a CIF\n")
    write(tmp_path / "empty.extxyz", bulk("Cu")[[]])
    cases = {"unknown.xyz": "unknown element", "garbage.cif": "cannot read", "empty.extxyz": "no atoms",
             "missing.cif": "no such file"}
    for name, message in cases.items():
        for command in (["predict"], ["relax", "-o", str(tmp_path / "out.xyz")], ["md", "-o", str(tmp_path / "o.traj")]):
            run = eqv2_in_process(capsys, *command, "--model", CHECKPOINT, str(tmp_path / name))
            assert run.returncode == 2, (name, command, run.stderr)
            assert message in run.stderr and "Traceback" not in run.stderr
            assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    optimizer = eqv2_in_process(capsys, "relax", "--model", CHECKPOINT, str(_slab_file(tmp_path)), "-o",
                                str(tmp_path / "x.xyz"), "--optimizer", "Nope")
    assert optimizer.returncode == 2 and "unknown optimizer" in optimizer.stderr


def test_adsorb_screens_and_writes_results(tmp_path) -> None:
    write(tmp_path / "Cu.cif", bulk("Cu", "fcc", a=3.59))
    out = tmp_path / "screen"
    run = eqv2("adsorb", "--bulk", str(tmp_path / "Cu.cif"), "--miller", "1", "1", "1", "--adsorbate", "*O",
               "--top-k", "2", "--num-random", "1", "--steps", "5", "--min-slab-size", "5", "--min-ab", "5",
               "--device", "cpu", "--quiet", "-o", str(out), "--plot")
    assert run.returncode == 0, run.stderr
    assert "(1,1,1) *O" in run.stdout and "E_ads (eV)" in run.stdout and "EMT gas references" in run.stdout
    assert (out / "adsorbml.csv").is_file() and (out / "adsorbml.json").is_file() and (out / "adsorbml.png").is_file()
    assert len(list((out / "top").glob("*.POSCAR"))) == 2


def test_adsorb_bad_inputs_get_one_line_errors(tmp_path, capsys) -> None:
    from ase.build import molecule

    write(tmp_path / "Cu.cif", bulk("Cu", "fcc", a=3.59))
    write(tmp_path / "Fe.cif", bulk("Fe", "fcc", a=3.6))
    write(tmp_path / "water.xyz", molecule("H2O"))
    common = ["--miller", "1", "1", "1", "--min-slab-size", "5", "--min-ab", "5", "-o", str(tmp_path / "o")]
    cases = {
        ("Cu.cif", "*XY"): "unknown adsorbate",
        ("Cu.cif", str(tmp_path / "water.xyz")): "no binding atom",
        ("Fe.cif", "*O"): "Fe",
        ("missing.cif", "*O"): "no such file",
    }
    for (bulk_file, adsorbate), message in cases.items():
        run = eqv2_in_process(capsys, "adsorb", "--bulk", str(tmp_path / bulk_file), "--adsorbate", adsorbate, *common)
        assert run.returncode == 2, (bulk_file, adsorbate, run.stderr)
        assert message in run.stderr and "Traceback" not in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr


# ------------------------------------------------------------------- what a new user met (in-process: fast)
@pytest.mark.parametrize("argv, flag", [
    (["md", "x.xyz", "-o", "x.traj", "--steps", "0"], "--steps"),
    (["md", "x.xyz", "-o", "x.traj", "--timestep", "-1"], "--timestep"),
    (["md", "x.xyz", "-o", "x.traj", "--temperature", "0"], "--temperature"),
    (["md", "x.xyz", "-o", "x.traj", "--loginterval", "-5"], "--loginterval"),
    (["relax", "x.xyz", "-o", "y.xyz", "--fmax", "-0.05"], "--fmax"),
    (["relax", "x.xyz", "-o", "y.xyz", "--steps", "-3"], "--steps"),
    (["adsorb", "--bulk", "x.cif", "--adsorbate", "*O", "--fmax", "nan"], "--fmax"),
])
def test_non_positive_numbers_are_refused_naming_the_flag(argv, flag, capsys) -> None:
    from eqv2_calc.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and f"argument {flag}: must be" in capsys.readouterr().err


def test_structure_errors_name_file_and_frame(tmp_path, capsys) -> None:
    from ase import Atoms

    from eqv2_calc.cli import main

    path = tmp_path / "frames.xyz"
    write(path, [bulk("Cu", cubic=True), Atoms("Cu2", positions=[(0, 0, 0), (0, 0, 0.1)], cell=[9, 9, 9], pbc=True)])
    for argv in (["predict", str(path)], ["relax", str(path), "-o", str(tmp_path / "r.xyz")],
                 ["relax", str(path), "--batch", "-o", str(tmp_path / "r.xyz")]):
        assert main([*argv, "--model", CHECKPOINT, "--quiet"]) == 2
        assert f"{path}:1: atoms Cu0-Cu1 are 0.100 A apart" in capsys.readouterr().err
    iron = tmp_path / "fe.xyz"
    write(iron, bulk("Fe", cubic=True))
    assert main(["predict", str(iron), "--quiet"]) == 2  # the demo model lists its training elements
    assert f"{iron}:0 contains Fe, which eqV2-demo-EMT was not trained on" in capsys.readouterr().err
    assert main(["predict", str(iron), "--quiet", "--allow-untrained-elements"]) == 0


def _results_error(results: str) -> str:
    """The `error` column of the one row of DIR/results.csv."""
    import csv

    with open(f"{results}/results.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    return row["error"]


@pytest.mark.filterwarnings("ignore")
def test_an_element_gets_the_same_message_on_every_path(tmp_path, capsys) -> None:
    """U given to the demo model: `eqv2 predict` and `eqv2 predict --results` (and `relax --results`) say the
    same, with and without --allow-untrained-elements (then: beyond the elements the model embeds)."""
    from ase import Atoms

    path = tmp_path / "cu_u.xyz"
    write(path, Atoms("CuU", positions=[(0, 0, 0), (2.6, 0, 0)], cell=[9, 9, 9], pbc=True))
    untrained = "contains U, which eqV2-demo-EMT was not trained on (it knows Cu Ag Au Ni Pd Pt Al H C N O)"
    embeds = "atom 1 has atomic number 92 (U), beyond the elements this model embeds (Z = 1..89)"
    for opt_out, message in (([], untrained), (["--allow-untrained-elements"], embeds)):
        direct = eqv2_in_process(capsys, "predict", str(path), "--quiet", *opt_out)
        assert direct.returncode == 2 and message in direct.stderr, direct.stderr
        for command in ("predict", "relax"):
            results = tmp_path / f"{command}{len(opt_out)}"
            scaled = eqv2_in_process(capsys, command, str(path), "--quiet", "--results", str(results), *opt_out)
            assert scaled.returncode == 1 and f"structure {path}:0 failed: " in scaled.stdout, scaled
            assert message in _results_error(str(results))


class _Payload:
    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_bad_checkpoints_get_one_line_of_ours(tmp_path, capsys) -> None:
    import torch

    from eqv2_calc.cli import main

    structure = tmp_path / "cu.xyz"
    write(structure, bulk("Cu"))
    random_bytes, code = tmp_path / "random.pt", tmp_path / "code.pt"
    random_bytes.write_bytes(bytes(range(256)) * 8)
    torch.save({"config": {}, "state_dict": _Payload(tmp_path / "ran")}, code)
    for path in (random_bytes, code):
        assert main(["predict", "--model", str(path), str(structure), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "weights_only" not in err and f"cannot read checkpoint {path}" in err
    assert "never runs code" in err and not (tmp_path / "ran").exists()


def test_output_with_results_is_refused(tmp_path, capsys) -> None:
    from eqv2_calc.cli import main

    structure = tmp_path / "cu.xyz"
    write(structure, bulk("Cu"))
    for command in ("predict", "relax"):
        argv = [command, str(structure), "-o", str(tmp_path / "out.csv"), "--results", str(tmp_path / "res")]
        assert main(argv) == 2
        assert "-o/--output" in capsys.readouterr().err and not (tmp_path / "res").exists()


def test_adsorb_defaults_are_the_screens() -> None:
    """The parser spells its defaults out (it imports no torch); they must stay the library's."""
    from eqv2_calc.adsorbml.screen import DEFAULT_NUM_RANDOM, SCREEN_FMAX, SCREEN_OPTIMIZER, SCREEN_STEPS
    from eqv2_calc.cli import build_parser
    from eqv2_calc.relax import BATCH_OPTIMIZERS

    args = build_parser().parse_args(["adsorb", "--bulk", "Cu.cif", "--adsorbate", "*CO"])
    assert (args.optimizer, args.num_random, args.fmax, args.steps) == (SCREEN_OPTIMIZER, DEFAULT_NUM_RANDOM,
                                                                         SCREEN_FMAX, SCREEN_STEPS)
    action = next(a for a in build_parser()._subparsers._group_actions[0].choices["adsorb"]._actions
                  if a.dest == "optimizer")
    assert set(action.choices) == set(BATCH_OPTIMIZERS)


def test_compile_option_of_md_and_relax(tmp_path, capsys, monkeypatch) -> None:
    """--compile hands md and relax (one by one and --batch) a model whose network runs through torch.compile
    (recorded here, not run: inductor takes minutes); with --results it is refused."""
    import torch

    backends = []
    monkeypatch.setattr(torch, "compile", lambda network, backend, options: backends.append(backend) or network)
    write(tmp_path / "POSCAR", bulk("Cu", "fcc", a=3.6, cubic=True), format="vasp")
    md = eqv2_in_process(capsys, "md", "--model", CHECKPOINT, str(tmp_path / "POSCAR"), "--steps", "2", "--quiet",
                         "-o", str(tmp_path / "md.traj"), "--compile")
    assert md.returncode == 0, md.stderr
    for extra in ([], ["--batch"]):
        relax = eqv2_in_process(capsys, "relax", "--model", CHECKPOINT, "--quiet", str(_slab_file(tmp_path)), "-o",
                                str(tmp_path / "relaxed.extxyz"), "--steps", "2", "--compile", *extra)
        assert relax.returncode == 1, relax.stderr  # written, not converged in 2 steps
    assert backends == ["inductor"] * 3
    scaled = eqv2_in_process(capsys, "relax", "--model", CHECKPOINT, str(_slab_file(tmp_path)), "--results",
                             str(tmp_path / "results"), "--compile")
    assert scaled.returncode == 2 and "--compile" in scaled.stderr
