#!/usr/bin/env python
"""Golden files for the layouts of the research code: the DeNS and the paper's repositories, ODAC IS2RE.

Run in the reference venv (fairchem-core 1.10.0) with checkouts of the two upstream repositories
(e.g. `git --git-dir=<mirror> archive HEAD model configs | tar -x -C <dir>`):

    PYTHONPATH=tools/reference/shims .venv-ref/bin/python tools/make_golden_upstream.py \\
        --dens <atomicarchitects/DeNS checkout> --paper <atomicarchitects/equiformer_v2 checkout> [--configs a,b]

Their `ocpmodels` imports resolve to `tools/reference/upstream_shims` (fairchem 1.10 underneath).
Per config it builds the upstream class from the checkpoint config, sets every parameter with
`tests/seeded_weights.py` (buffers keep the class's own values), writes the checkpoint as that
repository's trainer saves it (`module.` prefixes, `normalizers`, the config with the model's options)
and evaluates the class itself on `tests/data/structures.traj`: one `AtomsToGraphs` + collate per
structure as fairchem's `OCPCalculator` does, energy = raw * std + mean, forces = raw * std (the
trainers' de-normalization), seeds 0,1,2 for the random edge roll plus one run with our fixed edge frame
(`make_golden.fixed_roll_edge_rot_mat`). Output: `tests/data/golden_<config>.json` in the schema of
`tools/make_golden.py` (energy-only models: `forces*` null), the checkpoint `ckpt_<config>.pt` for the
small configs, `params_<config>.json` (config, normalizers, parameter names and shapes) for the real-size
ones, whose weights tests rebuild from the seed rule.

Layouts:
- `upstream_dens_oc20`, `upstream_dens_oc22`: `EquiformerV2S_OC20_DenoisingPos` (DeNS repository,
  model name `equiformer_v2_dens`), small; OC22 style with per-element linear references in the model
  (`use_energy_lin_ref`, `load_energy_lin_ref`), non-strict neighbour cap and the sigma encoding.
  Both also run fairchem 1.10's hydra `EqV2DeNSBackbone` + DeNS heads on the same weights (renamed
  keys) with the fixed frame: `fairchem_dens_backbone` in the golden file gives the largest difference.
- `upstream_dens_base`: the DeNS repository's base class `EquiformerV2S_OC20` (registered there as
  `equiformer_v2`: what fine-tuning without denoising writes), small, `norm_type: none` (no
  normalization, which only that code accepts).
- `upstream_paper`: `EquiformerV2_OC20` (the paper's repository, `nets/equiformer_v2/`), small, old
  config layout, `module.module.` prefixes (OCP's data-parallel wrappers).
- `odac_is2re`: fairchem 1.10's `equiformer_v2` class (no other code of this file exists) with the
  ODAC IS2RE config: `norm_scale_nodes`/`norm_scale_degree` in the stored config (fairchem runs the
  same values as `avg_num_nodes`/`avg_degree`), `regress_forces: False`, trainer `equiformerv2_energy`.
- `upstream_dens_oc20_2M`, `upstream_dens_oc20_allmd`, `upstream_dens_oc22_full`: the published DeNS
  configs at full size (N@12 L@6 M@2, N@20 L@6 M@3, N@18 L@6 M@2), evaluated on a few small structures.
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
sys.path[:0] = [str(ROOT / "tools" / "reference" / "upstream_shims"), str(ROOT / "tools")]

import make_golden as mg  # noqa: E402
from seeded_weights import seeded_state_dict  # noqa: E402

SEEDS = (0, 1, 2)
REAL_SIZE_STRUCTURES = ("cu_fcc_prim", "si_diamond", "h2o_molecule")
OC22_E_STD = 25.119809935106424  # DeNS configs/oc22: energy normalizer (mean 0)
OC22_F_STD = 0.14759646356105804
ODAC_IS2RE_E = (-0.5249277949333191, 0.943034291267395)  # fairchem configs/odac/is2re/base.yml (y_relaxed)
ODAC_NORM_SCALE_NODES, ODAC_NORM_SCALE_DEGREE = 192.561, 21.024127419363214

# What the DeNS configs add to the options of fairchem's small configs (make_golden.SMALL_MODEL).
DENS_OPTIONS = dict(use_tp_reparam=False, use_force_encoding=True, use_noise_schedule_sigma_encoding=False,
                    use_energy_lin_ref=False, load_energy_lin_ref=False, enforce_max_neighbors_strictly=True)
# The published DeNS configs (configs/oc20/2M, configs/oc20/all-md, configs/oc22), model section.
DENS_REAL = dict(
    use_pbc=True, regress_forces=True, otf_graph=True, max_neighbors=20, max_radius=12.0, max_num_elements=90,
    sphere_channels=128, attn_hidden_channels=64, num_heads=8, attn_alpha_channels=64, attn_value_channels=16,
    ffn_hidden_channels=128, norm_type="layer_norm_sh", grid_resolution=18, num_sphere_samples=128,
    edge_channels=128, use_atom_edge_embedding=True, share_atom_edge_embedding=False, use_m_share_rad=False,
    distance_function="gaussian", num_distance_basis=512, attn_activation="silu", use_tp_reparam=False,
    use_s2_act_attn=False, use_attn_renorm=True, ffn_activation="silu", use_gate_act=False, use_grid_mlp=True,
    use_sep_s2_act=True, alpha_drop=0.1, drop_path_rate=0.1, proj_drop=0.0, weight_init="uniform",
    use_force_encoding=True, use_noise_schedule_sigma_encoding=False, use_energy_lin_ref=False,
    load_energy_lin_ref=False,
)
DENS_OPTIM = {"use_denoising_pos": True, "denoising_pos_coefficient": 15,
              "denoising_pos_params": {"prob": 0.5, "fixed_noise_std": True, "std": 0.1, "num_steps": 50,
                                       "std_low": 0.01, "std_high": 0.5, "corrupt_ratio": 0.25}}


# --------------------------------------------------------------------------------------
# upstream code
# --------------------------------------------------------------------------------------
class Upstream:
    """The upstream modules (imported from the checkouts) and the module whose `init_edge_rot_mat` each uses."""

    def __init__(self, dens: Path | None, paper: Path | None) -> None:
        self.classes, self.frame_modules = {}, []
        if dens is not None:
            sys.path.insert(0, str(dens))
            import model.equiformer_v2.equiformer_v2 as dens_base
            import model.equiformer_v2.equiformer_v2_denoising as dens_denoising

            self.classes["equiformer_v2_dens"] = dens_denoising.EquiformerV2S_OC20_DenoisingPos
            self.classes["dens_base"] = dens_base.EquiformerV2S_OC20
            self.frame_modules.append(dens_base)
        if paper is not None:
            sys.path.insert(0, str(paper))
            import nets.equiformer_v2.equiformer_v2_oc20 as paper_module

            self.classes["paper"] = paper_module.EquiformerV2_OC20
            self.frame_modules.append(paper_module)

    def build(self, kind: str, options: dict):
        """The upstream model (`kind`: equiformer_v2_dens, dens_base, paper) or fairchem's (fairchem, hydra)."""
        options = copy.deepcopy(options)
        if kind in self.classes:
            return self.classes[kind](None, None, None, **options)  # num_atoms, bond_feat_dim, num_targets: unused
        from fairchem.core.common.registry import registry
        from fairchem.core.common.utils import setup_imports

        setup_imports()
        return registry.get_model_class("hydra" if kind == "hydra" else "equiformer_v2")(**options)


