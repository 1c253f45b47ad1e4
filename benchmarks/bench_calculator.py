"""Energy + forces latency and peak memory of the 31M network at ~20/50/100/200 atoms, ours vs fairchem 1.10.

    python benchmarks/bench_calculator.py [--repeats 3] [--out benchmarks/results/calculator.json]

The same measurement as benchmarks/compare_fairchem.py (see there), restricted to the sizes where
fairchem fits in memory and without the batched-throughput run.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_fairchem import ROOT, main  # noqa: E402

if __name__ == "__main__":
    sys.argv[1:1] = ["--sizes", "20", "50", "100", "200", "--batched-structures", "0",
                     "--out", str(ROOT / "benchmarks" / "results" / "calculator.json")]
    main()
