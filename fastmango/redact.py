"""Redaction of secrets and personal data from text the agent logs, stores or shows.

:func:`redact_secrets` is the minimum every module needs before it logs an exception:
passwords in URLs and DSNs, ``password=``-style pairs, bearer and basic credentials.

:class:`Redactor` is the log pipeline's: those rules plus AWS keys, private keys, JWTs,
e-mail addresses, card numbers (Luhn-checked), optionally IP addresses, plus patterns
from the settings. It works on a whole batch of lines at once and counts each rule's
replacements (``fastmango_log_redactions_total{rule}`` on ``/metrics``). Each rule names
literal *triggers* (lower-case): the rule's regex runs only on the lines that contain
one, so a batch without secrets costs a few ``str.find`` scans, not a regex per line.
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
_PAIR = re.compile(
    r"(?i)(?P<k>\b(?:[\w.-]*[_.-])?(?:password|passwd|pwd|secret|token|api[_-]?key)\b"
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
    contains (empty: the rule scans every line)."""

    name: str
    pattern: re.Pattern[str]
    repl: str
    triggers: tuple[str, ...] = ()
    check: Callable[[re.Match[str]], bool] | None = None
    case_sensitive_triggers: bool = False

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
        case_sensitive_triggers=True,
    ),
    Rule("url_password", _DSN, rf"\g<k>{MASK}", ("://",)),
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
        ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA"),
        case_sensitive_triggers=True,
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
        re.compile(r"(?<![\w-])\d{4}(?:[ -]?\d{4}){2}[ -]?\d{1,7}(?![\w-])"),
        "[REDACTED CARD]",
        (),
        _card,
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

_DIGIT_RUN = re.compile(r"(?<![\w-])\d{4}[ -]?\d{4}[ -]?\d{4}")


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
        joined = "\x00".join(texts)
        low: str | None = None
        for rule in self.rules:
            if rule.triggers:
                if rule.case_sensitive_triggers:
                    hay = joined
                else:
                    if low is None:
                        low = joined.lower()
                    hay = low
                hits = [t for t in rule.triggers if t in hay]
                if not hits:
                    continue
                idx = _lines_with(hay, hits, out, rule.case_sensitive_triggers)
            else:  # no literal: where the rule's regex (or its cheap prefix) matches
                probe = _DIGIT_RUN if rule.name == "card_number" else rule.pattern
                hits_at = [m.start() for m in probe.finditer(joined)]
                if not hits_at:
                    continue
                starts = list(accumulate((len(t) + 1 for t in out[:-1]), initial=0))
                idx = sorted({bisect_right(starts, p) - 1 for p in hits_at})
            changed = False
            for i in idx:
                new, n = rule.sub(out[i])
                if n:
                    if out is texts:
                        out = list(texts)
                    out[i] = new
                    self.counts[rule.name] = self.counts.get(rule.name, 0) + n
                    changed = True
            if changed:
                joined = "\x00".join(out)
                low = None
        return out


def _lines_with(hay: str, triggers: list[str], texts: list[str], case: bool) -> list[int]:
    """Indexes of the texts (joined by NUL into ``hay``) holding one of the triggers."""
    if len(hay) != sum(map(len, texts)) + len(texts) - 1:  # lower() changed a length
        if case:
            return [i for i, t in enumerate(texts) if any(x in t for x in triggers)]
        return [i for i, t in enumerate(texts) if any(x in t.lower() for x in triggers)]
    starts = list(accumulate((len(t) + 1 for t in texts[:-1]), initial=0))
    found: set[int] = set()
    for trig in triggers:
        pos = hay.find(trig)
        while pos >= 0:
            i = bisect_right(starts, pos) - 1
            found.add(i)
            end = starts[i] + len(texts[i])
            pos = hay.find(trig, end)
    return sorted(found)
