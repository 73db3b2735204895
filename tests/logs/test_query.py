"""The query language: parsing, errors with positions, FTS5 compilation that no input
can inject into, and exact results on a real index."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmango.agent.logs import search
from fastmango.agent.logs.index import LogIndex
from fastmango.agent.logs.query import (
    And,
    Field,
    Not,
    Or,
    Phrase,
    QueryError,
    Record,
    Regex,
    Word,
    block_filter,
    parse_query,
    to_fts,
)


@pytest.mark.parametrize(
    ("q", "tree"),
    [
        ("error", Word("error")),
        ("Error timeout", And((Word("error"), Word("timeout")))),
        ('"connection reset"', Phrase(("connection", "reset"))),
        ("conn*", Word("conn", prefix=True)),
        ("a OR b", Or((Word("a"), Word("b")))),
        ("a AND NOT b", And((Word("a"), Not(Word("b"))))),
        ("a -b", And((Word("a"), Not(Word("b"))))),
        ("(a OR b) c", And((Or((Word("a"), Word("b"))), Word("c")))),
        ("level:ERROR", Field("level", ":", "error")),
        ("level>=warning", Field("level", ">=", "warn")),
        ("status>=500", Field("status", ">=", "500")),
        ("logger:app.db", Field("logger", ":", "app.db")),
        ('request_id:"abc 1"', Field("request_id", ":", "abc 1")),
        ("app.db", Phrase(("app", "db"))),
    ],
)
def test_parse(q: str, tree: object) -> None:
    assert parse_query(q) == tree


def test_regex_and_empty() -> None:
    node = parse_query(r"/time(out)?\s+\d+/")
    assert isinstance(node, Regex) and node.pattern.search("TIMEOUT 30")
    assert parse_query("") is None and parse_query("   ") is None


@pytest.mark.parametrize(
    ("q", "pos", "problem"),
    [
        ("(error", 1, "unclosed '('"),
        ("error)", 6, "unexpected ')'"),
        ('"timed out', 1, "unclosed quote"),
        ("/abc", 1, "unclosed regular expression"),
        ("/a(b/", 1, "bad regular expression"),
        ("a OR", 3, "OR needs something after it"),
        ("AND b", 1, "AND needs something before it"),
        ("level:loud", 1, "unknown level"),
        ("status>=abc", 1, "needs a number"),
        ("status:", 8, "needs a value"),
        ("()", 1, "empty parentheses"),
        ("a NOT", 3, "NOT needs something after it"),
        ("***", 1, "no letters or digits"),
    ],
)
def test_errors_name_position_and_problem(q: str, pos: int, problem: str) -> None:
    with pytest.raises(QueryError) as exc:
        parse_query(q)
    assert exc.value.pos + 1 == pos
    assert problem in exc.value.problem
    assert str(exc.value).startswith(f"at position {pos}:")


@pytest.fixture(scope="module")
def fts() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE f USING fts5(msg, lv, lg, content='', columnsize=0)")
    db.execute("INSERT INTO f(rowid, msg, lv, lg) VALUES (1, 'hello world', 'error', 'app.db')")
    return db


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab \"*()^:-/\\{}+NEAROTD'.=<>!lvg_1")), max_size=40))
def test_query_parser_never_raises_and_cannot_inject(fts: sqlite3.Connection, q: str) -> None:
    """Any input either is a QueryError or compiles to an expression FTS5 accepts."""
    try:
        node = parse_query(q)
    except QueryError:
        return
    expr = to_fts(node)
    if expr is not None:
        fts.execute("SELECT rowid FROM f WHERE f MATCH ?", (expr,)).fetchall()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_query_parser_never_raises_on_any_text(q: str) -> None:
    with contextlib.suppress(QueryError):
        parse_query(q)


def test_fts5_syntax_is_quoted(fts: sqlite3.Connection) -> None:
    # words that are FTS5 operators or column filters match as plain words
    for q in ["NEAR(hello world)", "lv:error", "hello^", "{msg}: hello", 'hello" OR "x']:
        node = parse_query(q)
        fts.execute("SELECT rowid FROM f WHERE f MATCH ?", (to_fts(node),)).fetchall()


LINES = [
    "2024-01-02 10:00:00,000 INFO app.web: GET /orders status=200 took 12ms",
    "2024-01-02 10:00:01,000 ERROR app.db: connection reset by peer request_id=abc",
    "2024-01-02 10:00:02,000 WARNING app.db.pool: pool exhausted, waiting",
    '{"time":"2024-01-02T10:00:03Z","level":"error","logger":"app.web","message":"upstream timed out","status":504,"request_id":"xyz"}',  # noqa: E501
    '{"time":"2024-01-02T10:00:04Z","level":"info","logger":"app.web","message":"ok","status":200}',
    "2024-01-02 10:00:05,000 INFO app.web: connection established",
]
T = 1704189600.0


@pytest.fixture
def index(tmp_path: Path) -> LogIndex:
    ix = LogIndex(tmp_path / "logs.db")
    ix.open()
    sid = ix.source_id("app.log")
    ix.ingest(LINES, [sid] * len(LINES), [None] * len(LINES))
    yield ix
    ix.close()


def ids(
    index: LogIndex, q: str, since: float | None = None, until: float | None = None
) -> list[int]:
    plan = search.Plan.of(parse_query(q), since, until)
    got = [line.id for line in search.lines(index, plan, newest_first=False)]
    n, exact = search.count(index, plan)
    assert exact and n == len(got), (q, n, got)
    return got


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("connection", [2, 6]),
        ('"connection reset"', [2]),
        ('"reset connection"', []),
        ("conn*", [2, 6]),
        ("connection AND NOT reset", [6]),
        ("connection -reset", [6]),
        ("reset OR exhausted", [2, 3]),
        ("level:error", [2, 4]),
        ("level>=warn", [2, 3, 4]),
        ("level:warn OR level:error", [2, 3, 4]),
        ("logger:app.db", [2, 3]),
        ("logger:app.web level:error", [4]),
        ("status>=500", [4]),
        ("status:200", [1, 5]),
        ("status!=200", [4]),  # lines without the field match neither = nor !=
        ("took>=1", []),  # "took 12ms" is a word, not a field
        ("request_id:abc", [2]),
        ("request_id:xyz", [4]),
        ("/took \\d+ms/", [1]),
        ("/^2024-01-02 10:00:05/", [6]),  # anchors hold per line in a block's prefilter
        ("/abc$/", [2]),
        ("/reset(?= by)/", [2]),  # a lookaround: no block prefilter
        ("/timed out/ level:error", [4]),
        ("level:error /timed? out/", [4]),
        ("error", [2, 4]),
        ("NOT level:info", [2, 3, 4]),
        ("", [1, 2, 3, 4, 5, 6]),
    ],
)
def test_search_results(index: LogIndex, q: str, expected: list[int]) -> None:
    assert ids(index, q) == expected


def test_time_range(index: LogIndex) -> None:
    assert ids(index, "", T + 1, T + 3) == [2, 3, 4]
    assert ids(index, "connection", T + 2) == [6]
    assert ids(index, "level:error", None, T + 2) == [2]


def test_a_budget_stops_a_line_by_line_scan(index: LogIndex) -> None:
    plan = search.Plan.of(parse_query("status>=200"))  # checked line by line
    budget = search.Budget(max_scan=3)
    assert [line.id for line in search.lines(index, plan, True, budget)] == [5]
    assert budget.stopped and budget.scanned == 3
    assert search.count(index, plan, search.Budget(max_scan=3)) == (1, False)  # at least 1
    assert search.count(index, plan) == (3, True)


@pytest.mark.parametrize(
    ("text", "key", "may"),
    [
        ('{"status": 503}', "status", True),
        ('{"http": {"status": 503}}', "http.status", True),
        ('{"Status": 503}', "status", True),
        ("GET /x took 12ms", "status", False),
        ('1.2.3.4 - - [x] "GET /x HTTP/1.1" 503 12', "status", True),  # an access line
        ("ERROR app.db: reset", "logger", True),  # found by parsing, not by name
        ('{"requestId": "r1"}', "request_id", True),
        ("user=ann", "request_id", False),
        ('{"st\\u0061tus": 503}', "status", True),  # an escaped key: parse to be sure
    ],
)
def test_a_line_without_a_fields_name_is_ruled_out_unparsed(text: str, key: str, may: bool) -> None:
    assert Record(text, "", "").may_have(key) is may


@pytest.mark.parametrize(
    ("q", "needle"),
    [
        ("/zzqq/", b"zzqq"),
        ("/Error (\\d+) in x\\.y\\.z/", b"n x.y.z"),  # the longest plain run, lower-cased
        ("/x\\.y\\.z=\\d/", b"x.y.z="),
        ("/timeout after \\d+s/", b"meout after "),  # i, k, s also match non-ASCII
        ("/ab+cd/", None),  # b+ may repeat: no run of 3
        ("/abc|xyz/", None),  # an alternative: nothing required
        ("word /payment failed/", b"payment fa"),  # a regex the query requires
        ("word OR /payment failed/", None),
        ("word", None),
    ],
)
def test_block_prefilter_is_a_literal_every_match_holds(q: str, needle: bytes | None) -> None:
    assert block_filter(parse_query(q)) == needle


def test_newest_first_and_limit(index: LogIndex) -> None:
    plan = search.Plan.of(parse_query("app"))
    got = [line.id for line, _ in zip(search.lines(index, plan), range(2), strict=False)]
    assert got == [6, 5]
