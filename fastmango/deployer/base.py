"""What every adapter shares: the client, turning error answers into PlatformError."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from fastmango.deployer.errors import DeployError, PlatformError, for_status
from fastmango.deployer.http import PlatformClient, describe
from fastmango.deployer.platform import Release, Rollout, Status, Target

#: the header each platform puts its request id in
REQUEST_ID_HEADERS = (
    "fly-request-id",
    "x-request-id",
    "x-railway-request-id",
    "rndr-id",
    "audit-id",
)


def parse_time(value: Any) -> float:
    """RFC 3339 text (or Unix seconds) → Unix seconds; 0 when missing."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, int | float):
        return float(value) / (1000 if value > 1e11 else 1)
    text = str(value).replace("Z", "+00:00")
    if "." in text:  # Python < 3.11 parses at most 6 fractional digits; trim to 6
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        tail = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{tail}"
    return datetime.fromisoformat(text).timestamp()


def require_token(target: Target) -> str:
    """The target's API token, or a clear error naming the setting."""
    if not target.token:
        raise DeployError(
            f"no API token for {target.platform}: set environments.<env>.token, "
            "preferably as FASTMANGO_ENVIRONMENTS__<ENV>__TOKEN"
        )
    return target.token


def error_message(resp: httpx.Response) -> str:
    """The platform's own words from an error answer (Fly, Render, Kubernetes, GraphQL)."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300] or resp.reason_phrase
    if isinstance(body, dict):
        if body.get("kind") == "Status":
            return f"{body.get('reason', '')}: {body.get('message', '')}".strip(": ")
        if body.get("errors"):
            return "; ".join(str(e.get("message", e)) for e in body["errors"][:3])
        for key in ("error", "message"):
            if isinstance(body.get(key), str):
                status = body.get("status")
                extra = f" ({status})" if isinstance(status, str) else ""
                return str(body[key]) + extra
    return str(body)[:300]


class Adapter:
    """Base of the adapters: ``self.client`` sends, :meth:`check` raises on errors."""

    name = "platform"

    def __init__(self, target: Target, client: PlatformClient) -> None:
        self.target = target
        self.client = client

    def __repr__(self) -> str:
        return f"{type(self).__name__}(app={self.target.app!r})"

    def check(self, resp: httpx.Response, ok: tuple[int, ...] = (200, 201, 202, 204)) -> Any:
        """The JSON of a successful answer; a :class:`PlatformError` otherwise."""
        if resp.status_code not in ok:
            raise self.error(resp)
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise PlatformError(
                self.name, "answered with no JSON", resp.status_code, describe(resp.request)
            ) from None

    def error(self, resp: httpx.Response, message: str | None = None) -> PlatformError:
        rid = next((resp.headers[h] for h in REQUEST_ID_HEADERS if h in resp.headers), None)
        cls = for_status(resp.status_code)
        return cls(
            self.name, message or error_message(resp), resp.status_code, describe(resp.request), rid
        )

    async def status(self) -> Status:  # pragma: no cover - every adapter overrides
        raise NotImplementedError

    async def watch(self, release: Release, wait: float) -> Rollout:  # pragma: no cover
        raise NotImplementedError

    async def aclose(self) -> None:
        await self.client.aclose()
