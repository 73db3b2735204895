"""Secrets never reach a log line or an error message."""

from __future__ import annotations

import pytest

from fastmango.redact import redact_secrets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("connect postgresql://app:hunter2@db:5432/app failed",
         "connect postgresql://app:****@db:5432/app failed"),
        ("Authorization: Bearer abcdefgh12345678", "Authorization: Bearer ****"),
        ("password=hunter2 user=app", "password=**** user=app"),
        ("db_password: 's3cr3t'", "db_password: '****'"),
        ("api-key=AKIA1234 and SECRET = x9", "api-key=**** and SECRET = ****"),
        # words that merely contain a key name are not keys
        ("InvalidPasswordError: password authentication failed for user app",
         "InvalidPasswordError: password authentication failed for user app"),
        ("tokenizer: gpt2", "tokenizer: gpt2"),
        ("nothing secret here", "nothing secret here"),
    ],
)  # fmt: skip
def test_redact_secrets(text: str, expected: str) -> None:
    assert redact_secrets(text) == expected
