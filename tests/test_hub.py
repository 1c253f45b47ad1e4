"""Registry, cache and downloads (`eqv2_calc.hub`), all offline: a local HTTP server on 127.0.0.1 and a
fake Hugging Face cache / monkeypatched `hf_hub_download` stand in for the network."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import huggingface_hub
import pytest
import torch
from ase import Atoms
from ase.build import add_adsorbate, bulk, fcc111, molecule
from huggingface_hub import errors as hf_errors

import eqv2_calc
from eqv2_calc import hub
from eqv2_calc.calculator import EquiformerV2Calculator
from eqv2_calc.checkpoint import load_potential
from eqv2_calc.errors import (
    CheckpointError, ChecksumError, DomainWarning, DownloadError, EquiformerV2Error, GatedRepoError, ModelNotice,
    OfflineError, RegistryError, UnknownModelError,
)
from conftest import DATA

REPO_ROOT = Path(__file__).resolve().parents[1]
CKPT = DATA / "ckpt_small.pt"
CKPT_BYTES = CKPT.read_bytes()
CKPT_SHA256 = hashlib.sha256(CKPT_BYTES).hexdigest()
# The fairchem-core 1.10.0 wheel's pretrained_models.json, EquiformerV2 entries (names verbatim).
FAIRCHEM_110_NAMES = [
    "EquiformerV2-83M-S2EF-OC20-2M", "EquiformerV2-31M-S2EF-OC20-All+MD", "EquiformerV2-153M-S2EF-OC20-All+MD",
    "EquiformerV2-lE4-lF100-S2EFS-OC22", "EquiformerV2-S2EF-ODAC", "EquiformerV2-Large-S2EF-ODAC",
    "EquiformerV2-IS2RE-ODAC", "EquiformerV2-153M-OMAT24", "EquiformerV2-153M-OMAT24-MP-sAlex",
    "EquiformerV2-31M-MP", "EquiformerV2-31M-OMAT24", "EquiformerV2-31M-OMAT24-MP-sAlex", "EquiformerV2-86M-OMAT24",
    "EquiformerV2-86M-OMAT24-MP-sAlex", "EquiformerV2-DeNS-153M-MP", "EquiformerV2-DeNS-86M-MP",
    "EquiformerV2-DeNS-31M-MP",
]


# --------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch) -> Path:
    """A private cache, no offline switches, no extra registries, and fresh once-per-process notices."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("EQV2_CACHE", str(cache))
    for var in ("EQV2_OFFLINE", "HF_HUB_OFFLINE", "EQV2_REGISTRY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hub.notices, "_NOTIFIED", set())
    monkeypatch.setattr(hub.notices, "_MISFIT_WARNED", set())
    return cache


class _Handler(BaseHTTPRequestHandler):
    """`/ckpt_small.pt`: the whole file; `/dropped/ckpt_small.pt`: announces the whole file, sends half
    and closes; anything else: 404."""

    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        self.requests.append(self.path)
        if self.path not in ("/models/ckpt_small.pt", "/dropped/ckpt_small.pt"):
            self.send_error(404, "no such file")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(CKPT_BYTES)))
        self.end_headers()
        body = CKPT_BYTES if self.path.startswith("/models/") else CKPT_BYTES[: len(CKPT_BYTES) // 2]
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    """Base URL of a local HTTP server serving `tests/data/ckpt_small.pt`."""
    _Handler.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def entry_dict(name: str = "Local-Small", **changes) -> dict:
    """A registry entry shaped like the shipped ones (ckpt_small's architecture, OC20-like domain)."""
    raw = {
        "name": name, "aliases": [name.lower() + "_alias"], "source": {"type": "url", "url": "http://127.0.0.1/x.pt"},
        "parameters_millions": 0.3, "size_bytes": len(CKPT_BYTES), "sha256": CKPT_SHA256, "license": "MIT",
        "license_details": "test weights", "training_data": "random weights", "outputs": ["energy", "forces"],
        "domain": "catalysis", "energy_reference": {"kind": "adsorption", "description": "test"},
        "model_config": {"num_layers": 2, "lmax": 3, "mmax": 2, "sphere_channels": 16, "max_radius": 6.0,
                         "max_neighbors": 20},
        "supported": True, "notes": "",
    }
    raw.update(changes)
    return raw


def make_entry(name: str = "Local-Small", **changes) -> hub.ModelEntry:
    return hub.ModelEntry.from_dict(entry_dict(name, **changes))


def use_registry(monkeypatch, *entries: hub.ModelEntry) -> None:
    registry = hub.Registry([*hub.load_registry().entries, *entries])
    monkeypatch.setattr(hub.registry, "_read_registries", lambda paths: registry)


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def slab_with_co() -> Atoms:
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=8.0)
    add_adsorbate(slab, molecule("CO")[::-1], 1.9, "ontop")  # C-down: ase lists O first
    return slab


