"""Downloading a catalog model: resumable (HTTP Range on a ``.part`` file), verified (sha256),
installed atomically (see :mod:`media_bridge.models.cache`), with throttled progress on stderr.

aiohttp is already a dependency of the bridge and the API, so no new HTTP client is added.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import aiohttp
from multidict import CIMultiDictProxy

from media_bridge.models import cache as model_cache
from media_bridge.models.catalog import HF_BASE, CatalogEntry, ModelFile

CHUNK = 1 << 20
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
RETRIES = 3  # attempts per file when the connection drops mid-body (each resumes)
_DROPPED = (TimeoutError, aiohttp.ClientPayloadError, aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)


class DownloadError(RuntimeError):
    """One line naming the model, the URL and what went wrong."""


class _Restart(Exception):
    """The server cannot continue the partial file: start it again from byte 0."""


@dataclass(frozen=True)
class Fetched:
    size: int
    sha256: str
    verified_by: str


class Progress:
    """``<label> 12.3 MB / 623.0 MB (2%)`` on ``stream``, at most every ``interval_s``; on a terminal the
    line is rewritten in place."""

    def __init__(self, label: str, stream: TextIO, interval_s: float = 0.5) -> None:
        self.label = label
        self.stream = stream
        self.interval_s = interval_s
        self._last = 0.0
        self._shown = -1
        self._tty = stream.isatty()

    def update(self, done: int, total: int | None, final: bool = False) -> None:
        now = time.monotonic()
        if (not final and now - self._last < self.interval_s) or (final and done == self._shown):
            return
        self._last, self._shown = now, done
        text = f"{self.label} {_human(done)}"
        if total:
            text += f" / {_human(total)} ({100 * done // max(total, 1)}%)"
        end = "\n" if final or not self._tty else ""
        self.stream.write(("\r" if self._tty else "") + text + end)
        self.stream.flush()


def _human(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def stated_sha256(responses: list[aiohttp.ClientResponse]) -> str | None:
    """The sha256 a server states for the file: Hugging Face's ``X-Linked-ETag`` (on the redirect
    of an LFS file), else an ``ETag`` that is a sha256. Git blob ETags (sha1) are not one."""
    for header in ("X-Linked-ETag", "ETag"):
        for resp in responses:
            value = _etag_value(resp.headers, header)
            if value and SHA256_HEX.fullmatch(value):
                return value
    return None


def _etag_value(headers: CIMultiDictProxy[str], name: str) -> str | None:
    raw = headers.get(name)
    return raw.removeprefix("W/").strip('"').lower() if raw else None


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _connect_error(exc: aiohttp.ClientConnectorError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve {exc.host} (offline, or DNS failure)"
    return f"cannot connect to {exc.host}:{exc.port} (offline?): {exc.os_error.strerror or exc.os_error}"


class _FileDownload:
    """One file into ``part``; the ``.meta`` beside it remembers what the server stated, so a later
    resume still checks against it (and sends ``If-Range`` so a changed file starts over)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, part: Path, progress: Progress) -> None:
        self.session = session
        self.url = url
        self.part = part
        self.meta_path = part.with_name(part.name + ".meta")
        self.progress = progress

    def _meta(self) -> dict[str, str]:
        try:
            data = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) and data.get("url") == self.url else {}

    def _save_meta(self, sha256: str | None, etag: str | None) -> None:
        self.meta_path.write_text(json.dumps({"url": self.url, "sha256": sha256, "etag": etag}))

    async def run(self) -> str | None:
        """Download (resuming); returns the sha256 the server stated, if any."""
        for attempt in range(RETRIES):
            try:
                return await self._attempt()
            except _Restart:
                self.part.unlink(missing_ok=True)
                self.meta_path.unlink(missing_ok=True)
            except _DROPPED as exc:
                if isinstance(exc, aiohttp.ClientConnectorError):
                    raise
                if attempt == RETRIES - 1:
                    have = self.part.stat().st_size if self.part.exists() else 0
                    raise DownloadError(
                        f"connection lost after {have} bytes ({type(exc).__name__}); "
                        "run the pull again to resume"
                    ) from exc
        return await self._attempt()  # after restarts: one clean try from byte 0

    async def _attempt(self) -> str | None:
        offset = self.part.stat().st_size if self.part.exists() else 0
        meta = self._meta() if offset else {}
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if meta.get("etag"):
                headers["If-Range"] = f'"{meta["etag"]}"'
        async with self.session.get(self.url, headers=headers) as resp:
            if offset and resp.status == 416:
                raise _Restart
            if resp.status >= 400:
                raise DownloadError(f"HTTP {resp.status} {resp.reason}")
            responses = [*resp.history, resp]
            stated = stated_sha256(responses) or meta.get("sha256")
            if offset and resp.status == 206:
                match = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
                if match is None or int(match.group(1)) != offset:
                    raise _Restart
            elif offset:
                offset = 0  # the server ignored Range (or the file changed): start over
            length = resp.content_length
            total = offset + length if length is not None else None
            if length is not None:
                free = shutil.disk_usage(self.part.parent).free
                if length > free:
                    raise DownloadError(f"not enough disk space: {length} bytes needed, {free} free "
                                        f"in {self.part.parent}")
            self._save_meta(stated, _etag_value(resp.headers, "ETag"))
            done = offset
            with self.part.open("ab" if offset else "wb") as out:
                async for block in resp.content.iter_chunked(CHUNK):
                    out.write(block)
                    done += len(block)
                    self.progress.update(done, total)
            if total is not None and done != total:
                raise aiohttp.ClientPayloadError(f"got {done} of {total} bytes")
            self.progress.update(done, total, final=True)
            return stated


