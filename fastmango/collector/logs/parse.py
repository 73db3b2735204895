"""Parsing one log event: timestamp, level, logger, message and fields.

Three shapes are recognised: JSON lines (every field kept), logfmt (``key=value`` pairs),
and plain text, where the timestamp is found among the common shapes (ISO 8601 and
Python logging's ``2024-01-02 10:11:12,345``, syslog ``Jun 14 15:16:01``, Apache
``[Sun Dec 04 04:47:44 2005]`` and ``[10/Oct/2000:13:55:36 -0700]``, Spark/log4j
``17/06/09 20:10:40``, ``02 Jan 2024 10:11:12``) and the level just after it.

:func:`parse` is a pure function and never raises: a line it cannot read is a message
with no timestamp (the caller uses the time it was read) and level ``None``.
Timestamps without a zone are taken as UTC; syslog's year-less stamps get the year of
``now`` (or the one before, if that would put them in the future).
"""

from __future__ import annotations

import calendar
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import orjson

#: level names → the normalized level
LEVELS: dict[str, str] = {
    "trace": "trace",
    "finest": "trace",
    "finer": "trace",
    "debug": "debug",
    "fine": "debug",
    "dbg": "debug",
    "verbose": "debug",
    "info": "info",
    "information": "info",
    "informational": "info",
    "config": "info",
    "notice": "notice",
    "warn": "warn",
    "warning": "warn",
    "error": "error",
    "err": "error",
    "severe": "error",
    "critical": "fatal",
    "crit": "fatal",
    "fatal": "fatal",
    "alert": "fatal",
    "emerg": "fatal",
    "emergency": "fatal",
    "panic": "fatal",
}
#: the normalized levels, in order of severity (their index is the stored code; 0 = none)
LEVEL_CODES = ("", "trace", "debug", "info", "notice", "warn", "error", "fatal")
CODE_OF = {name: i for i, name in enumerate(LEVEL_CODES)}

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}

_ISO = (
    r"(?P<Y>\d{4})-(?P<m>\d\d)-(?P<d>\d\d)[T ](?P<H>\d\d):(?P<M>\d\d):(?P<S>\d\d)"
    r"(?:[.,](?P<f>\d{1,9}))?(?P<z>Z|[+-]\d\d:?\d\d)?"
)
_MON = r"(?P<b>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
#: (name, regex) tried in turn; every regex has the groups it needs for _to_epoch
_SHAPES: list[tuple[str, re.Pattern[str]]] = [
    ("iso", re.compile(_ISO)),
    (
        "apache",
        re.compile(
            r"\[(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
            + _MON
            + r" (?P<d>\d\d) (?P<H>\d\d):(?P<M>\d\d):(?P<S>\d\d)(?:\.(?P<f>\d+))? (?P<Y>\d{4})\]"
        ),
    ),
    (
        "clf",
        re.compile(
            r"\[(?P<d>\d\d)/" + _MON + r"/(?P<Y>\d{4}):(?P<H>\d\d):(?P<M>\d\d):"
            r"(?P<S>\d\d) (?P<z>[+-]\d{4})\]"
        ),
    ),
    (
        "syslog",
        re.compile(
            r"^(?:<\d{1,3}>)?"
            + _MON
            + r" {1,2}(?P<d>\d{1,2}) (?P<H>\d\d):(?P<M>\d\d):(?P<S>\d\d)(?:\.(?P<f>\d+))?"
        ),
    ),
    (
        "yymmdd",
        re.compile(
            r"(?<![\d/])(?P<y>\d\d)/(?P<m>\d\d)/(?P<d>\d\d) "
            r"(?P<H>\d\d):(?P<M>\d\d):(?P<S>\d\d)(?:[.,](?P<f>\d+))?"
        ),
    ),
    (
        "dmy",
        re.compile(
            r"(?<!\d)(?P<d>\d\d) " + _MON + r" (?P<Y>\d{4}) (?P<H>\d\d):(?P<M>\d\d):"
            r"(?P<S>\d\d)(?:[.,](?P<f>\d+))?"
        ),
    ),
]
_LOGFMT = re.compile(r'([\w.@-]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)')
_PAIRS = re.compile(r"(?<![\w.-])([A-Za-z_][\w.-]{0,40})(?::|=) ?(\"[^\"]{0,200}\"|[^\s,;\"\]\)]+)")
_TS_KEYS = ("timestamp", "time", "ts", "@timestamp", "asctime", "datetime", "date", "t")
_LEVEL_KEYS = ("level", "levelname", "severity", "lvl", "log.level", "loglevel", "level_name")
_MSG_KEYS = ("message", "msg", "event", "log", "text", "@message")
_LOGGER_KEYS = ("logger", "name", "logger_name", "loggerName", "log.logger", "module")
_RID_KEYS = ("request_id", "requestId", "req_id", "request-id", "x_request_id", "correlation_id")
_EPOCH_CACHE: dict[tuple[int, ...], int] = {}


