"""Slack through slack-sdk: an incoming webhook, or a bot token with ``chat.postMessage``
and ``chat.update`` (the resolve edits the group's message in place).

The message is Block Kit (header, fields with severity, value, threshold and since, the
summary, a dashboard button, a context line) with a top-level ``text`` fallback. Slack's
limits are held whatever the alert text: header 150, section text 3 000, 10 fields of
2 000, 50 blocks, and about 12 000 characters of blocks in all (``msg_blocks_too_long``
is seen near 13 k). slack-sdk's retry handlers honour 429 ``Retry-After`` and retry
5xx answers and dropped connections.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastmango.agent.alerts.notify import EMOJI, Result, alert_line, clip, fmt_value, title
from fastmango.agent.alerts.routing import Alert, Notification
from fastmango.redact import redact_secrets

HEADER = 150
SECTION = 3000
FIELD = 2000
FIELDS = 10
BLOCKS = 50
BLOCKS_BUDGET = 12000  # total characters of blocks (msg_blocks_too_long near 13.2 k)
TEXT = 4000  # the fallback text (40 000 allowed; notifications show far less)


def _since(ts: float) -> str:
    return f"<!date^{int(ts)}^{{date_short_pretty}} {{time}}|{int(ts)}>"


def _alert_blocks(a: Alert) -> list[dict[str, Any]]:
    sev = a.severity
    fields = [
        f"*Severity:*\n{sev}" if a.status == "firing" else "*Status:*\nresolved",
        f"*Value / threshold:*\n{fmt_value(a.value)} / {fmt_value(a.threshold)}",
        f"*Since:*\n{_since(a.starts_at)}",
    ]
    if a.status == "resolved" and a.ends_at:
        fields.append(f"*Resolved:*\n{_since(a.ends_at)}")
    text = f"*{alert_line(a)}*"
    if a.summary:
        text += f"\n{a.summary}"
    if a.description:
        text += f"\n_{a.description}_"
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION)}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": clip(f, FIELD)} for f in fields[:FIELDS]],
        },
    ]


def _size(blocks: list[dict[str, Any]]) -> int:
    return len(json.dumps(blocks, ensure_ascii=False))


def message(note: Notification, link: str) -> dict[str, Any]:
    """``{"text": …, "blocks": […]}`` for one notification, within Slack's limits."""
    resolved = note.status == "resolved"
    worst = (
        "resolved"
        if resolved
        else max((a.severity for a in note.firing), key=["info", "warning", "critical"].index)
    )
    head = f"{EMOJI.get(worst, '')} {title(note)}".strip()
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": clip(head, HEADER), "emoji": True},
        },
    ]
    tail: list[dict[str, Any]] = []
    if link:
        tail.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open dashboard"},
                        "url": clip(link, 3000, marker=""),
                        "action_id": "fastmango_dashboard",
                    }
                ],
            }
        )
    fps = " · ".join(a.fingerprint[:8] for a in note.alerts[:5])
    tail.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": clip(
                        f"fastmango · {len(note.firing)} firing, "
                        f"{len(note.resolved)} resolved · {fps}",
                        3000,
                    ),
                }
            ],
        }
    )
    shown = 0
    for a in note.alerts:
        more = _alert_blocks(a)
        if (
            len(blocks) + len(more) + len(tail) + 1 > BLOCKS
            or _size(blocks + more + tail) > BLOCKS_BUDGET - 200
        ):
            break
        blocks += more
        shown += 1
    if shown < len(note.alerts):
        rest = len(note.alerts) - shown
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"…and {rest} more alerts"}}
        )
    blocks += tail
    lines = [head] + [f"• {alert_line(a)}: {a.summary}" for a in note.alerts[:20]]
    return {"text": clip("\n".join(lines), TEXT), "blocks": blocks}


class SlackNotifier:
    name = "slack"

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        token: str | None = None,
        channel: str | None = None,
        api_url: str = "https://slack.com/api/",
        timeout: float = 10.0,
        retries: int = 3,
    ) -> None:
        from slack_sdk.http_retry.builtin_handlers import (
            ConnectionErrorRetryHandler,
            RateLimitErrorRetryHandler,
            ServerErrorRetryHandler,
        )

        handlers = [
            ConnectionErrorRetryHandler(max_retry_count=retries),
            RateLimitErrorRetryHandler(max_retry_count=retries),
            ServerErrorRetryHandler(max_retry_count=retries),
        ]
        self.channel = channel
        self.web: Any = None
        self.hook: Any = None
        if token:
            from slack_sdk import WebClient

            base = api_url if api_url.endswith("/") else api_url + "/"
            self.web = WebClient(
                token=token, base_url=base, timeout=int(max(1, timeout)), retry_handlers=handlers
            )
        elif webhook_url:
            from slack_sdk.webhook import WebhookClient

            self.hook = WebhookClient(
                webhook_url, timeout=int(max(1, timeout)), retry_handlers=handlers
            )
        else:
            raise ValueError("Slack needs a webhook URL or a bot token")

    @property
    def mode(self) -> str:
        return "bot" if self.web is not None else "webhook"

    async def send(self, note: Notification, link: str) -> Result:
        return await asyncio.to_thread(self._send, message(note, link), note.ref, note.repeat)

    def _send(self, msg: dict[str, Any], ref: dict[str, str], repeat: bool = False) -> Result:
        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            if self.web is not None:
                if ref.get("slack_ts"):
                    resp = self.web.chat_update(
                        channel=ref["slack_channel"],
                        ts=ref["slack_ts"],
                        text=msg["text"],
                        blocks=msg["blocks"],
                    )
                    if repeat:  # an edit does not notify anyone: a reply in its thread does
                        self.web.chat_postMessage(
                            channel=ref["slack_channel"],
                            thread_ts=ref["slack_ts"],
                            text=clip("Still firing: " + msg["text"], TEXT),
                        )
                else:
                    resp = self.web.chat_postMessage(
                        channel=self.channel,
                        text=msg["text"],
                        blocks=msg["blocks"],
                        unfurl_links=False,
                    )
                return Result(True, {"slack_channel": resp["channel"], "slack_ts": resp["ts"]})
            resp = self.hook.send(text=msg["text"], blocks=msg["blocks"])
            if resp.status_code == 200:
                return Result(True)
            return Result(False, error=f"webhook answered {resp.status_code}: {resp.body[:200]}")
        except SlackApiError as exc:
            err = exc.response.get("error") if exc.response is not None else None
            status = exc.response.status_code if exc.response is not None else "?"
            return Result(False, error=f"Slack API error {status}: {err or exc}")
        except (SlackClientError, OSError) as exc:
            return Result(False, error=redact_secrets(f"{type(exc).__name__}: {exc}"))

    async def post_text(self, text: str, blocks: list[dict[str, Any]]) -> Result:
        """One message outside any group (tests, one-off events)."""
        return await asyncio.to_thread(self._send, {"text": text, "blocks": blocks}, {})
