"""examples/bulk_properties.py: matcalc's EoS, elastic tensor and phonons through the calculator (small size)."""

from __future__ import annotations

import pytest

from test_examples import run_example

pytest.importorskip("matcalc", reason="the bulk-properties example needs matcalc and phonopy")
pytest.importorskip("phonopy", reason="the bulk-properties example needs matcalc and phonopy")


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_bulk_properties_example_small(tmp_path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    # no hub here: the materials checkpoint (named by default) must be skipped with the reason, not crash
    monkeypatch.setenv("EQV2_OFFLINE", "1")
    monkeypatch.setenv("EQV2_CACHE", str(tmp_path / "cache"))
    run_example("bulk_properties.py", "--small", "-o", str(tmp_path))
    out = capsys.readouterr().out
    assert "skipped EquiformerV2-31M-OMAT24-MP-sAlex" in out and "cannot be downloaded" in out
    rows = {line[:34].strip(): [float(x) for x in line[34:].split()] for line in out.splitlines()
            if line.startswith(("demo model", "EMT"))}
    demo, emt = rows["demo model"], rows["EMT"]  # a, B_EoS, B_VRH, C11, C12, C44, nu_max
    assert demo[0] == pytest.approx(emt[0], rel=2e-3)  # the demo model was trained on EMT labels
    assert demo[1] == pytest.approx(emt[1], rel=0.3) and demo[6] == pytest.approx(emt[6], rel=0.1)
    assert (tmp_path / "bulk_properties.png").stat().st_size > 10_000
