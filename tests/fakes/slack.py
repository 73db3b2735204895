"""A local Slack: the Web API (``chat.postMessage``, ``chat.update``, ``auth.test``) and
incoming webhooks, answering as Slack documents them.

* Web API: ``POST /api/<method>`` with ``Authorization: Bearer xoxb-…``; JSON or form
  bodies; HTTP 200 with ``{"ok": true, …}`` or ``{"ok": false, "error": "invalid_auth"}``
  (``not_authed``, ``channel_not_found``, ``message_not_found``, ``invalid_blocks``,
  ``msg_too_long``, ``msg_blocks_too_long``); 429 with ``Retry-After`` and
  ``{"ok": false, "error": "ratelimited"}``.
* Webhook: ``POST /services/T…/B…/…``: 200 ``ok`` (text/plain), 400 ``invalid_blocks``,
  404 ``no_service``, 429 with ``Retry-After``.

Scripted trouble: ``fake.next("ratelimit", retry_after=1)``, ``fake.next("500")``,
``fake.next("slow", seconds=3)``, ``fake.next("invalid_auth")`` apply to the next requests.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "xoxb-test-token"
WEBHOOK_PATH = "/services/T0FAKE/B0FAKE/abcdefXYZ"
CHANNELS = {"#alerts": "C0ALERTS", "C0ALERTS": "C0ALERTS"}


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float
    status: int = 0


@dataclass
class Trouble:
    kind: str
    retry_after: float = 1.0
    seconds: float = 0.0


class FakeServer:
    """A threaded HTTP server on 127.0.0.1 recording every request."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.trouble: deque[Trouble] = deque()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _do(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                ctype = self.headers.get("Content-Type", "")
                body: Any
                if "json" in ctype:
                    body = json.loads(raw or b"null")
                elif "x-www-form-urlencoded" in ctype:
                    body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                else:
                    body = raw.decode(errors="replace")
                req = Request(self.command, self.path, dict(self.headers), body, time.time())
                with fake.lock:
                    fake.requests.append(req)
                    trouble = fake.trouble.popleft() if fake.trouble else None
                status, headers, payload = fake.answer(req, trouble)
                req.status = status
                data = (
                    payload
                    if isinstance(payload, bytes)
                    else (
                        json.dumps(payload).encode()
                        if not isinstance(payload, str)
                        else payload.encode()
                    )
                )
                self.send_response(status)
                if not isinstance(payload, str | bytes):
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                elif data:
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET = do_PATCH = _do

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def next(
        self, kind: str, *, retry_after: float = 1.0, seconds: float = 0.0, times: int = 1
    ) -> None:
        with self.lock:
            self.trouble.extend(Trouble(kind, retry_after, seconds) for _ in range(times))

    def answer(self, req: Request, trouble: Trouble | None) -> tuple[int, dict[str, str], Any]:
        raise NotImplementedError


def _blocks_problem(blocks: Any) -> str | None:
    """Slack's Block Kit limits: an error code if the blocks break one."""
    if blocks is None:
        return None
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "invalid_blocks"
    for b in blocks:
        t = b.get("type")
        if t == "header":
            text = b["text"]
            if text.get("type") != "plain_text" or len(text["text"]) > 150:
                return "invalid_blocks"
        elif t == "section":
            if "text" in b and len(b["text"]["text"]) > 3000:
                return "invalid_blocks"
            fields = b.get("fields", [])
            if len(fields) > 10 or any(len(f["text"]) > 2000 for f in fields):
                return "invalid_blocks"
            if "text" not in b and not fields:
                return "invalid_blocks"
        elif t in ("context", "actions"):
            if not b.get("elements") or len(b["elements"]) > 25:
                return "invalid_blocks"
        else:
            return "invalid_blocks"
    if len(json.dumps(blocks, ensure_ascii=False)) > 13200:
        return "msg_blocks_too_long"
    return None


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: Any
    updates: list[dict[str, Any]] = field(default_factory=list)
    replies: list[dict[str, Any]] = field(default_factory=list)


