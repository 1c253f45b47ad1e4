"""fairchem 1.x checkpoint files: read every EquiformerV2 flavour, and write the same format.

A fairchem checkpoint is a `torch.save`d dict with `config` (the training config, whose model
section is either the old layout `model: "equiformer_v2"` + `model_attributes: {...}` or the new
`model: {"name": ...}`, possibly a "hydra" backbone + heads), `state_dict` (keys prefixed by
`module.` once per DDP wrapper), `normalizers` and optional `elementrefs`. Everything that knows
these formats lives here; the model itself is built from a plain `EquiformerV2Config`.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError, ConfigError
from .model import EquiformerV2, EquiformerV2Config
from .potential import Normalizer, Potential

# Single-class models by registry or class name -> whether it is the DeNS class (force encoding,
# `denoising_pos_block`): fairchem's (deprecated) class, the paper's (atomicarchitects/equiformer_v2
# nets/equiformer_v2/equiformer_v2_oc20.py) and the DeNS repository's (atomicarchitects/DeNS
# model/equiformer_v2/: its base class is also registered as "equiformer_v2").
_SINGLE_MODELS = {"equiformer_v2": False, "EquiformerV2": False, "EquiformerV2_OC20": False,
                  "EquiformerV2S_OC20": False,
                  "equiformer_v2_dens": True, "EquiformerV2S_OC20_DenoisingPos": True}
# Old option names of single-class configs (ODAC23 files of 2023: fairchem PR #755 renamed them in the
# S2EF configs with the same values, not in the IS2RE one; fairchem issue #892).
_OLD_OPTION_NAMES = {"norm_scale_nodes": "avg_num_nodes", "norm_scale_degree": "avg_degree"}
_BACKBONES = {"equiformer_v2_backbone": False, "EquiformerV2Backbone": False,
              "equiformer_v2_dens_backbone": True, "EqV2DeNSBackbone": True}
_HEAD_ROLES = {
    "equiformer_v2_energy_head": "energy", "equiformerV2_scalar_head": "energy", "eqV2_DeNS_scalar_head": "energy",
    "equiformer_v2_dens_energy_head": "energy", "EquiformerV2EnergyHead": "energy", "EqV2ScalarHead": "energy",
    "DeNSScalarHead": "energy", "DeNSEnergyHead": "energy",
    "equiformer_v2_force_head": "forces", "equiformerV2_vector_head": "forces", "eqV2_DeNS_vector_head": "forces",
    "equiformer_v2_dens_force_head": "forces", "EquiformerV2ForceHead": "forces", "EqV2VectorHead": "forces",
    "DeNSVectorHead": "forces", "DeNSForceHead": "forces",
    "rank2_symmetric_head": "stress", "dens_rank2_symmetric_head": "stress",
    "Rank2SymmetricTensorHead": "stress", "DeNSRank2Head": "stress",
}
# Head options that only matter for training or naming.
_HEAD_NEUTRAL = {"module", "output_name", "use_denoising", "default_norm_type"}
_STRESS_OPTIONS = {"decompose", "edge_level_mlp", "num_mlp_layers", "use_source_target_embedding", "extensive", "avg_num_nodes"}
# Hydra-level options that do not change inference.
_HYDRA_NEUTRAL = {"name", "backbone", "heads", "pass_through_head_outputs", "otf_graph", "freeze_backbone",
                  "finetune_config", "starting_checkpoint"}
# Buffers fairchem stores in its state dict; we recompute all of them from the config.
FAIRCHEM_BUFFER_NAMES = {"l_harmonic", "m_harmonic", "m_complex", "res_size", "to_m", "m_size", "to_grid_mat",
                     "from_grid_mat", "offset", "expand_index", "balance_degree_weight"}
# Head attribute names of DeNS checkpoints and their names in our modules.
_DENS_RENAMES = {"scalar_block": "energy_block", "vector_block": "force_block"}
# Old fairchem normalizer keys (released OC20 files).
_OLD_NORMALIZER_KEYS = {"target": "energy", "grad_target": "forces"}


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _unpickling_problem(exc: Exception) -> str:
    """One line of ours for torch's multi-line weights-only refusal (never its advice to drop weights_only)."""
    text = str(exc)
    found = re.search(r"unsupported GLOBAL (\S+)", text)
    if found:
        return (f"it holds a Python object ({found.group(1)}) where a checkpoint holds only tensors and plain data; "
                "eqv2_calc never runs code from a checkpoint, so it cannot use this file (corrupt, not a fairchem "
                "EquiformerV2 checkpoint, or unsafe)")
    found = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    reason = found.group(1).strip() if found else _first_line(exc)
    return f"the file is corrupt or not a torch checkpoint ({reason})"