class fixed_frame:
    """Context manager: every upstream and fairchem eqV2 module uses `make_golden.fixed_roll_edge_rot_mat`."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    def __enter__(self):
        self.fairchem = mg.fixed_roll()
        self.fairchem.__enter__()
        self.saved = [(m, m.init_edge_rot_mat) for m in self.upstream.frame_modules]
        for m, _ in self.saved:
            m.init_edge_rot_mat = mg.fixed_roll_edge_rot_mat
        return self

    def __exit__(self, *exc):
        for m, f in self.saved:
            m.init_edge_rot_mat = f
        self.fairchem.__exit__(*exc)


# --------------------------------------------------------------------------------------
# configs
# --------------------------------------------------------------------------------------
def dens_config(model: dict, energy: tuple[float, float], forces_std: float, dataset_format: str) -> dict:
    """A DeNS-repository training config (trainer `denoising_forces`, new OCP config layout)."""
    cfg = mg._new_common({"name": "equiformer_v2_dens", **model}, mg.EF_OUTPUTS, mg.EF_LOSS,
                         {"format": dataset_format, "src": "data/train"}, trainer="denoising_forces")
    cfg["dataset"] = {"train": {"format": dataset_format, "key_mapping": {"y": "energy", "force": "forces"},
                                "transforms": {"normalizer": {"energy": {"mean": energy[0], "stdev": energy[1]},
                                                              "forces": {"mean": 0.0, "stdev": forces_std}}}}}
    cfg["optim"].update(copy.deepcopy(DENS_OPTIM))
    return cfg


def normalizers(energy: tuple[float, float], forces_std: float | None) -> dict:
    """Normalizer state as OCP's trainers save it: `{"energy"/"forces": {"mean", "std"}}` (0-d tensors)."""
    import torch

    out = {"energy": {"mean": torch.tensor(energy[0]), "std": torch.tensor(energy[1])}}
    if forces_std is not None:
        out["forces"] = {"mean": torch.tensor(0.0), "std": torch.tensor(forces_std)}
    return out


