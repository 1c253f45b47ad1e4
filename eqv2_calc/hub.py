"""Checkpoints by name: the registry (`checkpoints.json`), the local cache, and downloads.

`resolve_checkpoint(name_or_path)` turns any of these into a local file:

- an existing file path;
- a registered name or alias (case-insensitive), e.g. `"EquiformerV2-31M-S2EF-OC20-All+MD"`,
  `"eqV2_31M_omat_mp_salex"`; `eqv2 checkpoints list` shows them all;
- `hf://<owner>/<repo>/<file>` (a file of a Hugging Face model repository);
- an `https://` (or `http://`) URL.

Where files go: Hugging Face files live in the Hugging Face cache (`HF_HOME`, its token and offline mode
apply), or in `$EQV2_CACHE/huggingface` when `EQV2_CACHE` is set. URL files go to
`$EQV2_CACHE/<host>/<url path>` (default `~/.cache/eqv2_calc`). A URL download streams into a
temporary `.part` file next to its destination, is checked against the registry's sha256 and is
renamed into place only when complete; on any failure the temporary file is removed.
`EQV2_OFFLINE=1` (or `HF_HUB_OFFLINE=1`) forbids downloads. `EQV2_REGISTRY` names extra registry
files (separated by `os.pathsep`) whose entries are added to the shipped ones.

Registry schema (`checkpoints.json`, `schema_version` 1): `{"schema_version": 1, "description": str,
"models": [entry, ...]}`, each entry with exactly these keys:

- `name` (str, unique) and `aliases` (list of str; names and aliases are unique case-insensitively);
- `source`: `{"type": "url", "url": "https://..."}`,
  `{"type": "huggingface", "repo_id": "owner/repo", "filename": "file.pt", "gated": bool}`, or
  `{"type": "package", "path": "data/<file>"}` for a file shipped inside this package (relative to it);
- `parameters_millions` (number or null), `size_bytes` (int or null), `sha256` (64 lowercase hex
  digits, or null where no checksum has been published or recorded);
- `license` (short, for tables) and `license_details` (the full statement, with sources);
- `training_data` (str), `outputs` (subset of `energy`, `forces`, `stress`);
- `domain`: `catalysis` (surfaces + adsorbates), `bulk` (bulk materials), `mof` (metal-organic
  frameworks + sorbates) or `any` (no structure check);
- `energy_reference`: `{"kind": "adsorption" | "total" | "linear_referenced" | "unknown",
  "description": str, optional "gas_phase_eV": {element: eV per atom}, optional "source": str}`,
  what the energy output means and which references turn it into total / adsorption energies;
- `model_config`: expected `EquiformerV2Config` values of the file, at least `num_layers`, `lmax`,
  `mmax`, `sphere_channels`, `max_radius` (Angstrom), `max_neighbors`; optionally
  `max_num_elements`, `enforce_max_neighbors_strictly`, `avg_num_nodes`, `avg_degree`. A loaded
  file that differs triggers a warning (wrong or replaced file);
- `supported` (bool: whether eqv2_calc reads this format today) and `notes` (str);
- optional `elements` (list of element symbols): the elements the model was trained on; structures with
  others are refused unless the user opts out (`eqv2_calc.validation`). Absent: any Z below
  `max_num_elements` (released models: their training sets span most of the periodic table);
- optional `energy_mean_eV` (number): the mean of the file's energy normalizer, which is added once per
  structure (`energy = raw x rmsd + mean`, as in fairchem; `energy_offset`), where it is known. Absent: not
  recorded here; `eqv2 info NAME` reads it from the file.
"""

from __future__ import annotations

import difflib
import errno
import hashlib
import http.client
import json
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .errors import (
    CheckpointError, ChecksumError, DomainWarning, DownloadError, GatedRepoError, ModelNotice, OfflineError,
    RegistryError, UnknownModelError,
)

if TYPE_CHECKING:  # heavy imports only for type checkers: `eqv2 checkpoints list` must stay fast
    import torch
    from ase import Atoms

    from .model import EquiformerV2Config
    from .potential import Potential

PACKAGE_DIR = Path(__file__).resolve().parent
REGISTRY_PATH = PACKAGE_DIR / "checkpoints.json"
SCHEMA_VERSION = 1
CACHE_ENV = "EQV2_CACHE"
REGISTRY_ENV = "EQV2_REGISTRY"
OFFLINE_ENVS = ("EQV2_OFFLINE", "HF_HUB_OFFLINE")
DEFAULT_CACHE = Path("~/.cache/eqv2_calc")
HF_PREFIX = "hf://"
CHUNK_BYTES = 1 << 20
CONNECT_TIMEOUT_S = 60.0
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")

