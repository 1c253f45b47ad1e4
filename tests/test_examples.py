"""Every script in examples/ runs as it is (offline, CPU) and prints its results.

They run exactly as a user runs them, with the embedded demo model; the test is skipped until that
model is registered (a random-weight checkpoint neither converges nor finishes in a minute).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from eqv2_calc.hub import find_entry
from eqv2_calc.predict import DEMO_MODEL

# run in their small-size mode by tests/test_torchsim.py and tests/test_bulk_properties.py
SMALL_MODE_TESTED = {"torchsim_relax.py", "bulk_properties.py"}
EXAMPLES = sorted(p for p in (Path(__file__).parents[1] / "examples").glob("*.py") if p.name not in SMALL_MODE_TESTED)
# A hang guard, not a speed test: examples run small systems, but a busy shared host may be many times slower.
HANG_GUARD_S = 1800


def run_example(name: str, *argv: str) -> None:
    """`python examples/<name> *argv`, run in this process (no second torch import) through the script's main()."""
    path = Path(__file__).parents[1] / "examples" / name
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(list(argv))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script: Path, tmp_path) -> None:
    if find_entry(DEMO_MODEL) is None:
        pytest.skip(f"the embedded demo model {DEMO_MODEL} is not registered yet")
    env = {**os.environ, "EQV2_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                            env=env, timeout=HANG_GUARD_S, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip(), "an example must print its results"
    assert "Traceback" not in result.stderr
    if script.name == "relax_co_on_cu.py":  # CO stands C-down on top of Cu and the printout measures from C
        numbers = {key: float(value) for key, value in
                   re.findall(r"(C-O bond|Cu-C|C height above the top Cu layer|O height) (\d+\.\d+) A", result.stdout)}
        assert 1.05 < numbers["C-O bond"] < 1.3 and 1.7 < numbers["Cu-C"] < 2.2, result.stdout
        assert 1.6 < numbers["C height above the top Cu layer"] < numbers["O height"] - 0.9, result.stdout


def test_demo_places_co_carbon_down() -> None:
    from eqv2_calc.adsorbml import get_adsorbate
    from eqv2_calc.demo import co_on_cu111

    atoms = co_on_cu111()
    (carbon,), (oxygen,) = atoms.symbols.search("C"), atoms.symbols.search("O")
    top = atoms.positions[atoms.symbols.search("Cu"), 2].max()
    assert atoms.positions[carbon, 2] - top == pytest.approx(2.0)
    library = get_adsorbate("*CO").atoms  # the OC20 geometry, C first
    assert atoms.positions[oxygen, 2] - atoms.positions[carbon, 2] == pytest.approx(library.get_distance(0, 1))


def test_demo_prints_results_and_saves_the_plot(tmp_path) -> None:
    from eqv2_calc.calculator import EquiformerV2Calculator
    from eqv2_calc.demo import DEMO_NOTICE, FIGURE_NAME, run_demo
    from test_predict import demo_like_potential

    lines: list[str] = []
    calc = EquiformerV2Calculator(demo_like_potential(), device="cpu")
    path = run_demo(tmp_path / "demo", calc, echo=lines.append)
    text = "\n".join(lines)
    assert path == tmp_path / "demo" / FIGURE_NAME and path.stat().st_size > 10_000
    assert DEMO_NOTICE in text and "not on DFT" in text
    assert "relaxed energy" in text and "BFGS steps" in text and "above the top Cu" in text and "energy drift" in text and "K" in text
