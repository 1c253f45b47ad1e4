#!/usr/bin/env python
"""Build golden reference files from the ORIGINAL fairchem-core 1.10.0 EquiformerV2.

Run from the repository root in the reference venv (fairchem-core 1.10.0; build it with
``tools/reference/make_ref_venv.sh``, which also explains the shims):

    PYTHONPATH=tools/reference/shims .venv-ref/bin/python tools/make_golden.py

What it does
------------
1. Writes ``tests/data/structures.traj`` (read with ``ase.io.read(path, index=":")``),
   every structure named in ``atoms.info["name"]``.
2. For every config in ``CONFIGS``: builds the fairchem model from the checkpoint
   config exactly as ``OCPCalculator`` does, overwrites every PARAMETER with
   ``tests/seeded_weights.seeded_state_dict`` (buffers keep fairchem's values),
   saves a checkpoint in fairchem's own file layout (keys epoch, step, state_dict,
   normalizers, elementrefs, config, val_metrics, amp; state-dict keys prefixed
   as requested) and evaluates it with
   ``OCPCalculator(checkpoint_path=..., cpu=True, seed=s)`` on every structure.
3. Writes ``tests/data/golden_<config>.json`` (seed-0 values plus the max abs
   deviation over seeds, fairchem draws a random edge roll per call; and ``*_fixed_roll``
   values computed with fairchem's random roll replaced by our deterministic edge frame,
   which isolate everything but the roll for a tight parity check) and, for the
   small configs, ``tests/data/ckpt_<config>.pt``.  The 31M checkpoint is not
   stored; ``tests/data/params_eqV2_31M.json`` lists its config, normalizers and
   parameter names/shapes so tests can rebuild the same weights.

Options: ``--configs a,b`` (subset). Speed vs fairchem: ``benchmarks/compare_fairchem.py``.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
sys.path.insert(0, str(ROOT / "tests"))

from seeded_weights import seeded_state_dict  # noqa: E402

SEEDS = (0, 1, 2)
# eqv2_calc.model.so3.FRAME_ROTATION_ANGLES (tools run in the reference venv without our package)
FRAME_ROTATION_ANGLES = (0.5128, 1.1734, 2.3901)

# S2-grid resolution of the small configs.  The brief asked for 8, but with these
# random weights fairchem's call-to-call spread (random edge roll, quadrature of the
# S2 activation in the edge frame) is large at 8 for lmax 3 / mmax 2: max |dF| over
# 3 seeds 4.5e-2 eV/A (forces ~0.5); 2.4e-3 at 12, ~5e-4 at 16/18, 3e-4 at 20,
# <= 4.3e-5 at 24.
GRID_SMALL = 24
SEEDS_31M = (0, 1)

OC20_E_MEAN = -0.7554450631141663
OC20_E_STD = 2.887317180633545


# --------------------------------------------------------------------------------------
# structures
# --------------------------------------------------------------------------------------
def build_structures():
    from ase import Atoms
    from ase.build import add_adsorbate, bulk, fcc111, molecule
    from ase.constraints import FixAtoms

    out = []

    def named(atoms, name):
        atoms.info["name"] = name
        out.append(atoms)

    # 1-atom fcc Cu primitive
    named(bulk("Cu", "fcc", a=3.61), "cu_fcc_prim")

    # triclinic skewed 3-atom cell, mixed elements
    cell = np.array([[3.9, 0.0, 0.0], [1.3, 4.2, 0.0], [0.9, 1.1, 4.6]])
    frac = np.array([[0.02, 0.05, 0.01], [0.47, 0.38, 0.52], [0.71, 0.83, 0.29]])
    named(
        Atoms("MgAlO", scaled_positions=frac, cell=cell, pbc=True), "triclinic_mgalo"
    )

    # rocksalt NaCl conventional, unrattled (exact neighbour-distance ties)
    named(bulk("NaCl", "rocksalt", a=5.64, cubic=True), "nacl_rocksalt")

    # fcc Cu 4-atom conventional, unrattled
    named(bulk("Cu", "fcc", a=3.61, cubic=True), "cu_fcc_conv")

    # Cu(111) 2x2x3 slab + CO
    def slab_co(pbc):
        slab = fcc111("Cu", size=(2, 2, 3), vacuum=8.0, a=3.61)
        layer = slab.get_tags()  # ase: 1 = top layer ... 3 = bottom
        tags = np.where(layer == 1, 1, 0)
        fixed = [i for i, t in enumerate(layer) if t == layer.max()]
        add_adsorbate(slab, "C", 1.9, "fcc")
        add_adsorbate(slab, "O", 3.05, "fcc")
        tags = np.concatenate([tags, [2, 2]])
        slab.set_tags(tags)
        slab.set_constraint(FixAtoms(indices=fixed))
        slab.pbc = pbc
        # small deterministic perturbation of the adsorbate so it is not exactly on-site
        pos = slab.get_positions()
        pos[-2:] += np.array([[0.05, -0.03, 0.0], [0.11, 0.02, 0.0]])
        slab.set_positions(pos)
        return slab

    named(slab_co((True, True, True)), "cu111_co_pbc_ttt")
    named(slab_co((True, True, False)), "cu111_co_pbc_ttf")

    # molecules, no cell, pbc False
    m = molecule("CH3OH")
    m.pbc = False
    named(m, "ch3oh_molecule")
    m = molecule("H2O")
    m.pbc = False
    named(m, "h2o_molecule")

    # wire with pbc (T, F, F): zig-zag Au-Cu chain
    wire = Atoms(
        "AuCuAuCu",
        positions=[[0.0, 0.0, 0.0], [1.3, 1.05, 0.1], [2.62, 0.05, -0.08], [3.9, 1.0, 0.05]],
        cell=[5.2, 12.0, 12.0],
        pbc=(True, False, False),
    )
    wire.positions += np.array([0.0, 5.5, 6.0])
    named(wire, "auc_wire_tff")

    # SrTiO3 perovskite rattled
    a = 3.905
    sto = Atoms(
        "SrTiO3",
        scaled_positions=[
            [0, 0, 0],
            [0.5, 0.5, 0.5],
            [0.5, 0.5, 0.0],
            [0.5, 0.0, 0.5],
            [0.0, 0.5, 0.5],
        ],
        cell=[a, a, a],
        pbc=True,
    )
    sto.rattle(0.05, seed=1)
    named(sto, "srtio3_rattled")

    # Si diamond 2 atoms
    named(bulk("Si", "diamond", a=5.43), "si_diamond")

    # rattled 108-atom Cu3Au (L1_2) 3x3x3 conventional
    big = bulk("Cu", "fcc", a=3.75, cubic=True).repeat((3, 3, 3))
    sym = big.get_chemical_symbols()
    for i in range(0, len(big), 4):
        sym[i] = "Au"
    big.set_chemical_symbols(sym)
    big.rattle(0.05, seed=42)
    named(big, "cu3au_108_rattled")

    return out


def write_structures(structs, traj_path):
    """structures.traj: ASE trajectory with atoms.info["name"], pbc, cell, tags and FixAtoms."""
    from ase.io import read, write

    if traj_path.exists():
        traj_path.unlink()
    write(str(traj_path), structs, format="traj")
    back = read(str(traj_path), index=":")
    for a, b in zip(structs, back):
        assert a.info["name"] == b.info["name"]
        assert np.array_equal(a.positions, b.positions) and np.array_equal(a.cell, b.cell)
        assert (a.pbc == b.pbc).all() and (a.get_tags() == b.get_tags()).all()
        assert len(a.constraints) == len(b.constraints)
    return back


# --------------------------------------------------------------------------------------
# configs
# --------------------------------------------------------------------------------------
SMALL_MODEL = dict(
    use_pbc=True,
    regress_forces=True,
    otf_graph=True,
    max_neighbors=20,
    max_radius=6.0,
    max_num_elements=90,
    num_layers=2,
    sphere_channels=16,
    attn_hidden_channels=16,
    num_heads=2,
    attn_alpha_channels=8,
    attn_value_channels=8,
    ffn_hidden_channels=16,
    norm_type="layer_norm_sh",
    lmax_list=[3],
    mmax_list=[2],
    grid_resolution=GRID_SMALL,
    num_sphere_samples=128,
    edge_channels=16,
    use_atom_edge_embedding=True,
    distance_function="gaussian",
    num_distance_basis=512,
    attn_activation="silu",
    use_s2_act_attn=False,
    ffn_activation="silu",
    use_gate_act=False,
    use_grid_mlp=True,
    alpha_drop=0.1,
    drop_path_rate=0.1,
    proj_drop=0.0,
    weight_init="uniform",
)

OPTIM_OLD = {
    "batch_size": 8,
    "eval_batch_size": 12,
    "load_balancing": "atoms",
    "num_workers": 8,
    "lr_initial": 0.0004,
    "optimizer": "AdamW",
    "optimizer_params": {"weight_decay": 0.001},
    "scheduler": "LambdaLR",
    "scheduler_params": {
        "lambda_type": "cosine",
        "warmup_factor": 0.2,
        "warmup_epochs": 0.01,
        "lr_min_factor": 0.01,
    },
    "max_epochs": 3,
    "force_coefficient": 100,
    "energy_coefficient": 4,
    "clip_grad_norm": 100,
    "ema_decay": 0.999,
    "loss_energy": "mae",
    "loss_force": "l2mae",
    "eval_every": 10000,
}

OPTIM_NEW = {
    "batch_size": 8,
    "eval_batch_size": 12,
    "load_balancing": "atoms",
    "num_workers": 8,
    "lr_initial": 0.0006,
    "optimizer": "AdamW",
    "optimizer_params": {"weight_decay": 0.001},
    "scheduler": "LambdaLR",
    "scheduler_params": {
        "lambda_type": "cosine",
        "warmup_factor": 0.2,
        "warmup_epochs": 0.01,
        "lr_min_factor": 0.01,
    },
    "max_epochs": 2,
    "clip_grad_norm": 100,
    "ema_decay": 0.999,
    "eval_every": 5000,
}


def _cmd(seed=0):
    return {
        "identifier": "golden",
        "print_every": 100,
        "seed": seed,
        "timestamp_id": "2024-01-01-00-00-00-golden",
        "commit": "golden",
        "checkpoint_dir": "checkpoints/golden",
        "results_dir": "results/golden",
        "logs_dir": "logs/wandb/golden",
    }


def old_layout_config(model_attrs, e_mean, e_std, f_std):
    """Released-OC20 style config: config['model'] is the name string."""
    return {
        "trainer": "forces",
        "dataset": {
            "src": "data/s2ef/all/train/",
            "normalize_labels": True,
            "target_mean": e_mean,
            "target_std": e_std,
            "grad_target_mean": 0.0,
            "grad_target_std": f_std,
        },
        "logger": "wandb",
        "task": {
            "dataset": "trajectory_lmdb",
            "description": "Regressing to energies and forces for DFT trajectories from OCP",
            "type": "regression",
            "metric": "mae",
            "primary_metric": "forces_mae",
            "labels": ["potential energy"],
            "grad_input": "atomic forces",
            "train_on_free_atoms": True,
            "eval_on_free_atoms": True,
        },
        "model": "equiformer_v2",
        "model_attributes": copy.deepcopy(model_attrs),
        "optim": copy.deepcopy(OPTIM_OLD),
        "identifier": "golden",
        "amp": True,
        "gpus": 8,
        "cmd": _cmd(0),
        "slurm": {},
        "val_dataset": {"src": "data/s2ef/all/val_id/"},
    }


def _new_common(model, outputs, loss_functions, dataset, trainer="equiformerv2_forces"):
    return {
        "trainer": trainer,
        "dataset": dataset,
        "val_dataset": {"format": dataset.get("format", "lmdb"), "src": "data/val"},
        "test_dataset": {},
        "relax_dataset": {},
        "logger": "wandb",
        "task": {},
        "model": model,
        "outputs": outputs,
        "loss_functions": loss_functions,
        "evaluation_metrics": {
            "primary_metric": "energy_mae",
            "metrics": {"energy": ["mae"], "forces": ["mae"]},
        },
        "optim": copy.deepcopy(OPTIM_NEW),
        "amp": True,
        "gpus": 0,
        "cmd": _cmd(0),
        "slurm": {},
        "gp_gpus": None,
    }


EF_OUTPUTS = {
    "energy": {"level": "system", "property": "energy"},
    "forces": {
        "level": "atom",
        "property": "forces",
        "train_on_free_atoms": True,
        "eval_on_free_atoms": True,
    },
}
EF_LOSS = [
    {"energy": {"fn": "mae", "coefficient": 4}},
    {"forces": {"fn": "l2mae", "coefficient": 100}},
]
EFS_OUTPUTS = {
    **EF_OUTPUTS,
    "stress": {
        "level": "system",
        "property": "stress",
        "decomposition": {
            "stress_isotropic": {"irrep_dim": 0},
            "stress_anisotropic": {"irrep_dim": 2},
        },
    },
}
EFS_LOSS = [
    {"energy": {"fn": "per_atom_mae", "coefficient": 2.5}},
    {"forces": {"fn": "l2mae", "coefficient": 20}},
    {"stress_isotropic": {"fn": "mae", "coefficient": 5}},
    {"stress_anisotropic": {"fn": "mae", "reduction": "mean", "coefficient": 5}},
]
OMAT_DATASET = {
    "format": "ase_db",
    "src": ["/dataset/omat24/train/rattled-1000"],
    "a2g_args": {"r_energy": True, "r_forces": True, "r_stress": True},
    "transforms": {
        "decompose_tensor": {
            "tensor": "stress",
            "rank": 2,
            "decomposition": {
                "stress_isotropic": {"irrep_dim": 0},
                "stress_anisotropic": {"irrep_dim": 2},
            },
        }
    },
}


def elementrefs_tensor(seed=7, scale=2.0):
    import torch

    rng = np.random.default_rng(seed)
    refs = -scale * rng.random(119)  # negative like real fitted refs, O(1) eV
    refs[0] = 0.0
    return torch.tensor(refs, dtype=torch.float32)


def old_normalizers(e_mean, e_std, f_std):
    """Old (OCP < 2.0) normalizer state: {"target"/"grad_target": {"mean", "std"}}.

    The values must be 0-d tensors: fairchem 1.10's Normalizer.load_state_dict wraps
    "mean" in torch.tensor() but passes "std" through as is, so a python float std
    is rejected ("expected torch.Tensor ... but received <class 'float'>").
    """
    import torch

    return {
        "target": {"mean": torch.tensor(e_mean), "std": torch.tensor(e_std)},
        "grad_target": {"mean": torch.tensor(0.0), "std": torch.tensor(f_std)},
    }


def make_configs():
    """Return {name: spec}; spec has config, normalizers, elementrefs, prefix, store."""
    import torch

    specs = {}

    # 1. small: deprecated single class, OLD layout, module.module. prefix, old normalizers
    specs["small"] = dict(
        config=old_layout_config(SMALL_MODEL, OC20_E_MEAN, OC20_E_STD, 1.7),
        normalizers=old_normalizers(OC20_E_MEAN, OC20_E_STD, 1.7),
        elementrefs=None,
        prefix="module.module.",
        store=True,
    )

    # 2. small_variants: hydra backbone + heads
    bb = dict(SMALL_MODEL)
    bb.update(
        model="equiformer_v2_backbone",
        norm_type="rms_norm_sh",
        use_grid_mlp=True,
        use_atom_edge_embedding=True,
        share_atom_edge_embedding=True,
        use_m_share_rad=True,
        lmax_list=[4],
        mmax_list=[1],
        grid_resolution=14,  # 10 gave a 1e-4 eV/A seed spread (ch3oh), 14 gives 3e-6
        enforce_max_neighbors_strictly=False,
        use_energy_lin_ref=True,
        load_energy_lin_ref=True,
    )
    specs["small_variants"] = dict(
        config=_new_common(
            {
                "name": "hydra",
                "otf_graph": True,
                "backbone": bb,
                "heads": {
                    "energy": {"module": "equiformer_v2_energy_head"},
                    "forces": {"module": "equiformer_v2_force_head"},
                },
            },
            EF_OUTPUTS,
            EF_LOSS,
            {"format": "lmdb", "src": "data/train"},
        ),
        normalizers={
            "energy": {"mean": torch.tensor(-1.25), "rmsd": torch.tensor(3.5)},
            "forces": {"mean": torch.tensor(0.0), "rmsd": torch.tensor(0.8)},
        },
        elementrefs={"energy": {"element_references": elementrefs_tensor(7)}},
        prefix="module.",
        store=True,
    )

    # 3a. small_gate: deprecated class, new layout, gate activation + layer_norm,
    #     with use_energy_lin_ref (only the deprecated class applies it)
    g = dict(SMALL_MODEL)
    g.update(
        name="equiformer_v2",
        use_gate_act=True,
        norm_type="layer_norm",
        use_energy_lin_ref=True,
        load_energy_lin_ref=True,
        use_grid_mlp=False,
    )
    specs["small_gate"] = dict(
        config=_new_common(g, EF_OUTPUTS, EF_LOSS, {"format": "lmdb", "src": "data/train"}),
        normalizers={
            "energy": {"mean": torch.tensor(0.3), "rmsd": torch.tensor(2.0)},
            "forces": {"mean": torch.tensor(0.0), "rmsd": torch.tensor(1.2)},
        },
        elementrefs=None,
        prefix="",
        store=True,
    )

    # 3b. small_s2act: deprecated class, plain S2 activation (use_sep_s2_act False)
    s = dict(SMALL_MODEL)
    s.update(
        name="equiformer_v2",
        use_sep_s2_act=False,
        use_grid_mlp=False,
        use_attn_renorm=False,
        attn_activation="scaled_silu",
        ffn_activation="scaled_silu",
        share_atom_edge_embedding=False,
        use_atom_edge_embedding=False,
        max_num_elements=84,
    )
    specs["small_s2act"] = dict(
        config=_new_common(s, EF_OUTPUTS, EF_LOSS, {"format": "lmdb", "src": "data/train"}),
        normalizers={
            "energy": {"mean": torch.tensor(-0.5), "rmsd": torch.tensor(1.5)},
            "forces": {"mean": torch.tensor(0.0), "rmsd": torch.tensor(0.9)},
        },
        elementrefs=None,
        prefix="module.",
        store=True,
    )

    # 4. omat_stress: hydra like OMat24
    ob = dict(SMALL_MODEL)
    ob.update(
        model="equiformer_v2_backbone",
        use_pbc_single=True,
        enforce_max_neighbors_strictly=False,
        max_num_elements=96,
        avg_num_nodes=31.17,
        avg_degree=61.95,
        # lmax 4 like the real OMat24 31M model.  With lmax 3 + layer_norm_sh +
        # non-strict max_neighbors, atoms in full cubic shells (NaCl, fcc Cu) have
        # vanishing l=1..3 features; layer_norm_sh then divides roll noise by its own
        # norm (eps 1e-5 => up to 316x) and fairchem's forces varied by 0.27 eV/A
        # between seeds.  With lmax 4 the cubic l=4 component keeps the norm finite;
        # grid 18 still left 8e-4 eV/A on NaCl, grid 24 gives 8e-5.
        lmax_list=[4],
        mmax_list=[2],
        grid_resolution=24,
        share_atom_edge_embedding=False,
        use_m_share_rad=False,
        use_attn_renorm=True,
        use_sep_s2_act=True,
    )
    del ob["regress_forces"]
    omat_model = {
        "name": "hydra",
        "pass_through_head_outputs": True,
        "otf_graph": True,
        "backbone": ob,
        "heads": {
            "energy": {"module": "equiformer_v2_energy_head"},
            "forces": {"module": "equiformer_v2_force_head"},
            "stress": {
                "module": "rank2_symmetric_head",
                "output_name": "stress",
                "use_source_target_embedding": True,
                "decompose": True,
            },
        },
    }
    omat_cfg = _new_common(omat_model, EFS_OUTPUTS, EFS_LOSS, copy.deepcopy(OMAT_DATASET))
    omat_cfg["evaluation_metrics"]["metrics"].update(
        {"stress": ["mae"], "stress_isotropic": ["mae"], "stress_anisotropic": ["mae"]}
    )
    specs["omat_stress"] = dict(
        config=omat_cfg,
        normalizers={
            "forces": {"mean": torch.tensor(0.0), "rmsd": torch.tensor(0.9)},
            "stress_isotropic": {"mean": torch.tensor(0.02), "rmsd": torch.tensor(0.12)},
            "stress_anisotropic": {"mean": torch.tensor(0.0), "rmsd": torch.tensor(0.05)},
        },
        elementrefs={"energy": {"element_references": elementrefs_tensor(11)}},
        prefix="module.",
        store=True,
    )

    # 5. dens: DeNS hydra like eqV2_dens_31M_mp
    db = dict(ob)
    db.update(
        model="equiformer_v2_dens_backbone",
        # rms_norm_sh + lmax 3 keeps this checkpoint small (lmax 4 / grid 24 SO3-grid
        # buffers push it to ~2.8 MB) and avoids the layer_norm_sh conditioning
        # problem described for omat_stress; layer_norm_sh is covered by other configs.
        norm_type="rms_norm_sh",
        lmax_list=[3],
        mmax_list=[2],
        grid_resolution=GRID_SMALL,
        avg_num_nodes=31.16592360068011,
        avg_degree=61.94676351484548,
        use_force_encoding=True,
        use_noise_schedule_sigma_encoding=False,
    )
    dens_model = {
        "name": "hydra",
        "pass_through_head_outputs": True,
        "otf_graph": True,
        "backbone": db,
        "heads": {
            "energy": {"module": "eqV2_DeNS_scalar_head", "use_denoising": True},
            "forces": {"module": "eqV2_DeNS_vector_head"},
            "stress": {
                "module": "dens_rank2_symmetric_head",
                "output_name": "stress",
                "use_source_target_embedding": True,
                "decompose": True,
                "use_denoising": False,
            },
        },
    }
    dens_cfg = _new_common(dens_model, EFS_OUTPUTS, EFS_LOSS, copy.deepcopy(OMAT_DATASET))
    dens_cfg["dataset"]["src"] = ["/dataset/mptrj/train"]
    dens_cfg["optim"].update(
        {
            "use_denoising_pos": True,
            "denoising_pos_params": {
                "prob": 0.5,
                "fixed_noise_std": True,
                "std": 0.1,
                "num_steps": 50,
                "std_low": None,
                "std_high": None,
            },
            "denoising_pos_coefficient": 10,
        }
    )
    specs["dens"] = dict(
        config=dens_cfg,
        normalizers={
            "forces": {"mean": torch.tensor(0.0), "rmsd": torch.tensor(0.7)},
            "stress_isotropic": {"mean": torch.tensor(-0.01), "rmsd": torch.tensor(0.1)},
            "stress_anisotropic": {"mean": torch.tensor(0.0), "rmsd": torch.tensor(0.04)},
        },
        elementrefs={"energy": {"element_references": elementrefs_tensor(13)}},
        prefix="module.",
        store=True,
    )

    # 6. eqV2_31M: real OC20 31M hyper-parameters, deprecated class, OLD layout
    m31 = dict(
        use_pbc=True,
        regress_forces=True,
        otf_graph=True,
        max_neighbors=20,
        max_radius=12.0,
        max_num_elements=90,
        num_layers=8,
        sphere_channels=128,
        attn_hidden_channels=64,
        num_heads=8,
        attn_alpha_channels=64,
        attn_value_channels=16,
        ffn_hidden_channels=128,
        norm_type="layer_norm_sh",
        lmax_list=[4],
        mmax_list=[2],
        grid_resolution=18,
        num_sphere_samples=128,
        edge_channels=128,
        use_atom_edge_embedding=True,
        distance_function="gaussian",
        num_distance_basis=512,
        attn_activation="silu",
        use_s2_act_attn=False,
        ffn_activation="silu",
        use_gate_act=False,
        use_grid_mlp=True,
        alpha_drop=0.1,
        drop_path_rate=0.1,
        proj_drop=0.0,
        weight_init="uniform",
    )
    specs["eqV2_31M"] = dict(
        config=old_layout_config(m31, OC20_E_MEAN, OC20_E_STD, OC20_E_STD),
        normalizers=old_normalizers(OC20_E_MEAN, OC20_E_STD, OC20_E_STD),
        elementrefs=None,
        prefix="module.module.",
        store=False,
    )
    return specs


# --------------------------------------------------------------------------------------
# model building / checkpoint writing
# --------------------------------------------------------------------------------------
def model_config_as_calculator(config):
    """Replicates OCPCalculator's handling of config['model']."""
    config = copy.deepcopy(config)
    if "model_attributes" in config:
        config["model_attributes"]["name"] = config.pop("model")
        config["model"] = config["model_attributes"]
    config["model"]["otf_graph"] = True
    return config["model"]


