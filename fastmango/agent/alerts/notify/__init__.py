"""Channels that deliver notifications: Slack (slack-sdk), Discord (httpx), email (SMTP).

Each is a :class:`Notifier` with one ``send()``; building a message is a pure function
next to it (tested on its own, limits included), sending is the thin I/O step. A send
never raises: it returns a :class:`Result` (ok, the provider's handle on the message,
a redacted error), so one channel being down never stops another, nor the agent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from fastmango.agent.alerts.routing import Alert, Notification

MARKER = "… [truncated]"


def clip(text: str, limit: int, marker: str = MARKER) -> str:
    """``text`` cut to at most ``limit`` characters, ending with a marker when cut."""
    if len(text) <= limit:
        return text
    if limit <= len(marker):
        return text[:limit]
    return text[: limit - len(marker)] + marker


@dataclass(frozen=True)
class Result:
    ok: bool
    ref: dict[str, str] = field(default_factory=dict)
    error: str = ""
    attempts: int = 1


class Notifier(Protocol):
    name: str

    async def send(self, note: Notification, link: str) -> Result: ...


EMOJI = {"critical": "🔴", "warning": "🟠", "info": "🔵", "resolved": "✅"}


def title(note: Notification) -> str:
    """``[FIRING:2] HighErrorRatio`` / ``[RESOLVED] HighErrorRatio`` (Alertmanager's form)."""
    names = sorted({a.labels.get("alertname", a.rule) for a in note.alerts})
    extra = " ".join(f"{k}={v}" for k, v in sorted(note.group_labels.items()) if k != "alertname")
    what = ", ".join(names) + (f" ({extra})" if extra else "")
    if note.status == "resolved":
        return f"[RESOLVED] {what}"
    return f"[FIRING:{len(note.firing)}] {what}"


def when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_value(v: float | None) -> str:
    return "no data" if v is None else f"{v:.4g}"


def instance_labels(alert: Alert) -> Mapping[str, str]:
    return {k: v for k, v in alert.labels.items() if k not in ("alertname", "severity")}


def alert_line(a: Alert) -> str:
    labels = ", ".join(f"{k}={v}" for k, v in sorted(instance_labels(a).items()))
    head = f"{a.labels.get('alertname', a.rule)}" + (f" {{{labels}}}" if labels else "")
    return head
