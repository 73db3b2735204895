"""A local Discord webhook endpoint answering as Discord documents it.

``POST /api/webhooks/{id}/{token}`` (``?wait=true`` → 200 with the message JSON, else
204); ``PATCH …/messages/{message_id}`` edits one (404 ``10008 Unknown Message``); an
unknown webhook → 404 ``{"message": "Unknown Webhook", "code": 10015}``; a body over any
limit → 400 ``{"code": 50035, "message": "Invalid Form Body", "errors": …}``
(content 2 000, 10 embeds, title 256, description 4 096, 25 fields of 256 / 1 024,
footer 2 048, author 256, 6 000 across embeds); 429 with ``retry_after`` in the JSON
body and ``Retry-After`` / ``X-RateLimit-*`` headers. Trouble is scripted as for Slack.
"""

from __future__ import annotations

import itertools
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.slack import FakeServer, Request, Trouble

WEBHOOK_ID = "112233445566778899"
WEBHOOK_TOKEN = "fake-webhook-token_ABC"


def problems(body: Any) -> dict[str, str]:
    """Every limit the body breaks, keyed like Discord's ``errors`` paths."""
    out: dict[str, str] = {}
    if not isinstance(body, dict):
        return {"_": "not an object"}
    content = body.get("content") or ""
    embeds = body.get("embeds") or []
    if not content and not embeds:
        out["content"] = "Cannot send an empty message"
    if len(content) > 2000:
        out["content"] = "Must be 2000 or fewer in length."
    if len(embeds) > 10:
        out["embeds"] = "Must be 10 or fewer in length."
    total = 0
    for i, e in enumerate(embeds):
        for key, limit in (("title", 256), ("description", 4096)):
            if len(e.get(key) or "") > limit:
                out[f"embeds.{i}.{key}"] = f"Must be {limit} or fewer in length."
        if len((e.get("footer") or {}).get("text") or "") > 2048:
            out[f"embeds.{i}.footer.text"] = "Must be 2048 or fewer in length."
        if len((e.get("author") or {}).get("name") or "") > 256:
            out[f"embeds.{i}.author.name"] = "Must be 256 or fewer in length."
        fields = e.get("fields") or []
        if len(fields) > 25:
            out[f"embeds.{i}.fields"] = "Must be 25 or fewer in length."
        for j, f in enumerate(fields):
            if not f.get("name") or len(f["name"]) > 256:
                out[f"embeds.{i}.fields.{j}.name"] = "Must be between 1 and 256 in length."
            if not f.get("value") or len(f["value"]) > 1024:
                out[f"embeds.{i}.fields.{j}.value"] = "Must be between 1 and 1024 in length."
        total += len(e.get("title") or "") + len(e.get("description") or "")
        total += len((e.get("footer") or {}).get("text") or "")
        total += len((e.get("author") or {}).get("name") or "")
        total += sum(len(f.get("name") or "") + len(f.get("value") or "") for f in fields)
    if total > 6000:
        out["embeds"] = "Embed size exceeds maximum size of 6000"
    return out


class FakeDiscord(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        self.edits: list[str] = []
        self._ids = itertools.count(1)

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"

    def answer(self, req: Request, trouble: Trouble | None) -> tuple[int, dict[str, str], Any]:
        if trouble is not None:
            if trouble.kind == "slow":
                time.sleep(trouble.seconds)
            elif trouble.kind == "ratelimit":
                return (
                    429,
                    {
                        "Retry-After": str(max(1, round(trouble.retry_after))),
                        "X-RateLimit-Limit": "5",
                        "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset-After": str(trouble.retry_after),
                        "X-RateLimit-Bucket": "fakebucket",
                        "X-RateLimit-Scope": "shared",
                    },
                    {
                        "message": "You are being rate limited.",
                        "retry_after": trouble.retry_after,
                        "global": False,
                    },
                )
            elif trouble.kind == "500":
                return 500, {}, {"message": "500: Internal Server Error", "code": 0}
            elif trouble.kind == "502":
                return 502, {}, "<html>Bad Gateway</html>"
        parts = urlsplit(req.path)
        base = f"/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"
        if req.method == "PATCH" and parts.path.startswith(base + "/messages/"):
            return self._edit(req, parts.path.rsplit("/", 1)[1])
        if req.method != "POST" or parts.path != base:
            return 404, {}, {"message": "Unknown Webhook", "code": 10015}
        errors = problems(req.body)
        if errors:
            return 400, {}, {"code": 50035, "message": "Invalid Form Body", "errors": errors}
        msg = {
            "id": str(1_200_000_000_000_000_000 + next(self._ids)),
            "type": 0,
            "channel_id": "998877665544332211",
            "webhook_id": WEBHOOK_ID,
            "content": req.body.get("content", ""),
            "embeds": req.body.get("embeds", []),
            "author": {"username": req.body.get("username", "webhook"), "bot": True},
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        }
        self.messages.append(msg)
        if parse_qs(parts.query).get("wait") == ["true"]:
            return 200, {}, msg
        return 204, {}, b""

    def _edit(self, req: Request, mid: str) -> tuple[int, dict[str, str], Any]:
        """``PATCH /webhooks/{id}/{token}/messages/{message_id}``: edit a message it sent."""
        msg = next((m for m in self.messages if m["id"] == mid), None)
        if msg is None:
            return 404, {}, {"message": "Unknown Message", "code": 10008}
        errors = problems({**msg, **req.body})
        if errors:
            return 400, {}, {"code": 50035, "message": "Invalid Form Body", "errors": errors}
        for key in ("content", "embeds"):
            if key in req.body:
                msg[key] = req.body[key]
        msg["edited_timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        self.edits.append(mid)
        return 200, {}, msg
