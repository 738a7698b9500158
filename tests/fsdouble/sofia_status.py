"""The text of ``sofia status`` and ``sofia status profile P`` as mod_sofia 1.10.12 writes it
(mod_sofia.c ``cmd_status``), for a profile read from the rendered configuration.

``sofia status``' layout is the captured one (templates.json ``sofia_status``, inbound-reload.log);
``sofia status profile P`` was not captured: its lines follow cmd_status' format strings
(``"%-17s\\t%s\\n"``-like keys padded to 17 columns), values from the profile's settings or
mod_sofia's defaults. Only running profiles appear: ``sofia_glue_find_profile`` skips a profile
without PFLAG_RUNNING, so a profile that is (re)starting is ``Invalid Profile!``.
"""

from __future__ import annotations

from collections.abc import Iterable

from tests.fsdouble.config import Profile

LINE = "=" * 97
INVALID_PROFILE = "Invalid Profile!\n"


def _urls(profile: Profile) -> dict[str, str]:
    """url/bindurl/tls_url/tls_bindurl as sofia.c config_sofia_profile_urls builds them."""
    sip_ip = profile.param("sip-ip", "127.0.0.1")
    ext = profile.param("ext-sip-ip")
    host = ext or sip_ip
    maddr = f";maddr={sip_ip}" if ext else ""
    port = profile.param("sip-port", "5060")
    bind_params = profile.param("bind-params")
    if "transport=" not in bind_params.lower():
        bind_params = f"{bind_params};transport=udp,tcp" if bind_params else "transport=udp,tcp"
    out = {"url": f"sip:mod_sofia@{host}:{port}"}
    out["bindurl"] = f"{out['url']}{maddr};{bind_params}"
    if profile.tls:
        tls_port = profile.param("tls-sip-port", "5061")
        out["tls_url"] = f"sip:mod_sofia@{host}:{tls_port}"
        tls_bind = f"sips:mod_sofia@{host}:{tls_port}{maddr}"
        tls_params = profile.param("tls-bind-params")
        out["tls_bindurl"] = f"{tls_bind};{tls_params}" if tls_params else tls_bind
    return out


def _plain_listed(profile: Profile) -> bool:
    # cmd_status: `if (! sofia_test_pflag(profile, PFLAG_TLS) || ! profile->tls_only)`
    return not (profile.tls and profile.flag("tls-only"))


def status_table(profiles: Iterable[Profile], inuse: dict[str, int] | None = None) -> str:
    """``sofia status``: one row per bound URL of each running profile."""
    rows = [f"{'Name':>25}\t{'   Type'}\t  {'Data':>40}\tState", LINE]
    count = 0
    for profile in profiles:
        urls, used = _urls(profile), (inuse or {}).get(profile.name, 0)
        if _plain_listed(profile):
            rows.append(f"{profile.name:>25}\t{'profile'}\t  {urls['url']:>40}\tRUNNING ({used})")
        if "tls_url" in urls:
            rows.append(f"{profile.name:>25}\t{'profile'}\t  {urls['tls_url']:>40}\tRUNNING ({used}) (TLS)")
        count += 1
    rows += [LINE, f"{count} profile{'' if count == 1 else 's'} 0 aliases"]
    return "\n".join(rows) + "\n"


def _row(key: str, value: str) -> str:
    return f"{key:<17}\t{value}"


def profile_status(profile: Profile, calls_in: int = 0) -> str:
    """``sofia status profile P`` of a running profile."""
    urls = _urls(profile)
    rows = [LINE, _row("Name", profile.name), _row("Domain Name", "N/A"), _row("Auto-NAT", "false"),
            _row("DBName", f"sofia_reg_{profile.name}"), _row("Pres Hosts", ""),
            _row("Dialplan", profile.param("dialplan", "XML")),
            _row("Context", profile.param("context", "public")),
            _row("Challenge Realm", profile.param("challenge-realm") or "auto_to"),
            _row("RTP-IP", profile.param("rtp-ip", "127.0.0.1"))]
    if profile.param("ext-rtp-ip"):
        rows.append(_row("Ext-RTP-IP", profile.param("ext-rtp-ip")))
    rows.append(_row("SIP-IP", profile.param("sip-ip", "127.0.0.1")))
    if profile.param("ext-sip-ip"):
        rows.append(_row("Ext-SIP-IP", profile.param("ext-sip-ip")))
    if _plain_listed(profile):
        rows += [_row("URL", urls["url"]), _row("BIND-URL", urls["bindurl"])]
    if "tls_url" in urls:
        rows += [_row("TLS-URL", urls["tls_url"]), _row("TLS-BIND-URL", urls["tls_bindurl"])]
    codecs = ",".join(profile.codec_prefs)
    rows += [_row("HOLD-MUSIC", "N/A"), _row("OUTBOUND-PROXY", "N/A"), _row("CODECS IN", codecs),
             _row("CODECS OUT", profile.param("outbound-codec-prefs") or codecs),
             _row("TEL-EVENT", profile.param("rfc2833-pt", "101")), _row("DTMF-MODE", "rfc2833"),
             _row("CNG", "13"), _row("SESSION-TO", "0"), _row("MAX-DIALOG", "0"),
             _row("MAX-RECV-RPS", "1000"), _row("NOMEDIA", "false"),
             _row("LATE-NEG", "true" if profile.flag("inbound-late-negotiation") else "false"),
             _row("PROXY-MEDIA", "false"), _row("AGGRESSIVENAT", "false"),
             _row("CALLS-IN", str(calls_in)), _row("FAILED-CALLS-IN", "0"), _row("CALLS-OUT", "0"),
             _row("FAILED-CALLS-OUT", "0"), _row("REGISTRATIONS", "0"), LINE]
    return "\n".join(rows) + "\n"
