"""Ready-to-paste trunk configuration for an organization's PBX (the SIP guide's "Configure Your PBX").

Three snippets from one validated :class:`PbxTrunk`: a FreeSWITCH gateway (XML, autoescaped and
pre-processor-escaped like our own rendered files, since the PBX's FreeSWITCH reads it the same
way), an Asterisk ``pjsip.conf`` block (INI: every value is checked for line breaks and section
brackets, ``;`` is escaped) and a plain-text summary for any other SIP trunk. The password never
appears: only its a1-hash is stored, so every snippet carries a placeholder instead.

Rendering is pure (``render_snippets(trunk)``); ``snippets_for_org`` only reads the store.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

import jinja2

from controller.domain.sip_settings import SipSettings, get_sip_settings
from controller.fsconfig.escape import fs_escape
from controller.fsconfig.model import (
    CODECS,
    TRANSPORTS,
    ConfigInputError,
    check_e164,
    check_host,
    check_sip_user,
)
from controller.fsconfig.render import templates_dir
from controller.settings import Settings, SettingsError, parse_sip_transports
from controller.store import Store

PASSWORD_PLACEHOLDER = "PASTE-PASSWORD-FROM-POST-v1-sip-credentials"  # noqa: S105 -- a placeholder
GATEWAY_NAME = "kallglot"
PORTS = {"tls": 5061, "tcp": 5060, "udp": 5060}
# Asterisk's codec names for ours (codecs.conf / `core show codecs`).
ASTERISK_CODECS = {"OPUS": "opus", "G722": "g722", "PCMU": "ulaw", "PCMA": "alaw"}
TEMPLATE_SUBDIR = "pbx"
TEMPLATES = {
    "freeswitch": "freeswitch_gateway.xml.j2",
    "asterisk": "asterisk_pjsip.conf.j2",
    "summary": "summary.txt.j2",
}


class SnippetValueError(ConfigInputError):
    """A stored value that cannot be put into a snippet safely (``field`` names it)."""


@dataclass(frozen=True)
class PbxTrunk:
    """What every snippet is built from; validated by :func:`trunk_from_settings`."""

    domain: str  # realm and proxy: the install's SIP domain
    username: str
    transport: str  # tls | tcp | udp: what the PBX should use
    port: int
    allowed_transports: tuple[str, ...]
    codecs: tuple[str, ...]  # our names, in the organization's preference order
    require_srtp: bool
    numbers: tuple[str, ...]  # the organization's active managed numbers (E.164)
    enabled: bool
    credentials_set: bool
    notes: tuple[str, ...] = ()  # what the organization still has to fix before calls pass

    @property
    def asterisk_codecs(self) -> tuple[str, ...]:
        return tuple(ASTERISK_CODECS[c] for c in self.codecs)


def _choose_transport(allowed: tuple[str, ...], bound: tuple[str, ...]) -> tuple[str, list[str]]:
    """TLS first, then TCP, then UDP, among those the organization allows and the edge binds."""
    notes: list[str] = []
    usable = [t for t in TRANSPORTS if t in allowed and t in bound]
    if not usable:
        usable = [t for t in TRANSPORTS if t in allowed]
        notes.append(
            f"this edge listens on {', '.join(bound)} only, none of which the organization allows "
            "(allowed_transports): calls will not connect until they overlap"
        )
    return usable[0], notes


def trunk_from_settings(
    sip: SipSettings, domain: str, numbers: list[str], bound_transports: tuple[str, ...] = TRANSPORTS
) -> PbxTrunk:
    """Validate stored values (they reach files people paste into their PBX) into a PbxTrunk."""
    try:
        check_host(domain, "sip_domain")
        check_sip_user(sip.username, "username")
        allowed = tuple(t for t in TRANSPORTS if t in sip.allowed_transports)
        for i, t in enumerate(sip.allowed_transports):
            if t not in TRANSPORTS:
                raise SnippetValueError(f"allowed_transports[{i}]", f"{t!r} is not one of tls, tcp, udp")
        codecs: list[str] = []
        for i, c in enumerate(sip.allowed_codecs):
            if c not in CODECS:
                raise SnippetValueError(f"allowed_codecs[{i}]", f"{c!r} is not one of {', '.join(CODECS)}")
            if c not in codecs:
                codecs.append(c)
        checked_numbers = tuple(check_e164(n, f"phone_numbers[{i}]") for i, n in enumerate(numbers))
    except SnippetValueError:
        raise
    except ConfigInputError as exc:
        raise SnippetValueError(exc.field, exc.reason) from None
    if not allowed:
        raise SnippetValueError("allowed_transports", "must name at least one transport")
    if not codecs:
        raise SnippetValueError("allowed_codecs", "must name at least one codec")
    transport, notes = _choose_transport(allowed, bound_transports)
    if not sip.enabled:
        notes.append('SIP is disabled for the organization: PATCH /v1/sip {"enabled": true}')
    if not sip.credentials_set:
        notes.append("no SIP password yet: POST /v1/sip/credentials (its reply is the only one to show it)")
    if sip.require_srtp and transport != "tls":
        notes.append("SRTP is required but the trunk is not TLS: the SDES keys travel in clear text")
    return PbxTrunk(
        domain=domain,
        username=sip.username,
        transport=transport,
        port=PORTS[transport],
        allowed_transports=allowed,
        codecs=tuple(codecs),
        require_srtp=sip.require_srtp,
        numbers=checked_numbers,
        enabled=sip.enabled,
        credentials_set=sip.credentials_set,
        notes=tuple(notes),
    )


# --- rendering ------------------------------------------------------------------------------------


def _ini_finalize(value: object) -> str:
    """A pjsip.conf value: no line break or control character (a new line or ``[section]`` would
    be injected), no brackets, and ``;`` (Asterisk's comment) escaped as ``\\;``."""
    text = str(value)
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in text):
        raise SnippetValueError("asterisk", f"value {text[:40]!r} holds a line break or control character")
    if "[" in text or "]" in text:
        raise SnippetValueError("asterisk", f"value {text[:40]!r} holds a section bracket")
    return text.replace(";", "\\;")


