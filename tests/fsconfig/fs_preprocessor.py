"""A test model of FreeSWITCH 1.10's XML pre-processor (src/switch_xml.c ``preprocess``).

It follows the C code's line-based rules so that tests can assemble the full document the way
FreeSWITCH does (static tree + rendered files) and check what FreeSWITCH would finally parse:
- each line (read in chunks of at most 2047 bytes) first gets ``$${name}`` replaced by the
  variable's value (unset → empty), in one pass;
- lines containing ``<include>``, ``</include>`` or ``<?`` are dropped;
- a line mentioning ``X-PRE-PROCESS`` (any case) is consumed: without ``<`` right before it, the
  line is dropped; otherwise cmd/data are read as raw text up to the next ``"`` and ``set``
  (name=value, spaces trimmed), ``env-set`` (value ``$ENV``) and ``include`` (glob relative to
  the including file's directory) are executed;
- everything else is copied.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

LINE_CHUNK = 2047
_VAR = re.compile(r"\$\$\{([^}]*)\}")


class Preprocessor:
    def __init__(self, conf_dir: Path, env: dict[str, str] | None = None) -> None:
        self.conf_dir = Path(conf_dir)
        self.env = env or {}
        self.variables: dict[str, str] = {"local_ip_v4": "192.0.2.10"}
        self.missing_includes: list[str] = []

    def expand(self, line: str) -> str:
        return _VAR.sub(lambda m: self.variables.get(m.group(1), ""), line)

    def _attr(self, text: str, name: str) -> str | None:
        idx = text.lower().find(name)
        if idx < 0:
            return None
        eq = text.find("=", idx)
        q = text.find('"', eq)
        if eq < 0 or q < 0:
            return None
        end = text.find('"', q + 1)
        return text[q + 1 : end if end >= 0 else len(text)]

    def _run(self, cwd: Path, cmd: str, data: str, out: list[str], depth: int) -> None:
        if cmd.lower() == "set" and "=" in data:
            name, value = data.split("=", 1)
            self.variables[name.rstrip(" ")] = value.lstrip(" ")
        elif cmd.lower() == "env-set" and "=" in data:
            name, value = data.split("=", 1)
            if value.startswith("$") and value[1:] in self.env:
                self.variables[name] = self.env[value[1:]]
        elif cmd.lower() == "include":
            pattern = data if data.startswith("/") else str(cwd / data)
            matches = sorted(glob.glob(pattern)) or [pattern]  # GLOB_NOCHECK
            for match in matches:
                if os.path.isfile(match):
                    self._file(Path(match), out, depth + 1)
                else:
                    self.missing_includes.append(match)

    def _file(self, path: Path, out: list[str], depth: int) -> None:
        if depth > 100:
            raise RecursionError("include depth")
        cwd = path.parent
        text = path.read_text(encoding="utf-8")
        lines: list[str] = []
        for raw in text.splitlines(keepends=True):
            data = raw.encode("utf-8")
            # switch_fd_read_line fills a 2048-byte buffer: longer lines arrive in pieces.
            while len(data) > LINE_CHUNK:
                lines.append(data[:LINE_CHUNK].decode("utf-8", "replace"))
                data = data[LINE_CHUNK:]
            lines.append(data.decode("utf-8", "replace"))
        for line in lines:
            expanded = self.expand(line)
            if "<include>" in line or "</include>" in line or "<?" in line:
                continue
            idx = expanded.lower().find("x-pre-process")
            if idx >= 0:
                if idx == 0 or expanded[idx - 1] != "<":
                    continue
                rest = expanded[idx:]
                cmd = self._attr(rest, "cmd")
                data_start = rest.find('"', rest.lower().find("cmd"))
                after_cmd = rest[rest.find('"', data_start + 1) + 1 :] if data_start >= 0 else rest
                data = self._attr(after_cmd, "data")
                if cmd is not None and data is not None:
                    self._run(cwd, cmd, data, out, depth)
                continue
            out.append(expanded)

    def document(self, top: str = "freeswitch.xml") -> str:
        out: list[str] = []
        self._file(self.conf_dir / top, out, 0)
        return "".join(out)