def make_specs() -> dict:
    """{name: spec}; spec: kind, options (model kwargs), config, normalizers, prefix, store and, for the
    full-size configs, structures and seeds."""
    small = dict(mg.SMALL_MODEL)
    specs = {}
    oc20 = dict(small, **DENS_OPTIONS)
    specs["upstream_dens_oc20"] = dict(kind="equiformer_v2_dens", options=oc20,
                                       config=dens_config(oc20, (mg.OC20_E_MEAN, mg.OC20_E_STD), 1.7, "dens_lmdb"),
                                       normalizers=normalizers((mg.OC20_E_MEAN, mg.OC20_E_STD), 1.7),
                                       prefix="module.", store=True)
    oc22 = dict(small, **DENS_OPTIONS)
    oc22.update(enforce_max_neighbors_strictly=False, use_energy_lin_ref=True, load_energy_lin_ref=True,
                use_noise_schedule_sigma_encoding=True, norm_type="rms_norm_sh", use_m_share_rad=True)
    specs["upstream_dens_oc22"] = dict(kind="equiformer_v2_dens", options=oc22,
                                       config=dens_config(oc22, (0.0, OC22_E_STD / 10), OC22_F_STD * 10, "oc22_lmdb"),
                                       normalizers=normalizers((0.0, OC22_E_STD / 10), OC22_F_STD * 10),
                                       prefix="module.", store=True)
    base = dict(small, norm_type="none", use_tp_reparam=False, use_energy_lin_ref=False, load_energy_lin_ref=False,
                enforce_max_neighbors_strictly=True, use_grid_mlp=False)
    base_config = dens_config(base, (mg.OC20_E_MEAN, mg.OC20_E_STD), 1.1, "lmdb")
    base_config.update(trainer="forces", model={"name": "equiformer_v2", **base})
    for key in DENS_OPTIM:
        base_config["optim"].pop(key)
    specs["upstream_dens_base"] = dict(kind="dens_base", options=base, config=base_config,
                                       normalizers=normalizers((mg.OC20_E_MEAN, mg.OC20_E_STD), 1.1),
                                       prefix="module.", store=True)
    paper = {k: v for k, v in small.items() if k != "enforce_max_neighbors_strictly"}
    paper.update(norm_type="layer_norm", use_gate_act=True, use_grid_mlp=False, share_atom_edge_embedding=True)
    specs["upstream_paper"] = dict(kind="paper", options=paper,
                                   config=mg.old_layout_config(paper, mg.OC20_E_MEAN, mg.OC20_E_STD, 1.3),
                                   normalizers=mg.old_normalizers(mg.OC20_E_MEAN, mg.OC20_E_STD, 1.3),
                                   prefix="module.module.", store=True)
    odac = dict(small, regress_forces=False, max_radius=8.0, max_num_elements=100,
                avg_num_nodes=ODAC_NORM_SCALE_NODES, avg_degree=ODAC_NORM_SCALE_DEGREE)
    stored = {k: v for k, v in odac.items() if k not in ("avg_num_nodes", "avg_degree")}
    stored.update(norm_scale_nodes=ODAC_NORM_SCALE_NODES, norm_scale_degree=ODAC_NORM_SCALE_DEGREE)
    odac_config = mg.old_layout_config(stored, *ODAC_IS2RE_E, 1.0)
    odac_config.update(trainer="equiformerv2_energy")
    odac_config["task"].update(dataset="single_point_lmdb", labels=["relaxed energy"], primary_metric="energy_mae")
    for key in ("grad_input", "train_on_free_atoms", "eval_on_free_atoms"):
        odac_config["task"].pop(key)
    odac_config["dataset"] = {"src": "data/is2re/train", "normalize_labels": True,
                              "target_mean": ODAC_IS2RE_E[0], "target_std": ODAC_IS2RE_E[1]}
    specs["odac_is2re"] = dict(kind="fairchem", options=odac, config=odac_config,
                               normalizers={"target": mg.old_normalizers(*ODAC_IS2RE_E, 1.0)["target"]},
                               prefix="module.module.", store=True)
    for name, layers, mmax, strict, energy, f_std in (
        ("upstream_dens_oc20_2M", 12, 2, True, (mg.OC20_E_MEAN, mg.OC20_E_STD), mg.OC20_E_STD),
        ("upstream_dens_oc20_allmd", 20, 3, True, (mg.OC20_E_MEAN, mg.OC20_E_STD), mg.OC20_E_STD),
        ("upstream_dens_oc22_full", 18, 2, False, (0.0, OC22_E_STD), OC22_F_STD),
    ):
        real = dict(DENS_REAL, num_layers=layers, lmax_list=[6], mmax_list=[mmax], enforce_max_neighbors_strictly=strict)
        specs[name] = dict(kind="equiformer_v2_dens", options=real,
                           config=dens_config(real, energy, f_std, "oc22_lmdb" if "oc22" in name else "lmdb"),
                           normalizers=normalizers(energy, f_std), prefix="module.", store=False,
                           structures=REAL_SIZE_STRUCTURES, seeds=(0, 1))
    return specs


