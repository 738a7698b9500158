"""The model cache: ``<KALLGLOT_MODEL_CACHE>/<name>/`` holds one installed model and its manifest.

A model directory appears only once every file is verified (it is renamed into place whole), so
a directory with a readable manifest is an installed model. Downloads in progress live under
``.partial/<name>/`` (their ``.part`` files are resumed by the next pull); removal renames the
directory away before deleting it, so readers never see half a model.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

MANIFEST = "kallglot-model.json"
PARTIAL = ".partial"


@dataclass(frozen=True)
class InstalledFile:
    name: str  # file name inside the model directory
    url: str
    size: int
    sha256: str
    # Where the checksum came from: "catalog" (pinned), "server" (X-Linked-ETag / ETag) or
    # "computed" (nothing to compare with: recorded so later damage is detectable).
    verified_by: str


@dataclass(frozen=True)
class Manifest:
    name: str
    kind: str
    installed_at: float
    files: tuple[InstalledFile, ...]
    pairs: tuple[tuple[str, str], ...] = ()
    language: str | None = None
    whisper_size: str | None = None

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["pairs"] = [list(p) for p in self.pairs]
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Manifest:
        files = tuple(InstalledFile(**f) for f in data["files"])  # type: ignore[arg-type, union-attr]
        pairs = tuple((str(s), str(t)) for s, t in data.get("pairs") or ())  # type: ignore[union-attr]
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            installed_at=float(data["installed_at"]),  # type: ignore[arg-type]
            files=files,
            pairs=pairs,
            language=data.get("language"),  # type: ignore[arg-type]
            whisper_size=data.get("whisper_size"),  # type: ignore[arg-type]
        )


def model_dir(cache: Path, name: str) -> Path:
    return cache / name


def partial_dir(cache: Path, name: str) -> Path:
    return cache / PARTIAL / name


def read_manifest(directory: Path) -> Manifest | None:
    try:
        return Manifest.from_json(json.loads((directory / MANIFEST).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_manifest(directory: Path, manifest: Manifest) -> None:
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest.to_json(), indent=2))
    os.replace(tmp, directory / MANIFEST)


def installed(cache: Path) -> dict[str, Manifest]:
    """Installed models by name (directories without a manifest, e.g. ``whisper-base``, are not)."""
    found: dict[str, Manifest] = {}
    try:
        children = sorted(cache.iterdir())
    except OSError:
        return found
    for child in children:
        if child.name.startswith(".") or not child.is_dir():
            continue
        manifest = read_manifest(child)
        if manifest is not None and manifest.name == child.name:
            found[child.name] = manifest
    return found


def install(cache: Path, staging: Path, manifest: Manifest) -> Path:
    """Write the manifest into the verified ``staging`` dir and rename it into place (replacing an
    older install of the same name)."""
    write_manifest(staging, manifest)
    target = model_dir(cache, manifest.name)
    old: Path | None = None
    if target.exists():
        old = cache / PARTIAL / f"{manifest.name}.old-{os.getpid()}"
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def remove(cache: Path, name: str) -> bool:
    """Delete an installed model and any partial download of it; False when there was neither."""
    target = model_dir(cache, name)
    partial = partial_dir(cache, name)
    found = False
    if target.is_dir():
        trash = cache / PARTIAL / f"{name}.removed-{os.getpid()}-{time.monotonic_ns()}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        os.replace(target, trash)  # gone from readers' view at once
        shutil.rmtree(trash, ignore_errors=True)
        found = True
    if partial.exists():
        shutil.rmtree(partial, ignore_errors=True)
        found = True
    return found


class CacheBusy(RuntimeError):
    pass


@contextlib.contextmanager
def pull_lock(cache: Path, name: str) -> Iterator[None]:
    """One pull of a model at a time (two would write the same ``.part`` files)."""
    lock_path = cache / PARTIAL / f"{name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CacheBusy(f"another `kallglot models pull {name}` is running") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
