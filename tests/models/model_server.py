"""A real HTTP server on 127.0.0.1 shaped like Hugging Face: ``/<repo>/resolve/main/<path>``.

LFS files answer with a 302 carrying ``X-Linked-ETag`` (their sha256) to ``/cdn/<sha256>``, as
huggingface.co does; small files are served directly with a git-blob (sha1) ETag. Range support,
connection cuts and a lying checksum can be switched on per test."""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Served:
    data: bytes
    lfs: bool = False
    stated_sha256: str | None = None  # None = the real sha256

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class ModelServer:
    files: dict[str, Served] = field(default_factory=dict)  # "<repo>/<path>" -> file
    ranges: bool = True
    cut_after: int | None = None  # close the connection after this many body bytes …
    cuts_left: int = 0  # … this many times
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, repo: str, path: str, data: bytes, lfs: bool = False) -> Served:
        served = Served(data, lfs)
        self.files[f"{repo}/{path}"] = served
        return served

    def start(self) -> ModelServer:
        app = web.Application()
        app.router.add_get("/cdn/{sha}", self._cdn)
        app.router.add_get("/{tail:.+}", self._resolve)
        self._thread.start()
        self._runner = web.AppRunner(app)
        asyncio.run_coroutine_threadsafe(self._runner.setup(), self._loop).result(10)
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        asyncio.run_coroutine_threadsafe(site.start(), self._loop).result(10)
        self.port = self._runner.addresses[0][1]
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _resolve(self, request: web.Request) -> web.StreamResponse:
        match = re.fullmatch(r"(.+?/.+?)/resolve/main/(.+)", request.match_info["tail"])
        served = self.files.get(f"{match.group(1)}/{match.group(2)}") if match else None
        self.requests.append((request.path, request.headers.get("Range")))
        if served is None:
            raise web.HTTPNotFound(text="Entry not found")
        if served.lfs:
            headers = {"X-Linked-ETag": f'"{served.stated_sha256 or served.sha256}"',
                       "X-Linked-Size": str(len(served.data)), "Location": f"/cdn/{served.sha256}"}
            return web.Response(status=302, headers=headers)
        etag = hashlib.sha1(b"blob %d\0" % len(served.data) + served.data).hexdigest()
        return await self._body(request, served.data, etag)

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, request.headers.get("Range")))
        served = next((f for f in self.files.values() if f.sha256 == request.match_info["sha"]), None)
        if served is None:
            raise web.HTTPNotFound()
        return await self._body(request, served.data, served.sha256)

    async def _body(self, request: web.Request, data: bytes, etag: str) -> web.StreamResponse:
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", request.headers.get("Range", ""))
        if_range = request.headers.get("If-Range")
        if self.ranges and match and (if_range is None or if_range.strip('"') == etag):
            start = int(match.group(1))
            if start >= len(data):
                raise web.HTTPRequestRangeNotSatisfiable()
        resp = web.StreamResponse(status=206 if start else 200, headers={"ETag": f'"{etag}"'})
        if start:
            resp.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        resp.content_length = len(data) - start
        await resp.prepare(request)
        body = data[start:]
        if self.cuts_left > 0 and self.cut_after is not None and len(body) > self.cut_after:
            self.cuts_left -= 1
            await resp.write(body[: self.cut_after])
            await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.close()  # mid-body: the client sees a truncated payload
            return resp
        await resp.write(body)
        await resp.write_eof()
        return resp
