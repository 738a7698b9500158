"""Jinja2 rendering of the FreeSWITCH files (autoescaped, StrictUndefined) into memory.

Nothing here touches the disk: ``render_files`` returns the file contents so they can be
validated before the atomic swap (controller/fsconfig/tree.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import jinja2
from markupsafe import Markup

from controller.fsconfig.escape import fs_escape, preprocessor_literal
from controller.fsconfig.model import ConfigInput

# Installed packages do not carry templates/; containers point this at their copy.
TEMPLATES_ENV = "KALLGLOT_TEMPLATES_DIR"
_REPO_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

# rendered path -> template; paths under secrets/ are written 0600 in a 0700 directory.
FILES: dict[str, str] = {
    "sip_profile.xml": "sip_profile.xml.j2",
    "gateways.xml": "gateways.xml.j2",
    "directory.xml": "directory.xml.j2",
    "acl.xml": "acl.xml.j2",
    "dialplan.xml": "dialplan.xml.j2",
    "secrets/gateway_passwords.xml": "secrets.xml.j2",
}
SECRETS_DIR = "secrets"


@dataclass(frozen=True)
class RenderedFile:
    text: str
    secret: bool


RenderedTree = dict[str, RenderedFile]


def templates_dir() -> Path:
    configured = os.environ.get(TEMPLATES_ENV)
    return Path(configured) if configured else _REPO_TEMPLATES


def _finalize(value: object) -> object:
    # Every {{ }} value goes through fs_escape (XML + pre-processor); autoescape stays on as a net.
    return fs_escape(value)


def _var_ref(name: str) -> Markup:
    """``$${name}`` for a variable name we generated ourselves (validated id characters)."""
    if not name.replace("_", "").isalnum() or not name.isascii():
        raise ValueError(f"unsafe pre-processor variable name {name!r}")
    return Markup(f"$${{{name}}}")  # noqa: S704 -- name checked above: ASCII letters, digits, _


def _secret_literal(value: str) -> Markup:
    # Only ASCII letters/digits and &#N; references: nothing left for XML or the pre-processor.
    return Markup(preprocessor_literal(value))  # noqa: S704


def make_environment(directory: Path | None = None) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory or templates_dir())),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals["var_ref"] = _var_ref
    env.globals["secret_literal"] = _secret_literal
    return env


def _plain_bind_params(transports: tuple[str, ...]) -> str:
    plain = [t for t in ("udp", "tcp") if t in transports]
    # sofia binds UDP and TCP on sip-port by default; bind-params narrows it to one of them.
    return f"transport={plain[0]}" if len(plain) == 1 else ""


def render_files(cfg: ConfigInput, env: jinja2.Environment | None = None) -> RenderedTree:
    env = env or make_environment()
    transports = cfg.transports
    tls = "tls" in transports
    context = {
        "cfg": cfg,
        "tls": tls,
        "tls_only": tls and not ({"udp", "tcp"} & set(transports)),
        "plain_bind_params": _plain_bind_params(transports),
    }
    return {
        path: RenderedFile(
            text=env.get_template(template).render(context),
            secret=path.startswith(SECRETS_DIR + "/"),
        )
        for path, template in FILES.items()
    }
