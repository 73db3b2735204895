"""The audit log: one record per action (scale, deploy, rollback, silence, login…).

Each record says who (OS user, dashboard user or token id), what, on what, why, the
result and when. Records are ``audit`` events in the state store, written on success,
failure and exception alike by the caller's ``try/finally``.
"""

from __future__ import annotations

import getpass
from typing import Any

from fastmango.agent.store import Store
from fastmango.redact import redact_secrets


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers with a numeric uid)
        import os

        return f"uid:{os.getuid()}"


def record(
    store: Store,
    *,
    who: str,
    action: str,
    target: str,
    result: str,
    reason: str = "",
    **details: Any,
) -> None:
    """Append one audit record (secrets redacted from the free-text fields)."""
    store.append_event(
        "audit",
        {
            "who": who,
            "action": action,
            "target": target,
            "result": result,
            "reason": redact_secrets(reason),
            **{k: redact_secrets(v) if isinstance(v, str) else v for k, v in details.items()},
        },
    )
