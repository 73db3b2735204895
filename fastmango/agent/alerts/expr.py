"""A small PromQL subset for alert rules, evaluated over the latest value of each series.

Grammar (every expression is valid PromQL, so rules export to Prometheus unchanged)::

    expr      := compare
    compare   := arith (( > | < | >= | <= | == | != ) arith)?
    arith     := term (( + | - ) term)*
    term      := atom (( * | / ) atom)*
    atom      := NUMBER | selector | aggregate | "(" expr ")"
    selector  := NAME ( "{" label OP "string" ("," ...)* "}" )?      OP: = != =~ !~
    aggregate := (sum|max|min|avg|count) [by (l, ...)] "(" expr ")" [by (l, ...)]
    a binary operator between two vectors may carry on(l, ...) or ignoring(l, ...)

Two vectors combine one-to-one: elements pair when their labels (or the ``on`` labels,
or all but the ``ignoring`` ones) are equal; the result keeps the left side's labels.
A comparison filters (PromQL's semantics); an alert rule's top-level comparison is split
with :func:`condition` so the state machine sees values on both sides of the threshold.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from fastmango.agent.store import Matcher

Labels = tuple[tuple[str, str], ...]
Vector = dict[Labels, float]
#: name → [(labels, value)] of the latest samples of that series
Fetch = Callable[[str], Iterable[tuple[Mapping[str, str], float]]]

COMPARE = (">=", "<=", "==", "!=", ">", "<")
ARITH = ("+", "-", "*", "/")
AGGREGATES = ("sum", "max", "min", "avg", "count")
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<op>=~|!~|>=|<=|==|!=|[-+*/><=(){},\[\]])
    )""",
    re.VERBOSE,
)


class ExprError(ValueError):
    """An expression outside the subset; the message names the position."""


@dataclass(frozen=True)
class Number:
    value: float

    def __str__(self) -> str:
        return _num(self.value)


@dataclass(frozen=True)
class Selector:
    name: str
    matchers: tuple[Matcher, ...] = ()

    def __str__(self) -> str:
        if not self.matchers:
            return self.name
        inner = ",".join(f'{m.label}{m.op}"{_quote(m.value)}"' for m in self.matchers)
        return f"{self.name}{{{inner}}}"


@dataclass(frozen=True)
class Aggregate:
    op: str
    by: tuple[str, ...]
    expr: Node

    def __str__(self) -> str:
        by = f" by ({', '.join(self.by)})" if self.by else ""
        return f"{self.op}{by} ({self.expr})"


@dataclass(frozen=True)
class Binary:
    op: str
    lhs: Node
    rhs: Node
    on: tuple[str, ...] | None = None
    ignoring: tuple[str, ...] = ()

    def __str__(self) -> str:
        match = ""
        if self.on is not None:
            match = f" on({', '.join(self.on)})"
        elif self.ignoring:
            match = f" ignoring({', '.join(self.ignoring)})"
        return f"{_paren(self.lhs)} {self.op}{match} {_paren(self.rhs)}"


Node = Number | Selector | Aggregate | Binary


def _paren(node: Node) -> str:
    return f"({node})" if isinstance(node, Binary) else str(node)


