"""One version, said the same way by the package, the command line, pyproject.toml and CHANGELOG.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import eqv2_calc
from eqv2_calc.cli import main

REPO = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11


def test_eqv2_version_prints_the_package_version(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"eqv2 {eqv2_calc.__version__} (eqv2_calc, torch ")


def test_pyproject_reads_the_version_from_the_package() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "eqv2_calc.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", eqv2_calc.__version__)


def test_changelog_has_a_section_for_this_version() -> None:
    versions = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (REPO / "CHANGELOG.md").read_text(), flags=re.M)
    assert versions and versions[0] == eqv2_calc.__version__
