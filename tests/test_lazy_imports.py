"""`import eqv2_calc` stays light; the public names load their submodules on first use."""

from __future__ import annotations

import subprocess
import sys

import eqv2_calc


def test_import_eqv2_calc_loads_no_torch_ase_or_torchsim() -> None:
    code = ("import sys, eqv2_calc; "
            "print(sorted(m for m in ('torch', 'ase', 'torch_sim', 'eqv2_calc.calculator') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_calculator_at_the_top_level() -> None:
    from eqv2_calc import EquiformerV2Calculator
    from eqv2_calc.calculator import EquiformerV2Calculator as defined

    assert EquiformerV2Calculator is defined
    assert "EquiformerV2Calculator" in eqv2_calc.__all__