@dataclass(slots=True)
class Parsed:
    """One event: ``ts`` (Unix seconds or None), ``level`` (normalized or None),
    ``logger``, ``message`` (the text after timestamp and level), ``fields`` (JSON or
    logfmt keys, ``request_id``…), ``shape`` (json, logfmt, iso, syslog…, text)."""

    ts: float | None
    level: str | None
    logger: str | None
    message: str
    fields: dict[str, Any] = field(default_factory=dict)
    shape: str = "text"


def level_of(word: Any) -> str | None:
    if type(word) is str:  # the common case first
        found = LEVELS.get(word)
        if found is not None:
            return found
    if isinstance(word, int | float) and not isinstance(word, bool):
        # Python logging / pino / bunyan numeric levels
        n = int(word)
        table = ((60, "fatal"), (50, "error"), (40, "warn"), (30, "info"), (20, "debug"))
        if n >= 10:
            return next((name for lim, name in table if n >= lim), "trace")
        return None
    if type(word) is not str:
        return None
    return LEVELS.get(word.strip().lower())


def _epoch(y: int, mo: int, d: int, h: int, mi: int, s: int) -> int:
    key = (y, mo, d, h, mi, s)
    v = _EPOCH_CACHE.get(key)
    if v is None:
        if len(_EPOCH_CACHE) > 100_000:
            _EPOCH_CACHE.clear()
        v = _EPOCH_CACHE[key] = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    return v


def _zone(z: str | None) -> int:
    if not z or z == "Z":
        return 0
    z = z.replace(":", "")
    sign = -1 if z[0] == "-" else 1
    return sign * (int(z[1:3]) * 3600 + int(z[3:5]) * 60)


def _to_epoch(m: re.Match[str], now_year: int, now: float | None) -> float | None:
    g = m.groupdict()
    try:
        mo = _MONTHS[g["b"].lower()] if g.get("b") else int(g["m"])
        if g.get("Y"):
            y = int(g["Y"])
        elif g.get("y"):
            y = 2000 + int(g["y"])
        else:
            y = now_year
        t = _epoch(y, mo, int(g["d"]), int(g["H"]), int(g["M"]), int(g["S"]))
        if not g.get("Y") and not g.get("y") and now is not None and t > now + 86400:
            t = _epoch(y - 1, mo, int(g["d"]), int(g["H"]), int(g["M"]), int(g["S"]))
        frac = g.get("f")
        out = t - _zone(g.get("z")) + (int(frac) / 10 ** len(frac) if frac else 0.0)
    except (ValueError, KeyError, OverflowError):
        return None
    return float(out)


