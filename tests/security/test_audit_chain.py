"""The audit trail is append-only and hash-chained: any edit, removal or insertion of a
record is found by `fastmango audit verify`, even when done behind SQLite's back."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from fastmango.agent import audit_chain
from fastmango.agent.audit import record
from fastmango.agent.store import Store


def _write(path: Path, n: int, who: str = "os:alice") -> None:
    store = Store(path)
    store.open()
    try:
        for i in range(n):
            record(store, who=who, action="scale", target="production", result="ok",
                   reason=f"step {i}", replicas=i)  # fmt: skip
        store.append_event("scaling", {"env": "production"})  # other kinds are not chained
    finally:
        store.close()


def _verify(path: Path) -> audit_chain.Verdict:
    store = Store(path)
    return audit_chain.verify(store.audit_records(), store.audit_head())


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fastmango.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def _tamper(path: Path, *sql: str) -> None:
    """What someone with write access to the file could do: drop the guards, edit."""
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER audit_no_update")
    db.execute("DROP TRIGGER audit_no_delete")
    for statement in sql:
        db.execute(statement)
    db.commit()
    db.close()


def test_an_intact_trail_verifies_and_each_record_links_to_the_one_before(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _write(path, 5)
    verdict = _verify(path)
    assert verdict.ok and verdict.records == 5
    rows = list(Store(path).audit_records())
    prevs = [json.loads(d)["prev"] for _, _, d in rows]
    hashes = [json.loads(d)["hash"] for _, _, d in rows]
    assert prevs == [audit_chain.GENESIS, *hashes[:-1]]
    assert verdict.head == hashes[-1]


def test_sqlite_itself_refuses_to_edit_or_delete_an_audit_record(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _write(path, 2)
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE events SET data = '{}' WHERE kind = 'audit'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM events WHERE kind = 'audit'")
    db.execute("DELETE FROM events WHERE kind = 'scaling'")  # other events may be pruned
    db.close()


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        (["UPDATE events SET data = replace(data, 'os:alice', 'os:mallory') WHERE id = 3"],
         "record 3 was edited"),
        (["UPDATE events SET ts = ts + 1 WHERE id = 2"], "record 2 was edited"),
        (["DELETE FROM events WHERE id = 2"], "record 3 does not follow"),
        (["DELETE FROM events WHERE id = 5"], "1 record(s) removed from the end"),
        (["INSERT INTO events (ts, kind, data) SELECT ts, kind, data FROM events WHERE id = 1"],
         "does not follow"),
    ],
)  # fmt: skip
def test_every_kind_of_tampering_is_named(tmp_path: Path, sql: list[str], problem: str) -> None:
    path = tmp_path / "state.db"
    _write(path, 5)
    _tamper(path, *sql)
    verdict = _verify(path)
    assert not verdict.ok
    assert problem in verdict.problem


def test_two_processes_appending_at_once_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _write(path, 1)
    code = (
        "import sys; from pathlib import Path; from fastmango.agent.store import Store;"
        "from fastmango.agent.audit import record\n"
        "s = Store(Path(sys.argv[1])); s.open()\n"
        "for i in range(40): record(s, who=sys.argv[2], action='a', target='t', result='ok')\n"
        "s.close()"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), f"os:p{i}"])
             for i in range(3)]  # fmt: skip
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    verdict = _verify(path)
    assert verdict.ok, verdict.problem
    assert verdict.records == 121


def test_cli_verify_and_export(tmp_path: Path) -> None:
    _write(tmp_path / ".fastmango" / "state.db", 3)
    ok = _cli(tmp_path, "audit", "verify")
    assert ok.returncode == 0 and "intact: 3 records" in ok.stdout
    exported = _cli(tmp_path, "audit", "export")
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [r["who"] for r in lines] == ["os:alice"] * 3
    assert {"id", "time", "action", "target", "result", "prev", "hash"} <= set(lines[0])
    edit = "UPDATE events SET data = replace(data, '\"ok\"', '\"failed\"') WHERE id = 2"
    _tamper(tmp_path / ".fastmango" / "state.db", edit)
    bad = _cli(tmp_path, "audit", "verify", "--json")
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["record_id"] == 2
    (tmp_path / "elsewhere").mkdir()
    none = _cli(tmp_path / "elsewhere", "audit", "verify")
    assert none.returncode == 1 and "no state store" in none.stderr