def build_model(config):
    from fairchem.core.common.registry import registry
    from fairchem.core.common.utils import setup_imports

    setup_imports()
    mc = copy.deepcopy(model_config_as_calculator(config))
    name = mc.pop("name")
    return registry.get_model_class(name)(**mc)


def param_list(model):
    return [[n, list(p.shape)] for n, p in model.named_parameters()]


def seeded_checkpoint(spec):
    """Build model, fill parameters from seeded_state_dict, return checkpoint dict."""
    import torch

    model = build_model(spec["config"])
    params = param_list(model)
    drawn = seeded_state_dict(params)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.from_numpy(drawn[name]))
    # keep fairchem's buffers as they are: shared modules (SO3_grid, SO3_rotation ...)
    # appear under several keys but share storage, which torch.save stores once.
    sd = model.state_dict()
    state_dict = {spec["prefix"] + k: v for k, v in sd.items()}
    ckpt = {
        "epoch": 3,
        "step": 1000,
        "state_dict": state_dict,
        "normalizers": copy.deepcopy(spec["normalizers"]),
        "config": copy.deepcopy(spec["config"]),
        "val_metrics": {
            "energy_mae": {"total": 1.0, "numel": 1, "metric": 1.0},
            "forces_mae": {"total": 1.0, "numel": 1, "metric": 1.0},
        },
        "amp": None,
    }
    if spec["elementrefs"] is not None:
        ckpt["elementrefs"] = copy.deepcopy(spec["elementrefs"])
    return ckpt, params


