"""FreeSWITCH's argument splitting for API commands, as ``switch_separate_string(buf, ' ', argv, n)``
does it (switch_utils.c 1.10: separate_string_blank_delim + cleanup_separated_string).

What an API's arguments become matters for anything the controller puts on a command line:
- the last of the ``n`` slots keeps the rest of the line, spaces included;
- single quotes group words and are removed (a lone ``'`` with no partner later is kept);
- a backslash before ``'``, ``"``, ``\\`` or ``n r t s`` is an escape: ``\\"`` becomes ``"``,
  ``\\n`` a real newline, ``\\s`` a space; before anything else (``\\u``) it stays;
- leading and trailing spaces of every argument are dropped.
"""

from __future__ import annotations

ESCAPE_META = "\\"
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", "s": " "}


def _cleanup(text: str) -> str:
    """cleanup_separated_string(str, 0)."""
    i = 0
    while i < len(text) and text[i] == " ":
        i += 1
    dest: list[str] = []
    end: int | None = None
    inside_quotes = False
    while i < len(text):
        c = text[i]
        escaped = False
        if c == ESCAPE_META and i + 1 < len(text):
            e = text[i + 1]
            if e in ("'", '"', ESCAPE_META) or e in _UNESCAPE:
                i += 1
                dest.append(_UNESCAPE.get(e, e) if e not in ("'", '"', ESCAPE_META) else e)
                end = len(dest)
                escaped = True
        if not escaped:
            if c == "'" and (inside_quotes or "'" in text[i + 1:]):
                inside_quotes = not inside_quotes
                if inside_quotes:
                    end = len(dest)
            else:
                dest.append(c)
                if c != " " or inside_quotes:
                    end = len(dest)
        i += 1
    return "".join(dest[:end] if end is not None else dest)


def separate_string(buf: str, arraylen: int) -> list[str]:
    """The arguments ``switch_separate_string(buf, ' ', argv, arraylen)`` yields."""
    starts: list[int] = []
    cuts: list[int] = []  # positions turned into NUL by the tokenizer
    state = "start"
    ptr = 0
    inside_quotes = False
    while ptr < len(buf) and len(starts) < arraylen:
        c = buf[ptr]
        if state == "start":
            starts.append(ptr)
            state = "skip_initial_space"
        elif state == "skip_initial_space":
            if c == " ":
                ptr += 1
            else:
                state = "find_delim"
        elif state == "find_delim":
            if c == ESCAPE_META:
                ptr += 1
            elif c == "'":
                inside_quotes = not inside_quotes
            elif c == " " and not inside_quotes:
                cuts.append(ptr)
                state = "skip_ending_space"
            ptr += 1
        else:  # skip_ending_space
            if c == " ":
                ptr += 1
            else:
                state = "start"
    out: list[str] = []
    for start in starts:
        stop = next((cut for cut in cuts if cut >= start), len(buf))
        out.append(_cleanup(buf[start:stop]))
    return out