# --------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------
def batch_of(atoms):
    """One structure as `OCPCalculator.calculate` hands it to the model."""
    from fairchem.core.datasets import data_list_collater
    from fairchem.core.preprocessing import AtomsToGraphs

    a2g = AtomsToGraphs(r_energy=False, r_forces=False, r_distances=False, r_pbc=True, r_edges=False)
    return data_list_collater([a2g.convert(atoms)], otf_graph=True)


def raw_outputs(model, atoms, seed: int):
    """(energy, forces or None) of the model's own forward, normalized units, float32."""
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # as fairchem's trainer.set_seed before every structure
    out = model(batch_of(atoms))
    if isinstance(out, dict):  # the DeNS class and fairchem's hydra
        energy, forces = out["energy"], out.get("forces")
    elif isinstance(out, tuple):
        energy, forces = out
    else:
        energy, forces = out, None
    energy = energy.detach().reshape(-1)[0].float()
    return energy, None if forces is None else forces.detach().float().reshape(-1, 3)


def physical(spec, energy, forces):
    """De-normalized as the trainers do: energy * std + mean, forces * std + mean (float32)."""
    norms = spec["normalizers"]
    e = norms.get("energy", norms.get("target"))
    f = norms.get("forces", norms.get("grad_target"))
    energy = energy * e["std"].float() + e["mean"].float()
    if forces is not None:
        forces = forces * f["std"].float() + f["mean"].float()
    return np.float32(energy.item()), None if forces is None else forces.numpy().astype(np.float32)


