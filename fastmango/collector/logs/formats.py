"""Container log formats: Docker's json-file and the CRI format (containerd, CRI-O).

Each physical line of such a file wraps one piece of the app's output with the time the
runtime read it and the stream (stdout/stderr). Long lines are split into partial
records (Docker: a ``log`` without its trailing newline; CRI: tag ``P``) that
:class:`~fastmango.collector.logs.multiline.Assembler` joins back together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastmango.collector.logs.parse import load_json, parse_time_value

_CRI = re.compile(
    r"^(\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:?\d\d)) (stdout|stderr) ([PF])(?: (.*))?$", re.S
)


@dataclass(slots=True)
class Piece:
    """One record of a container log: its text, whether it ends a line, its time."""

    text: str
    complete: bool
    ts: float | None
    stream: str


def detect(line: str) -> str:
    """The format of a file from its first line: ``docker``, ``cri`` or ``raw``."""
    if line.startswith('{"log":') and decode_docker(line) is not None:
        return "docker"
    if _CRI.match(line):
        return "cri"
    return "raw"


def decode_docker(line: str) -> Piece | None:
    obj = load_json(line)
    if not isinstance(obj, dict) or not isinstance(obj.get("log"), str):
        return None
    text: str = obj["log"]
    complete = text.endswith("\n")
    return Piece(
        text.rstrip("\r\n") if complete else text,
        complete,
        parse_time_value(obj.get("time")),
        str(obj.get("stream", "")),
    )


def decode_cri(line: str) -> Piece | None:
    m = _CRI.match(line)
    if m is None:
        return None
    return Piece(m.group(4) or "", m.group(3) == "F", parse_time_value(m.group(1)), m.group(2))


def decode(fmt: str, line: str) -> Piece:
    """One physical line in format ``fmt``; a line that does not fit stays raw text."""
    piece = None
    if fmt == "docker":
        piece = decode_docker(line)
    elif fmt == "cri":
        piece = decode_cri(line)
    return piece or Piece(line, True, None, "")
