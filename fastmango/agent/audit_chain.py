"""The audit trail's hash chain: each record carries the hash of the one before.

A record is stored as JSON with two extra fields: ``prev`` (the previous record's
hash, 64 zeros for the first) and ``hash`` = SHA-256 over the record's time and its
canonical JSON without ``hash``. The store keeps the head (``count:hash``) in its meta
table, written in the same transaction as the record. :func:`verify` walks the records
in order and names the first that was edited, removed or inserted out of place, and a
cut tail (fewer records, or another last hash, than the head says).

This is tamper-*evident*, not tamper-proof: someone who can write the file can rebuild
the whole chain. ``fastmango audit verify`` prints the head hash; keep it (or
``fastmango audit export``) somewhere the agent cannot write, and an earlier head that
no longer matches shows a rewrite. Pure functions; the store does the I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def _canonical(ts: float, data: dict[str, Any]) -> bytes:
    body = {k: v for k, v in data.items() if k != "hash"}
    return json.dumps([repr(float(ts)), body], sort_keys=True, separators=(",", ":"),
                      default=str, ensure_ascii=False).encode()  # fmt: skip


def digest(ts: float, data: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical(ts, data)).hexdigest()


def seal(ts: float, data: dict[str, Any], prev: str) -> tuple[str, str]:
    """The stored JSON of a new record chained after ``prev``, and its hash."""
    chained = {**{k: v for k, v in data.items() if k not in ("prev", "hash")}, "prev": prev}
    # the stored JSON round-trips through json: hash exactly what will be read back
    chained = json.loads(json.dumps(chained, default=str))
    h = digest(ts, chained)
    chained["hash"] = h
    return json.dumps(chained, separators=(",", ":"), ensure_ascii=False), h


def parse_head(value: str | None) -> tuple[int, str]:
    if not value:
        return 0, GENESIS
    count, _, h = value.partition(":")
    return int(count), h


def format_head(count: int, h: str) -> str:
    return f"{count}:{h}"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    records: int
    head: str
    problem: str = ""
    record_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": self.records, "head": self.head,
                "problem": self.problem, "record_id": self.record_id}  # fmt: skip


def verify(records: Iterable[tuple[int, float, str]], head: str | None) -> Verdict:
    """Check ``(id, ts, stored JSON)`` records, in write order, against the stored head."""
    prev = GENESIS
    n = 0
    for rid, ts, text in records:
        n += 1
        try:
            data = json.loads(text)
        except ValueError:
            return Verdict(False, n, prev, f"record {rid} is not valid JSON", rid)
        if not isinstance(data, dict) or "hash" not in data or "prev" not in data:
            return Verdict(False, n, prev, f"record {rid} carries no chain fields", rid)
        if data["prev"] != prev:
            return Verdict(False, n, prev, f"record {rid} does not follow the record before "
                           "it: one was removed or inserted there", rid)  # fmt: skip
        if digest(ts, data) != data["hash"]:
            return Verdict(False, n, prev, f"record {rid} was edited (its hash does not match)",
                           rid)  # fmt: skip
        prev = data["hash"]
    count, last = parse_head(head)
    if (count, last) != (n, prev):
        if n < count:
            problem = f"{count - n} record(s) removed from the end (the head says {count})"
        else:
            problem = f"the chain ({n} records) does not end where the head says ({count})"
        return Verdict(False, n, prev, problem)
    return Verdict(True, n, prev)