# --------------------------------------------------------------------------------------------- registry
def test_shipped_registry_is_valid_and_complete() -> None:
    raw = json.loads(hub.REGISTRY_PATH.read_text())
    assert raw["schema_version"] == hub.SCHEMA_VERSION
    entries = [hub.ModelEntry.from_dict(model) for model in raw["models"]]  # full schema validation
    registry = hub.Registry(entries)  # names and aliases unique, case-insensitively
    names = [e.name for e in registry.entries]
    assert set(FAIRCHEM_110_NAMES) <= set(names)
    assert len(names) == len(set(names)) >= 21
    for entry in entries:
        assert entry.sha256 is None or hub.SHA256_PATTERN.fullmatch(entry.sha256), entry.name
        assert set(hub.REQUIRED_MODEL_CONFIG) <= set(entry.model_config), entry.name
        assert 0 <= entry.model_config["mmax"] <= entry.model_config["lmax"], entry.name
        if entry.source.type == "huggingface":
            assert entry.source.repo_id == "facebook/OMAT24" and entry.source.gated
            assert entry.domain == "bulk" and "stress" in entry.outputs
        if entry.source.type == "url":
            assert entry.source.url.startswith("https://dl.fbaipublicfiles.com/"), entry.name
        if entry.source.type == "package":
            assert (hub.PACKAGE_DIR / entry.source.path).is_file(), f"{entry.name}: packaged file missing"
        if entry.energy_reference["kind"] == "adsorption":
            assert set(entry.energy_reference["gas_phase_eV"]) == {"H", "C", "N", "O"}


def test_root_checkpoints_json_is_the_package_file() -> None:
    """The repo-root registry is a byte copy of the shipped one (tools/export_demo.py writes both)."""
    root = REPO_ROOT / "checkpoints.json"
    assert root.read_bytes() == hub.REGISTRY_PATH.read_bytes(), "run: cp eqv2_calc/checkpoints.json checkpoints.json"


@pytest.mark.parametrize("change, message", [
    ({"sha256": "ABC"}, "64 lowercase hex"),
    ({"sha256": "A" * 64}, "64 lowercase hex"),
    ({"outputs": ["energy", "dipole"]}, "outputs"),
    ({"domain": "proteins"}, "domain"),
    ({"model_config": {"lmax": 4}}, "lacks 'num_layers'"),
    ({"model_config": {"num_layers": 8, "lmax": 4, "mmax": 2, "sphere_channels": 128, "max_radius": 12.0,
                       "max_neighbors": 20.5}}, "max_neighbors=20.5"),
    ({"source": {"type": "ftp", "url": "ftp://x"}}, "source type"),
    ({"source": {"type": "huggingface", "repo_id": "OMAT24", "filename": "a.pt", "gated": True}}, "owner/name"),
    ({"source": {"type": "package", "path": "../evil.pt"}}, "relative to the package"),
    ({"extra_field": 1}, "unknown key"),
    ({"elements": ["Cu", "Xx"]}, "element symbols"),
    ({"elements": []}, "element symbols"),
])
def test_bad_entries_are_rejected(change, message) -> None:
    with pytest.raises(RegistryError, match=message):
        make_entry(**change)