OUTPUTS = ("energy", "forces", "stress")
ENERGY_KINDS = ("adsorption", "total", "linear_referenced", "unknown")
DOMAINS = {
    "catalysis": "trained on catalyst surfaces with adsorbates (slabs with vacuum)",
    "bulk": "trained on bulk inorganic materials (3D-periodic crystals)",
    "mof": "trained on metal-organic frameworks with adsorbed CO2/H2O",
    "any": "no particular domain",
}
REQUIRED_MODEL_CONFIG = {"num_layers": int, "lmax": int, "mmax": int, "sphere_channels": int,
                         "max_radius": float, "max_neighbors": int}
OPTIONAL_MODEL_CONFIG = {"max_num_elements": int, "enforce_max_neighbors_strictly": bool,
                         "avg_num_nodes": float, "avg_degree": float}
_ENTRY_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "aliases": list, "source": dict, "parameters_millions": (int, float, type(None)),
    "size_bytes": (int, type(None)), "sha256": (str, type(None)), "license": str, "license_details": str,
    "training_data": str, "outputs": list, "domain": str, "energy_reference": dict, "model_config": dict,
    "supported": bool, "notes": str,
}
_OPTIONAL_ENTRY_TYPES: dict[str, type | tuple[type, ...]] = {"elements": list, "energy_mean_eV": (int, float)}
_SOURCE_KEYS = {"url": {"type", "url"}, "huggingface": {"type", "repo_id", "filename", "gated"},
                "package": {"type", "path"}}

# A periodic direction whose largest atom-free gap is wider than this counts as vacuum. It lies above the
# interlayer gaps of layered bulk crystals (graphite 3.35 A) and below slab vacuum (OC20 slabs were made
# with pymatgen SlabGenerator(min_vacuum_size=20.0), fairchem.data.oc core/slab.py).
VACUUM_GAP_A = 6.0
GATED_HELP = ("request access at https://huggingface.co/{repo_id} (log in, accept the terms), then authenticate "
              "with `huggingface-cli login` (or `hf auth login`) or set HF_TOKEN=<token from "
              "https://huggingface.co/settings/tokens>, and retry")


@dataclass(frozen=True)
class Source:
    """Where a checkpoint comes from: `type` is "url", "huggingface" or "package"."""

    type: str
    url: str | None = None
    repo_id: str | None = None
    filename: str | None = None
    gated: bool = False
    path: str | None = None

    def describe(self) -> str:
        """One line for humans: the URL, `hf://repo/file` or the packaged path."""
        if self.type == "huggingface":
            return f"{HF_PREFIX}{self.repo_id}/{self.filename}" + (" (gated)" if self.gated else "")
        if self.type == "package":
            return f"eqv2_calc/{self.path} (shipped with the package)"
        return str(self.url)


@dataclass(frozen=True)
class ModelEntry:
    """One registered checkpoint (see the module docstring for the meaning of each field)."""

    name: str
    aliases: tuple[str, ...]
    source: Source
    parameters_millions: float | None
    size_bytes: int | None
    sha256: str | None
    license: str
    license_details: str
    training_data: str
    outputs: tuple[str, ...]
    domain: str
    energy_reference: Mapping[str, Any]
    model_config: Mapping[str, Any]
    supported: bool
    notes: str
    elements: tuple[str, ...] | None = None
    energy_mean_eV: float | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ModelEntry:
        """Validate one registry entry; any problem raises `RegistryError` naming the entry."""
        label = raw.get("name", "<entry without a name>") if isinstance(raw, Mapping) else repr(raw)
        problems = _entry_problems(raw) if isinstance(raw, Mapping) else ["is not a JSON object"]
        if problems:
            raise RegistryError(f"registry entry {label!r}: {'; '.join(problems)}")
        elements = tuple(raw["elements"]) if "elements" in raw else None
        return cls(**{**raw, "aliases": tuple(raw["aliases"]), "outputs": tuple(raw["outputs"]),
                      "source": Source(**raw["source"]), "elements": elements})

    @property
    def keys(self) -> tuple[str, ...]:
        """The name and every alias."""
        return (self.name, *self.aliases)


