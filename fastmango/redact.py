"""Redaction of secrets and personal data from text the agent logs, stores or shows.

:func:`redact_secrets` is the minimum every module needs before it logs an exception:
passwords in URLs and DSNs, ``password=``-style pairs, bearer and basic credentials.

:class:`Redactor` is the log pipeline's: those rules plus AWS keys, private keys, JWTs,
e-mail addresses, card numbers (Luhn-checked), optionally IP addresses, plus patterns
from the settings. It works on a whole batch of lines at once and counts each rule's
replacements (``fastmango_log_redactions_total{rule}`` on ``/metrics``). Each rule names
literal *triggers*, looked for in one *form* of the batch (lower-cased, as is, or a
shape: ``digits``, where every digit reads ``0`` and a space or dash `` ``, or
``upper``, where every upper-case letter or digit reads ``A``): the rule's
regex runs only on the lines that hold one, so a batch without secrets costs a few
``str.find`` scans, not a regex per line.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import accumulate

MASK = "****"

_DSN = re.compile(r"(?P<k>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s/]+(?=@)")
_AUTH = re.compile(r"(?i)(?P<k>\b(?:bearer|basic|token)[ \t]+)[A-Za-z0-9._~+/=-]{8,}")
# the key word at a word's start or after _ . - (db_password, x.secret), then = or :
_PAIR = re.compile(
    r"(?i)(?<![^\W_])(?P<k>(?:password|passwd|pwd|secret|token|api[_-]?key)\b"
    r"[\"']?[ \t]*[=:][ \t]*[\"']?)[^\s\"',;&]+"
)

_RULES: list[tuple[re.Pattern[str], str]] = [
    # scheme://user:password@host → scheme://user:****@host
    (_DSN, rf"\g<k>{MASK}"),
    # Authorization: Bearer xxx / Basic xxx
    (_AUTH, rf"\g<k>{MASK}"),
    # password=xxx, secret: xxx, api_key='xxx'
    (_PAIR, rf"\g<k>{MASK}"),
]


def redact_secrets(text: str) -> str:
    """``text`` with every credential the rules recognise replaced by ``****``."""
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    return text


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a card number (non-digits ignored)."""
    nums = [int(c) for c in digits if c.isdigit()]
    if not 13 <= len(nums) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(nums)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


@dataclass(frozen=True)
class Rule:
    """One redaction rule: ``pattern`` replaced by ``repl`` where ``check`` (if any)
    accepts the match; ``triggers`` are lower-case literals one of which every match
    contains, in the batch's ``form`` (``lower``, ``text``, ``digits`` or ``upper``; none:
    the rule's regex scans the whole batch)."""

    name: str
    pattern: re.Pattern[str]
    repl: str
    triggers: tuple[str, ...] = ()
    check: Callable[[re.Match[str]], bool] | None = None
    form: str = "lower"
    #: literals a line must also hold (as is) for the regex to run on it
    requires: tuple[str, ...] = ()

    def sub(self, text: str) -> tuple[str, int]:
        if self.check is None:
            return self.pattern.subn(self.repl, text)
        count = 0

        def one(m: re.Match[str]) -> str:
            nonlocal count
            assert self.check is not None
            if self.check(m):
                count += 1
                return m.expand(self.repl)
            return m.group(0)

        return self.pattern.sub(one, text), count


def _card(m: re.Match[str]) -> bool:
    return luhn_ok(m.group(0))


BUILTIN: list[Rule] = [
    Rule(
        "private_key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)",  # noqa: E501
            re.S,
        ),
        "[REDACTED PRIVATE KEY]",
        ("-----begin",),
    ),
    Rule(
        "jwt",
        re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+"),
        "[REDACTED JWT]",
        ("eyJ",),
        form="text",
    ),
    Rule("url_password", _DSN, rf"\g<k>{MASK}", ("://",), requires=("@",)),
    Rule("authorization", _AUTH, rf"\g<k>{MASK}", ("bearer", "basic", "token")),
    Rule(
        "password_field",
        _PAIR,
        rf"\g<k>{MASK}",
        ("pass", "pwd", "secret", "token", "api_key", "api-key", "apikey"),
    ),
    Rule(
        "aws_access_key",
        re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}\b"),
        "[REDACTED AWS KEY]",
        ("A" * 20,),  # twenty upper-case letters or digits in a row
        form="upper",
    ),
    Rule(
        "aws_secret_key",
        re.compile(
            r"(?i)(?P<k>aws_?secret_?(?:access_?)?key[\"']?[ \t]*[=:][ \t]*[\"']?)[A-Za-z0-9/+=]{40}"  # noqa: E501
        ),
        rf"\g<k>{MASK}",
        ("secret",),
    ),
    Rule(
        "email",
        re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),
        "[REDACTED EMAIL]",
        ("@",),
    ),
    Rule(
        "card_number",
        re.compile(r"(?<![\w-])[0-9]{4}(?:[ -]?[0-9]{4}){2}[ -]?[0-9]{1,7}(?![\w-])"),
        "[REDACTED CARD]",
        # three groups of four digits: no separator between them, or one somewhere
        ("000000000000", "0000 0000"),
        _card,
        form="digits",
    ),
]
IP_RULE = Rule(
    "ip_address",
    re.compile(
        r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])"
    ),
    "[REDACTED IP]",
    (".",),
)