class FakeSlack(FakeServer):
    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token
        self.messages: dict[str, Message] = {}  # ts → message
        self.webhook_posts: list[dict[str, Any]] = []
        self._ts = itertools.count(1)

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    @property
    def webhook_url(self) -> str:
        return self.url + WEBHOOK_PATH

    def calls(self, method: str) -> list[Request]:
        return [r for r in self.requests if r.path.split("?")[0] == f"/api/{method}"]

    def answer(self, req: Request, trouble: Trouble | None) -> tuple[int, dict[str, str], Any]:
        webhook = req.path.startswith("/services/")
        if trouble is not None:
            if trouble.kind == "slow":
                time.sleep(trouble.seconds)
            elif trouble.kind == "ratelimit":
                headers = {"Retry-After": str(int(trouble.retry_after))}
                return (
                    429,
                    headers,
                    ("rate_limited" if webhook else {"ok": False, "error": "ratelimited"}),
                )
            elif trouble.kind == "500":
                return (
                    500,
                    {},
                    "Internal Server Error" if webhook else {"ok": False, "error": "fatal_error"},
                )
            elif trouble.kind == "invalid_auth" and not webhook:
                return 200, {}, {"ok": False, "error": "invalid_auth"}
        if webhook:
            return self._webhook(req)
        return self._api(req)

    def _webhook(self, req: Request) -> tuple[int, dict[str, str], Any]:
        if urlsplit(req.path).path != WEBHOOK_PATH:
            return 404, {}, "no_service"
        body = req.body if isinstance(req.body, dict) else {}
        if not body.get("text") and not body.get("blocks"):
            return 400, {}, "no_text"
        problem = _blocks_problem(body.get("blocks"))
        if problem:
            return 400, {}, problem
        self.webhook_posts.append(body)
        return 200, {}, "ok"

    def _api(self, req: Request) -> tuple[int, dict[str, str], Any]:
        method = urlsplit(req.path).path.removeprefix("/api/")
        auth = req.headers.get("Authorization", "")
        if not auth:
            return 200, {}, {"ok": False, "error": "not_authed"}
        if auth != f"Bearer {self.token}":
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        body = req.body if isinstance(req.body, dict) else {}
        if method == "auth.test":
            return (
                200,
                {},
                {
                    "ok": True,
                    "url": "https://fake.slack.com/",
                    "team": "fake",
                    "user": "fastmango",
                    "team_id": "T0FAKE",
                    "user_id": "U0FAKE",
                },
            )
        if method not in ("chat.postMessage", "chat.update"):
            return 200, {}, {"ok": False, "error": "unknown_method"}
        channel = CHANNELS.get(str(body.get("channel")))
        if channel is None:
            return 200, {}, {"ok": False, "error": "channel_not_found"}
        text = body.get("text") or ""
        if len(text) > 40000:
            return 200, {}, {"ok": False, "error": "msg_too_long"}
        problem = _blocks_problem(body.get("blocks"))
        if problem:
            return 200, {}, {"ok": False, "error": problem}
        if method == "chat.postMessage" and body.get("thread_ts"):
            parent = self.messages.get(str(body["thread_ts"]))
            if parent is None or parent.channel != channel:
                return 200, {}, {"ok": False, "error": "thread_not_found"}
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            parent.replies.append({"ts": ts, "text": text})
            return 200, {}, {"ok": True, "channel": channel, "ts": ts,
                             "message": {"type": "message", "text": text, "ts": ts,
                                         "thread_ts": parent.ts}}  # fmt: skip
        if method == "chat.postMessage":
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            self.messages[ts] = Message(channel, ts, text, body.get("blocks"))
            return (
                200,
                {},
                {
                    "ok": True,
                    "channel": channel,
                    "ts": ts,
                    "message": {"type": "message", "text": text, "ts": ts, "bot_id": "B0FAKE"},
                },
            )
        msg = self.messages.get(str(body.get("ts")))
        if msg is None or msg.channel != channel:
            return 200, {}, {"ok": False, "error": "message_not_found"}
        msg.updates.append({"text": text, "blocks": body.get("blocks")})
        msg.text, msg.blocks = text, body.get("blocks")
        return 200, {}, {"ok": True, "channel": channel, "ts": msg.ts, "text": text}