def evaluate(upstream, spec, model, structs):
    import torch

    per_seed, fixed = {}, {}
    with torch.no_grad():  # direct forces: no gradient (the classes' conditional_grad switches it on anyway)
        for seed in spec.get("seeds", SEEDS):
            for atoms in structs:
                t0 = time.perf_counter()
                per_seed.setdefault(atoms.info["name"], []).append(physical(spec, *raw_outputs(model, atoms, seed)))
                logging.info("  seed %d %-22s %.2fs", seed, atoms.info["name"], time.perf_counter() - t0)
        with fixed_frame(upstream):
            for atoms in structs:
                fixed[atoms.info["name"]] = physical(spec, *raw_outputs(model, atoms, 0))
    out = {}
    for name, res in per_seed.items():
        (e0, f0), (ef, ff) = res[0], fixed[name]
        out[name] = {
            "natoms": int(len(next(a for a in structs if a.info["name"] == name))),
            "energy": float(e0),
            "forces": None if f0 is None else mg._f64(f0),
            "stress": None,
            "energy_spread": max(abs(float(e) - float(e0)) for e, _ in res),
            "forces_spread": None if f0 is None else max(float(np.abs(f - f0).max()) for _, f in res),
            "stress_spread": None,
            "energy_fixed_roll": float(ef),
            "forces_fixed_roll": None if ff is None else mg._f64(ff),
            "stress_fixed_roll": None,
        }
    return out, fixed


def hydra_cross_check(upstream, spec, model, structs, fixed) -> dict:
    """fairchem 1.10's `EqV2DeNSBackbone` + DeNS heads with the same weights, fixed frame: the largest
    differences from the DeNS class (energy per atom, eV; forces, eV/A). fairchem's heads ignore
    `energy_lin_ref`, so for a class that applies it the per-atom references are added here (scaled by
    nothing: the class adds them to the normalized energy, as here before de-normalization)."""
    import torch

    backbone = {k: v for k, v in spec["options"].items() if k not in ("use_tp_reparam",)}
    hydra = upstream.build("hydra", {
        "backbone": {"model": "equiformer_v2_dens_backbone", **backbone},
        "heads": {"energy": {"module": "eqV2_DeNS_scalar_head"}, "forces": {"module": "eqV2_DeNS_vector_head"}},
        "otf_graph": True, "pass_through_head_outputs": True,
    })
    renamed = {}
    for key, value in model.state_dict().items():
        head = key.split(".", 1)[0]
        if head == "energy_block":
            key = "output_heads.energy.scalar_block." + key.split(".", 1)[1]
        elif head == "force_block":
            key = "output_heads.forces.vector_block." + key.split(".", 1)[1]
        elif head == "denoising_pos_block":
            key = "output_heads.forces." + key
        else:
            key = "backbone." + key
        renamed[key] = value
    # With use_m_share_rad the DeNS class scales each degree l after rotating into the edge frame (its
    # `expand_index` indexes the m <= mmax coefficients), fairchem before (all (lmax+1)**2): the same
    # function, as the scale is constant within a degree; each keeps its own index buffer.
    own = hydra.state_dict()
    renamed = {k: (own[k] if k.endswith("expand_index") and own[k].shape != v.shape else v) for k, v in renamed.items()}
    hydra.load_state_dict(renamed, strict=True)
    hydra.eval()
    lin_ref = model.energy_lin_ref.detach() if spec["options"].get("use_energy_lin_ref") else None
    worst_e = worst_f = 0.0
    with fixed_frame(upstream), torch.no_grad():
        for atoms in structs:
            energy, forces = raw_outputs(hydra, atoms, 0)
            if lin_ref is not None:
                energy = energy + lin_ref[torch.as_tensor(atoms.numbers)].sum()
            e, f = physical(spec, energy, forces)
            e_ref, f_ref = fixed[atoms.info["name"]]
            worst_e = max(worst_e, abs(float(e) - float(e_ref)) / len(atoms))
            worst_f = max(worst_f, float(np.abs(f - f_ref).max()))
    return {"model": "hydra: equiformer_v2_dens_backbone + eqV2_DeNS_scalar_head / eqV2_DeNS_vector_head",
            "frame": "fixed (ours)", "lin_ref_added_by_hand": lin_ref is not None,
            "energy_per_atom_max_abs_diff": worst_e, "forces_max_abs_diff": worst_f}


