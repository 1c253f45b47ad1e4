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

The pieces, one question each: `registry` (the schema and lookup of `checkpoints.json`), `cache` (where
files are kept, offline mode), `download` (fetching with checksums, re-verifying the cache), `notices`
(license/domain notices and domain warnings), `card` (a model resolved once: `ModelCard`) and `loading`
(`load_model`). Their public names are
imported here, so `from eqv2_calc.hub import load_model` and `hub.resolve_checkpoint(...)` work as before.
"""

from .card import IN_CODE, ModelCard
from .cache import CACHE_ENV, cache_dir, cached_file, offline, url_cache_path
from .download import CHECKPOINT_SUFFIXES, Verification, download_url, fetch, resolve_checkpoint, sha256_file, verify
from .loading import config_mismatches, load_model
from .notices import misfit_message, notice_text, show_notice_once, structure_kind, warn_if_misfit
from .registry import (
    DOMAINS, ENERGY_KINDS, HF_PREFIX, OUTPUTS, PACKAGE_DIR, REGISTRY_PATH, REQUIRED_MODEL_CONFIG, SCHEMA_VERSION,
    SHA256_PATTERN, ModelEntry, Registry, Source, energy_offset, find_entry, load_registry, read_registry_file,
)

__all__ = [
    "CACHE_ENV", "CHECKPOINT_SUFFIXES", "DOMAINS", "ENERGY_KINDS", "HF_PREFIX", "OUTPUTS", "PACKAGE_DIR", "IN_CODE",
    "REGISTRY_PATH", "REQUIRED_MODEL_CONFIG", "SCHEMA_VERSION", "SHA256_PATTERN", "ModelCard", "ModelEntry",
    "Registry", "Source", "Verification", "cache_dir", "cached_file", "config_mismatches", "download_url",
    "energy_offset", "fetch", "find_entry", "load_model", "load_registry", "misfit_message", "notice_text",
    "offline", "read_registry_file", "resolve_checkpoint", "sha256_file", "show_notice_once", "structure_kind",
    "url_cache_path", "verify", "warn_if_misfit",
]