def energy_offset(mean_eV: float) -> str:
    """What an energy normalizer's mean (eV, added once per structure) means for a user comparing energies."""
    if mean_eV == 0:
        return "none: the energy scales with the structure (a 2x1x1 supercell's energy is twice the cell's)"
    return (f"{mean_eV:+.6f} eV added once per structure (the energy normalizer's mean, as fairchem does): a "
            f"2x1x1 supercell's energy is 2 x the cell's {'-' if mean_eV > 0 else '+'} {abs(mean_eV):.6f} eV; "
            "differences between two structures and forces are unaffected")


def _entry_problems(raw: Mapping[str, Any]) -> list[str]:
    problems = []
    missing, unknown = set(_ENTRY_TYPES) - set(raw), set(raw) - set(_ENTRY_TYPES) - set(_OPTIONAL_ENTRY_TYPES)
    if missing:
        problems.append(f"missing key(s) {sorted(missing)}")
    if unknown:
        problems.append(f"unknown key(s) {sorted(unknown)}")
    problems += [f"{key} must be {types}" for key, types in {**_ENTRY_TYPES, **_OPTIONAL_ENTRY_TYPES}.items()
                 if key in raw and not isinstance(raw[key], types)]
    if problems:
        return problems
    if not all(isinstance(a, str) and a for a in raw["aliases"]):
        problems.append("aliases must be non-empty strings")
    if "elements" in raw:
        from ase.data import atomic_numbers

        bad = [e for e in raw["elements"] if not isinstance(e, str) or e not in atomic_numbers or e == "X"]
        if bad or not raw["elements"]:
            problems.append(f"elements must be a non-empty list of element symbols (bad: {bad})")
    if raw["sha256"] is not None and not SHA256_PATTERN.fullmatch(raw["sha256"]):
        problems.append(f"sha256 {raw['sha256']!r} is not 64 lowercase hex digits")
    if not raw["outputs"] or not set(raw["outputs"]) <= set(OUTPUTS):
        problems.append(f"outputs {raw['outputs']} must be a non-empty subset of {OUTPUTS}")
    if raw["domain"] not in DOMAINS:
        problems.append(f"domain {raw['domain']!r} is not one of {sorted(DOMAINS)}")
    if raw["energy_reference"].get("kind") not in ENERGY_KINDS or "description" not in raw["energy_reference"]:
        problems.append(f"energy_reference needs 'kind' (one of {ENERGY_KINDS}) and 'description'")
    return problems + _source_problems(raw["source"]) + _model_config_problems(raw["model_config"])


def _source_problems(source: Mapping[str, Any]) -> list[str]:
    keys = _SOURCE_KEYS.get(source.get("type"))
    if keys is None:
        return [f"source type {source.get('type')!r} is not one of {sorted(_SOURCE_KEYS)}"]
    if set(source) != keys:
        return [f"a {source['type']} source has exactly the keys {sorted(keys)}, found {sorted(source)}"]
    if source["type"] == "url" and urllib.parse.urlsplit(source["url"]).scheme not in ("https", "http"):
        return [f"source url {source['url']!r} is not http(s)"]
    if source["type"] == "huggingface" and source["repo_id"].count("/") != 1:
        return [f"repo_id {source['repo_id']!r} must be 'owner/name'"]
    if source["type"] == "package" and (Path(source["path"]).is_absolute() or ".." in Path(source["path"]).parts):
        return [f"package path {source['path']!r} must be relative to the package, without '..'"]
    return []


def _model_config_problems(config: Mapping[str, Any]) -> list[str]:
    types = {**REQUIRED_MODEL_CONFIG, **OPTIONAL_MODEL_CONFIG}
    problems = [f"model_config lacks {key!r}" for key in REQUIRED_MODEL_CONFIG if key not in config]
    for key, value in config.items():
        expected = types.get(key)
        if expected is None:
            problems.append(f"model_config key {key!r} is not one of {sorted(types)}")
        elif isinstance(value, bool) != (expected is bool) or not isinstance(value, (expected, int)):
            problems.append(f"model_config {key}={value!r} must be {expected.__name__}")
    return problems