def parse_time_value(v: Any, now_year: int = 1970, now: float | None = None) -> float | None:
    """A timestamp given as a JSON value: Unix seconds/milliseconds/ns, or a string."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        x = float(v)
        if x != x or x in (float("inf"), float("-inf")):
            return None
        while x > 1e11:  # ms, µs, ns → s
            x /= 1000
        return x if x > 0 else None
    if isinstance(v, str):
        for _name, rx in _SHAPES:
            m = rx.search(v, 0, 64)
            if m:
                return _to_epoch(m, now_year, now)
    return None


def _first(d: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for k in keys:
        if k in d:
            return k, d[k]
    return None, None


def _json_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """A JSON object's fields: one level of nesting flattened (``{"http": {"status":
    500}}`` gives ``http.status``), ``request_id`` under that name whatever it was called."""
    fields: dict[str, Any] = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            for k2, v2 in v.items():
                fields[f"{k}.{k2}"] = v2
        else:
            fields[str(k)] = v
    rk, rid = _first(fields, _RID_KEYS)
    if rid is not None and rk != "request_id":
        fields["request_id"] = rid
    return fields


def _parse_json(line: str, now_year: int, now: float | None) -> Parsed | None:
    obj = load_json(line)
    if not isinstance(obj, dict):
        return None
    fields = _json_fields(obj)
    _k, tsv = _first(fields, _TS_KEYS)
    _k, lv = _first(fields, _LEVEL_KEYS)
    _mk, msg = _first(fields, _MSG_KEYS)
    _k, lg = _first(fields, _LOGGER_KEYS)
    message = msg if isinstance(msg, str) else ("" if msg is None else json.dumps(msg))
    return Parsed(
        parse_time_value(tsv, now_year, now),
        level_of(lv),
        lg if isinstance(lg, str) else None,
        message,
        fields,
        "json",
    )


def _parse_logfmt(line: str, now_year: int, now: float | None) -> Parsed | None:
    pairs = _LOGFMT.findall(line)
    if len(pairs) < 2:
        return None
    fields: dict[str, Any] = {}
    for k, v in pairs:
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            v = v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        fields[k] = v
    _k, tsv = _first(fields, _TS_KEYS)
    _k, lv = _first(fields, _LEVEL_KEYS)
    _k, msg = _first(fields, _MSG_KEYS)
    _k, lg = _first(fields, _LOGGER_KEYS)
    rk, rid = _first(fields, _RID_KEYS)
    if rid is not None and rk != "request_id":
        fields["request_id"] = rid
    return Parsed(
        parse_time_value(tsv, now_year, now), level_of(lv), lg, msg or line, fields, "logfmt"
    )


def find_timestamp(
    line: str, now_year: int, now: float | None, hint: int = 0
) -> tuple[float | None, int, int, int]:
    """(epoch, start, end, shape index) of the first timestamp in the line's first 120
    characters; shapes are tried from ``hint`` (the shape that matched last) on."""
    n = len(_SHAPES)
    for j in range(n):
        i = (hint + j) % n
        m = _SHAPES[i][1].search(line, 0, 120)
        if m:
            ts = _to_epoch(m, now_year, now)
            if ts is not None:
                return ts, m.start(), m.end(), i
    return None, 0, 0, hint


_SEP = re.compile(r"\s*[-:|](?=\s)")


def _token_level(tok: str) -> str | None:
    """The level a word names: ``ERROR``/``WARN:``, ``[error]`` or ``level=x``; else None."""
    if tok[:1] == "[" and tok[-1:] == "]":
        return LEVELS.get(tok[1:-1].lower())
    word = tok.rstrip(":,")
    if word.isupper():
        return _LEVEL_UP.get(word)
    if "=" in word:
        k, _e, v = word.partition("=")
        if k.lower() in ("level", "lvl", "severity"):
            return LEVELS.get(v.strip('"').lower())
    return None


#: words seen after timestamps → the level they name (None: none); logs repeat them
_TOKEN_LEVEL: dict[str, Any] = {}
_UNSEEN = object()


def level_after(text: str, end: int) -> tuple[str | None, str | None, int]:
    """(level, logger, where the message starts) from the four words after the
    timestamp: an upper-case level name (``ERROR``, ``WARN:``), any name in brackets
    (``[error]``), or ``level=x``; the logger is the dotted or colon-ended word after it."""
    toks = text[end : end + 120].split(None, 4)
    memo = _TOKEN_LEVEL
    for j, tok in enumerate(toks[:4]):
        level = memo.get(tok, _UNSEEN)
        if level is _UNSEEN:
            level = _token_level(tok)
            if len(memo) >= 20_000:
                memo.clear()
            memo[tok] = level
        if level is None:
            continue
        pos = text.find(tok, end) + len(tok)
        lg = None
        if j + 1 < len(toks):
            nxt = toks[j + 1]
            if (
                nxt[:1].isalpha()
                and (nxt.endswith(":") or "." in nxt.rstrip("."))
                and (len(nxt) <= 80)
            ):
                lg = nxt.rstrip(":")
                pos = text.find(nxt, pos) + len(nxt)
        m = _SEP.match(text, pos)  # "LEVEL - message", "logger - message"
        return level, lg, m.end() if m else pos
    return None, None, end


def parse_text(
    line: str, now_year: int = 1970, now: float | None = None, hint: int = 0
) -> tuple[Parsed, int]:
    """A plain-text line: timestamp, level after it, logger, message; and the shape
    index that matched (the next line's hint)."""
    ts, _s, end, hint = find_timestamp(line, now_year, now, hint)
    level, logger, pos = level_after(line, end)
    message = line[pos:].strip() if pos else line.strip()
    shape = _SHAPES[hint][0] if ts is not None else "text"
    return Parsed(ts, level, logger, message or line.strip(), {}, shape), hint


def parse(line: str, now_year: int = 1970, now: float | None = None) -> Parsed:
    """Parse one event (its first line decides the shape; later lines join the message)."""
    try:
        s = line.lstrip()
        if s.startswith("{"):
            p = _parse_json(s, now_year, now)
            if p is not None:
                return p
        first = s.split("\n", 1)[0]
        if "=" in first and _LOGFMT.match(first):
            p = _parse_logfmt(first, now_year, now)
            if p is not None and (p.level or p.ts is not None or "msg" in p.fields):
                if "\n" in s:
                    p.message += "\n" + s.split("\n", 1)[1]
                return p
        return parse_text(line, now_year, now)[0]
    except Exception:
        return Parsed(None, None, None, line, {}, "text")


def fields_of(text: str) -> dict[str, Any]:
    """Every field a query may filter on: JSON/logfmt keys, else ``key: value`` and
    ``key=value`` pairs found in the text, plus ``status`` of an access-log line."""
    if text[:1] == "{" and isinstance(obj := load_json(text), dict):  # no time to parse
        out = _json_fields(obj)
        _k, lg = _first(out, _LOGGER_KEYS)
        if isinstance(lg, str):
            out.setdefault("logger", lg)
        _k, lv = _first(out, _LEVEL_KEYS)
        if (level := level_of(lv)) is not None:
            out["level"] = level
        return out
    p = parse(text)
    if p.shape in ("json", "logfmt"):
        out = dict(p.fields)
    else:
        out = {k: v.strip('"') for k, v in _PAIRS.findall(p.message)}
        m = _ACCESS.search(text)
        if m:
            out.setdefault("status", m.group("status"))
            out.setdefault("method", m.group("method"))
            out.setdefault("path", m.group("path"))
    if p.logger:
        out.setdefault("logger", p.logger)
    if p.level:
        out["level"] = p.level
    return out


_ACCESS = re.compile(
    r'"(?P<method>[A-Z]{3,7}) (?P<path>\S+) HTTP/[\d.]+"(?: status:)? (?P<status>\d{3})\b'
)


# -- the ingest fast path ----------------------------------------------------------------
# The same answers as parse() for timestamp and level (a test holds them together), with
# one anchored regex match per line for the common shapes, timestamps converted once per
# distinct second, and JSON read by json.loads alone.

_ISO0 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?(Z|[+-]\d\d:?\d\d)?"
)
_YMD0 = re.compile(r"(\d\d)/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d)(?:[.,](\d+))?")
_APA0 = re.compile(
    r"\[(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
    + _MON[6:-1].join(("(", ")"))
    + r" (\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d+))? (\d{4})\]"
)
_SYS0 = re.compile(
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}(\d{1,2}) "
    r"(\d\d):(\d\d):(\d\d)(?:\.(\d+))?"
)
_DAY_CACHE: dict[int, float] = {}
_LEVEL_UP = {k.upper(): v for k, v in LEVELS.items()} | {"ERR": "error"}
_STRIP = "[]:,"
_TS_JSON = ("time", "timestamp", "ts", "@timestamp", "asctime", "datetime", "date", "t")
_LV_JSON = ("level", "levelname", "severity", "lvl", "log.level", "loglevel", "level_name")
_MSG_JSON = ("message", "msg", "event", "log", "text", "@message")
_LG_JSON = ("logger", "name", "logger_name", "loggerName", "log.logger", "module")
FAST_SKIP = frozenset(_TS_JSON + _LV_JSON + _MSG_JSON[:2] + _LG_JSON[:2])


