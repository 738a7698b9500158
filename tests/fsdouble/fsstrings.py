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


def _cleanup(text: str, delim: str = "") -> str:
    """cleanup_separated_string(str, delim): ``delim`` is 0 (``""``) for blank-separated
    arguments, else the separator, which a backslash then escapes too."""
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
            if e in ("'", '"', ESCAPE_META) or (delim and e == delim) or e in _UNESCAPE:
                i += 1
                plain = e in ("'", '"', ESCAPE_META) or (delim and e == delim)
                dest.append(e if plain else _UNESCAPE[e])
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


def separate_string(buf: str, arraylen: int, delim: str = " ") -> list[str]:
    """The arguments ``switch_separate_string(buf, delim, argv, arraylen)`` yields (a leading
    ``^^X`` makes ``X`` the separator, as there)."""
    if buf.startswith("^^") and len(buf) > 3:
        delim, buf = buf[2], buf[3:]
    if delim != " ":
        return _separate_char(buf, arraylen, delim)
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


def _separate_char(buf: str, arraylen: int, delim: str) -> list[str]:
    """separate_string_char_delim: cut at ``delim`` outside single quotes (a quote counts only
    when a partner follows, or it closes one), a backslash skips the next character; the last
    of the ``arraylen`` slots keeps the rest."""
    starts: list[int] = []
    cuts: list[int] = []
    start_next = True
    ptr = 0
    inside_quotes = False
    while ptr < len(buf) and len(starts) < arraylen:
        if start_next:
            starts.append(ptr)
            start_next = False
            continue
        c = buf[ptr]
        if c == ESCAPE_META:
            ptr += 1
        elif c == "'" and (inside_quotes or "'" in buf[ptr + 1:]):
            inside_quotes = not inside_quotes
        elif c == delim and not inside_quotes:
            cuts.append(ptr)
            start_next = True
        ptr += 1
    out: list[str] = []
    for start in starts:
        stop = next((cut for cut in cuts if cut >= start), len(buf))
        out.append(_cleanup(buf[start:stop], delim))
    return out
