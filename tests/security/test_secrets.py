"""`fastmango secrets`: values sealed at rest, never printed, bound to their name, audited."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastmango.agent.secrets import SecretsError, Vault, derive_key, new_key

VALUE = "pa55-w0rd-for-the-db!"


def _cli(
    cwd: Path, *args: str, key: str | None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMANGO_")}
    if key is not None:
        env["FASTMANGO_MASTER_KEY"] = key
    cmd = [sys.executable, "-m", "fastmango.cli", "secrets", *args]
    return subprocess.run(
        cmd, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=60, env=env
    )


def test_set_list_unset_end_to_end_never_shows_or_stores_the_value(tmp_path: Path) -> None:
    key = _cli(tmp_path, "keygen", key=None).stdout.strip()
    assert len(key) == 44
    out = _cli(tmp_path, "set", "DB_PASSWORD", "--env", "production", key=key, stdin=VALUE)
    assert out.returncode == 0, out.stderr
    assert (
        _cli(tmp_path, "set", "SENTRY_DSN", key=key, stdin="https://k@sentry.io/1").returncode == 0
    )
    listed = _cli(tmp_path, "list", "--json", key=key)
    rows = json.loads(listed.stdout)
    assert [(r["env"], r["name"]) for r in rows] == [
        ("*", "SENTRY_DSN"),
        ("production", "DB_PASSWORD"),
    ]
    assert all(len(r["fingerprint"]) == 16 and r["updated_by"].startswith("os:") for r in rows)
    # the value is nowhere: not in any output, not in any file of the state folder
    state = tmp_path / ".fastmango"
    for f in state.iterdir():
        assert VALUE.encode() not in f.read_bytes(), f
    assert VALUE not in listed.stdout + out.stdout + out.stderr
    assert (state / "secrets.json").stat().st_mode & 0o777 == 0o600
    # production gets both; another environment only the shared one
    vault = Vault(state / "secrets.json", key)
    assert vault.resolved("production") == {
        "SENTRY_DSN": "https://k@sentry.io/1",
        "DB_PASSWORD": VALUE,
    }
    assert vault.resolved("staging") == {"SENTRY_DSN": "https://k@sentry.io/1"}
    assert VALUE not in repr(vault)
    # removal, then an audit trail of all of it (no values in it either)
    assert _cli(tmp_path, "unset", "DB_PASSWORD", "--env", "production", key=key).returncode == 0
    missing = _cli(tmp_path, "unset", "DB_PASSWORD", "--env", "production", key=key)
    assert missing.returncode == 1 and "no secret DB_PASSWORD" in missing.stderr
    audit = subprocess.run([sys.executable, "-m", "fastmango.cli", "audit", "export"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60).stdout  # fmt: skip
    actions = [(r["action"], r["target"], r["result"]) for r in map(json.loads, audit.splitlines())]
    assert actions == [
        ("secrets.set", "production/DB_PASSWORD", "ok"),
        ("secrets.set", "*/SENTRY_DSN", "ok"),
        ("secrets.unset", "production/DB_PASSWORD", "ok"),
        ("secrets.unset", "production/DB_PASSWORD", "not found"),
    ]
    assert VALUE not in audit


def test_without_a_key_or_with_the_wrong_one_it_says_so(tmp_path: Path) -> None:
    none = _cli(tmp_path, "list", key=None)
    assert none.returncode == 1 and "FASTMANGO_MASTER_KEY" in none.stderr
    key = new_key()
    assert _cli(tmp_path, "set", "A", key=key, stdin="x").returncode == 0
    wrong = _cli(tmp_path, "list", key=new_key())
    assert wrong.returncode == 1 and "does not open" in wrong.stderr
    bad_name = _cli(tmp_path, "set", "not-a-name", key=key, stdin="x")
    assert bad_name.returncode == 1 and "not a valid variable name" in bad_name.stderr


def test_a_passphrase_works_and_a_ciphertext_moved_to_another_name_fails(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    vault = Vault(path, "correct horse battery staple")
    vault.set("production", "A", "alpha", "os:t", 1.0)
    vault.set("production", "B", "beta", "os:t", 1.0)
    assert Vault(path, "correct horse battery staple").resolved("production")["A"] == "alpha"
    doc = json.loads(path.read_text())
    doc["secrets"]["production"]["A"], doc["secrets"]["production"]["B"] = (
        doc["secrets"]["production"]["B"], doc["secrets"]["production"]["A"])  # fmt: skip
    path.write_text(json.dumps(doc))
    with pytest.raises(SecretsError, match="cannot be opened"):
        Vault(path, "correct horse battery staple").resolved("production")


def test_key_derivation() -> None:
    raw = new_key()
    assert len(derive_key(raw, b"salt")) == 32
    assert derive_key(raw, b"salt") == derive_key(raw, b"other")  # a real key is used as is
    assert derive_key("passphrase", b"a") != derive_key("passphrase", b"b")  # scrypt, salted