class Registry:
    """Registered checkpoints, looked up by name or alias (case-insensitive)."""

    def __init__(self, entries: Iterable[ModelEntry]) -> None:
        self.entries = tuple(entries)
        self._by_key: dict[str, ModelEntry] = {}
        for entry in self.entries:
            for key in entry.keys:
                other = self._by_key.setdefault(key.casefold(), entry)
                if other is not entry:
                    raise RegistryError(f"{key!r} names both {other.name!r} and {entry.name!r}")

    def find(self, name: str) -> ModelEntry | None:
        """The entry called `name` (or with that alias), or None."""
        return self._by_key.get(name.strip().casefold())

    def get(self, name: str) -> ModelEntry:
        """The entry called `name`; `UnknownModelError` with close names otherwise."""
        entry = self.find(name)
        if entry is None:
            raise UnknownModelError(f"unknown model {name!r}{self._did_you_mean(name)}; "
                                    "`eqv2 checkpoints list` shows every registered name")
        return entry

    def _did_you_mean(self, name: str) -> str:
        keys = {key.casefold(): entry.name for entry in self.entries for key in entry.keys}
        close = difflib.get_close_matches(name.strip().casefold(), keys, n=5, cutoff=0.6)
        names = list(dict.fromkeys(keys[key] for key in close))[:3]
        return f" (did you mean {' or '.join(map(repr, names))}?)" if names else ""


def load_registry() -> Registry:
    """The shipped registry plus the files named by `$EQV2_REGISTRY` (read once per set of files)."""
    extra = tuple(p for p in os.environ.get(REGISTRY_ENV, "").split(os.pathsep) if p)
    return _read_registries((REGISTRY_PATH, *map(Path, extra)))


@lru_cache(maxsize=8)
def _read_registries(paths: tuple[Path, ...]) -> Registry:
    return Registry(entry for path in paths for entry in read_registry_file(path))


def read_registry_file(path: str | os.PathLike) -> list[ModelEntry]:
    """Validated entries of one registry JSON file; `RegistryError` for a bad file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RegistryError(f"cannot read the model registry {path}: {exc}") from exc
    if not isinstance(data, Mapping) or data.get("schema_version") != SCHEMA_VERSION:
        raise RegistryError(f"{path}: expected an object with schema_version {SCHEMA_VERSION} and 'models'")
    return [ModelEntry.from_dict(raw) for raw in data.get("models", [])]


def cache_dir() -> Path:
    """Root of our download cache: `$EQV2_CACHE` or `~/.cache/eqv2_calc`."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def _hf_cache_dir() -> Path | None:
    """`$EQV2_CACHE/huggingface` when `EQV2_CACHE` is set, else None (Hugging Face's own cache)."""
    return cache_dir() / "huggingface" if os.environ.get(CACHE_ENV) else None


