"""Redaction of secrets from text the agent logs or shows (error messages, DSNs).

This is the minimum every module needs before it logs an exception: passwords in URLs
and DSNs, ``password=``-style pairs, bearer and basic credentials.
"""

from __future__ import annotations

import re

MASK = "****"

_RULES: list[tuple[re.Pattern[str], str]] = [
    # scheme://user:password@host → scheme://user:****@host
    (re.compile(r"(?P<k>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s/]+(?=@)"), rf"\g<k>{MASK}"),
    # Authorization: Bearer xxx / Basic xxx
    (re.compile(r"(?i)(?P<k>\b(?:bearer|basic|token)\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\g<k>{MASK}"),
    # password=xxx, secret: xxx, api_key='xxx'
    (
        re.compile(
            r"(?i)(?P<k>\b(?:[\w.-]*[_.-])?(?:password|passwd|pwd|secret|token|api[_-]?key)\b"
            r"[\"']?\s*[=:]\s*[\"']?)[^\s\"',;&]+"
        ),
        rf"\g<k>{MASK}",
    ),
]


def redact_secrets(text: str) -> str:
    """``text`` with every credential the rules recognise replaced by ``****``."""
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    return text
