"""Render the Kamailio front's files (Jinja2, StrictUndefined) and check them with ``kamailio -c``."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jinja2

from controller.fsconfig.render import templates_dir
from controller.kamailio.model import KamailioConfigError, KamailioInput

TEMPLATE_SUBDIR = "kamailio"
FILES: dict[str, str] = {
    "kamailio.cfg": "kamailio.cfg.j2",
    "dispatcher.list": "dispatcher.list.j2",
    "tls.cfg": "tls.cfg.j2",
}
KAMAILIO_BIN = "kamailio"
# Debian's module folder (kamailio 5.6 package); the binary's built-in path finds it too.
DEBIAN_MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
_FORBIDDEN = frozenset('"\n\r\0\\')


def _finalize(value: object) -> str:
    # Values were validated (model.py); this is the net under it: nothing may end a script string
    # or start a new line in any of the three files.
    text = str(value)
    if any(ch in _FORBIDDEN for ch in text):
        raise KamailioConfigError("render", f"value {text[:40]!r} holds a quote, backslash or line break")
    return text


def make_environment(directory: Path | None = None) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str((directory or templates_dir()) / TEMPLATE_SUBDIR)),
        autoescape=False,  # noqa: S701 -- not HTML/XML: values are validated, _finalize guards
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_files(k: KamailioInput, directory: Path | None = None) -> dict[str, str]:
    env = make_environment(directory)
    files = {name: env.get_template(template).render(k=k) for name, template in FILES.items()}
    if not k.tls:
        del files["tls.cfg"]
    return files


def write_files(files: dict[str, str], out: Path) -> list[Path]:
    """Write the files into ``out`` (created 0755); each replaced atomically (temp file + rename)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        target = out / name
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        written.append(target)
    return written


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    returncode: int
    output: str


def kamailio_binary() -> str | None:
    return shutil.which(KAMAILIO_BIN) or (str(Path("/usr/sbin") / KAMAILIO_BIN)
                                           if Path("/usr/sbin", KAMAILIO_BIN).exists() else None)


def check_config(cfg: Path, binary: str | None = None, timeout_s: float = 60.0) -> CheckResult:
    """``kamailio -c -f cfg``: parses the script, loads every module, applies every modparam
    (the TLS module reads tls.cfg and the certificate, dispatcher reads dispatcher.list)."""
    exe = binary or kamailio_binary()
    if exe is None:
        raise FileNotFoundError("kamailio is not installed")
    cmd = [exe, "-c", "-f", str(cfg)]
    if DEBIAN_MODULES.is_dir():
        cmd[1:1] = ["-L", str(DEBIAN_MODULES)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    return CheckResult(proc.returncode == 0, proc.returncode, (proc.stdout + proc.stderr)[-4000:])
