"""Whole events from bytes: multiline joining, container formats, safe offsets."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from fastmango.collector.logs.multiline import Assembler

PY_TB = b"""2024-01-02 10:00:00,000 ERROR app: request failed
Traceback (most recent call last):
  File "/app/x.py", line 3, in handler
    raise ValueError("boom")
ValueError: boom
2024-01-02 10:00:01,000 INFO app: next
"""
JAVA = b"""2024-01-02 10:00:00,000 ERROR [main] c.a.Server - failed
java.lang.IllegalStateException: bad state
\tat com.acme.Server.start(Server.java:42)
\tat com.acme.Main.main(Main.java:7)
Caused by: java.io.IOException: disk full
\t... 2 more
2024-01-02 10:00:01,000 INFO [main] c.a.Server - retrying
"""


def events(data: bytes, chunk: int = 7, **kw: object) -> tuple[list[tuple], Assembler]:
    a = Assembler(0, **kw)  # type: ignore[arg-type]
    out = []
    for i in range(0, len(data), chunk):
        a.feed(data[i : i + chunk], 0.0)
        out += a.take(0.0)
    out += a.take(10.0)
    return out, a


def test_python_traceback_joined() -> None:
    for chunk in (1, 7, 4096):
        ev, a = events(PY_TB, chunk)
        assert [e[0].split("\n")[0] for e in ev] == [
            "2024-01-02 10:00:00,000 ERROR app: request failed",
            "2024-01-02 10:00:01,000 INFO app: next",
        ]
        assert ev[0][0].endswith("ValueError: boom") and ev[0][0].count("\n") == 4
        assert (ev[0][2], ev[0][3], ev[1][2], ev[1][3]) == (0, ev[1][2], ev[0][3], len(PY_TB))
        assert a.committed == len(PY_TB)


def test_java_stack_trace_joined() -> None:
    ev, _ = events(JAVA, 4096)
    assert len(ev) == 2
    assert "Caused by: java.io.IOException" in ev[0][0] and ev[0][0].endswith("... 2 more")


def test_open_event_is_not_committed() -> None:
    a = Assembler(100)
    a.feed(b"first line\nsecond", 0.0)
    assert [e[0] for e in a.take(0.0)] == []  # "first line" may still get continuations
    assert a.committed == 100
    assert [e[0] for e in a.take(1.0)] == ["first line"]
    assert a.committed == 111 and a.position == 117  # "second" waits for its newline
    a.finish(1.0)
    assert [e[0] for e in a.take(2.0)] == ["second"]


def test_docker_json_file_partial_lines() -> None:
    recs = [
        {
            "log": "2024-01-02T10:00:00Z INFO a very ",
            "stream": "stdout",
            "time": "2024-01-02T10:00:00.1Z",
        },
        {"log": "long line\n", "stream": "stdout", "time": "2024-01-02T10:00:00.2Z"},
        {"log": "second\n", "stream": "stderr", "time": "2024-01-02T10:00:01Z"},
    ]
    data = "".join(json.dumps(r) + "\n" for r in recs).encode()
    ev, a = events(data, 5)
    assert [e[0] for e in ev] == ["2024-01-02T10:00:00Z INFO a very long line", "second"]
    assert ev[0][1] == 1704189600.1 and ev[0][2] == 0 and ev[1][3] == len(data)
    assert a.fmt == "docker"


def test_cri_partial_lines() -> None:
    data = (
        b"2024-01-02T10:00:00.5Z stdout P part one \n"
        b"2024-01-02T10:00:00.6Z stdout F and two\n"
        b"2024-01-02T10:00:01Z stderr F \tindented? no: its own record\n"
    )
    ev, a = events(data, 3, multiline=False)
    assert [e[0] for e in ev] == ["part one and two", "\tindented? no: its own record"]
    assert ev[0][1] == 1704189600.5 and a.fmt == "cri"


def test_crlf_and_non_ascii() -> None:
    ev, _ = events("héllo wörld\r\nsecond\r\n".encode(), 3)
    assert [e[0] for e in ev] == ["héllo wörld", "second"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.integers(1, 64))
def test_offsets_cover_the_input_exactly_once(data: bytes, chunk: int) -> None:
    """Whatever the bytes, events are contiguous, in order, and end at a newline."""
    ev, a = events(data, chunk)
    pos = 0
    for _text, _ts, start, end in ev:
        assert start == pos and end > start
        pos = end
    assert a.committed == pos
    last_nl = data.rfind(b"\n")
    assert pos == last_nl + 1
