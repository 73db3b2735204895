"""A small, strict YAML emitter for the generated manifests and workflows.

Block style, two-space indent, keys in the order given. A string is written plain only
when YAML 1.1 *and* 1.2 readers both read it back as the same string (so ``on``, ``yes``,
``1.0``, ``0755``, ``null`` and ``a: b`` are quoted); otherwise JSON-style double quotes,
which are valid YAML. Multi-line strings become ``|`` literal blocks. No PyYAML needed at
run time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_PLAIN = re.compile(r"^[A-Za-z0-9_./$(][A-Za-z0-9_ ./@:$(){}=,+*\"'|>;&<!%?~\[\]-]*$")
_SPECIAL = re.compile(
    r"^(?:~|null|Null|NULL|true|True|TRUE|false|False|FALSE|yes|Yes|YES|no|No|NO|"
    r"on|On|ON|off|Off|OFF|y|Y|n|N|[-+]?(?:\.inf|\.Inf|\.INF)|\.nan|\.NaN|\.NAN|"
    r"[-+]?[0-9_]+(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?|[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?|"
    r"0[xob][0-9a-fA-F_]+|[0-9]+(?::[0-5]?[0-9])+(?:\.[0-9_]*)?|"
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}.*)$"
)


#: what YAML 1.1 readers (PyYAML) also take for a line break, beside \n and \r: never
#: written raw, in a quoted scalar or a literal block
_BREAKS = "\x85\u2028\u2029"


def _printable(ch: str) -> bool:
    c = ord(ch)
    return (
        0x20 <= c <= 0x7E
        or c in (0x85, 0x9, 0xA)
        or 0xA0 <= c <= 0xD7FF
        or 0xE000 <= c <= 0xFFFD
        or c >= 0x10000
    )


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar (JSON escapes, plus YAML's for unprintable ones)."""
    body = json.dumps(text, ensure_ascii=False)[1:-1]
    out = []
    for ch in body:
        if _printable(ch) and ch not in _BREAKS:
            out.append(ch)
        else:
            c = ord(ch)
            out.append(f"\\x{c:02x}" if c <= 0xFF else f"\\u{c:04x}")
    return '"' + "".join(out) + '"'


def scalar(value: Any) -> str:
    """One scalar as YAML text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    text = str(value)
    if (
        text
        and _PLAIN.match(text)
        and not _SPECIAL.match(text)
        and not text.endswith(" ")
        and ": " not in text
        and " #" not in text
        and not text.endswith(":")
    ):
        return text
    return _quoted(text)


def _block(text: str, indent: int) -> str:
    pad = " " * indent
    chomp = "" if text.endswith("\n") else "-"
    body = text[:-1] if text.endswith("\n") else text
    lines = [(pad + line) if line else "" for line in body.split("\n")]
    return f"|{chomp}\n" + "\n".join(lines)


def _is_block(value: Any) -> bool:
    return (
        isinstance(value, str)
        and "\n" in value.rstrip("\n")
        and not value.startswith((" ", "\n"))
        and not value.endswith("\n\n")
        and "\r" not in value
        and all(_printable(ch) and ch not in _BREAKS for ch in value)
        and not any(line != line.rstrip() or "\t" in line for line in value.split("\n"))
    )


def _emit(value: Any, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(value, Mapping):
        if not value:
            out.append(pad + "{}")
            return
        for key, item in value.items():
            k = scalar(str(key))
            if isinstance(item, Mapping) and item:
                out.append(f"{pad}{k}:")
                _emit(item, indent + 2, out)
            elif isinstance(item, Sequence) and not isinstance(item, str) and item:
                out.append(f"{pad}{k}:")
                _emit(item, indent, out)
            elif _is_block(item):
                out.append(f"{pad}{k}: {_block(item, indent + 2)}")
            else:
                out.append(f"{pad}{k}: {_inline(item)}")
        return
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            out.append(pad + "[]")
            return
        for item in value:
            if isinstance(item, Mapping) and item:
                sub: list[str] = []
                _emit(item, indent + 2, sub)
                out.append(f"{pad}- {sub[0].lstrip()}")
                out.extend(sub[1:])
            elif isinstance(item, Sequence) and not isinstance(item, str) and item:
                sub = []
                _emit(item, indent + 2, sub)
                out.append(f"{pad}- {sub[0].lstrip()}")
                out.extend(sub[1:])
            elif _is_block(item):
                out.append(f"{pad}- {_block(item, indent + 2)}")
            else:
                out.append(f"{pad}- {_inline(item)}")
        return
    out.append(pad + _inline(value))


def _inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}" if not value else json.dumps(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[]" if not value else json.dumps(list(value))
    return scalar(value)


def dump(value: Any, comment: str = "") -> str:
    """One YAML document; ``comment`` lines go on top as ``# …``."""
    out = [f"# {line}".rstrip() for line in comment.splitlines()] if comment else []
    _emit(value, 0, out)
    return "\n".join(out) + "\n"


def dump_all(docs: Iterable[Any], comment: str = "") -> str:
    """Several documents separated by ``---``."""
    parts = [dump(d) for d in docs]
    head = "".join(f"# {line}".rstrip() + "\n" for line in comment.splitlines())
    return head + "---\n" + "---\n".join(parts)
