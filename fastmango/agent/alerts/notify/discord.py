"""Discord webhook through httpx: one embed per alert, within Discord's limits.

Limits (an over-limit body is a 400 ``50035 Invalid Form Body``): content 2 000; at most
10 embeds; title 256, description 4 096, 25 fields of name 256 / value 1 024, footer
2 048, and 6 000 characters across all embeds. A 429 is retried after its
``retry_after`` (JSON, seconds) or ``Retry-After``; 5xx and connection errors after a
short backoff. ``?wait=true`` returns the message, whose id is kept.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx

from fastmango.agent.alerts.notify import Result, alert_line, clip, fmt_value, title, when
from fastmango.agent.alerts.routing import Alert, Notification
from fastmango.redact import redact_secrets

CONTENT = 2000
EMBEDS = 10
EMBED_TITLE = 256
DESCRIPTION = 4096
FIELDS = 25
FIELD_NAME = 256
FIELD_VALUE = 1024
FOOTER = 2048
TOTAL = 6000
COLOR = {"critical": 0x992D22, "warning": 0xE67E22, "info": 0x3498DB, "resolved": 0x2ECC71}


def embed_size(e: dict[str, Any]) -> int:
    """Characters Discord counts toward the 6 000 total of a message's embeds."""
    n = len(e.get("title", "")) + len(e.get("description", ""))
    n += len(e.get("footer", {}).get("text", "")) + len(e.get("author", {}).get("name", ""))
    n += sum(len(f["name"]) + len(f["value"]) for f in e.get("fields", []))
    return n


def _embed(a: Alert, link: str) -> dict[str, Any]:
    resolved = a.status == "resolved"
    fields: list[dict[str, Any]] = [
        {"name": "Severity", "value": a.severity, "inline": True},
        {
            "name": "Value / threshold",
            "value": f"{fmt_value(a.value)} / {fmt_value(a.threshold)}",
            "inline": True,
        },
        {"name": "Since", "value": when(a.starts_at), "inline": True},
    ]
    if resolved:
        fields.append({"name": "Resolved", "value": when(a.ends_at), "inline": True})
    for k, v in sorted(a.labels.items()):
        if k not in ("alertname", "severity") and len(fields) < FIELDS:
            fields.append(
                {
                    "name": clip(k, FIELD_NAME),
                    "value": clip(v or "\u200b", FIELD_VALUE),
                    "inline": True,
                }
            )
    desc = a.summary + (f"\n{a.description}" if a.description else "")
    e: dict[str, Any] = {
        "title": clip(("✅ " if resolved else "") + alert_line(a), EMBED_TITLE),
        "description": clip(desc or a.expr, DESCRIPTION),
        "color": COLOR["resolved" if resolved else a.severity],
        "fields": [
            {**f, "name": clip(f["name"], FIELD_NAME), "value": clip(f["value"], FIELD_VALUE)}
            for f in fields[:FIELDS]
        ],
        "footer": {"text": clip(f"fastmango · rule {a.rule} · {a.fingerprint[:8]}", FOOTER)},
        "timestamp": dt.datetime.fromtimestamp(
            a.ends_at if resolved and a.ends_at else a.starts_at, dt.UTC
        ).isoformat(),
    }
    if link.startswith(("http://", "https://")):
        e["url"] = link
    return e


def message(note: Notification, link: str, username: str = "fastmango") -> dict[str, Any]:
    """The webhook body for one notification, within every Discord limit."""
    embeds: list[dict[str, Any]] = []
    total = 0
    for a in note.alerts[:EMBEDS]:
        e = _embed(a, link)
        room = TOTAL - total - 64  # keep space for the "more" note
        if embed_size(e) > room:
            e["fields"] = e["fields"][:3]
            e["description"] = clip(
                e["description"],
                max(0, min(DESCRIPTION, room - embed_size({**e, "description": ""}))),
            )
            if embed_size(e) > room or room < 200:
                break
        embeds.append(e)
        total += embed_size(e)
    content = title(note)
    if len(embeds) < len(note.alerts):
        content += f"\n…and {len(note.alerts) - len(embeds)} more alerts"
    return {
        "content": clip(content, CONTENT),
        "username": clip(username, 80),
        "allowed_mentions": {"parse": []},
        "embeds": embeds,
    }


class DiscordNotifier:
    name = "discord"

    def __init__(
        self,
        webhook_url: str,
        *,
        username: str = "fastmango",
        timeout: float = 10.0,
        retries: int = 3,
        client: httpx.AsyncClient | None = None,
        max_wait: float = 30.0,
    ) -> None:
        self.url = webhook_url
        self.username = username
        self.retries = retries
        self.max_wait = max_wait
        self.client = client or httpx.AsyncClient(timeout=timeout)

    async def close(self) -> None:
        await self.client.aclose()

    async def send(self, note: Notification, link: str) -> Result:
        body = message(note, link, self.username)
        mid = note.ref.get("discord_message_id")
        if mid and not note.repeat:  # the group's message is edited in place (a resolve…)
            edited = await self.post(body, mid)
            if edited.ok or "10008" not in edited.error:  # 10008: the message was deleted
                return edited
        return await self.post(body)

    async def post(self, body: dict[str, Any], edit: str | None = None) -> Result:
        """POST a new message (``?wait=true``), or PATCH message ``edit``."""
        error = ""
        for attempt in range(1, self.retries + 2):
            wait = min(0.5 * 2 ** (attempt - 1), self.max_wait)
            try:
                if edit is None:
                    resp = await self.client.post(self.url, params={"wait": "true"}, json=body)
                else:
                    patch = {k: v for k, v in body.items() if k != "username"}
                    resp = await self.client.patch(f"{self.url}/messages/{edit}", json=patch)
            except httpx.HTTPError as exc:
                error = redact_secrets(f"{type(exc).__name__}: {exc}")
            else:
                if resp.status_code in (200, 204):
                    ref = {}
                    if resp.status_code == 200 and resp.content:
                        ref = {"discord_message_id": str(resp.json().get("id", ""))}
                    return Result(True, ref, attempts=attempt)
                error = f"Discord answered {resp.status_code}: {resp.text[:200]}"
                if resp.status_code == 429:
                    wait = _retry_after(resp, wait)
                elif resp.status_code < 500:
                    return Result(False, error=error, attempts=attempt)
            if attempt <= self.retries:
                await asyncio.sleep(min(wait, self.max_wait))
        return Result(False, error=error, attempts=self.retries + 1)


def _retry_after(resp: httpx.Response, default: float) -> float:
    try:
        return float(resp.json()["retry_after"])
    except (ValueError, KeyError, TypeError):
        pass
    try:
        return float(resp.headers.get("Retry-After", default))
    except ValueError:
        return default
