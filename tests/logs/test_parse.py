"""The parser: agreement with the Loghub authors' own parse, common shapes, JSON and
logfmt, and fuzzing (it never raises)."""

from __future__ import annotations

import calendar
import csv
import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmango.collector.logs.parse import LEVELS, fast, fields_of, parse

SHARED = Path(__file__).resolve().parents[3] / "shared" / "logs"
MON = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}


def _expected(name: str, row: dict[str, str]) -> float:
    if name == "Apache":
        return calendar.timegm(
            dt.datetime.strptime(row["Time"], "%a %b %d %H:%M:%S %Y").timetuple()
        )
    if name == "Linux":
        hms = map(int, row["Time"].split(":"))
        return calendar.timegm((2005, MON[row["Month"]], int(row["Date"]), *hms, 0, 0, 0))
    if name == "OpenSSH":
        hms = map(int, row["Time"].split(":"))
        return calendar.timegm((2005, MON[row["Date"]], int(row["Day"]), *hms, 0, 0, 0))
    if name == "OpenStack":
        h, m, s = row["Time"].split(":")
        day = calendar.timegm(dt.datetime.strptime(row["Date"], "%Y-%m-%d").timetuple())
        return day + int(h) * 3600 + int(m) * 60 + float(s)
    assert name == "Spark"
    return calendar.timegm(
        dt.datetime.strptime(row["Date"] + " " + row["Time"], "%y/%m/%d %H:%M:%S").timetuple()
    )


@pytest.mark.parametrize("name", ["Apache", "Linux", "OpenSSH", "OpenStack", "Spark"])
@pytest.mark.parametrize("path", ["parse", "fast"])
def test_agreement_with_loghub(name: str, path: str) -> None:
    lines = (SHARED / f"{name}_2k.log").read_text("utf-8", "replace").splitlines()
    with (SHARED / f"{name}_2k.log_structured.csv").open(encoding="utf-8", errors="replace") as f:
        rows = list(csv.DictReader(f))
    assert len(lines) == len(rows) == 2000
    now = calendar.timegm((2005, 12, 31, 0, 0, 0, 0, 0, 0))  # year-less syslog → 2005
    ts_ok = lv_ok = lv_n = 0
    for line, row in zip(lines, rows, strict=True):
        if path == "parse":
            p = parse(line, 2005, now)
            ts, level = p.ts, p.level
        else:
            ts, level, _lg, _m = fast(line, 2005, now)
        ts_ok += ts is not None and abs(ts - _expected(name, row)) < 1e-3
        if "Level" in row and name != "Linux":  # Linux's "Level" column is the host
            lv_n += 1
            lv_ok += level == LEVELS[row["Level"].lower()]
    assert ts_ok / len(rows) >= 0.99, f"{name}: timestamps agree on {ts_ok}/{len(rows)}"
    if lv_n:
        assert lv_ok / lv_n >= 0.99, f"{name}: levels agree on {lv_ok}/{lv_n}"


T0 = calendar.timegm((2024, 1, 2, 10, 11, 12, 0, 0, 0))


@pytest.mark.parametrize(
    ("line", "ts", "level", "logger", "message"),
    [
        # Python logging default and basicConfig shapes
        (
            "2024-01-02 10:11:12,345 ERROR app.db: connection lost",
            T0 + 0.345,
            "error",
            "app.db",
            "connection lost",
        ),
        (
            "2024-01-02 10:11:12,345 - app.web - WARNING - slow request",
            T0 + 0.345,
            "warn",
            None,
            "slow request",
        ),
        # ISO 8601 with zone
        ("2024-01-02T12:11:12.5+02:00 INFO started", T0 + 0.5, "info", None, "started"),
        ("2024-01-02T10:11:12Z [debug] cache warm", T0, "debug", None, "cache warm"),
        # log4j / Java
        (
            "2024-01-02 10:11:12,000 [main] FATAL com.acme.Server - cannot bind",
            T0,
            "fatal",
            "com.acme.Server",
            "cannot bind",
        ),
        # Apache access log (common log format) — no level
        (
            '127.0.0.1 - frank [02/Jan/2024:10:11:12 +0000] "GET /a.gif HTTP/1.0" 200 2326',
            T0,
            None,
            None,
            None,
        ),
        # Spark / log4j 1 yy/MM/dd
        (
            "24/01/02 10:11:12 WARN storage.BlockManager: low memory",
            T0,
            "warn",
            "storage.BlockManager",
            "low memory",
        ),
        # 02 Jan 2024 shape
        ("02 Jan 2024 10:11:12,250 ERROR worker: boom", T0 + 0.25, "error", "worker", "boom"),
        # no timestamp at all
        ("just some words", None, None, None, "just some words"),
    ],
)
def test_text_shapes(
    line: str, ts: float | None, level: str | None, logger: str | None, message: str | None
) -> None:
    p = parse(line, 2024, None)
    assert p.ts == pytest.approx(ts) if ts is not None else p.ts is None
    assert (p.level, p.logger) == (level, logger)
    if message is not None:
        assert p.message == message
    f = fast(line, 2024, None)
    assert f[0] == pytest.approx(p.ts) if p.ts is not None else f[0] is None
    assert f[1] == p.level