def test_duplicate_names_or_aliases_are_rejected() -> None:
    with pytest.raises(RegistryError, match="names both"):
        hub.Registry([make_entry("A", aliases=["shared"]), make_entry("B", aliases=["SHARED"])])


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(UnknownModelError, match="did you mean 'EquiformerV2-31M-OMAT24-MP-sAlex'") as info:
        hub.resolve_checkpoint("eqV2_31M_omat_mp_salx")
    assert isinstance(info.value, EquiformerV2Error) and "eqv2 checkpoints list" in str(info.value)
    assert hub.load_registry().get("EQV2_31M_OMAT_MP_SALEX").name == "EquiformerV2-31M-OMAT24-MP-sAlex"


def test_missing_file_path_says_so_and_names_the_model() -> None:
    with pytest.raises(CheckpointError, match="does not exist; to download it, use the model name "
                                              "'EquiformerV2-31M-S2EF-OC20-All\\+MD'"):
        hub.resolve_checkpoint("eq2_31M_ec4_allmd.pt")


def test_existing_path_resolves_to_itself() -> None:
    assert hub.resolve_checkpoint(CKPT) == CKPT
    assert hub.find_entry(str(CKPT)) is None


# --------------------------------------------------------------------------------------------- URL downloads
def test_url_download_good_checksum_goes_to_eqv2_cache(server, isolated, monkeypatch) -> None:
    use_registry(monkeypatch, make_entry(source={"type": "url", "url": f"{server}/models/ckpt_small.pt"}))
    path = hub.resolve_checkpoint("local-small_alias", progress=False)
    assert path == isolated / "127.0.0.1" / "models" / "ckpt_small.pt"
    assert path.read_bytes() == CKPT_BYTES and files_under(isolated) == [path]
    assert hub.resolve_checkpoint("Local-Small") == path and len(_Handler.requests) == 1  # cached: no 2nd request
    assert [(v.status, v.actual) for v in hub.verify(["Local-Small"])] == [("ok", CKPT_SHA256)]
    path.write_bytes(b"tampered")
    assert hub.verify(["Local-Small"])[0].status == "mismatch"


def test_url_download_bad_checksum_removes_file(server, isolated, monkeypatch) -> None:
    expected = "0" * 64
    use_registry(monkeypatch, make_entry(source={"type": "url", "url": f"{server}/models/ckpt_small.pt"},
                                         sha256=expected))
    with pytest.raises(ChecksumError) as info:
        hub.resolve_checkpoint("Local-Small", progress=False)
    assert expected in str(info.value) and CKPT_SHA256 in str(info.value) and "removed" in str(info.value)
    assert files_under(isolated) == []


def test_dropped_connection_leaves_no_partial_file(server, isolated, monkeypatch) -> None:
    use_registry(monkeypatch, make_entry(source={"type": "url", "url": f"{server}/dropped/ckpt_small.pt"}))
    with pytest.raises(DownloadError, match="interrupted") as info:
        hub.resolve_checkpoint("Local-Small", progress=False)
    assert not isinstance(info.value, ChecksumError)
    assert files_under(isolated) == []


def test_http_error_and_unreachable_host(server, isolated) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        hub.resolve_checkpoint(f"{server}/models/nothing.pt", progress=False)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(OfflineError, match="cannot reach 127.0.0.1"):
        hub.resolve_checkpoint(f"http://127.0.0.1:{port}/ckpt_small.pt", progress=False)
    assert files_under(isolated) == []


def test_offline_mode_with_nothing_cached(server, isolated, monkeypatch) -> None:
    monkeypatch.setenv("EQV2_OFFLINE", "1")
    use_registry(monkeypatch, make_entry(source={"type": "url", "url": f"{server}/models/ckpt_small.pt"}))
    with pytest.raises(OfflineError, match="Local-Small: not cached"):
        hub.resolve_checkpoint("Local-Small")
    assert _Handler.requests == []


