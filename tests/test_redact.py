"""Secrets never reach a log line or an error message."""

from __future__ import annotations

import pytest

from fastmango.redact import redact_secrets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "connect postgresql://app:hunter2@db:5432/app failed",
            "connect postgresql://app:****@db:5432/app failed",
        ),
        ("Authorization: Bearer abcdefgh12345678", "Authorization: Bearer ****"),
        ("password=hunter2 user=app", "password=**** user=app"),
        ("db_password: 's3cr3t'", "db_password: '****'"),
        ("api-key=AKIA1234 and SECRET = x9", "api-key=**** and SECRET = ****"),
        # words that merely contain a key name are not keys
        (
            "InvalidPasswordError: password authentication failed for user app",
            "InvalidPasswordError: password authentication failed for user app",
        ),
        ("tokenizer: gpt2", "tokenizer: gpt2"),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_redact_secrets(text: str, expected: str) -> None:
    assert redact_secrets(text) == expected


# -- the log pipeline's rules -----------------------------------------------------------

from fastmango.redact import Redactor, luhn_ok  # noqa: E402

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA75\nabc\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "expected", "rule"),
    [
        (
            "GET / Authorization: Bearer eyJhbGciOi.x.y-123456",
            "GET / Authorization: Bearer ****",
            "authorization",
        ),
        (
            "connecting to postgresql://app:hunter2@db:5432/app",
            "connecting to postgresql://app:****@db:5432/app",
            "url_password",
        ),
        ("https://user:pa55@example.org/x", "https://user:****@example.org/x", "url_password"),
        (
            '{"password": "hunter2", "user": "bob"}',
            '{"password": "****", "user": "bob"}',
            "password_field",
        ),
        ("key AKIAIOSFODNN7EXAMPLE used", "key [REDACTED AWS KEY] used", "aws_access_key"),
        (
            "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key=****",
            "aws_secret_key",
        ),
        (f"token {JWT} ok", "token [REDACTED JWT] ok", "jwt"),
        (f"key: {KEY} end", "key: [REDACTED PRIVATE KEY] end", "private_key"),
        ("mail bob.smith+x@example.co.uk now", "mail [REDACTED EMAIL] now", "email"),
        ("card 4111 1111 1111 1111 charged", "card [REDACTED CARD] charged", "card_number"),
        ("card 4111-1111-1111-1111 charged", "card [REDACTED CARD] charged", "card_number"),
        ("card 5500005555555559", "card [REDACTED CARD]", "card_number"),
        # one separator, in the first or the second gap
        ("card 4111 111111111111 charged", "card [REDACTED CARD] charged", "card_number"),
        ("card 41111111-11111111 charged", "card [REDACTED CARD] charged", "card_number"),
    ],
)
def test_log_rules(text: str, expected: str, rule: str) -> None:
    r = Redactor.default()
    assert r.redact(text) == expected
    assert r.counts[rule] >= 1


@pytest.mark.parametrize(
    "text",
    [
        "order 4111 1111 1111 1112 is not a card (Luhn fails)",
        "trace id 1234567890123456789012345 is too long",
        "2024-01-02 10:11:12,345 INFO took 1234 ms",
        "user@localhost is no address; a@b.c neither",
        "tokenizer: gpt2",
        "10.0.0.1 - - GET /",
        "request id a4111111111111111b (hex, not a card)",
    ],
)
def test_log_rules_leave_innocent_text(text: str) -> None:
    r = Redactor.default()
    assert r.redact(text) == text
    assert sum(r.counts.values()) == 0


def test_ip_addresses_optional_and_custom_patterns() -> None:
    r = Redactor.default(
        ip_addresses=True, extra=[r"(?P<keep>ssn=)\d{3}-\d{2}-\d{4}", r"secret-\w+"]
    )
    assert r.redact("from 10.1.2.3 ssn=123-45-6789 secret-abc") == (
        "from [REDACTED IP] ssn=**** [REDACTED]"
    )
    assert r.counts["ip_address"] == 1 and r.counts["custom_1"] == 1 and r.counts["custom_2"] == 1
    assert Redactor.default().redact("from 10.1.2.3") == "from 10.1.2.3"


def test_batch_redaction_matches_line_by_line() -> None:
    lines = [
        "plain",
        "Bearer abcdefgh12345678",
        "mail a@example.com",
        "ok 4111111111111111",
        "x" * 50,
        "p=1 password=zz",
        "ünïcode İstanbul password=zz",
    ]
    batch = Redactor.default()
    one = Redactor.default()
    assert batch.redact_many(lines) == [one.redact(x) for x in lines]
    assert batch.counts == one.counts


def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert not luhn_ok("1234")