def _frac(f: str | None) -> float:
    return int(f) / 10 ** len(f) if f else 0.0


def _day(y: int, mo: int, d: int) -> float | None:
    key = y * 10000 + mo * 100 + d
    v = _DAY_CACHE.get(key)
    if v is None:
        if not (1 <= mo <= 12 and 1 <= d <= 31):
            return None
        if len(_DAY_CACHE) > 100_000:
            _DAY_CACHE.clear()
        v = _DAY_CACHE[key] = float(calendar.timegm((y, mo, d, 0, 0, 0, 0, 0, 0)))
    return v


def _minute(y: int, mo: int, d: int, h: str, mi: str) -> float | None:
    """The epoch of a minute (None for a day that does not exist)."""
    hh, mm = int(h), int(mi)
    if hh > 23 or mm > 59:
        raise ValueError("time out of range")
    day = _day(y, mo, d)
    return None if day is None else day + hh * 3600 + mm * 60


def _second(s: str) -> int:
    sec = int(s)
    if sec > 60:
        raise ValueError("time out of range")
    return sec


#: the epoch of each minute seen, per timestamp shape, keyed by the matched fields (a
#: busy log repeats its minute on thousands of lines)
_ISO_MIN: dict[tuple[str | None, ...], float] = {}
_YMD_MIN: dict[tuple[str | None, ...], float] = {}
_APA_MIN: dict[tuple[str | None, ...], float] = {}
_SYS_MIN: dict[tuple[str | int | None, ...], float] = {}