def read_checkpoint(path: str | os.PathLike, *, weights_only: bool = True) -> dict[str, Any]:
    """`torch.load` a checkpoint onto the CPU; unreadable or non-fairchem files raise `CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # garbage reads as any protocol
            checkpoint = torch.load(path, map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {_unpickling_problem(exc)}") from None
    except Exception as exc:  # torch raises several types for truncated / non-zip / garbage files
        raise CheckpointError(f"cannot read checkpoint {path}: the file is corrupt or not a torch checkpoint "
                              f"({_first_line(exc)})") from None
    if not isinstance(checkpoint, Mapping) or "config" not in checkpoint or "state_dict" not in checkpoint:
        keys = sorted(checkpoint)[:8] if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise CheckpointError(f"{path} is not a fairchem checkpoint: it lacks 'config'/'state_dict' (found {keys})")
    return dict(checkpoint)


def model_section(config: Mapping[str, Any]) -> dict[str, Any]:
    """The model section of a fairchem config in the new layout `{"name": ..., **options}`."""
    model = config.get("model")
    if isinstance(model, str):
        return {"name": model, **dict(config.get("model_attributes") or {})}
    if isinstance(model, Mapping) and "name" in model:
        return dict(model)
    raise CheckpointError("checkpoint config has no model section ('model' name or dict with 'name')")


def _short(name: str) -> str:
    """Registry name or the last component of a class path."""
    return str(name).rsplit(".", 1)[-1]


def config_from_fairchem(config: Mapping[str, Any]) -> tuple[EquiformerV2Config, dict[str, str]]:
    """Translate a fairchem config into our config; returns it and {our head role: fairchem head key}."""
    model = model_section(config)
    name = _short(model["name"])
    try:
        if name in _SINGLE_MODELS:
            return _single_class_config(model, dens=_SINGLE_MODELS[name]), {}
        if name != "hydra":
            raise CheckpointError(f"this is a '{model['name']}' checkpoint, not an EquiformerV2 one")
        return _hydra_config(model)
    except ConfigError as exc:
        raise CheckpointError(f"unsupported EquiformerV2 configuration: {exc}") from exc


def _single_class_config(model: Mapping[str, Any], *, dens: bool) -> EquiformerV2Config:
    """Options of a single-class model; `regress_forces=False` (the class builds no force block) is
    an energy-only model."""
    options = {k: v for k, v in model.items() if k != "name"}
    for old, new in _OLD_OPTION_NAMES.items():
        if old in options:
            if new in options:
                raise ConfigError(f"both '{old}' and its new name '{new}' are given")
            options[new] = options.pop(old)
    energy_only = options.get("regress_forces", True) is False
    return EquiformerV2Config.from_dict({**options, "layout": "equiformer_v2", "dens": dens,
                                         "energy_only": energy_only})


def _hydra_config(model: Mapping[str, Any]) -> tuple[EquiformerV2Config, dict[str, str]]:
    unknown = sorted(set(model) - _HYDRA_NEUTRAL)
    if unknown:
        raise ConfigError(f"unknown hydra option(s): {', '.join(unknown)}")
    backbone = dict(model.get("backbone") or {})
    if not backbone:
        raise CheckpointError("hydra checkpoint config has no 'backbone' section (a fine-tuning config that "
                              "points at another checkpoint?); the backbone options are needed to build the model")
    backbone_name = _short(backbone.pop("model", backbone.pop("name", "")))
    if backbone_name not in _BACKBONES:
        raise CheckpointError(f"this is a '{backbone_name}' backbone, not an EquiformerV2 one")
    options: dict[str, Any] = {**backbone, "layout": "hydra", "dens": _BACKBONES[backbone_name]}
    head_keys: dict[str, str] = {}
    for key, head in (model.get("heads") or {}).items():
        role = _HEAD_ROLES.get(_short(head.get("module", "")))
        if role is None:
            raise CheckpointError(f"head '{key}' is a '{head.get('module')}', which EquiformerV2 does not have")
        head_keys[role] = key
        rest = {k: v for k, v in head.items() if k not in _HEAD_NEUTRAL}
        if role == "energy":
            options["energy_reduce"] = rest.pop("reduce", "sum")
        elif role == "stress":
            options["stress_head"] = {k: rest.pop(k) for k in list(rest) if k in _STRESS_OPTIONS}
        if rest:
            raise ConfigError(f"unknown option(s) of head '{key}': {', '.join(sorted(rest))}")
    if "forces" not in head_keys and backbone.get("regress_forces", True) is False:
        options["energy_only"] = True  # as `fairchem_config` writes an energy-only model
    with_forces = backbone.get("direct_forces", True) and not options.get("energy_only")
    needed = {"energy", "forces"} if with_forces else {"energy"}
    missing = needed - set(head_keys)
    if missing:
        raise CheckpointError(f"hydra checkpoint lacks the {' and '.join(sorted(missing))} head(s)")
    return EquiformerV2Config.from_dict(options), head_keys


def state_dict_from_fairchem(
    state_dict: Mapping[str, torch.Tensor], config: EquiformerV2Config, head_keys: Mapping[str, str]
) -> dict[str, torch.Tensor]:
    """Rename fairchem keys to ours: strip `module.` prefixes, drop recomputable buffers, and move
    the single-class heads (`energy_block`, `force_block`) under `output_heads.`."""
    role_of_key = {key: role for role, key in head_keys.items()}
    out = {}
    for key, value in state_dict.items():
        while key.startswith("module."):
            key = key[len("module."):]
        if key.rsplit(".", 1)[-1] in FAIRCHEM_BUFFER_NAMES:
            continue
        if config.layout == "equiformer_v2":
            head = key.split(".", 1)[0]
            if head == "energy_block":
                key = "output_heads.energy." + key
            elif head in ("force_block", "denoising_pos_block"):
                key = "output_heads.forces." + key
            else:
                key = "backbone." + key
        elif key.startswith("output_heads."):
            _, head_key, attr, rest = key.split(".", 3)
            key = f"output_heads.{role_of_key.get(head_key, head_key)}.{_DENS_RENAMES.get(attr, attr)}.{rest}"
        out[key] = value
    return out


def _normalizers(raw: Mapping[str, Any]) -> dict[str, Normalizer]:
    out = {}
    for key, value in (raw or {}).items():
        stats = dict(value) if isinstance(value, Mapping) else {}
        if "mean" not in stats or not ({"rmsd", "std"} & set(stats)):
            raise CheckpointError(f"normalizer '{key}' must hold 'mean' and 'rmsd' (or 'std'), found {sorted(stats)}")
        rmsd = stats["rmsd"] if "rmsd" in stats else stats["std"]
        out[_OLD_NORMALIZER_KEYS.get(key, key)] = Normalizer(float(stats["mean"]), float(rmsd))
    return out


def _element_references(raw: Mapping[str, Any] | None, num_elements: int) -> torch.Tensor | None:
    refs = ((raw or {}).get("energy") or {}).get("element_references")
    if refs is None:
        return None
    refs = torch.as_tensor(refs, dtype=torch.float64).flatten()
    padded = torch.zeros(max(num_elements, refs.numel()), dtype=torch.float64)
    padded[: refs.numel()] = refs
    return padded


def ema_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The checkpoint's state dict with its EMA (exponential moving average) weights swapped in.

    fairchem keeps `ema = ExponentialMovingAverage(...).state_dict()` whose `shadow_params` list
    follows the order of the trainable parameters, i.e. of the state-dict keys that are neither
    recomputable buffers nor the frozen `energy_lin_ref`. Released files already hold their EMA
    weights in `state_dict` (fairchem ignores `ema` at inference), so this is for training files.
    """
    ema = checkpoint.get("ema")
    if not isinstance(ema, Mapping) or not ema.get("shadow_params"):
        raise CheckpointError("the checkpoint holds no EMA weights ('ema' with 'shadow_params')")
    state_dict = dict(checkpoint["state_dict"])
    keys = [k for k in state_dict
            if k.rsplit(".", 1)[-1] not in FAIRCHEM_BUFFER_NAMES and not k.endswith("energy_lin_ref")]
    shadow = list(ema["shadow_params"])
    if len(shadow) != len(keys) or any(tuple(state_dict[k].shape) != tuple(p.shape) for k, p in zip(keys, shadow)):
        raise CheckpointError(f"EMA weights ({len(shadow)} tensors) do not line up with the {len(keys)} trainable weights")
    state_dict.update(zip(keys, shadow))
    return state_dict


