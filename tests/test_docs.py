"""README.md and docs/: every python and bash block runs (or, marked no-run, its names and flags exist).

The rules a block follows are in tests/snippets.py's docstring and docs/README.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from snippets import CHECKED, REPO, all_blocks, block_problems, command_lines, doc_pages, parse_blocks, \
    python_name_problems, run_in_subprocess

BLOCKS = [b for b in all_blocks() if b.language in CHECKED]
RUNNABLE = [b for b in BLOCKS if b.no_run is None]


@pytest.fixture(scope="module")
def run_results(tmp_path_factory) -> dict[str, dict]:
    return run_in_subprocess(RUNNABLE, tmp_path_factory.mktemp("snippets"))


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_names_and_flags_exist(block) -> None:
    assert not block_problems(block), f"{block.id}:\n" + "\n".join(block_problems(block))


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_block_runs(block, run_results) -> None:
    error = run_results[block.id]["error"]
    assert error is None, f"{block.id} failed (mark it `<!-- snippet: no-run (reason) -->` only if it " \
                          f"cannot run offline in seconds):\n{error}"


def test_every_block_names_its_language() -> None:
    untagged = [b.id for path in doc_pages() for b in parse_blocks(path) if not b.language]
    assert not untagged, f"fenced blocks without a language (python, bash, text, ...): {untagged}"


LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


def test_relative_links_point_to_files() -> None:
    broken = []
    for path in doc_pages():
        text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
        for target in (m["target"] for m in LINK.finditer(text)):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            file = (path.parent / target.split("#")[0]).resolve()
            if not file.exists():
                broken.append(f"{path.relative_to(REPO)}: {target}")
    assert not broken, f"relative links to missing files: {broken}"


# --- the checker itself: it must catch what it is for -----------------------------------------------

def test_checker_catches_a_missing_name_keyword_or_flag(tmp_path: Path) -> None:
    assert python_name_problems("from eqv2_calc.calculator import EquiformerV2Calculator\n"
                                "EquiformerV2Calculator(model='x', device='cpu')\n") == []
    assert python_name_problems("import eqv2_calc\neqv2_calc.relax_all(1)\n")
    assert python_name_problems("from eqv2_calc.calculator import NoSuchCalculator\n")
    assert python_name_problems("import eqv2_calc\neqv2_calc.predict([], batchsize=4)\n")
    page = tmp_path / "page.md"
    page.write_text("text\n\n<!-- snippet: no-run (needs a GPU) -->\n```bash\n"
                    "eqv2 relax a.xyz -o b.xyz --fmax 0.05 \\\n  --no-such-flag\neqv2 frobnicate\n"
                    "eqv2 data emt out.db --n-systems 3 && eqv2 checkpoints list --json\n```\n")
    (block,) = parse_blocks(page, tmp_path)
    assert block.no_run == "needs a GPU" and block.line == 4
    assert command_lines(block.code)[0][-1] == "--no-such-flag"
    problems = block_problems(block)
    assert len(problems) == 2 and "--no-such-flag" in problems[0] and "frobnicate" in problems[1]


def test_cli_md_is_what_the_parsers_print() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_cli_docs", REPO / "tools" / "gen_cli_docs.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    recorded = (REPO / "docs" / "cli.md").read_text()
    if f"(Python {tool.PYTHON} argparse)" not in recorded:
        pytest.skip(f"docs/cli.md was generated with another Python's argparse layout than {tool.PYTHON}")
    assert recorded == tool.render(), "docs/cli.md is out of date: run `python tools/gen_cli_docs.py`"


def test_cli_md_sections_are_the_help_a_user_sees() -> None:
    command = ["predict"]
    import os
    import subprocess
    import sys

    # argparse wraps at COLUMNS - 2; gen_cli_docs.py at 100
    shown = subprocess.run([sys.executable, "-m", "eqv2_calc.cli", *command, "--help"], capture_output=True,
                           text=True, check=True, env={**os.environ, "COLUMNS": "102"}).stdout.rstrip()
    section = (REPO / "docs" / "cli.md").read_text().split(f"## eqv2 {' '.join(command)}\n\n```text\n")[1]
    assert section.split("\n```")[0] == shown


def test_models_md_table_names_are_registered() -> None:
    from eqv2_calc.hub import load_registry

    registry = load_registry()
    rows = [line.split("|")[1:3] for line in (REPO / "docs" / "models.md").read_text().splitlines()
            if line.startswith("| `")]
    names = [name for cells in rows for name in re.findall(r"`([^`]+)`", "".join(cells))]
    assert len(names) > 10
    unknown = [name for name in names if registry.find(name) is None]
    assert not unknown, f"docs/models.md names models the registry does not have: {unknown}"


def test_training_configs_in_the_docs_use_existing_options() -> None:
    import dataclasses

    import yaml

    from eqv2_calc.train.config import TrainConfig

    options = {f.name for f in dataclasses.fields(TrainConfig)}
    configs = [b for b in all_blocks() if b.language == "yaml" and "data:" in b.code]
    assert configs, "docs/training.md shows a training config"
    for block in configs:
        unknown = set(yaml.safe_load(block.code)) - options
        assert not unknown, f"{block.id}: no training option {sorted(unknown)}"


def test_tracked_files_name_no_path_of_the_build_machine() -> None:
    """A clone is self-contained: no tracked file names an absolute path of the machine it was built on, and the
    reference-venv recipe, its shims and the golden tools it names are in the repository."""
    import subprocess

    found = subprocess.run(["git", "grep", "-nE", "/(work|tmp|root)/"], cwd=REPO, capture_output=True, text=True)
    assert found.returncode == 1 and not found.stdout, f"absolute paths in tracked files:\n{found.stdout}"
    recipe = (REPO / "tools" / "reference" / "make_ref_venv.sh").read_text()
    assert "fairchem-core==1.10.0" in recipe and "PYTHONPATH=tools/reference/shims" in recipe
    for shim in ("torch_scatter/__init__.py", "torch_scatter/utils.py", "torch_sparse/__init__.py"):
        assert (REPO / "tools" / "reference" / "shims" / shim).is_file()
    for tool in ("tools/make_golden.py", "tools/make_graph_golden.py", "tests/data/README.md"):
        assert "PYTHONPATH=tools/reference/shims .venv-ref/bin/python" in (REPO / tool).read_text(), tool


def test_models_md_energy_offsets_are_the_registry_s() -> None:
    """docs/models.md's table of energy normalizer means is the registry's `energy_mean_eV`, file by file."""
    from eqv2_calc import hub

    text = (REPO / "docs" / "models.md").read_text().split("## Energies across cell sizes")[1].split("\n## ")[0]
    rows = re.findall(r"^\| `([^`]+)` \| (\S+)(?: eV)? \|$", text, flags=re.M)
    recorded = {e.name: e.energy_mean_eV for e in hub.load_registry().entries if e.energy_mean_eV is not None}
    assert {name: float(mean) for name, mean in rows} == pytest.approx(
        {name: round(mean, 6) for name, mean in recorded.items()})