def test_disk_full_leaves_no_partial_file(server, isolated, monkeypatch) -> None:
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, stream) -> None:
            self.stream = stream

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.stream.close()

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(DownloadError, match="no space left on the disk") as info:
        hub.resolve_checkpoint(f"{server}/models/ckpt_small.pt", progress=False)
    assert "EQV2_CACHE" in str(info.value)
    assert files_under(isolated) == []


# --------------------------------------------------------------------------------------------- Hugging Face
OMAT = "EquiformerV2-31M-OMAT24-MP-sAlex"


def test_hf_download_uses_eqv2_cache(isolated, monkeypatch) -> None:
    calls = []

    def fake_download(repo_id, filename, **kwargs):
        calls.append((repo_id, filename, kwargs))
        return str(CKPT)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    assert hub.resolve_checkpoint("eqV2_31M_omat_mp_salex") == CKPT
    assert hub.resolve_checkpoint("hf://someone/repo/sub/dir/file.pt") == CKPT
    assert [(c[0], c[1]) for c in calls] == [("facebook/OMAT24", "eqV2_31M_omat_mp_salex.pt"),
                                            ("someone/repo", "sub/dir/file.pt")]
    assert calls[0][2] == {"cache_dir": isolated / "huggingface", "local_files_only": False}


def test_hf_offline_with_nothing_cached(monkeypatch) -> None:
    def offline_download(repo_id, filename, **kwargs):
        raise hf_errors.LocalEntryNotFoundError("no connection and not in the cache")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline_download)
    with pytest.raises(OfflineError) as info:
        hub.resolve_checkpoint(OMAT)
    message = str(info.value)
    assert "hf://facebook/OMAT24/eqV2_31M_omat_mp_salex.pt" in message
    assert f"eqv2 checkpoints download {OMAT}" in message


def test_hf_gated_repository(monkeypatch) -> None:
    def gated_download(repo_id, filename, **kwargs):
        error = hf_errors.GatedRepoError.__new__(hf_errors.GatedRepoError)  # its __init__ wants an HTTP response
        Exception.__init__(error, "403 Client Error: cannot access gated repo")
        raise error

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", gated_download)
    with pytest.raises(GatedRepoError) as info:
        hub.resolve_checkpoint(OMAT)
    message = str(info.value)
    for part in ("facebook/OMAT24", "https://huggingface.co/facebook/OMAT24", "huggingface-cli login", "HF_TOKEN"):
        assert part in message