def potential_from_checkpoint(
    checkpoint: Mapping[str, Any], source: str = "checkpoint", *, use_ema: bool = False
) -> Potential:
    """Build a `Potential` (in eval mode, float32, CPU) from a loaded fairchem checkpoint dict.

    `use_ema=True` takes the EMA weights of a training checkpoint instead of `state_dict`'s.
    """
    config, head_keys = config_from_fairchem(checkpoint["config"])
    model = EquiformerV2(config)
    raw = ema_state_dict(checkpoint) if use_ema else checkpoint["state_dict"]
    state_dict = state_dict_from_fairchem(raw, config, head_keys)
    result = model.load_state_dict(state_dict, strict=False)
    problems = []
    if result.missing_keys:
        problems.append(f"{len(result.missing_keys)} missing (e.g. {', '.join(result.missing_keys[:3])})")
    if result.unexpected_keys:
        problems.append(f"{len(result.unexpected_keys)} unexpected (e.g. {', '.join(result.unexpected_keys[:3])})")
    if problems:
        raise CheckpointError(f"{source}: state dict does not match its EquiformerV2 config: {'; '.join(problems)} weights")
    normalizers = _normalizers(checkpoint.get("normalizers") or {})
    refs = _element_references(checkpoint.get("elementrefs"), config.max_num_elements)
    return Potential(model, normalizers, None if refs is None else refs.float()).eval()


