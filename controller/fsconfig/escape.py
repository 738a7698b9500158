"""Escaping for text that FreeSWITCH reads twice: first its line-based pre-processor, then XML.

The pre-processor (switch_xml.c ``preprocess``) works on raw lines before any XML parsing:
it expands ``$${name}`` anywhere, drops a whole line that mentions ``X-PRE-PROCESS`` without a
``<`` in front, and drops lines holding ``<include>``/``</include>``/``<?``. XML escaping alone
covers the last case only, so every value we render also gets ``$`` and the ``-`` of
``x-pre-process`` written as character references, which the XML parser decodes afterwards.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

_PREPROCESS_WORD = re.compile(r"(?i)x-pre-process")


def fs_escape(value: object) -> Markup:
    """XML-escape ``value`` and neutralize the pre-processor's triggers inside it."""
    if isinstance(value, Markup):
        return value
    text = str(escape(str(value)))
    text = text.replace("$", "&#36;")
    text = _PREPROCESS_WORD.sub(lambda m: m.group(0).replace("-", "&#45;"), text)
    return Markup(text)  # noqa: S704 -- built from escape() output above


def preprocessor_literal(value: str) -> str:
    """Encode ``value`` for the ``data`` attribute of ``<X-PRE-PROCESS cmd="set">``.

    ``set`` takes the raw text up to the next ``"`` (no XML decoding) and trims spaces; the value
    is later pasted verbatim into an XML attribute by ``$${name}``. Writing everything except
    ASCII letters and digits as a numeric character reference survives both steps unchanged.
    """
    return "".join(ch if ch.isascii() and ch.isalnum() else f"&#{ord(ch)};" for ch in value)