async def _fetch(
    session: aiohttp.ClientSession, entry: CatalogEntry, file: ModelFile, staging: Path, base: str,
    stream: TextIO, interval_s: float,
) -> Fetched:
    url = file.url(base)
    final = staging / file.local_name
    record = final.with_name(final.name + ".verified")
    if final.is_file() and record.is_file():  # verified by an earlier, interrupted pull
        data = json.loads(record.read_text())
        if data.get("url") == url and final.stat().st_size == data.get("size"):
            return Fetched(int(data["size"]), str(data["sha256"]), str(data["verified_by"]))
    part = final.with_name(final.name + ".part")
    progress = Progress(f"{entry.name}: {file.local_name}", stream, interval_s)
    try:
        stated = await _FileDownload(session, url, part, progress).run()
        digest = _sha256_of(part)
    except DownloadError as exc:
        raise DownloadError(f"cannot pull {entry.name}: {url}: {exc}") from exc
    except aiohttp.ClientConnectorError as exc:
        raise DownloadError(f"cannot pull {entry.name}: {url}: {_connect_error(exc)}") from exc
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise DownloadError(f"cannot pull {entry.name}: {url}: {type(exc).__name__}: {exc}") from exc
    expected, source = (file.sha256, "catalog") if file.sha256 else (stated, "server")
    if expected is not None and digest != expected.lower():
        part.unlink(missing_ok=True)
        part.with_name(part.name + ".meta").unlink(missing_ok=True)
        raise DownloadError(
            f"cannot pull {entry.name}: {url}: checksum mismatch (sha256 {digest}, the {source} states "
            f"{expected}); the file was deleted and nothing was installed"
        )
    fetched = Fetched(part.stat().st_size, digest, source if expected else "computed")
    part.replace(final)
    part.with_name(part.name + ".meta").unlink(missing_ok=True)
    record.write_text(json.dumps({"url": url, **fetched.__dict__}))
    return fetched


async def pull_async(
    entry: CatalogEntry,
    cache: Path,
    base: str | None = None,
    stream: TextIO = sys.stderr,
    interval_s: float = 0.5,
) -> model_cache.Manifest:
    """Download every file of ``entry`` into ``.partial/<name>``, verify, then install it whole."""
    base = base or HF_BASE
    staging = model_cache.partial_dir(cache, entry.name)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
    try:
        staging.mkdir(parents=True, exist_ok=True)
        with model_cache.pull_lock(cache, entry.name):
            session = aiohttp.ClientSession(timeout=timeout, auto_decompress=False, trust_env=True)
            async with session:
                files = []
                for file in entry.files:
                    fetched = await _fetch(session, entry, file, staging, base, stream, interval_s)
                    files.append(model_cache.InstalledFile(file.local_name, file.url(base), **vars(fetched)))
            for leftover in staging.glob("*.verified"):
                leftover.unlink()
            manifest = model_cache.Manifest(
                name=entry.name, kind=entry.kind, installed_at=time.time(), files=tuple(files),
                pairs=entry.pairs, language=entry.language, whisper_size=entry.whisper_size,
            )
            model_cache.install(cache, staging, manifest)
            return manifest
    except model_cache.CacheBusy as exc:
        raise DownloadError(f"cannot pull {entry.name}: {exc}") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            shutil.rmtree(staging, ignore_errors=True)  # free what we took; nothing was installed
            raise DownloadError(f"cannot pull {entry.name}: disk full in {cache}") from exc
        where = exc.filename or cache
        raise DownloadError(f"cannot pull {entry.name}: {exc.strerror or exc}: {where}") from exc


def pull(entry: CatalogEntry, cache: Path, base: str | None = None, stream: TextIO = sys.stderr,
         interval_s: float = 0.5) -> model_cache.Manifest:
    return asyncio.run(pull_async(entry, cache, base, stream, interval_s))