def run_config(upstream, name, spec, structs):
    import torch

    t0 = time.perf_counter()
    model = upstream.build(spec["kind"], spec["options"])
    params = mg.param_list(model)
    drawn = seeded_state_dict(params)
    with torch.no_grad():
        for key, p in model.named_parameters():
            p.copy_(torch.from_numpy(drawn[key]))
    model.eval()
    ckpt = {"epoch": 3, "step": 1000, "state_dict": {spec["prefix"] + k: v for k, v in model.state_dict().items()},
            "normalizers": copy.deepcopy(spec["normalizers"]), "config": copy.deepcopy(spec["config"]),
            "val_metrics": {"energy_mae": {"total": 1.0, "numel": 1, "metric": 1.0}}, "amp": None}
    if spec["store"]:
        ckpt_field = f"ckpt_{name}.pt"
        mg.save_checkpoint(ckpt, DATA / ckpt_field)
    else:
        ckpt_field = f"params_{name}.json"
        manifest = {"config": spec["config"], "normalizers": mg.json_normalizers(spec["normalizers"]),
                    "elementrefs": None, "state_dict_prefix": spec["prefix"], "params": params}
        (DATA / ckpt_field).write_text(json.dumps(manifest, indent=1))
        with tempfile.TemporaryDirectory() as tmp:  # the checkpoint must load with weights_only=True
            mg.save_checkpoint(ckpt, Path(tmp) / "ckpt.pt")
    del ckpt
    chosen = [a for a in structs if a.info["name"] in spec.get("structures", [a.info["name"] for a in structs])]
    golden, fixed = evaluate(upstream, spec, model, chosen)
    doc = {
        "config_name": name,
        "checkpoint": ckpt_field,
        "reference_code": {"equiformer_v2_dens": "atomicarchitects/DeNS model/equiformer_v2/equiformer_v2_denoising.py "
                                                 "EquiformerV2S_OC20_DenoisingPos",
                           "dens_base": "atomicarchitects/DeNS model/equiformer_v2/equiformer_v2.py "
                                        "EquiformerV2S_OC20 (registered there as equiformer_v2)",
                           "paper": "atomicarchitects/equiformer_v2 nets/equiformer_v2/equiformer_v2_oc20.py "
                                    "EquiformerV2_OC20",
                           "fairchem": "fairchem-core 1.10.0 equiformer_v2 (deprecated single class)"}[spec["kind"]],
        "fairchem_version": mg.fairchem_version(),
        "torch_version": torch.__version__,
        "seeds": list(spec.get("seeds", SEEDS)),
        "implemented_properties": ["energy"] if spec["options"].get("regress_forces", True) is False
        else ["energy", "forces"],
        "n_params": int(sum(int(np.prod(s)) for _, s in params)),
        "structures": golden,
    }
    if spec["kind"] == "equiformer_v2_dens":
        doc["fairchem_dens_backbone"] = hydra_cross_check(upstream, spec, model, chosen, fixed)
        logging.info("  fairchem EqV2DeNSBackbone vs DeNS class: %s", doc["fairchem_dens_backbone"])
    (DATA / f"golden_{name}.json").write_text(json.dumps(doc, indent=1))
    logging.info("%s done in %.0fs (%d parameters)", name, time.perf_counter() - t0, doc["n_params"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dens", type=Path, help="checkout of github.com/atomicarchitects/DeNS")
    ap.add_argument("--paper", type=Path, help="checkout of github.com/atomicarchitects/equiformer_v2")
    ap.add_argument("--configs", default=None, help="comma-separated subset of the configs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch
    from ase.io import read

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    upstream = Upstream(args.dens, args.paper)
    specs = make_specs()
    structs = read(DATA / "structures.traj", index=":")
    for name in args.configs.split(",") if args.configs else list(specs):
        logging.info("=== %s", name)
        run_config(upstream, name, specs[name], structs)


if __name__ == "__main__":
    main()