def load_potential(
    path: str | os.PathLike, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
    weights_only: bool = True, use_ema: bool = False,
) -> Potential:
    """Read a fairchem 1.x EquiformerV2 checkpoint file into a ready-to-run `Potential`."""
    try:
        checkpoint = read_checkpoint(path, weights_only=weights_only)
        potential = potential_from_checkpoint(checkpoint, source=str(path), use_ema=use_ema)
    except RuntimeError as exc:  # size mismatches from load_state_dict
        raise CheckpointError(f"{path}: weights do not fit the config stored in the file: {exc}") from exc
    return potential.to(device=device, dtype=dtype)


def fairchem_config(config: EquiformerV2Config) -> dict[str, Any]:
    """The model section (new hydra layout) that fairchem 1.x writes for this configuration."""
    options = config.to_dict()
    for key in ("energy_reduce", "stress_head", "dens", "layout", "energy_only"):
        options.pop(key)
    if config.energy_only:
        options["regress_forces"] = False
    if config.direct_forces:
        options.pop("direct_forces")
    if not config.dens:
        options.pop("use_force_encoding")
        options.pop("use_noise_schedule_sigma_encoding")
    prefix = "eqV2_DeNS_" if config.dens else "equiformerV2_"
    heads: dict[str, dict[str, Any]] = {"energy": {"module": prefix + "scalar_head", "reduce": config.energy_reduce}}
    if config.direct_forces and config.predicts_forces:
        heads["forces"] = {"module": prefix + "vector_head"}
    if config.stress_head is not None:
        module = "dens_rank2_symmetric_head" if config.dens else "rank2_symmetric_head"
        heads["stress"] = {"module": module, "output_name": "stress", **vars(config.stress_head)}
    backbone = "equiformer_v2_dens_backbone" if config.dens else "equiformer_v2_backbone"
    return {"name": "hydra", "backbone": {"model": backbone, **options}, "heads": heads,
            "pass_through_head_outputs": True, "otf_graph": True}


def save_checkpoint(potential: Potential, path: str | os.PathLike, *, extra: Mapping[str, Any] | None = None) -> Path:
    """Write `potential` as a fairchem 1.x style checkpoint (hydra layout), atomically.

    The file holds `config`, `state_dict` (parameters; fairchem's recomputable buffers are left out),
    `normalizers`, `elementrefs` and any `extra` top-level entries (e.g. `epoch`, `step`).
    """
    path = Path(path)
    config = potential.config
    inverse = {v: k for k, v in _DENS_RENAMES.items()} if config.dens else {}
    state_dict = {}
    for key, value in potential.model.state_dict().items():
        if key.startswith("output_heads."):
            _, role, attr, rest = key.split(".", 3)
            key = f"output_heads.{role}.{inverse.get(attr, attr)}.{rest}"
        state_dict[key] = value.detach().cpu()
    checkpoint = {
        "config": {"model": fairchem_config(config), "outputs": {p: {} for p in potential.implemented_properties
                                                                  if p != "free_energy"}},
        "state_dict": state_dict,
        "normalizers": {k: {"mean": torch.tensor(n.mean, dtype=torch.float64), "rmsd": torch.tensor(n.rmsd, dtype=torch.float64)}
                        for k, n in potential.normalizers.items()},
        "elementrefs": {"energy": {"element_references": potential.element_references.detach().cpu().float()}},
        **dict(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
