"""The local cache of downloaded checkpoints, and offline mode.

URL files go to `$EQV2_CACHE/<host>/<url path>` (default `~/.cache/eqv2_calc`); Hugging Face files live in
the Hugging Face cache, or in `$EQV2_CACHE/huggingface` when `EQV2_CACHE` is set.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from ..errors import DownloadError
from .registry import PACKAGE_DIR, ModelEntry

CACHE_ENV = "EQV2_CACHE"
OFFLINE_ENVS = ("EQV2_OFFLINE", "HF_HUB_OFFLINE")
DEFAULT_CACHE = Path("~/.cache/eqv2_calc")


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
