"""The log query language: parsed into a tree, compiled to an FTS5 expression that
narrows the candidates, and evaluated exactly on each candidate.

Grammar (case-insensitive operators; juxtaposition means AND)::

    query   := or
    or      := and ("OR" and)*
    and     := unary (["AND"] unary)*
    unary   := ("NOT" | "-") unary | primary
    primary := "(" or ")" | PHRASE | /REGEX/ | FIELD OP VALUE | WORD | WORD*

``FIELD OP VALUE``: ``level:error``, ``level>=warn``, ``logger:app.db``,
``status>=500``, ``request_id:abc``, ``source:app.log``, ``duration>0.5``; ops are
``: = != > >= < <=``. Every word the user types goes into the FTS5 expression as a
quoted string, so no input can inject FTS5 syntax. A malformed query raises
:class:`QueryError` with the position (1-based column) and the problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastmango.collector.logs.parse import CODE_OF, LEVELS

_WORD_CHARS = re.compile(r"[^\W_]+")


class QueryError(ValueError):
    def __init__(self, pos: int, problem: str) -> None:
        super().__init__(f"at position {pos + 1}: {problem}")
        self.pos = pos
        self.problem = problem


@dataclass(frozen=True)
class Word:
    text: str  # lower-case
    prefix: bool = False


@dataclass(frozen=True)
class Phrase:
    words: tuple[str, ...]


@dataclass(frozen=True)
class Regex:
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class Field:
    key: str
    op: str
    value: str


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


Node = Word | Phrase | Regex | Field | Not | And | Or

_TOKEN = re.compile(
    r"""(?P<ws>\s+)|(?P<lp>\()|(?P<rp>\))|(?P<phrase>")|(?P<regex>/)"""
    r"""|(?P<field>[A-Za-z_@][\w.@-]*)(?P<op>>=|<=|!=|:|=|>|<)"""
    r"""|(?P<minus>-(?=[\w"(/]))|(?P<word>[^\s()"]+)"""
)
_OPS = (">=", "<=", "!=", ":", "=", ">", "<")


