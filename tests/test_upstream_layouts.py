"""Layouts of the research code and of ODAC IS2RE: DeNS repository files (`equiformer_v2_dens`), files of
the paper's repository, the energy-only IS2RE direct model; their bad inputs.

Numbers are checked in tests/test_parity.py (golden_upstream_*, golden_odac_is2re, made by
tools/make_golden_upstream.py from the upstream classes themselves); here: keys, options, refusals.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ase.build import add_adsorbate, bulk, fcc111
from ase.calculators.calculator import PropertyNotImplementedError
from ase.io import write

from conftest import DATA, golden, structure
from eqv2_calc.checkpoint import config_from_fairchem, load_potential, potential_from_checkpoint, read_checkpoint
from eqv2_calc.checkpoint import save_checkpoint, state_dict_from_fairchem
from eqv2_calc.errors import CheckpointError, EnergyOnlyModelError
from eqv2_calc.model import EquiformerV2
from lmdb_files import data_fields, write_lmdb

DENS_OC20 = DATA / "ckpt_upstream_dens_oc20.pt"
DENS_OC22 = DATA / "ckpt_upstream_dens_oc22.pt"
PAPER = DATA / "ckpt_upstream_paper.pt"
ODAC = DATA / "ckpt_odac_is2re.pt"
REAL_SIZE = sorted(DATA.glob("params_upstream_dens_*.json"))


def eqv2(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eqv2_calc.cli", *args], capture_output=True, text=True, check=False)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


# --------------------------------------------------------------------------------------------- DeNS repository
def test_dens_file_is_the_dens_class_with_its_extra_modules() -> None:
    checkpoint = read_checkpoint(DENS_OC20)
    assert checkpoint["config"]["model"]["name"] == "equiformer_v2_dens"
    assert checkpoint["config"]["trainer"] == "denoising_forces"
    keys = set(checkpoint["state_dict"])
    assert {"module.force_embedding.weight", "module.force_embedding.bias"} <= keys
    assert any(k.startswith("module.denoising_pos_block.") for k in keys)
    potential = load_potential(DENS_OC20)
    assert potential.config.dens and potential.config.layout == "equiformer_v2"
    assert "use_tp_reparam" in potential.config.ignored


def test_dens_oc22_applies_its_linear_references_and_sigma_encoding() -> None:
    potential = load_potential(DENS_OC22)
    config = potential.config
    assert config.use_energy_lin_ref and config.use_noise_schedule_sigma_encoding
    assert not config.enforce_max_neighbors_strictly
    assert golden("upstream_dens_oc22")["fairchem_dens_backbone"]["lin_ref_added_by_hand"]


@pytest.mark.parametrize("config_name", ["upstream_dens_oc20", "upstream_dens_oc22"])
def test_fairchem_dens_backbone_computes_the_same_function(config_name: str) -> None:
    """tools/make_golden_upstream.py ran fairchem 1.10's EqV2DeNSBackbone on the DeNS class's weights."""
    check = golden(config_name)["fairchem_dens_backbone"]
    assert check["energy_per_atom_max_abs_diff"] < 1e-6 and check["forces_max_abs_diff"] < 1e-5


@pytest.mark.parametrize("manifest", REAL_SIZE, ids=lambda p: p.stem)
def test_published_dens_configs_build_with_the_files_keys(manifest: Path) -> None:
    """The DeNS repository's published configs at full size: our network has exactly its parameters."""
    doc = json.loads(manifest.read_text())
    config, head_keys = config_from_fairchem(doc["config"])
    assert config.dens and config.lmax == 6 and config.num_layers in (12, 18, 20)
    model = EquiformerV2(config)  # random init on the CPU: about 1 s for 153M parameters
    with torch.device("meta"):
        theirs = {doc["state_dict_prefix"] + name: torch.empty(shape) for name, shape in doc["params"]}
    ours = {k: tuple(v.shape) for k, v in model.named_parameters()}
    renamed = {k: tuple(v.shape) for k, v in state_dict_from_fairchem(theirs, config, head_keys).items()}
    assert renamed == ours
    assert sum(v.numel() for v in model.parameters()) == sum(int(torch.tensor(s).prod()) for _, s in doc["params"])