def make_fake_hf_cache(root: Path, repo_id: str, filename: str, content: bytes) -> Path:
    """The layout huggingface_hub writes: blobs named by sha256, a snapshot link, refs/main."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    revision = "0" * 40
    blob = repo / "blobs" / hashlib.sha256(content).hexdigest()
    blob.parent.mkdir(parents=True)
    blob.write_bytes(content)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision / filename
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    return snapshot


def test_hf_cached_file_works_offline_and_verifies(isolated, monkeypatch) -> None:
    snapshot = make_fake_hf_cache(isolated / "huggingface", "facebook/OMAT24", "eqV2_31M_omat_mp_salex.pt", CKPT_BYTES)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entry = hub.load_registry().get(OMAT)
    assert hub.cached_file(entry) == snapshot
    assert hub.resolve_checkpoint(OMAT).resolve() == snapshot.resolve()  # the real hf_hub_download, no network
    assert [(v.status, v.expected) for v in hub.verify([OMAT])] == [("ok", CKPT_SHA256)]
    snapshot.resolve().write_bytes(b"corrupted")
    assert hub.verify([OMAT])[0].status == "mismatch"


# --------------------------------------------------------------------------------------------- loading by name
def test_load_by_name_matches_loading_the_file(server, monkeypatch) -> None:
    use_registry(monkeypatch, make_entry(source={"type": "url", "url": f"{server}/models/ckpt_small.pt"}))
    with pytest.warns(ModelNotice, match="Local-Small is trained on catalyst surfaces.*License: MIT"):
        by_name = EquiformerV2Calculator(model="Local-Small", device="cpu")
    by_path = EquiformerV2Calculator(model=str(CKPT), device="cpu")
    slab = slab_with_co()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a slab fits a catalysis model: no DomainWarning
        energy = by_name.get_potential_energy(slab)
    assert energy == pytest.approx(by_path.get_potential_energy(slab.copy()), abs=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the notice is shown once per model and process
        potential = eqv2_calc.load_model("Local-Small", dtype=torch.float64)
    assert next(potential.parameters()).dtype == torch.float64


def test_bulk_crystal_on_a_surface_model_warns_once(monkeypatch) -> None:
    calc = EquiformerV2Calculator(model=load_potential(CKPT), device="cpu")
    calc.potential.card = hub.ModelCard("Local-Small", make_entry())
    with pytest.warns(DomainWarning, match="Local-Small was trained on catalyst surfaces.*bulk crystal"):
        calc.get_potential_energy(bulk("Cu", "fcc", a=3.6, cubic=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calc.get_potential_energy(bulk("Ni", "fcc", a=3.5, cubic=True))


@pytest.mark.parametrize("atoms, kind", [
    (bulk("Cu", "fcc", a=3.6), "bulk"),
    (bulk("C", "diamond", a=3.57) * (1, 1, 2), "bulk"),
    (fcc111("Cu", size=(2, 2, 3), vacuum=8.0), "slab"),
    (fcc111("Cu", size=(2, 2, 3), vacuum=8.0, periodic=True), "slab"),
    (molecule("H2O"), "molecule"),
])
def test_structure_kind(atoms, kind) -> None:
    assert hub.structure_kind(atoms) == kind


def test_misfit_messages() -> None:
    surface_model = make_entry()
    bulk_model = make_entry(domain="bulk")
    assert hub.misfit_message(slab_with_co(), surface_model) is None
    assert hub.misfit_message(bulk("Cu"), bulk_model) is None
    assert "slab?" in hub.misfit_message(slab_with_co(), bulk_model)
    assert "molecule or cluster" in hub.misfit_message(molecule("CO"), bulk_model)
    assert hub.misfit_message(bulk("Cu"), make_entry(domain="mof")) is None


def test_architecture_mismatch_warns(server, monkeypatch) -> None:
    config = {"num_layers": 8, "lmax": 3, "mmax": 2, "sphere_channels": 16, "max_radius": 6.0, "max_neighbors": 20}
    use_registry(monkeypatch, make_entry(source={"type": "url", "url": f"{server}/models/ckpt_small.pt"},
                                         model_config=config))
    hub.notices._NOTIFIED.add("Local-Small")  # only the architecture warning is under test
    with pytest.warns(UserWarning, match="num_layers: registry 8, file 2"):
        hub.load_model("Local-Small", progress=False)


# --------------------------------------------------------------------------------------------- command line
def eqv2(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eqv2_calc.cli", *args], capture_output=True, text=True,
                          check=False, env={**os.environ, **(env or {})}, cwd=REPO_ROOT)


def test_cli_list_is_a_fast_readable_table() -> None:
    result = eqv2("checkpoints", "list")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["name", "params", "size", "outputs", "domain", "license", "cached"]
    assert any(row.startswith("EquiformerV2-31M-S2EF-OC20-All+MD ") for row in rows)
    # fast because it never imports torch (a behaviour, not a wall-clock limit that a busy host fails)
    probe = subprocess.run([sys.executable, "-c", "import sys; from eqv2_calc.cli import main; "
                            "main(['checkpoints', 'list']); print('torch imported:', 'torch' in sys.modules)"],
                           capture_output=True, text=True, check=False, cwd=REPO_ROOT)
    assert probe.stdout.strip().endswith("torch imported: False"), probe.stdout[-300:] + probe.stderr[-300:]
    records = json.loads(eqv2("checkpoints", "list", "--json").stdout)
    assert {r["name"] for r in records} >= set(FAIRCHEM_110_NAMES)


def test_cli_info_and_unknown_name() -> None:
    info = eqv2("checkpoints", "info", "eq2_31m_ec4_allmd")
    assert info.returncode == 0, info.stderr
    assert "EquiformerV2-31M-S2EF-OC20-All+MD" in info.stdout and "H -3.477" in info.stdout
    unknown = eqv2("checkpoints", "info", "EquiformerV2-31M-OMAT42")
    assert unknown.returncode == 2 and "did you mean" in unknown.stderr and "Traceback" not in unknown.stderr


def test_energy_offset_is_stated_per_file_and_true(tmp_path) -> None:
    """`eqv2 checkpoints info` (registry) and `eqv2 info` (the file's normalizer) give the energy normalizer's
    mean; it is added once per structure: E(2x1x1) = 2 E(cell) - mean."""
    offset = "-0.755445 eV added once per structure"
    for name in ("EquiformerV2-83M-S2EF-OC20-2M", "EquiformerV2-31M-S2EF-OC20-All+MD",
                 "EquiformerV2-153M-S2EF-OC20-All+MD"):
        assert f"energy offset  {offset}" in eqv2("checkpoints", "info", name).stdout
    assert "energy offset  none: the energy scales" in eqv2("checkpoints", "info", "eqV2-demo-EMT").stdout
    unrecorded = eqv2("checkpoints", "info", "EquiformerV2-31M-OMAT24").stdout
    assert "energy offset  not recorded in the registry; `eqv2 info EquiformerV2-31M-OMAT24` reads it" in unrecorded
    assert f"energy offset {offset}" in eqv2("info", str(DATA / "ckpt_small.pt")).stdout
    demo = load_potential(hub.resolve_checkpoint("eqV2-demo-EMT"))
    assert demo.normalizers["energy"].mean == hub.find_entry("eqV2-demo-EMT").energy_mean_eV == 0.0
    potential = load_potential(DATA / "ckpt_small.pt")
    cell = bulk("Cu", "fcc", a=3.6, cubic=True)
    cell.rattle(0.05, seed=2)
    energy = [float(potential(potential.make_graph(a))["energy"][0]) for a in (cell, cell.repeat((2, 1, 1)))]
    mean = potential.normalizers["energy"].mean
    assert mean == pytest.approx(-0.7554450631141663)
    assert energy[1] - 2 * energy[0] == pytest.approx(-mean, abs=1e-4)


def test_cli_download_verify_and_predict_by_name(server, tmp_path) -> None:
    entry = entry_dict(source={"type": "url", "url": f"{server}/models/ckpt_small.pt"})
    registry = tmp_path / "extra.json"
    registry.write_text(json.dumps({"schema_version": 1, "models": [entry]}))
    env = {"EQV2_REGISTRY": str(registry), "EQV2_CACHE": str(tmp_path / "cli-cache")}
    download = eqv2("checkpoints", "download", "Local-Small", "--quiet", env=env)
    assert download.returncode == 0, download.stderr
    assert Path(download.stdout.strip()).read_bytes() == CKPT_BYTES
    verify = eqv2("checkpoints", "verify", env=env)
    assert verify.returncode == 0 and "Local-Small" in verify.stdout and " ok " in verify.stdout
    listed = eqv2("checkpoints", "list", env=env)
    assert any(row.startswith("Local-Small ") and row.endswith("yes") for row in listed.stdout.splitlines())
    structures = tmp_path / "slab.extxyz"
    slab = slab_with_co()
    del slab.info["adsorbate_info"]  # not representable in extxyz
    slab.write(structures)
    predict = eqv2("predict", "--model", "Local-Small", "--device", "cpu", str(structures), env=env)
    assert predict.returncode == 0, predict.stderr
    assert "eqv2: ModelNotice: Local-Small" in predict.stderr and "CCu12O" in predict.stdout


def test_cli_download_errors_are_one_line(tmp_path) -> None:
    result = eqv2("checkpoints", "download", "EquiformerV2-31M-S2EF-OC20-All+MD",
                  env={"EQV2_OFFLINE": "1", "EQV2_CACHE": str(tmp_path)})
    assert result.returncode == 2 and result.stderr.startswith("eqv2: error: EquiformerV2-31M-S2EF-OC20-All+MD")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