def _remember(cache: dict[Any, float], key: Any, value: float) -> None:
    if len(cache) > 20_000:
        cache.clear()
    cache[key] = value


def _iso_epoch(m: re.Match[str]) -> float | None:
    g = m.groups()
    key = (*g[:5], g[7])
    base = _ISO_MIN.get(key)
    if base is None:
        base = _minute(int(g[0]), int(g[1]), int(g[2]), g[3], g[4])
        if base is None:
            return None
        base -= _zone(g[7])
        _remember(_ISO_MIN, key, base)
    return base + _second(g[5]) + _frac(g[6])


_FROMISO = datetime.fromisoformat


def fast_time(s: Any) -> float | None:
    """A JSON time value's epoch (ISO strings and numbers fast; the rest as parse())."""
    if type(s) is str:
        if 19 <= len(s) <= 35 and s[4:5] == "-" and s[10:11] in ("T", " "):
            try:  # the C parser first: 2024-01-02T03:04:05.678Z, +01:00, naive (UTC)
                dt = _FROMISO(s)
                return (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).timestamp()
            except (ValueError, OverflowError):
                pass
        m = _ISO0.match(s)
        if m is not None:
            try:
                return _iso_epoch(m)
            except (ValueError, OverflowError):
                return None
    return parse_time_value(s)


def load_json(text: str) -> Any:
    """The JSON value of ``text`` (orjson; the standard library where orjson refuses,
    as for NaN or integers past 64 bits), or None if it is not JSON."""
    try:
        return orjson.loads(text)
    except ValueError:
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            return None


_Plan = tuple[str | None, str | None, str | None, str | None, Callable[[Any], tuple[Any, ...]]]
_PLANS: dict[tuple[str, ...], _Plan] = {}
_SCALAR = frozenset((str, int, float))


def _plan(keys: tuple[str, ...]) -> _Plan:
    """Where a JSON object with these keys (in this order) keeps its time, level,
    message and logger, and a getter of the values that join the index text (the other
    keys'). Objects of one app share a few key orders, so a plan is made once per order."""
    if len(_PLANS) > 1000:
        _PLANS.clear()
    have = set(keys)
    ts, lv, msg, lg = (
        next((k for k in names if k in have), None)
        for names in (_TS_JSON, _LV_JSON, _MSG_JSON, _LG_JSON)
    )
    rest = tuple(k for k in keys if k not in FAST_SKIP)
    getter: Callable[[Any], tuple[Any, ...]]
    if len(rest) > 1:
        getter = itemgetter(*rest)
    elif rest:
        one = rest[0]
        getter = lambda obj: (obj[one],)  # noqa: E731
    else:
        getter = lambda obj: ()  # noqa: E731
    plan = _PLANS[keys] = (ts, lv, msg, lg, getter)
    return plan