def save_checkpoint(ckpt, path):
    import torch

    torch.save(ckpt, str(path))
    # must load with weights_only=True (only tensors / containers / scalars inside)
    torch.load(str(path), map_location="cpu", weights_only=True)


# --------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------
def make_calc(path, seed):
    from fairchem.core.common.relaxation.ase_utils import OCPCalculator

    return OCPCalculator(checkpoint_path=str(path), cpu=True, seed=seed)


def eval_one(calc, atoms, seed):
    """Fresh RNG state per structure: identical to a new OCPCalculator(seed=seed)."""
    calc.trainer.set_seed(seed)
    calc.reset()
    a = atoms.copy()
    a.calc = calc
    e = a.get_potential_energy()
    f = np.array(calc.results["forces"], dtype=np.float32).reshape(-1, 3)
    s = calc.results.get("stress")
    if s is not None:
        s = np.array(s, dtype=np.float32).reshape(3, 3)
    return np.float32(e), f, s


def fixed_roll_edge_rot_mat(edge_distance_vec):
    """Deterministic edge frame R = X(beta) Y(gamma) Q (e3nn Y-X-Y angles), R n = +y.

    The same frame as eqv2_calc.model.so3.edge_wigner: Q is the fixed rotation of
    FRAME_ROTATION_ANGLES, (beta, gamma) those of Q n with alpha = 0. fairchem draws a random
    roll about each edge instead; with this frame patched in, fairchem's remaining arithmetic is
    compared with ours free of the roll's quadrature noise.
    """
    import torch
    from e3nn import o3

    q = o3.angles_to_matrix(*torch.tensor(FRAME_ROTATION_ANGLES, dtype=torch.float64)).to(edge_distance_vec.dtype)
    n = edge_distance_vec / edge_distance_vec.norm(dim=1, keepdim=True)
    n = n @ q.T
    beta = torch.atan2(torch.sqrt(n[:, 0] ** 2 + n[:, 2] ** 2), n[:, 1])
    gamma = torch.atan2(n[:, 0], -n[:, 2])
    return (o3.angles_to_matrix(torch.zeros_like(beta), beta, gamma) @ q).detach()


