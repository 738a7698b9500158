"""The live rendered tree on disk, swapped atomically.

``<conf>/rendered`` is a symbolic link to a generation directory ``<conf>/.rendered-<id>``.
A new render is written and fsynced into a fresh generation beside it, then the link is
replaced with ``os.replace`` (one rename), so FreeSWITCH's include globs see either the whole
old tree or the whole new one. The previous generation is kept for rollback.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from controller.fsconfig.render import SECRETS_DIR, RenderedFile

LINK_NAME = "rendered"
GENERATION_PREFIX = ".rendered-"
LOCK_NAME = ".kallglot-render.lock"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_files(directory: Path, files: Mapping[str, RenderedFile]) -> None:
    """Write ``files`` under ``directory`` (which exists); secrets 0600 in a 0700 folder."""
    for rel, rendered in files.items():
        target = directory / rel
        if target.parent != directory and not target.parent.exists():
            target.parent.mkdir(parents=True, mode=0o700 if rel.startswith(SECRETS_DIR + "/") else 0o755)
        mode = 0o600 if rendered.secret else 0o644
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(rendered.text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(target, mode)  # umask may have narrowed or widened nothing; be explicit
    secrets_dir = directory / SECRETS_DIR
    if secrets_dir.is_dir():
        os.chmod(secrets_dir, 0o700)
    _fsync_dir(directory)


def read_files(directory: Path) -> dict[str, RenderedFile]:
    """Read a rendered tree back (for the reload diff); empty when there is none."""
    out: dict[str, RenderedFile] = {}
    if not directory.is_dir():
        return out
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            rel = path.relative_to(directory).as_posix()
            out[rel] = RenderedFile(
                text=path.read_text(encoding="utf-8"), secret=rel.startswith(SECRETS_DIR + "/")
            )
    return out


class LiveTree:
    """The ``rendered`` link inside a FreeSWITCH conf dir and its generations."""

    def __init__(self, conf_dir: Path) -> None:
        # Resolved once, so generation paths compare equal however the dir was named.
        self.conf_dir = Path(conf_dir).resolve()
        self.link = self.conf_dir / LINK_NAME

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One render/reload at a time across processes (CLI, API, debounced listener)."""
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        with open(self.conf_dir / LOCK_NAME, "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def current(self) -> Path | None:
        """The generation the link points at (None before the first render)."""
        if self.link.is_symlink():
            return (self.conf_dir / os.readlink(self.link)).resolve()
        if self.link.is_dir():
            return self.link
        return None

    def stage(self, files: Mapping[str, RenderedFile]) -> Path:
        """Write a new generation beside the live one; nothing live changes yet."""
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        name = f"{GENERATION_PREFIX}{time.time_ns():x}-{secrets.token_hex(4)}"
        staging = self.conf_dir / name
        staging.mkdir(mode=0o755)
        try:
            write_files(staging, files)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging

    def point_to(self, generation: Path) -> None:
        """Atomically make ``rendered`` point at ``generation`` (a directory in conf_dir)."""
        if self.link.exists() and not self.link.is_symlink():
            # A plain directory left by an older layout: move it aside once, keep it as a generation.
            self.link.rename(self.conf_dir / f"{GENERATION_PREFIX}legacy-{time.time_ns():x}")
        tmp_link = self.conf_dir / f".{LINK_NAME}.link-{secrets.token_hex(4)}"
        os.symlink(generation.name, tmp_link)
        os.replace(tmp_link, self.link)
        _fsync_dir(self.conf_dir)

    def discard(self, generation: Path) -> None:
        if generation.parent == self.conf_dir and generation.name.startswith(GENERATION_PREFIX):
            shutil.rmtree(generation, ignore_errors=True)

    def prune(self, keep: set[Path]) -> None:
        """Remove generations other than ``keep`` (the live one and the rollback target)."""
        keep_names = {p.name for p in keep}
        for entry in self.conf_dir.iterdir():
            if entry.name.startswith(GENERATION_PREFIX) and entry.name not in keep_names and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)


def write_out(out_dir: Path, files: Mapping[str, RenderedFile]) -> None:
    """``kallglot render --out DIR``: replace DIR with the rendered files (staged beside it)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.staging-{secrets.token_hex(4)}"
    staging.mkdir(mode=0o755)
    try:
        write_files(staging, files)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{secrets.token_hex(4)}"
        out_dir.rename(old)
    staging.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


APPLIED_MARKER = ".kallglot-applied"


def _marker(tree: LiveTree, node_id: str | None) -> Path:
    """One marker per FreeSWITCH: the plain one for the configured (single) FreeSWITCH and as
    "every node has it"; ``…@<node>`` for each node of a shared conf dir (docs/multi-node.md)."""
    if node_id is None:
        return tree.conf_dir / APPLIED_MARKER
    safe = re.sub(r"[^A-Za-z0-9_.:-]", "_", node_id)[:64]
    digest = hashlib.sha256(node_id.encode("utf-8")).hexdigest()[:8]
    return tree.conf_dir / f"{APPLIED_MARKER}@{safe}-{digest}"


def _generation_named(tree: LiveTree, marker: Path) -> Path | None:
    try:
        name = marker.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    path = tree.conf_dir / name
    return path if name.startswith(GENERATION_PREFIX) and path.is_dir() else None


def applied_generation(tree: LiveTree, node_id: str | None = None) -> Path | None:
    """The generation FreeSWITCH (``node_id``'s, else the configured one) was last brought to
    (by reload, or the bootstrap render)."""
    return _generation_named(tree, _marker(tree, node_id))


def applied_generations(tree: LiveTree) -> set[Path]:
    """Every generation some marker names: kept by prune, a node may still be diffed against it."""
    found = {_generation_named(tree, m) for m in tree.conf_dir.glob(APPLIED_MARKER + "*")}
    return {p for p in found if p is not None}


def mark_applied(tree: LiveTree, generation: Path, node_id: str | None = None) -> None:
    tmp = tree.conf_dir / f".kallglot-tmp-{secrets.token_hex(4)}"
    tmp.write_text(generation.name + "\n", encoding="utf-8")
    os.replace(tmp, _marker(tree, node_id))