def _flatten(obj: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in obj.items():
        if type(v) is dict:
            for k2, v2 in v.items():
                flat[f"{k}.{k2}"] = v2
        else:
            flat[k] = v
    return flat


def _json_fast(
    obj: dict[str, Any], text: str = "{"
) -> tuple[float | None, str | None, str | None, str]:
    """(ts, level, logger, index text) of a JSON object (``text``: its source, when
    known): one level of nesting flattened (``{"log": {"level": "error"}}`` reads as
    ``log.level``), the index text being the message and every other scalar value."""
    if text.find("{", 1) >= 0 and dict in map(type, obj.values()):
        obj = _flatten(obj)
    keys = tuple(obj)
    tk, lk, mk, gk, getter = _PLANS.get(keys) or _plan(keys)
    vals = getter(obj)
    if _SCALAR.issuperset(map(type, vals)):
        rest = " ".join(map(str, vals))
    else:
        rest = " ".join([str(v) for v in vals if type(v) in _SCALAR])
    ts = fast_time(obj[tk]) if tk is not None else None
    lv = level_of(obj[lk]) if lk is not None else None
    msg = obj[mk] if mk is not None else None
    lg = obj[gk] if gk is not None else None
    doc = msg if type(msg) is str else ("" if msg is None else json.dumps(msg))
    if rest:
        doc = doc + " " + rest
    return ts, lv, lg if type(lg) is str else None, doc


def fast(
    text: str, year: int, now: float | None
) -> tuple[float | None, str | None, str | None, str]:
    """(ts, level, logger, index text) of one event, as parse() would find them."""
    c = text[:1]
    if c == "{":
        obj = load_json(text)
        if isinstance(obj, dict):
            return _json_fast(obj, text)
    elif "=" in text[:40] and c.isalpha():
        p = parse(text, year, now)
        return p.ts, p.level, p.logger, p.message
    ts = None
    end = 0
    m: re.Match[str] | None = None
    if c.isdigit():
        m = _ISO0.match(text)
        if m is not None:
            try:
                ts = _iso_epoch(m)
            except (ValueError, OverflowError):
                ts = None
        else:
            m = _YMD0.match(text)
            if m is not None:
                g = m.groups()
                try:
                    key = g[:5]
                    base = _YMD_MIN.get(key)
                    if base is None:
                        base = _minute(2000 + int(g[0]), int(g[1]), int(g[2]), g[3], g[4])
                        if base is not None:
                            _remember(_YMD_MIN, key, base)
                    ts = None if base is None else base + _second(g[5]) + _frac(g[6])
                except ValueError:
                    ts = None
    elif c == "[":
        m = _APA0.match(text)
        if m is not None:
            g = m.groups()
            try:
                key = (*g[:4], g[6])
                base = _APA_MIN.get(key)
                if base is None:
                    base = _minute(int(g[6]), _MONTHS[g[0].lower()], int(g[1]), g[2], g[3])
                    if base is not None:
                        _remember(_APA_MIN, key, base)
                ts = None if base is None else base + _second(g[4]) + _frac(g[5])
            except ValueError:
                ts = None
    elif c in "JFMASOND" and (m := _SYS0.match(text)) is not None:
        g = m.groups()
        try:
            key = (*g[:4], year)
            base = _SYS_MIN.get(key)
            if base is None:
                base = _minute(year, _MONTHS[g[0].lower()], int(g[1]), g[2], g[3])
                if base is not None:
                    _remember(_SYS_MIN, key, base)
            sec = _second(g[4])
            if base is not None and now is not None and base + sec > now + 86400:
                base = _minute(year - 1, _MONTHS[g[0].lower()], int(g[1]), g[2], g[3])
            ts = None if base is None else base + sec + _frac(g[5])
        except ValueError:
            ts = None
    elif c.isalpha() and (m := _ISO0.search(text, 0, 120)) is not None:
        try:
            ts = _iso_epoch(m)
        except (ValueError, OverflowError):
            ts = None
    if ts is None or m is None:
        p = parse_text(text, year, now)[0]
        return p.ts, p.level, p.logger, p.message
    end = m.end()
    level, logger, pos = level_after(text, end)
    return ts, level, logger, text[pos:].strip() or text.strip()