class fixed_roll:
    """Context manager: fairchem's eqV2 modules use `fixed_roll_edge_rot_mat`."""

    def __enter__(self):
        from fairchem.core.models.equiformer_v2 import equiformer_v2, equiformer_v2_deprecated

        self.modules = (equiformer_v2, equiformer_v2_deprecated)
        self.saved = [m.init_edge_rot_mat for m in self.modules]
        for m in self.modules:
            m.init_edge_rot_mat = fixed_roll_edge_rot_mat

    def __exit__(self, *exc):
        for m, f in zip(self.modules, self.saved):
            m.init_edge_rot_mat = f


def _f64(x):
    return np.asarray(x, dtype=np.float32).astype(np.float64).tolist()


def evaluate(path, structs, seeds, skip=()):
    import torch

    per_seed = {}
    props = None
    for seed in seeds:
        calc = make_calc(path, seed)
        props = list(calc.implemented_properties)
        for atoms in structs:
            name = atoms.info["name"]
            if name in skip:
                continue
            t0 = time.perf_counter()
            per_seed.setdefault(name, []).append(eval_one(calc, atoms, seed))
            logging.info("  seed %d %-22s %.2fs", seed, name, time.perf_counter() - t0)
        del calc
    fixed = {}
    with fixed_roll():
        calc = make_calc(path, seeds[0])
        for atoms in structs:
            if atoms.info["name"] not in skip:
                fixed[atoms.info["name"]] = eval_one(calc, atoms, seeds[0])
        del calc
    out = {}
    for name, res in per_seed.items():
        e0, f0, s0 = res[0]
        es = max(abs(float(r[0]) - float(e0)) for r in res)
        fs = max(float(np.max(np.abs(r[1] - f0))) if len(f0) else 0.0 for r in res)
        ss = None if s0 is None else max(float(np.max(np.abs(r[2] - s0))) for r in res)
        out[name] = {
            "natoms": int(len(f0)),
            "energy": float(e0),
            "forces": _f64(f0),
            "stress": None if s0 is None else _f64(s0),
            "energy_spread": es,
            "forces_spread": fs,
            "stress_spread": ss,
            "energy_fixed_roll": float(fixed[name][0]),
            "forces_fixed_roll": _f64(fixed[name][1]),
            "stress_fixed_roll": None if fixed[name][2] is None else _f64(fixed[name][2]),
        }
    return out, props, torch.__version__


