"""Checkpoint files from names, `hf://` addresses and URLs: downloads with checksums, re-verification.

A URL download streams into a temporary `.part` file next to its destination, is checked against the
registry's sha256 and is renamed into place only when complete; on any failure the temporary file is removed.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import CheckpointError, ChecksumError, DownloadError, GatedRepoError, OfflineError, UnknownModelError
from .cache import CACHE_ENV, _hf_cache_dir, cached_file, offline, url_cache_path
from .registry import HF_PREFIX, PACKAGE_DIR, SHA256_PATTERN, ModelEntry, load_registry

CHUNK_BYTES = 1 << 20
CONNECT_TIMEOUT_S = 60.0
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
GATED_HELP = ("request access at https://huggingface.co/{repo_id} (log in, accept the terms), then authenticate "
              "with `huggingface-cli login` (or `hf auth login`) or set HF_TOKEN=<token from "
              "https://huggingface.co/settings/tokens>, and retry")


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
