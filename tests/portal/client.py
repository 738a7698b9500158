"""A browser-less portal user: a requests session that signs in with a one-time link and posts
forms with the page's CSRF token."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

import requests

from controller.portal import auth
from tests.api.server import ApiServer, Org

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]*)"')


def field_value(page: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    assert match, f"no field {name!r} in the page"
    return html.unescape(match.group(1))


def text_of(page: str) -> str:
    """The page's text with tags dropped and entities decoded (for message assertions)."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


@dataclass
class Portal:
    api: ApiServer
    http: requests.Session = field(default_factory=requests.Session)
    csrf: str = ""

    def url(self, path: str) -> str:
        return self.api.base + path

    def login_link(self, org: Org) -> str:
        return auth.create_login_link(self.api.store, org.id).token

    def sign_in(self, org: Org) -> requests.Response:
        token = self.login_link(org)
        page = self.http.get(self.url("/portal/login"), timeout=30)
        assert page.status_code == 200, page.text
        resp = self.http.post(
            self.url("/portal/login"),
            data={"token": token, "nonce": field_value(page.text, "nonce")},
            timeout=30,
        )
        assert resp.status_code == 200 and resp.url.endswith("/portal/"), resp.text
        self.csrf = CSRF_RE.search(resp.text).group(1)  # type: ignore[union-attr]
        return resp

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.url(path), timeout=30, **kwargs)

    def post(
        self,
        path: str,
        data: dict[str, Any] | list[tuple[str, str]] | None = None,
        *,
        csrf: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        items = list(data.items()) if isinstance(data, dict) else list(data or [])
        if csrf:
            items.append(("csrf_token", self.csrf))
        return self.http.post(self.url(path), data=items, timeout=60, **kwargs)


def sip_form(**overrides: Any) -> dict[str, Any]:
    """The Configure SIP form as a browser posts it with the stored defaults."""
    form: dict[str, Any] = {
        "ip_allowlist": "",
        "transport_tls": "on",
        "transport_tcp": "on",
        "transport_udp": "on",
        "codec_OPUS": "on",
        "codec_G722": "on",
        "codec_PCMU": "on",
        "codec_PCMA": "on",
        "codec_order_OPUS": "1",
        "codec_order_G722": "2",
        "codec_order_PCMU": "3",
        "codec_order_PCMA": "4",
        "mode": "bidirectional_translation",
        "region": "eu",
        "source_language": "auto",
        "target_language": "auto",
        "max_concurrent_calls": "10",
    }
    for key, value in overrides.items():
        if value is None:
            form.pop(key, None)
        else:
            form[key] = value
    return form