def offline() -> bool:
    """Whether downloads are forbidden (`EQV2_OFFLINE` or `HF_HUB_OFFLINE` set to a true value)."""
    return any(os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on") for var in OFFLINE_ENVS)


def url_cache_path(url: str) -> Path:
    """Cache location of a URL download: `<cache>/<host>/<url path>`."""
    parts = urllib.parse.urlsplit(url)
    segments = [urllib.parse.unquote(s) for s in parts.path.split("/") if s]
    if not parts.hostname or not segments or any(s in (".", "..") or os.sep in s for s in segments):
        raise DownloadError(f"cannot cache {url!r}: it needs a host and a file name")
    return cache_dir().joinpath(parts.hostname, *segments)


def cached_file(entry: ModelEntry) -> Path | None:
    """The local file of `entry` if it is already cached (or shipped), without any network access."""
    source = entry.source
    if source.type == "url":
        path = url_cache_path(str(source.url))
    elif source.type == "package":
        path = PACKAGE_DIR / str(source.path)
    else:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(str(source.repo_id), str(source.filename), cache_dir=_hf_cache_dir())
        return Path(found) if isinstance(found, str) else None
    return path if path.is_file() else None


def find_entry(name_or_path: str | os.PathLike) -> ModelEntry | None:
    """The registry entry `name_or_path` refers to, or None for a file path, URL or `hf://` address."""
    if not isinstance(name_or_path, str) or Path(name_or_path).expanduser().is_file():
        return None
    return load_registry().find(name_or_path)


def resolve_checkpoint(name_or_path: str | os.PathLike, *, progress: bool = True) -> Path:
    """A local checkpoint file for a path, registered name/alias, `hf://repo/file` or URL.

    Downloads (with a progress bar unless `progress=False`) when the file is not cached yet.
    Raises `UnknownModelError` (with close names), `CheckpointError` (a missing file path),
    `OfflineError`, `GatedRepoError`, `ChecksumError` or `DownloadError`.
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if text.startswith(HF_PREFIX):
        repo_id, filename = _split_hf(text)
        return _fetch_hf(repo_id, filename, label=text)
    if text.startswith(("https://", "http://")):
        return _fetch_url(text, None, label=text, progress=progress)
    registry = load_registry()
    if registry.find(text) is None and (path.suffix in CHECKPOINT_SUFFIXES or "/" in text or os.sep in text):
        hint = registry.find(path.stem)
        raise CheckpointError(f"checkpoint file {path} does not exist"
                              + (f"; to download it, use the model name {hint.name!r}" if hint else ""))
    return fetch(registry.get(text), progress=progress)


def fetch(entry: ModelEntry, *, progress: bool = True) -> Path:
    """The local file of a registered checkpoint, downloading it first if needed."""
    source = entry.source
    if source.type == "huggingface":
        return _fetch_hf(str(source.repo_id), str(source.filename), label=entry.name, gated=source.gated)
    if source.type == "package":
        path = PACKAGE_DIR / str(source.path)
        if not path.is_file():
            raise CheckpointError(f"{entry.name}: the packaged file {path} is missing from this installation; "
                                  "reinstall eqv2-calc")
        return path
    return _fetch_url(str(source.url), entry.sha256, label=entry.name, progress=progress)


def _split_hf(address: str) -> tuple[str, str]:
    parts = address[len(HF_PREFIX):].split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise UnknownModelError(f"{address!r} is not a Hugging Face address; write hf://<owner>/<repo>/<file>")
    return f"{parts[0]}/{parts[1]}", parts[2]


def _fetch_hf(repo_id: str, filename: str, *, label: str, gated: bool = False) -> Path:
    """`hf_hub_download` with its errors turned into ours (imported here: it costs ~0.2 s)."""
    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    where = f"{HF_PREFIX}{repo_id}/{filename}"
    try:
        return Path(huggingface_hub.hf_hub_download(repo_id, filename, cache_dir=_hf_cache_dir(),
                                                    local_files_only=offline()))
    except hf_errors.GatedRepoError as exc:
        raise GatedRepoError(f"{label}: {repo_id} is a gated Hugging Face repository and this account "
                             f"(or no token) has no access; {GATED_HELP.format(repo_id=repo_id)}") from exc
    except hf_errors.LocalEntryNotFoundError as exc:
        raise OfflineError(f"{label}: {where} is not in the Hugging Face cache and it cannot be downloaded "
                           f"(offline mode, or no network); connect and run `eqv2 checkpoints download {label}`, "
                           "unset HF_HUB_OFFLINE/EQV2_OFFLINE, or pass the path of a local copy") from exc
    except (hf_errors.RepositoryNotFoundError, hf_errors.EntryNotFoundError) as exc:
        login = f"; if it is gated or private, {GATED_HELP.format(repo_id=repo_id)}" if not gated else ""
        raise DownloadError(f"{label}: {where} was not found on Hugging Face{login}") from exc
    except OSError as exc:  # HfHubHTTPError, disk errors
        raise DownloadError(f"{label}: downloading {where} failed: {exc}") from exc


def _fetch_url(url: str, sha256: str | None, *, label: str, progress: bool) -> Path:
    dest = url_cache_path(url)
    if dest.is_file():
        return dest
    if offline():
        raise OfflineError(f"{label}: not cached at {dest} and downloads are off (EQV2_OFFLINE/HF_HUB_OFFLINE); "
                           "unset them and connect, or pass the path of a local copy")
    return download_url(url, dest, sha256, label=label, progress=progress)


def download_url(url: str, dest: Path, sha256: str | None, *, label: str, progress: bool = True) -> Path:
    """Stream `url` to `dest` through a temporary file in the same folder; keep it only when complete
    and (when `sha256` is given) matching. Nothing is left behind on failure."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as exc:
        raise DownloadError(f"{label}: cannot write to the cache folder {dest.parent} ({exc}); "
                            f"set {CACHE_ENV} to a writable folder") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            actual = _stream(url, out, label=label, progress=progress)
        if sha256 is not None and actual != sha256:
            raise ChecksumError(f"{label}: the file downloaded from {url} has sha256 {actual}, but the registry "
                                f"expects {sha256}; it was removed and not loaded. The file on the server may "
                                "have been replaced: report it, or load a copy you trust by its path")
        os.replace(tmp, dest)
    except OSError as exc:
        if isinstance(exc, DownloadError):
            raise
        hint = "no space left on the disk" if exc.errno == errno.ENOSPC else str(exc)
        raise DownloadError(f"{label}: writing {dest} failed ({hint}); the partial file was removed. Free space "
                            f"or set {CACHE_ENV} to another disk, then retry") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def _stream(url: str, out: BinaryIO, *, label: str, progress: bool) -> str:
    """Copy `url` into `out` in `CHUNK_BYTES` pieces with a progress bar; returns the sha256 (hex)."""
    from tqdm.auto import tqdm

    digest, done = hashlib.sha256(), 0
    with _open_url(url, label) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label, disable=not progress) as bar:
            while chunk := _read_chunk(response, label, done, total):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                bar.update(len(chunk))
    if total is not None and done != total:
        raise _interrupted(label, done, total, "the connection closed early")
    return digest.hexdigest()