def _num(v: float) -> str:
    return repr(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def _quote(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


# -- parsing -------------------------------------------------------------------------
class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            if not text[pos:].strip():
                break
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                at = pos + len(text[pos:]) - len(text[pos:].lstrip())
                raise ExprError(f"unexpected character {text[at]!r} at {at + 1}")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind), m.start(kind)))
            pos = m.end()
        self.i = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "", len(self.text))

    def take(self, value: str | None = None) -> tuple[str, str, int]:
        tok = self.peek()
        if value is not None and tok[1] != value:
            got = tok[1] or "the end"
            raise ExprError(f"expected {value!r} at {tok[2] + 1}, found {got!r}")
        if tok[0] == "end":
            raise ExprError("unexpected end of expression")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.compare()
        kind, value, pos = self.peek()
        if kind != "end":
            raise ExprError(f"unexpected {value!r} at {pos + 1}")
        return node

    def compare(self) -> Node:
        lhs = self.arith()
        if self.peek()[1] in COMPARE:
            op = self.take()[1]
            on, ignoring = self.matching()
            lhs = Binary(op, lhs, self.arith(), on, ignoring)
            if self.peek()[1] in COMPARE:
                raise ExprError(f"chained comparison at {self.peek()[2] + 1}: use parentheses")
        return lhs

    def arith(self) -> Node:
        node = self.term()
        while self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            on, ignoring = self.matching()
            node = Binary(op, node, self.term(), on, ignoring)
        return node

    def term(self) -> Node:
        node = self.atom()
        while self.peek()[1] in ("*", "/"):
            op = self.take()[1]
            on, ignoring = self.matching()
            node = Binary(op, node, self.atom(), on, ignoring)
        return node

    def matching(self) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
        word = self.peek()[1]
        if word == "on":
            self.take()
            return self.label_list(), ()
        if word == "ignoring":
            self.take()
            return None, self.label_list()
        return None, ()

    def label_list(self) -> tuple[str, ...]:
        self.take("(")
        out: list[str] = []
        while self.peek()[1] != ")":
            kind, value, pos = self.take()
            if kind != "name":
                raise ExprError(f"expected a label name at {pos + 1}, found {value!r}")
            out.append(value)
            if self.peek()[1] == ",":
                self.take()
        self.take(")")
        return tuple(out)

    def atom(self) -> Node:
        kind, value, pos = self.peek()
        if kind == "num":
            self.take()
            return Number(float(value))
        if value == "(":
            self.take()
            node = self.compare()
            self.take(")")
            return node
        if (
            value == "-"
            and self.tokens[self.i + 1 : self.i + 2]
            and self.tokens[self.i + 1][0] == "num"
        ):
            self.take()
            return Number(-float(self.take()[1]))
        if kind != "name":
            raise ExprError(
                f"expected a number, series or aggregation at {pos + 1}, found "
                f"{value or 'the end'!r}"
            )
        self.take()
        nxt = self.peek()[1]
        if value in AGGREGATES and nxt in ("(", "by"):
            by: tuple[str, ...] = ()
            if nxt == "by":
                self.take()
                by = self.label_list()
            self.take("(")
            inner = self.compare()
            self.take(")")
            if not by and self.peek()[1] == "by":
                self.take()
                by = self.label_list()
            return Aggregate(value, by, inner)
        if nxt == "(":
            raise ExprError(
                f"function {value}() at {pos + 1} is not in the supported subset "
                f"(selectors, + - * /, comparisons, {'/'.join(AGGREGATES)} by)"
            )
        if nxt == "[":
            raise ExprError("range vectors are not supported; the agent derives rates itself")
        matchers: list[Matcher] = []
        if nxt == "{":
            self.take()
            while self.peek()[1] != "}":
                k, label, p = self.take()
                if k != "name":
                    raise ExprError(f"expected a label name at {p + 1}, found {label!r}")
                op = self.take()[1]
                if op not in ("=", "!=", "=~", "!~"):
                    raise ExprError(f"expected = != =~ or !~ after {label} at {p + 1}")
                k, raw, p = self.take()
                if k != "str":
                    raise ExprError(f'expected a "quoted" value for {label} at {p + 1}')
                text = raw[1:-1].encode().decode("unicode_escape")
                if op in ("=~", "!~"):
                    try:
                        re.compile(text)
                    except re.error as exc:
                        raise ExprError(f"bad regular expression for {label}: {exc}") from None
                matchers.append(Matcher(label, op, text))
                if self.peek()[1] == ",":
                    self.take()
            self.take("}")
        return Selector(value, tuple(matchers))


def parse(text: str) -> Node:
    """Parse an expression of the subset; :class:`ExprError` says what and where."""
    if not text or not text.strip():
        raise ExprError("empty expression")
    return _Parser(text).parse()


def names(node: Node) -> set[str]:
    """The series names an expression reads."""
    if isinstance(node, Selector):
        return {node.name}
    if isinstance(node, Aggregate):
        return names(node.expr)
    if isinstance(node, Binary):
        return names(node.lhs) | names(node.rhs)
    return set()


# -- evaluation ----------------------------------------------------------------------
_OPS: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": lambda a, b: a / b if b else (math.nan if a == 0 else math.copysign(math.inf, a)),
}
CMP: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}

Value = float | Vector


def _key(labels: Labels, on: tuple[str, ...] | None, ignoring: tuple[str, ...]) -> Labels:
    if on is not None:
        return tuple((k, v) for k, v in labels if k in on)
    if ignoring:
        return tuple((k, v) for k, v in labels if k not in ignoring)
    return labels


def _pair(node: Binary, lhs: Vector, rhs: Vector) -> list[tuple[Labels, float, float]]:
    """One-to-one matching; a side with two elements of one key is an error (PromQL's)."""
    right: dict[Labels, float] = {}
    for labels, v in rhs.items():
        k = _key(labels, node.on, node.ignoring)
        if k in right:
            raise ExprError(
                f"many-to-one matching on the right of {node.op}: use on(...) or an aggregation"
            )
        right[k] = v
    out, seen = [], set()
    for labels, v in lhs.items():
        k = _key(labels, node.on, node.ignoring)
        if k in seen:
            raise ExprError(
                f"many-to-one matching on the left of {node.op}: use on(...) or an aggregation"
            )
        seen.add(k)
        if k in right:
            out.append((labels, v, right[k]))
    return out


