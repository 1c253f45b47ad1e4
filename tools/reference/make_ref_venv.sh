#!/usr/bin/env bash
# Build the reference venv: fairchem-core 1.10.0 (the original EquiformerV2), for the golden files in
# tests/data/ and for benchmarks/compare_fairchem.py. Run from the repository root:
#
#     tools/reference/make_ref_venv.sh            # creates .venv-ref (git-ignored); or give another folder
#     PYTHONPATH=tools/reference/shims .venv-ref/bin/python tools/make_golden.py
#     PYTHONPATH=tools/reference/shims .venv-ref/bin/python tools/make_graph_golden.py
#
# Why the detours: fairchem 1.10 pins torch~=2.4 and numpy<2 (pip would fetch a multi-GB CUDA torch), imports
# scipy.special.sph_harm (gone in new scipy) and the compiled torch_scatter / torch_sparse. So: the CPU torch we
# test with, numpy<2 and scipy<1.15, fairchem-core without its pins (--no-deps), and shims/ (pure-torch
# stand-ins for the few torch_scatter functions fairchem's import chain touches; the eqV2 path never calls
# torch_sparse). Needs Python 3.11 and the network (PyPI, the PyTorch CPU wheel index).
set -euo pipefail
cd "$(dirname "$0")/../.."
V=${1:-.venv-ref}
[ -x "$V/bin/python" ] || python3 -m venv "$V"
"$V/bin/pip" install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
"$V/bin/pip" install -q "numpy<2" "scipy<1.15" ase "e3nn>=0.5" huggingface-hub hydra-core lmdb numba orjson \
  "pydantic>=2.10" pymatgen pyyaml requests submitit tensorboard torch-geometric torchtnt tqdm wandb
"$V/bin/pip" install -q --no-deps fairchem-core==1.10.0
PYTHONPATH=tools/reference/shims "$V/bin/python" -c "import fairchem.core; print('fairchem-core', fairchem.core.__version__)"
echo "ready: PYTHONPATH=tools/reference/shims $V/bin/python tools/make_golden.py"