def fairchem_version():
    from importlib.metadata import version

    return version("fairchem-core")


def json_normalizers(norms):
    out = {}
    for k, v in norms.items():
        out[k] = {kk: (float(vv) if not hasattr(vv, "tolist") else vv.tolist()) for kk, vv in v.items()}
    return out


def run_config(name, spec, structs):
    t0 = time.perf_counter()
    ckpt, params = seeded_checkpoint(spec)
    if spec["store"]:
        path = DATA / f"ckpt_{name}.pt"
        save_checkpoint(ckpt, path)
        ckpt_field = path.name
        tmpdir = None
    else:
        tmpdir = tempfile.TemporaryDirectory()
        path = Path(tmpdir.name) / f"ckpt_{name}.pt"
        save_checkpoint(ckpt, path)
        ckpt_field = f"params_{name}.json"
        manifest = {
            "config": spec["config"],
            "normalizers": json_normalizers(spec["normalizers"]),
            "elementrefs": None,
            "state_dict_prefix": spec["prefix"],
            "params": params,
        }
        (DATA / ckpt_field).write_text(json.dumps(manifest, indent=1))
    del ckpt
    seeds = SEEDS_31M if name == "eqV2_31M" else SEEDS
    golden, props, tv = evaluate(path, structs, seeds)
    doc = {
        "config_name": name,
        "checkpoint": ckpt_field,
        "fairchem_version": fairchem_version(),
        "torch_version": tv,
        "seeds": list(seeds),
        "implemented_properties": props,
        "n_params": int(sum(int(np.prod(s)) for _, s in params)),
        "structures": golden,
    }
    (DATA / f"golden_{name}.json").write_text(json.dumps(doc, indent=1))
    if tmpdir is not None:
        tmpdir.cleanup()
    emax = max(abs(v["energy"]) for v in golden.values())
    fmax = max(np.max(np.abs(v["forces"])) for v in golden.values())
    logging.info(
        "%s done in %.0fs: |E|max %.3g |F|max %.3g spreads E %.2g F %.2g S %s",
        name,
        time.perf_counter() - t0,
        emax,
        fmax,
        max(v["energy_spread"] for v in golden.values()),
        max(v["forces_spread"] for v in golden.values()),
        max((v["stress_spread"] or 0.0) for v in golden.values()) if props and "stress" in props else None,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))

    specs = make_configs()
    DATA.mkdir(parents=True, exist_ok=True)
    structs = write_structures(build_structures(), DATA / "structures.traj")
    names = args.configs.split(",") if args.configs else list(specs)
    for name in names:
        logging.info("=== %s", name)
        run_config(name, specs[name], structs)


if __name__ == "__main__":
    main()