def test_syslog_year_from_now() -> None:
    now = calendar.timegm((2024, 1, 2, 0, 0, 0, 0, 0, 0))
    assert parse("Jan  1 23:59:59 host sshd[1]: hi", 2024, now).ts == now - 1
    # December seen in January: last year
    assert parse("Dec 31 23:00:00 host cron[2]: x", 2024, now).ts == now - 86400 - 3600


def test_json_line() -> None:
    line = (
        '{"ts": 1704190272.5, "levelname": "ERROR", "name": "app.db", "msg": "query failed",'
        ' "requestId": "abc-1", "http": {"status": 503}, "duration": 1.5}'
    )
    p = parse(line)
    assert (p.ts, p.level, p.logger, p.message, p.shape) == (
        1704190272.5,
        "error",
        "app.db",
        "query failed",
        "json",
    )
    assert p.fields["request_id"] == "abc-1"
    assert p.fields["http.status"] == 503
    assert fast(line, 2024, None)[:3] == (1704190272.5, "error", "app.db")
    # the index text holds the message and every other value, nested ones too
    assert fast(line, 2024, None)[3].split() == ["query", "failed", "abc-1", "503", "1.5"]
    ecs = '{"@timestamp": "2024-01-02T10:11:12.000Z", "log": {"level": "WARN"}, "message": "m"}'
    assert fast(ecs, 2024, None) == (T0, "warn", None, "m")
    # what orjson refuses (NaN, integers past 64 bits) still reads as JSON
    assert fast('{"msg": "x", "v": NaN, "n": 123456789012345678901234}', 2024, None)[3] == (
        "x nan 123456789012345678901234"
    )
    # numeric levels (pino, bunyan) and millisecond epochs
    assert parse('{"time": 1704190272500, "level": 50, "msg": "x"}').level == "error"
    assert parse('{"time": 1704190272500, "level": 50, "msg": "x"}').ts == 1704190272.5


def test_logfmt_line() -> None:
    line = 'time=2024-01-02T10:11:12Z level=warn logger=app.cache msg="miss for key" status=504'
    p = parse(line)
    assert (p.ts, p.level, p.logger, p.message, p.shape) == (
        T0,
        "warn",
        "app.cache",
        "miss for key",
        "logfmt",
    )
    assert p.fields["status"] == "504"
    assert fast(line, 2024, None)[:2] == (T0, "warn")


def test_fields_of_text() -> None:
    f = fields_of('10.0.0.1 "GET /v2/servers HTTP/1.1" status: 503 len: 1893 time: 0.25')
    assert f["status"] == "503" and f["method"] == "GET" and f["path"] == "/v2/servers"
    f = fields_of("2024-01-02 10:11:12 ERROR app.db: request_id=abc user=42 failed")
    assert f["request_id"] == "abc" and f["level"] == "error" and f["logger"] == "app.db"


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_parser_never_raises(text: str) -> None:
    p = parse(text)
    assert isinstance(p.message, str)
    fast(text, 2024, 1.7e9)
    fields_of(text)


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(
        r"\A(\{.{0,80}\}|\d{2,4}[-/]\d\d[-/]\d\d[ T]\d\d:\d\d:\d\d.{0,40}|\[.{0,60}\].{0,20})\Z"
    )
)
def test_parser_never_raises_on_near_misses(text: str) -> None:
    parse(text)
    fast(text, 2024, None)