REGISTRY_NAMES = {"params_upstream_dens_oc20_2M": ("EquiformerV2-DeNS-83M-S2EF-OC20-2M-12epochs",
                                                     "EquiformerV2-DeNS-83M-S2EF-OC20-2M-30epochs"),
                  "params_upstream_dens_oc20_allmd": ("EquiformerV2-DeNS-153M-S2EF-OC20-All+MD",),
                  "params_upstream_dens_oc22_full": ("EquiformerV2-DeNS-121M-S2EF-OC22",)}


@pytest.mark.parametrize("manifest", REAL_SIZE, ids=lambda p: p.stem)
def test_published_dens_configs_are_what_the_registry_expects(manifest: Path) -> None:
    """Loading a released DeNS file by name warns when its config is not the published one (e.g. OC22 with
    its linear references switched on, which would turn referenced into total energies)."""
    import dataclasses

    from eqv2_calc.hub import config_mismatches, find_entry

    config, _ = config_from_fairchem(json.loads(manifest.read_text())["config"])
    for name in REGISTRY_NAMES[manifest.stem]:
        entry = find_entry(name)
        assert entry.supported and config_mismatches(entry, config) == [], name
    if "use_energy_lin_ref" in entry.model_config:
        total = dataclasses.replace(config, use_energy_lin_ref=True, load_energy_lin_ref=True)
        assert config_mismatches(entry, total) == ["use_energy_lin_ref: registry False, file True"]


def test_checkpoints_info_says_what_oc22_dens_energies_are() -> None:
    info = eqv2("checkpoints", "info", "EquiformerV2-DeNS-121M-S2EF-OC22")
    assert info.returncode == 0, info.stderr
    assert "linear_referenced: OC22 total energy minus the OC22 per-element linear references" in info.stdout
    listed = eqv2("checkpoints", "list")
    assert listed.returncode == 0 and "not readable" not in listed.stdout  # the footer of any unreadable entry


def test_dens_file_without_denoising_keys_names_them(tmp_path: Path) -> None:
    checkpoint = read_checkpoint(DENS_OC20)
    checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if "denoising_pos_block" not in k}
    with pytest.raises(CheckpointError, match=r"missing \(e\.g\. output_heads\.forces\.denoising_pos_block\."):
        potential_from_checkpoint(checkpoint)
    path = tmp_path / "no_denoising.pt"
    torch.save(checkpoint, path)
    structure_file = tmp_path / "cu.xyz"
    write(structure_file, bulk("Cu"))
    err = one_line_error(eqv2("predict", "--model", str(path), str(structure_file), "--quiet"))
    assert "denoising_pos_block" in err and "missing" in err