def _open_url(url: str, label: str) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": "eqv2-calc"})
    try:
        return urllib.request.urlopen(request, timeout=CONNECT_TIMEOUT_S)  # noqa: S310 (http(s) only)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{label}: {url} answered HTTP {exc.code} ({exc.reason}); the file may have moved, "
                            "see `eqv2 checkpoints info` for its source") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OfflineError(f"{label}: cannot reach {urllib.parse.urlsplit(url).hostname} ({reason}) and the file "
                           "is not cached; connect to the internet, or download it elsewhere and pass its "
                           "path") from exc


def _read_chunk(response: http.client.HTTPResponse, label: str, done: int, total: int | None) -> bytes:
    try:
        return response.read(CHUNK_BYTES)
    except (http.client.IncompleteRead, ConnectionError, TimeoutError) as exc:
        raise _interrupted(label, done, total, str(exc) or type(exc).__name__) from exc


def _interrupted(label: str, done: int, total: int | None, why: str) -> DownloadError:
    size = f"{done:,} of {total:,}" if total else f"{done:,}"
    return DownloadError(f"{label}: the download was interrupted after {size} bytes ({why}); nothing was kept, "
                         "run it again")


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file, read in `CHUNK_BYTES` pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Verification:
    """Outcome of re-hashing one cached checkpoint. `status`: "ok", "mismatch", "unchecked" (no
    reference checksum; `actual` can be recorded in the registry) or "not cached"."""

    name: str
    status: str
    path: Path | None = None
    expected: str | None = None
    actual: str | None = None


def verify(names: Sequence[str] = ()) -> list[Verification]:
    """Re-hash the cached files of the named (default: all) registered checkpoints.

    Reference checksums: the registry's `sha256`, else for Hugging Face files the blob name of the
    cache (Hugging Face stores large files under their sha256).
    """
    registry = load_registry()
    entries = [registry.get(name) for name in names] if names else registry.entries
    return [_verify_entry(entry) for entry in entries]


def _verify_entry(entry: ModelEntry) -> Verification:
    path = cached_file(entry)
    if path is None:
        return Verification(entry.name, "not cached")
    expected = entry.sha256
    if expected is None and entry.source.type == "huggingface" and SHA256_PATTERN.fullmatch(path.resolve().name):
        expected = path.resolve().name
    actual = sha256_file(path)
    status = "unchecked" if expected is None else ("ok" if actual == expected else "mismatch")
    return Verification(entry.name, status, path, expected, actual)


_NOTIFIED: set[str] = set()
_MISFIT_WARNED: set[tuple[str, str]] = set()


def notice_text(entry: ModelEntry) -> str:
    """What a user should know before trusting the numbers: domain, energy meaning, license."""
    return (f"{entry.name} is {DOMAINS[entry.domain]}; training data: {entry.training_data}. Outputs: "
            f"{', '.join(entry.outputs)}; energy kind: {entry.energy_reference['kind']}. License: {entry.license} "
            f"({entry.license_details}). More: `eqv2 checkpoints info {entry.name}`")


def show_notice_once(entry: ModelEntry) -> None:
    """Issue the `ModelNotice` of `entry` the first time it is loaded in this process."""
    if entry.name not in _NOTIFIED:
        _NOTIFIED.add(entry.name)
        warnings.warn(notice_text(entry), ModelNotice, stacklevel=3)