def _text_finalize(value: object) -> str:
    text = str(value)
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in text):
        raise SnippetValueError("summary", f"value {text[:40]!r} holds a line break or control character")
    return text


def _environment(directory: Path, *, xml: bool) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        autoescape=xml,  # noqa: S701 -- INI and text values are checked by their finalize instead
        undefined=jinja2.StrictUndefined,
        # XML: every value also loses the FreeSWITCH pre-processor's triggers ($${…}, X-PRE-PROCESS).
        finalize=fs_escape if xml else None,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_snippets(trunk: PbxTrunk, directory: Path | None = None) -> dict[str, str]:
    """The three snippets (keys ``freeswitch``, ``asterisk``, ``summary``) for one trunk."""
    base = (directory or templates_dir()) / TEMPLATE_SUBDIR
    xml_env = _environment(base, xml=True)
    ini_env = _environment(base, xml=False)
    ini_env.finalize = _ini_finalize
    text_env = _environment(base, xml=False)
    text_env.finalize = _text_finalize
    context = {
        "t": trunk,
        "gateway": GATEWAY_NAME,
        "password_placeholder": PASSWORD_PLACEHOLDER,
    }
    return {
        "freeswitch": xml_env.get_template(TEMPLATES["freeswitch"]).render(context),
        "asterisk": ini_env.get_template(TEMPLATES["asterisk"]).render(context),
        "summary": text_env.get_template(TEMPLATES["summary"]).render(context),
    }


def _active_numbers(store: Store, org_id: str) -> list[str]:
    rows = store.query(
        "SELECT number FROM phone_numbers WHERE org_id = ? AND status = 'active' ORDER BY number",
        (org_id,),
    )
    return [r["number"] for r in rows]


def _bound_transports(settings: Settings) -> tuple[str, ...]:
    try:
        return parse_sip_transports(settings.sip_transports)
    except SettingsError:
        return TRANSPORTS  # the render reports the bad setting; the snippet stays useful


def snippets_for_org(store: Store, settings: Settings, org_id: str) -> dict[str, str]:
    """The organization's snippets from its stored SIP settings (raises NotFound for no such org)."""
    sip = get_sip_settings(store, org_id)
    trunk = trunk_from_settings(
        sip, settings.sip_domain, _active_numbers(store, org_id), _bound_transports(settings)
    )
    return render_snippets(trunk)
