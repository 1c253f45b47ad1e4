"""The model registry (`checkpoints.json`): its schema, validation and lookup by name or alias.

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
  `max_num_elements`, `enforce_max_neighbors_strictly`, `avg_num_nodes`, `avg_degree`,
  `use_energy_lin_ref`, `energy_only`. A loaded file that differs triggers a warning (wrong or
  replaced file);
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
import json
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import RegistryError, UnknownModelError

PACKAGE_DIR = Path(__file__).resolve().parent.parent
REGISTRY_PATH = PACKAGE_DIR / "checkpoints.json"
SCHEMA_VERSION = 1
REGISTRY_ENV = "EQV2_REGISTRY"
HF_PREFIX = "hf://"
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
                         "avg_num_nodes": float, "avg_degree": float, "use_energy_lin_ref": bool, "energy_only": bool}
_ENTRY_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "aliases": list, "source": dict, "parameters_millions": (int, float, type(None)),
    "size_bytes": (int, type(None)), "sha256": (str, type(None)), "license": str, "license_details": str,
    "training_data": str, "outputs": list, "domain": str, "energy_reference": dict, "model_config": dict,
    "supported": bool, "notes": str,
}
_OPTIONAL_ENTRY_TYPES: dict[str, type | tuple[type, ...]] = {"elements": list, "energy_mean_eV": (int, float)}
_SOURCE_KEYS = {"url": {"type", "url"}, "huggingface": {"type", "repo_id", "filename", "gated"},
                "package": {"type", "path"}}

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


def find_entry(name_or_path: str | os.PathLike) -> ModelEntry | None:
    """The registry entry `name_or_path` refers to, or None for a file path, URL or `hf://` address."""
    if not isinstance(name_or_path, str) or Path(name_or_path).expanduser().is_file():
        return None
    return load_registry().find(name_or_path)