def tokens_of(text: str) -> list[str]:
    """The index's words of a text (FTS5 unicode61: letters and digits, lower-cased)."""
    return _WORD_CHARS.findall(text.lower())


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks: list[tuple[str, Any, int]] = []
        self._lex()
        self.i = 0

    def _lex(self) -> None:
        s, pos, n = self.text, 0, len(self.text)
        while pos < n:
            m = _TOKEN.match(s, pos)
            if m is None:  # pragma: no cover - the word class takes anything else
                raise QueryError(pos, f"unexpected {s[pos]!r}")
            kind = m.lastgroup
            if kind == "op":
                kind = "field"
            start = pos
            if kind == "ws":
                pos = m.end()
                continue
            if kind == "phrase":
                end = s.find('"', pos + 1)
                if end < 0:
                    raise QueryError(pos, 'unclosed quote: add a closing "')
                self.toks.append(("phrase", s[pos + 1 : end], start))
                pos = end + 1
                continue
            if kind == "regex":
                end = pos + 1
                while end < n and s[end] != "/":
                    end += 2 if s[end] == "\\" else 1
                if end >= n:
                    raise QueryError(pos, "unclosed regular expression: add a closing /")
                try:
                    rx = re.compile(s[pos + 1 : end], re.IGNORECASE)
                except (re.error, RecursionError, OverflowError) as exc:
                    raise QueryError(pos, f"bad regular expression: {exc}") from None
                self.toks.append(("regex", rx, start))
                pos = end + 1
                continue
            if kind == "field":
                key, op = m.group("field"), m.group("op")
                pos = m.end()
                if pos < n and s[pos] == '"':
                    end = s.find('"', pos + 1)
                    if end < 0:
                        raise QueryError(pos, 'unclosed quote: add a closing "')
                    value, pos = s[pos + 1 : end], end + 1
                else:
                    vm = re.compile(r"[^\s()]*").match(s, pos)
                    value = vm.group(0) if vm else ""
                    pos += len(value)
                if not value:
                    raise QueryError(pos, f"{key}{op} needs a value")
                self.toks.append(("field", (key.lower(), op, value), start))
                continue
            if kind == "word":
                w = m.group("word")
                if w in ("AND", "OR", "NOT"):
                    self.toks.append((w, None, start))
                else:
                    self.toks.append(("word", w, start))
            else:
                self.toks.append((kind or "", None, start))
            pos = m.end()

    def peek(self) -> tuple[str, Any, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def parse(self) -> Node | None:
        if not self.toks:
            return None
        node = self.or_()
        t = self.peek()
        if t is not None:
            raise QueryError(t[2], "unexpected ')'" if t[0] == "rp" else f"unexpected {t[0]}")
        return node

    def or_(self) -> Node:
        parts = [self.and_()]
        while (t := self.peek()) is not None and t[0] == "OR":
            self.i += 1
            if self.peek() is None or self.peek()[0] in ("rp", "OR", "AND"):  # type: ignore[index]
                raise QueryError(t[2], "OR needs something after it")
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_(self) -> Node:
        parts = [self.unary()]
        while (t := self.peek()) is not None and t[0] not in ("OR", "rp"):
            if t[0] == "AND":
                self.i += 1
                nt = self.peek()
                if nt is None or nt[0] in ("rp", "OR", "AND"):
                    raise QueryError(t[2], "AND needs something after it")
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def unary(self) -> Node:
        t = self.peek()
        if t is None:
            raise QueryError(len(self.text), "the query ends where a term was expected")
        if t[0] in ("NOT", "minus"):
            self.i += 1
            if self.peek() is None:
                raise QueryError(t[2], "NOT needs something after it")
            return Not(self.unary())
        return self.primary()

    def primary(self) -> Node:
        t = self.peek()
        assert t is not None
        kind, val, pos = t
        self.i += 1
        if kind == "lp":
            if self.peek() is None:
                raise QueryError(pos, "unclosed '(': add a closing ')'")
            if self.peek()[0] == "rp":  # type: ignore[index]
                raise QueryError(pos, "empty parentheses")
            node = self.or_()
            end = self.peek()
            if end is None or end[0] != "rp":
                raise QueryError(pos, "unclosed '(': add a closing ')'")
            self.i += 1
            return node
        if kind == "rp":
            raise QueryError(pos, "unexpected ')' with no '(' before it")
        if kind in ("AND", "OR"):
            raise QueryError(pos, f"{kind} needs something before it")
        if kind == "phrase":
            words = tuple(tokens_of(val))
            if not words:
                raise QueryError(pos, "empty phrase")
            return Phrase(words) if len(words) > 1 else Word(words[0])
        if kind == "regex":
            return Regex(val)
        if kind == "field":
            key, op, value = val
            return self._field(key, op, value, pos)
        # a word
        prefix = val.endswith("*")
        words = tuple(tokens_of(val.rstrip("*")))
        if not words:
            raise QueryError(pos, f"{val!r} has no letters or digits to search for")
        if len(words) == 1:
            return Word(words[0], prefix)
        # "app.db" or "user-42" is the phrase of its parts, as the index sees it
        return Phrase(tuple(words))

    def _field(self, key: str, op: str, value: str, pos: int) -> Node:
        if key in ("level", "lvl", "severity"):
            key = "level"
            if value.lower() not in LEVELS:
                raise QueryError(
                    pos,
                    f"unknown level {value!r}; use one of "
                    "trace, debug, info, notice, warn, error, fatal",
                )
            value = LEVELS[value.lower()]
        elif op in (">", ">=", "<", "<="):
            try:
                float(value)
            except ValueError:
                raise QueryError(pos, f"{key}{op} needs a number, not {value!r}") from None
        return Field(key, op, value)


def parse_query(text: str) -> Node | None:
    """The tree of a query (None when empty); :class:`QueryError` when malformed."""
    if len(text) > 4000:
        raise QueryError(4000, "query longer than 4000 characters")
    try:
        return _Parser(text).parse()
    except RecursionError:
        raise QueryError(0, "query nested too deeply") from None


# -- compiling to FTS5 ----------------------------------------------------------------


def _q(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def _level_set(op: str, value: str) -> list[str]:
    code = CODE_OF[value]
    names = [n for n in CODE_OF if n]
    pick: Callable[[int], bool] = {
        ":": lambda c: c == code,
        "=": lambda c: c == code,
        "!=": lambda c: c != code,
        ">": lambda c: c > code,
        ">=": lambda c: c >= code,
        "<": lambda c: c < code,
        "<=": lambda c: c <= code,
    }[op]
    return [n for n in names if pick(CODE_OF[n])]


def to_fts(node: Node | None) -> str | None:
    """An FTS5 expression matching a superset of what ``node`` matches (None: no
    narrowing possible, every line is a candidate)."""
    if node is None:
        return None
    if isinstance(node, Word):
        return _q(node.text) + (" *" if node.prefix else "")
    if isinstance(node, Phrase):
        return _q(" ".join(node.words))
    if isinstance(node, Regex):
        # (the index holds the words of each message, not of its timestamp or JSON keys,
        # which a regex may well match: the index cannot narrow it; block_filter does)
        return None
    if isinstance(node, Field):
        if node.key == "level":
            levels = _level_set(node.op, node.value)
            if not levels:
                return None
            return "lv : (" + " OR ".join(_q(x) for x in levels) + ")"
        if node.op in (":", "="):
            words = tokens_of(node.value.rstrip("*"))
            if not words:
                return None
            col = "lg" if node.key == "logger" else "msg"
            if node.key == "source":
                return None
            tail = " *" if node.value.endswith("*") else ""
            return f"{col} : " + _q(" ".join(words)) + tail
        return None
    if isinstance(node, And):
        pos = [to_fts(c) for c in node.children if not isinstance(c, Not)]
        pos_s = [p for p in pos if p is not None]
        if not pos_s:
            return None
        expr = " AND ".join(f"({p})" for p in pos_s)
        for c in node.children:
            if isinstance(c, Not) and _exact(c.child):
                sub = to_fts(c.child)
                if sub is not None:
                    expr = f"({expr}) NOT ({sub})"
        return expr
    if isinstance(node, Or):
        parts = [to_fts(c) for c in node.children]
        if any(p is None for p in parts):
            return None
        return " OR ".join(f"({p})" for p in parts)
    return None  # Not alone: no positive part to look up


def _exact(node: Node) -> bool:
    """Whether the FTS5 expression of ``node`` matches exactly what it does (so NOT of
    it may be applied in the index)."""
    if isinstance(node, Word | Phrase):
        return True
    if isinstance(node, Field):
        return node.key == "level"
    if isinstance(node, And):
        return all(_exact(c.child if isinstance(c, Not) else c) for c in node.children) and any(
            not isinstance(c, Not) for c in node.children
        )
    if isinstance(node, Or):
        return all(_exact(c) for c in node.children)
    return False


def _literal_runs(rx: re.Pattern[str]) -> list[str]:
    """The runs of literal characters in the top level of a regex: every match holds
    each of them (a branch, a repeat, a class or an anchor breaks a run)."""
    import re._parser as sre  # type: ignore[import-not-found]  # the regex's own parse

    runs, run = [], ""
    for op, arg in sre.parse(rx.pattern, rx.flags):
        if op is sre.LITERAL:
            run += chr(arg)
        else:
            runs.append(run)
            run = ""
    return [r for r in [*runs, run] if r]


#: ASCII that matches only itself and its ASCII other case under re.IGNORECASE (i, k, s
#: also match ı İ, K (kelvin), ſ): a run of these found in a block's lower-cased bytes
_PLAIN = frozenset(c for c in map(chr, range(32, 127)) if c.lower() not in "iks")


def block_filter(node: Node | None) -> bytes | None:
    """A literal (lower-case ASCII bytes) that every line matching the query holds, to
    look for in a block's decompressed bytes before decoding its lines one by one:
    the longest run of plain characters in the top-level sequence of the query's
    ``/regex/`` (or of one it requires), at least 3 long. None when there is none."""
    rx = node if isinstance(node, Regex) else None
    if isinstance(node, And):
        rx = next((c for c in node.children if isinstance(c, Regex)), None)
    if rx is None:
        return None
    best = plain = ""
    for run in _literal_runs(rx.pattern):
        for ch in run + "\0":  # (NUL ends the run's last piece)
            if ch in _PLAIN:
                plain += ch
            else:
                best, plain = max(best, plain, key=len), ""
    return best.lower().encode() if len(best) >= 3 else None


def needs_check(node: Node | None) -> bool:
    """Whether the index's answer must be checked line by line."""
    return node is not None and not _exact(node)


# -- exact evaluation on one record ----------------------------------------------------


@dataclass
class Record:
    """What a query looks at: the text, level, source, and (lazily) the fields."""

    text: str
    level: str
    source: str
    _fields: dict[str, Any] | None = None
    _tokens: set[str] | None = None
    _token_list: list[str] | None = None

    def fields(self) -> dict[str, Any]:
        if self._fields is None:
            from fastmango.collector.logs.parse import fields_of

            self._fields = fields_of(self.text)
        return self._fields

    def may_have(self, key: str) -> bool:
        """Whether the text can hold the field ``key`` at all (its name, or the last part
        of a dotted one, appears; or it is one the parser derives): ruling a line out
        here spares parsing it, which a comparison such as ``status>=500`` would do on
        every line of the range."""
        low = self.text.lower()
        key = key.lower()
        if key == "logger" or "\\u" in low:  # a logger found in text; escaped JSON keys
            return True
        if key in ("status", "method", "path") and "http/" in low:  # an access-log line
            return True
        if key == "request_id" and any(k in low for k in ("request", "req_id", "correlation")):
            return True
        return key.rsplit(".", 1)[-1] in low

    def token_list(self) -> list[str]:
        if self._token_list is None:
            self._token_list = tokens_of(self.text)
        return self._token_list

    def tokens(self) -> set[str]:
        if self._tokens is None:
            self._tokens = set(self.token_list())
        return self._tokens


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.rstrip("s").rstrip("m") if v[-2:] not in ("ms",) else v[:-2])
        except ValueError:
            return None
    return None


def _field_match(rec: Record, f: Field) -> bool:
    if f.key == "level":
        have = CODE_OF.get(rec.level, 0)
        return have != 0 and rec.level in _level_set(f.op, f.value)
    if f.key == "source":
        ok = f.value.lower() in rec.source.lower()
        return ok if f.op != "!=" else not ok
    if not rec.may_have(f.key):
        return False  # an absent field matches no comparison, = or !=
    fields = rec.fields()
    v = fields.get(f.key)
    if v is None:
        low = {k.lower(): val for k, val in fields.items()}
        v = low.get(f.key)
    if f.op in (">", ">=", "<", "<="):
        a, b = _num(v), float(f.value)
        if a is None:
            return False
        return {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[f.op]
    sv = "" if v is None else str(v).lower()
    want = f.value.lower()
    if want.endswith("*"):
        ok = v is not None and sv.startswith(want[:-1])
    elif f.key == "logger":
        ok = v is not None and (sv == want or sv.startswith(want + "."))
    else:
        ok = v is not None and sv == want
    return ok if f.op != "!=" else (v is not None and not ok)


def matches(node: Node | None, rec: Record) -> bool:
    """Whether a record satisfies the query exactly."""
    if node is None:
        return True
    if isinstance(node, Word):
        if node.prefix:
            return any(t.startswith(node.text) for t in rec.tokens())
        return node.text in rec.tokens()
    if isinstance(node, Phrase):
        toks, w, n = rec.token_list(), node.words, len(node.words)
        if not set(w) <= rec.tokens():
            return False
        return any(toks[i : i + n] == list(w) for i in range(len(toks) - n + 1))
    if isinstance(node, Regex):
        return node.pattern.search(rec.text) is not None
    if isinstance(node, Field):
        return _field_match(rec, node)
    if isinstance(node, Not):
        return not matches(node.child, rec)
    if isinstance(node, And):
        return all(matches(c, rec) for c in node.children)
    return any(matches(c, rec) for c in node.children)