def test_truncated_dens_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "eq2_dens_epochs_12_2M.pt"
    path.write_bytes(DENS_OC20.read_bytes()[: DENS_OC20.stat().st_size // 3])
    structure_file = tmp_path / "cu.xyz"
    write(structure_file, bulk("Cu"))
    err = one_line_error(eqv2("predict", "--model", str(path), str(structure_file), "--quiet"))
    assert f"cannot read checkpoint {path}" in err and "corrupt" in err


@pytest.mark.parametrize("option,value,message", [
    ("use_turbo_mode", True, "unknown EquiformerV2 option(s): use_turbo_mode"),
    ("use_tp_reparam", True, "use_tp_reparam=True is not supported: the tensor-product re-parametrized"),
])
def test_config_option_we_cannot_compute_is_named(option: str, value, message: str) -> None:
    checkpoint = read_checkpoint(DENS_OC20)
    checkpoint["config"]["model"][option] = value
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        potential_from_checkpoint(checkpoint)


# --------------------------------------------------------------------------------------------- paper's repository
def test_paper_repository_file_loads_by_path() -> None:
    checkpoint = read_checkpoint(PAPER)
    assert checkpoint["config"]["model"] == "equiformer_v2"
    assert next(iter(checkpoint["state_dict"])).startswith("module.module.")
    potential = load_potential(PAPER)
    assert potential.config.use_gate_act and potential.config.share_atom_edge_embedding


def test_dens_repository_base_class_options_are_accepted() -> None:
    """The DeNS repository's `equiformer_v2` (its base class, used for fine-tuning without denoising)."""
    checkpoint = read_checkpoint(PAPER)
    checkpoint["config"]["model_attributes"].update(use_tp_reparam=False, use_energy_lin_ref=False,
                                                    load_energy_lin_ref=False, enforce_max_neighbors_strictly=True)
    assert not potential_from_checkpoint(checkpoint).config.dens


# --------------------------------------------------------------------------------------------- ODAC IS2RE direct
@pytest.fixture(scope="module")
def odac():
    return load_potential(ODAC)


def test_odac_is2re_config_reads_the_old_names(odac) -> None:
    stored = read_checkpoint(ODAC)["config"]
    assert {"norm_scale_nodes", "norm_scale_degree"} <= set(stored["model_attributes"])
    assert stored["model_attributes"]["regress_forces"] is False and stored["trainer"] == "equiformerv2_energy"
    assert odac.config.avg_num_nodes == stored["model_attributes"]["norm_scale_nodes"]
    assert odac.config.avg_degree == stored["model_attributes"]["norm_scale_degree"]
    assert odac.config.energy_only and odac.implemented_properties == ["energy", "free_energy"]
    both = copy.deepcopy(stored)
    both["model_attributes"]["avg_num_nodes"] = 100.0
    with pytest.raises(CheckpointError, match="both 'norm_scale_nodes' and its new name 'avg_num_nodes'"):
        config_from_fairchem(both)


def test_odac_is2re_calculator_gives_energy_only(odac) -> None:
    from eqv2_calc import EquiformerV2Calculator

    atoms = structure("cu111_co_pbc_ttt")
    atoms.calc = EquiformerV2Calculator(odac, device="cpu")
    assert atoms.get_potential_energy() == pytest.approx(golden("odac_is2re")["structures"]["cu111_co_pbc_ttt"]["energy"],
                                                         abs=1e-3)
    assert "forces" not in atoms.calc.results
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_forces()


def test_tasks_needing_forces_refuse_an_energy_only_model(odac) -> None:
    from eqv2_calc.md import run_md
    from eqv2_calc.relax import relax, relax_many

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    for run in (lambda: relax(atoms, odac), lambda: relax_many([atoms], odac, progress=False),
                lambda: run_md(atoms, odac, steps=1)):
        with pytest.raises(EnergyOnlyModelError, match="needs forces, but this model predicts only an energy"):
            run()


def test_odac_is2re_predict_and_relax_on_the_command_line(tmp_path: Path) -> None:
    structure_file = tmp_path / "slab.xyz"
    write(structure_file, structure("cu111_co_pbc_ttt"))
    predict = eqv2("predict", "--model", str(ODAC), str(structure_file), "--quiet", "--device", "cpu", "--json")
    assert predict.returncode == 0, predict.stderr
    record = json.loads(predict.stdout)[0]
    assert record["fmax"] is None and record["energy"] == pytest.approx(
        golden("odac_is2re")["structures"]["cu111_co_pbc_ttt"]["energy"], abs=1e-3)
    out = tmp_path / "out.extxyz"
    err = one_line_error(eqv2("relax", "--model", str(ODAC), str(structure_file), "-o", str(out), "--quiet"))
    assert "relax" in err and "predicts only an energy" in err and not out.exists()


def test_odac_is2re_evaluates_is2re_data_directly(odac, tmp_path: Path) -> None:
    from torch_geometric.data import Data

    from eqv2_calc.evaluation import evaluate

    initial = fcc111("Cu", (2, 2, 2), vacuum=5.0)
    add_adsorbate(initial, "O", 1.8, "fcc")
    lmdb = write_lmdb(tmp_path / "is2re.lmdb", [Data(**data_fields(initial, is2re={"y_relaxed": -1.5}))])
    with pytest.warns(UserWarning, match="energy reference of Potential object is not registered"):
        report = evaluate(lmdb, odac, energy_kind="total", progress=False)
    row = report.rows[0]
    assert report.metrics["task"] == "is2re" and "IS2RE direct" in report.metrics["measured"]
    assert row["relaxed_energy_pred_eV"] == pytest.approx(float(odac_energy(odac, initial)), abs=1e-5)
    assert row["steps"] == 0


def odac_energy(potential, atoms) -> float:
    from eqv2_calc.predict import evaluate

    return evaluate(potential, [atoms])[0].energy


def test_energy_only_model_saves_and_loads_back(odac, tmp_path: Path) -> None:
    path = save_checkpoint(odac, tmp_path / "odac.pt")
    loaded = load_potential(path)
    assert loaded.config.energy_only and loaded.implemented_properties == ["energy", "free_energy"]
    atoms = structure("h2o_molecule")
    assert odac_energy(loaded, atoms) == pytest.approx(odac_energy(odac, atoms), abs=1e-6)