def structure_kind(atoms: Atoms) -> str:
    """Classify `atoms` as "bulk" (periodic in 3D, no vacuum), "slab" (one open direction) or "molecule".

    A direction is open when it is not periodic or when the atoms leave an empty gap wider than
    `VACUUM_GAP_A` (Angstrom) across the cell along it.
    """
    import numpy as np

    cell = np.asarray(atoms.cell.array, dtype=float)
    volume = abs(np.linalg.det(cell))
    open_directions = 0
    for axis in range(3):
        if not atoms.pbc[axis] or volume < 1e-9:
            open_directions += 1
            continue
        others = cell[[a for a in range(3) if a != axis]]
        height = volume / np.linalg.norm(np.cross(others[0], others[1]))  # plane spacing along this axis
        frac = np.sort(atoms.get_scaled_positions(wrap=True)[:, axis])
        gaps = np.diff(np.concatenate([frac, frac[:1] + 1.0]))
        open_directions += bool(gaps.max() * height > VACUUM_GAP_A)
    return ("bulk", "slab")[open_directions] if open_directions < 2 else "molecule"


_MISFITS = {
    ("catalysis", "bulk"): ("was trained on catalyst surfaces with adsorbates, but this structure is periodic in "
                            "3D without a vacuum gap (a bulk crystal?); for bulk materials use an OMat24/MPtrj "
                            "model such as 'EquiformerV2-31M-OMAT24-MP-sAlex'"),
    ("bulk", "slab"): ("was trained on bulk crystals, but this structure has vacuum along one cell vector (a "
                       "slab?); for adsorbates on surfaces an OC20 model such as "
                       "'EquiformerV2-31M-S2EF-OC20-All+MD' fits better"),
    ("bulk", "molecule"): ("was trained on bulk crystals, but this structure is open in two or more directions "
                           "(a molecule or cluster?); such structures were not in its training data"),
}


def misfit_message(atoms: Atoms, entry: ModelEntry) -> str | None:
    """Why `atoms` does not fit the training domain of `entry`, or None when it looks fine."""
    if len(atoms) == 0 or entry.domain not in ("catalysis", "bulk"):
        return None
    reason = _MISFITS.get((entry.domain, structure_kind(atoms)))
    return f"{entry.name} {reason}" if reason else None


def warn_if_misfit(atoms: Atoms, entry: ModelEntry) -> None:
    """`DomainWarning` when `atoms` clearly does not fit `entry` (once per model and kind of misfit)."""
    message = misfit_message(atoms, entry)
    if message is not None and (entry.name, message) not in _MISFIT_WARNED:
        _MISFIT_WARNED.add((entry.name, message))
        warnings.warn(message, DomainWarning, stacklevel=3)


def config_mismatches(entry: ModelEntry, config: EquiformerV2Config) -> list[str]:
    """`model_config` values of `entry` that the loaded `config` does not have (as "key: expected x, file y")."""
    out = []
    for key, expected in entry.model_config.items():
        actual = getattr(config, key)
        same = abs(actual - expected) <= 1e-6 * max(1.0, abs(expected)) if isinstance(expected, float) else actual == expected
        if not same:
            out.append(f"{key}: registry {expected!r}, file {actual!r}")
    return out


def load_model(name_or_path: str | os.PathLike, device: str | torch.device = "cpu",
               dtype: torch.dtype | None = None, *, progress: bool = True) -> Potential:
    """A ready-to-run `Potential` from a registered name/alias, `hf://` address, URL or file path.

    Downloads and caches the file when needed, shows the model's license and domain once per
    process (`ModelNotice`), and warns when the file's architecture differs from the registry's.
    `device`: "cpu", "cuda" or a `torch.device`; `dtype`: torch.float32 (default) or torch.float64.
    """
    import torch

    from .checkpoint import load_potential

    entry = find_entry(name_or_path)
    path = resolve_checkpoint(name_or_path, progress=progress)
    if entry is not None:
        show_notice_once(entry)
    potential = load_potential(path, device=device, dtype=dtype or torch.float32)
    mismatches = config_mismatches(entry, potential.config) if entry is not None else []
    if mismatches:
        warnings.warn(f"{entry.name}: {path} does not have the architecture the registry lists "
                      f"({'; '.join(mismatches)}); it may be a different or replaced file", stacklevel=2)
    return potential