#: the digit shape of ASCII text: digits read 0, a space or dash a space, the rest a dot
_DIGIT_SHAPE = str.maketrans(
    {chr(c): "0" if chr(c).isdigit() else " " if chr(c) in " -" else "." for c in range(128)}
)
#: the upper shape: upper-case letters and digits read A, the rest a dot
_UPPER_SHAPE = str.maketrans(
    {chr(c): "A" if chr(c).isdigit() or chr(c).isupper() else "." for c in range(128)}
)
_SHAPES = {"digits": _DIGIT_SHAPE, "upper": _UPPER_SHAPE}


@dataclass
class Redactor:
    """Applies the rules to batches of text and counts replacements per rule."""

    rules: list[Rule]
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def default(cls, *, ip_addresses: bool = False, extra: Iterable[str] = ()) -> Redactor:
        """The built-in rules (plus IP addresses if asked) and ``extra`` regexes from the
        settings (each a rule named ``custom_<n>``; a named group ``keep`` is kept)."""
        rules = list(BUILTIN)
        if ip_addresses:
            rules.append(IP_RULE)
        for i, pattern in enumerate(extra, 1):
            rx = re.compile(pattern)
            repl = r"\g<keep>" + MASK if "keep" in rx.groupindex else "[REDACTED]"
            rules.append(Rule(f"custom_{i}", rx, repl))
        return cls(rules, {r.name: 0 for r in rules})

    def redact(self, text: str) -> str:
        return self.redact_many([text])[0]

    def redact_many(self, texts: list[str]) -> list[str]:
        """The texts, redacted. Lines are looked at only where a rule's trigger occurs."""
        if not texts:
            return texts
        out = texts
        hay = _Haystack(texts)  # the batch as it came: lines changed since are re-read
        changed: set[int] = set()
        for rule in self.rules:
            if rule.triggers:
                text, starts = hay.get(rule.form)
                hits = [t for t in rule.triggers if hay.has(rule.form, t)]
                idx = set(_lines_with(text, starts, hits)) if hits else set()
            else:  # no literal: where the rule's regex matches
                text, starts = hay.get("text")
                idx = {bisect_right(starts, m.start()) - 1 for m in rule.pattern.finditer(text)}
            idx |= changed
            for i in sorted(idx):
                line = out[i]
                if rule.requires and not all(r in line for r in rule.requires):
                    continue
                new, n = rule.sub(line)
                if n:
                    if out is texts:
                        out = list(texts)
                    out[i] = new
                    self.counts[rule.name] = self.counts.get(rule.name, 0) + n
                    changed.add(i)
        return out


class _Haystack:
    """A batch joined by NUL in each form the rules look at (as is, lower-cased, digit
    shape), with where each line starts in it."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self._forms: dict[str, tuple[str, list[int]]] = {}
        self._has: dict[tuple[str, str], bool] = {}

    def has(self, form: str, literal: str) -> bool:
        """Whether the form holds the literal (each literal looked for once per batch:
        rules share triggers such as ``token`` and ``secret``)."""
        key = (form, literal)
        found = self._has.get(key)
        if found is None:
            found = self._has[key] = literal in self.get(form)[0]
        return found

    def get(self, form: str) -> tuple[str, list[int]]:
        got = self._forms.get(form)
        if got is not None:
            return got
        if form == "text":
            got = ("\x00".join(self.lines), _starts(self.lines))
        else:
            text, starts = self.get("text")
            if form in _SHAPES:  # one character for one: the same offsets
                got = (text.translate(_SHAPES[form]), starts)
            else:
                low = text.lower()
                if len(low) != len(text):  # lower() changed a length: line by line
                    lows = [t.lower() for t in self.lines]
                    low = "\x00".join(lows)
                    starts = _starts(lows)
                got = (low, starts)
        self._forms[form] = got
        return got


def _starts(lines: list[str]) -> list[int]:
    """Where each line starts in the lines joined by one separator."""
    return [0, *accumulate(map((1).__add__, map(len, lines[:-1])))]


def _lines_with(hay: str, starts: list[int], triggers: list[str]) -> list[int]:
    """Indexes of the lines (joined by NUL into ``hay``, starting at ``starts``) that
    hold one of the triggers."""
    found: set[int] = set()
    last = len(starts) - 1
    for trig in triggers:
        pos = hay.find(trig)
        while pos >= 0:
            i = bisect_right(starts, pos) - 1
            found.add(i)
            if i == last:
                break
            pos = hay.find(trig, starts[i + 1])
    return sorted(found)
