"""benchmarks/gpu_check.py keeps working: its CI-size mode on the CPU (the GPU run is the same code, larger)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_check.py"


def test_gpu_check_cpu_mode(tmp_path: Path, capsys) -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    report = gpu_check.main(["--device", "cpu", "--out", str(tmp_path / "check.json")])

    assert json.loads((tmp_path / "check.json").read_text())["meta"]["device"] == "cpu"
    assert "parity vs float64" in capsys.readouterr().out
    for model in ("oc20", "omat"):
        assert report["parity"][model]["float64"]["dF"] == 0.0  # same device: identical
        assert report["parity"][model]["float32"]["dF"] < 1e-4
    assert report["parity"]["omat"]["float32"]["dS"] < 1e-5
    assert report["host_syncs"]["forward"] == 0
    assert 0 < report["host_syncs"]["graph_build"] <= 5
    assert {r["precision"] for r in report["speed"]} == {"float32", "tf32", "bfloat16"}
    assert all(r["gflop"] > 0 and r["call_s"] > 0 for r in report["speed"])
    assert report["throughput"]["relax_many_steps_done"] == report["throughput"]["relax_steps"]
    assert report["neb"]["steps_done"] == [2, 2] and report["neb"]["max_energy_difference_eV"] < 1e-3
    assert [r["skin"] for r in report["md"]] == [0.0, 1.0] and report["md"][1]["graph_builds"] <= 1
    assert report["compiled"]["recompiles_after_first_call"] == 0
    assert all(r["dF"] < 1e-5 for r in report["compiled"]["rows"])