def evaluate(node: Node, fetch: Fetch) -> Value:
    """A number, or a vector (labels → value) of the latest samples."""
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Selector):
        out: Vector = {}
        for labels, value in fetch(node.name):
            if all(m.matches(labels) for m in node.matchers):
                out[tuple(sorted(labels.items()))] = float(value)
        return out
    if isinstance(node, Aggregate):
        inner = evaluate(node.expr, fetch)
        if not isinstance(inner, dict):
            raise ExprError(f"{node.op}() needs a vector, not a number")
        groups: dict[Labels, list[float]] = {}
        for key, v in inner.items():
            groups.setdefault(tuple((k, x) for k, x in key if k in node.by), []).append(v)
        return {k: _aggregate(node.op, vs) for k, vs in groups.items()}
    lhs, rhs = evaluate(node.lhs, fetch), evaluate(node.rhs, fetch)
    if node.op in CMP:
        test = CMP[node.op]
        if isinstance(lhs, dict) and isinstance(rhs, dict):
            return {k: a for k, a, b in _pair(node, lhs, rhs) if test(a, b)}
        if isinstance(lhs, dict):
            return {k: a for k, a in lhs.items() if test(a, float(rhs))}  # type: ignore[arg-type]
        if isinstance(rhs, dict):
            return {k: b for k, b in rhs.items() if test(float(lhs), b)}
        raise ExprError("a comparison between two numbers needs PromQL's bool modifier")
    op = _OPS[node.op]
    if isinstance(lhs, dict) and isinstance(rhs, dict):
        return {k: op(a, b) for k, a, b in _pair(node, lhs, rhs)}
    if isinstance(lhs, dict):
        return {k: op(a, float(rhs)) for k, a in lhs.items()}  # type: ignore[arg-type]
    if isinstance(rhs, dict):
        return {k: op(float(lhs), b) for k, b in rhs.items()}
    return op(float(lhs), float(rhs))


def _aggregate(op: str, xs: list[float]) -> float:
    if op == "sum":
        return math.fsum(xs)
    if op == "avg":
        return math.fsum(xs) / len(xs)
    if op == "max":
        return max(xs)
    if op == "min":
        return min(xs)
    return float(len(xs))  # count


@dataclass(frozen=True)
class Condition:
    """An alert rule's expression split at its top-level comparison."""

    lhs: Node
    op: str
    rhs: Node
    on: tuple[str, ...] | None = None
    ignoring: tuple[str, ...] = ()

    def __str__(self) -> str:
        return str(Binary(self.op, self.lhs, self.rhs, self.on, self.ignoring))


def condition(node: Node) -> Condition:
    """The rule's comparison; raises when the expression does not end in one."""
    if not isinstance(node, Binary) or node.op not in CMP:
        raise ExprError("an alert rule needs a comparison at the top, e.g. http_error_ratio > 0.05")
    if isinstance(node.lhs, Number) and not isinstance(node.rhs, Number):
        # 10 < some_series: keep the series on the left, where values are reported
        return Condition(node.rhs, _FLIP[node.op], node.lhs, node.on, node.ignoring)
    return Condition(node.lhs, node.op, node.rhs, node.on, node.ignoring)


_FLIP = {">": "<", "<": ">", ">=": "<=", "<=": ">=", "==": "==", "!=": "!="}


@dataclass(frozen=True)
class Point:
    """One element of a rule's left side: its value and the threshold it is held to."""

    labels: Labels
    value: float
    threshold: float


def observe(cond: Condition, fetch: Fetch) -> list[Point]:
    """Every element of the left side that has a threshold (matched on the right),
    true or not: the state machine decides with hysteresis and ``for``."""
    lhs = evaluate(cond.lhs, fetch)
    rhs = evaluate(cond.rhs, fetch)
    if not isinstance(lhs, dict):
        if isinstance(rhs, dict):
            raise ExprError("the left side of the rule's comparison must read series")
        return [Point((), float(lhs), float(rhs))]
    if isinstance(rhs, dict):
        node = Binary(cond.op, cond.lhs, cond.rhs, cond.on, cond.ignoring)
        return [Point(k, a, b) for k, a, b in _pair(node, lhs, rhs)]
    return [Point(k, v, float(rhs)) for k, v in lhs.items()]


def holds(op: str, value: float, threshold: float) -> bool:
    return not math.isnan(value) and CMP[op](value, threshold)
