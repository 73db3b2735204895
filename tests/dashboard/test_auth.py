"""Who may call what: bearer tokens, browser sessions, CSRF, throttling, loopback hosts."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import Depends, FastAPI

from fastmango.agent.api import create_app
from fastmango.agent.auth import (
    SESSION_COOKIE,
    Auth,
    AuthMiddleware,
    Sessions,
    Throttle,
    require_actor,
)
from fastmango.agent.daemon import Agent

from .conftest import settings_for

TOKEN = "correct-horse-battery-staple"


def test_sessions_expire_and_are_keyed_by_a_hash() -> None:
    s = Sessions(ttl=10, limit=2)
    cookie, session = s.new("dashboard:1.2.3.4", now=100)
    assert s.get(cookie, 105) is session
    assert s.get(cookie, 110) is None  # expired
    assert s.get("x" * 101, 105) is None and s.get(None, 105) is None
    assert cookie not in repr(s._by_id)  # only a hash of the id is kept
    a, _ = s.new("a", 200)
    b, _ = s.new("b", 200)
    c, _ = s.new("c", 200)  # over the limit: the oldest goes
    assert s.get(a, 201) is None and s.get(b, 201) and s.get(c, 201)
    s.drop(b)
    assert s.get(b, 201) is None


@pytest.mark.parametrize(
    ("failures", "at", "locked_for"),
    [
        ([0, 1, 2, 3], 4, 0.0),  # four failures: no lock-out
        ([0, 1, 2, 3, 4], 5, 59.0),  # the fifth within a minute: a minute
        ([0, 20, 40, 70, 90], 91, 0.0),  # spread over more than a minute
    ],
)
def test_throttle_locks_out_after_five_failures_a_minute(
    failures: list[float], at: float, locked_for: float
) -> None:
    t = Throttle()
    for f in failures:
        t.failure("10.0.0.1", f)
    assert t.retry_after("10.0.0.1", at) == pytest.approx(locked_for)
    assert t.retry_after("10.0.0.2", at) == 0.0  # per address


def test_throttle_doubles_each_lock_out_up_to_the_cap() -> None:
    t = Throttle(base=60, cap=900)
    delays = []
    now = 0.0
    for _ in range(6):
        for _ in range(5):
            now += 0.1
            delay = t.failure("a", now)
        delays.append(delay)
        now += delay
    assert delays == [60, 120, 240, 480, 900, 900]
    t.success("a")
    assert t.retry_after("a", now) == 0.0


@pytest.fixture
async def token_agent(tmp_path: Path) -> AsyncIterator[tuple[Agent, httpx.AsyncClient]]:
    """An agent bound off loopback with a token, seen from 192.0.2.7."""
    agent = Agent(settings_for(tmp_path, host="0.0.0.0", token=TOKEN), collectors=[])
    agent.store.open()
    transport = httpx.ASGITransport(app=create_app(agent), client=("192.0.2.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://agent.example:9871") as c:
        yield agent, c
    agent.store.close()


async def login(c: httpx.AsyncClient, token: str = TOKEN, next_: str = "/") -> httpx.Response:
    return await c.post(
        "/login",
        data={"token": token, "next": next_},
        headers={"Origin": "http://agent.example:9871", "Sec-Fetch-Site": "same-origin"},
    )


def csrf_of(page: str) -> str:
    m = re.search(r'<meta name="csrf-token" content="([^"]*)"', page)
    assert m, "no CSRF meta tag"
    return m.group(1)


async def test_token_agent_api_ui_and_login(token_agent: tuple[Agent, httpx.AsyncClient]) -> None:
    agent, c = token_agent
    assert (await c.get("/healthz")).status_code == 200
    assert (await c.get("/static/app.js")).status_code == 200  # public assets
    assert (await c.get("/api/status")).status_code == 401
    assert (await c.get("/api/dashboard/overview")).status_code == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert (await c.get("/api/status", headers=bearer)).status_code == 200
    # a browser without a session is sent to the login page
    ui = await c.get("/")
    assert ui.status_code == 303 and ui.headers["location"] == "/login?next=/"
    form = await c.get("/login?next=/%23/agent")
    assert form.status_code == 200 and 'name="token"' in form.text
    assert "frame-ancestors 'none'" in form.headers["content-security-policy"]
    wrong = await login(c, "not-it")
    assert wrong.status_code == 401 and "not right" in wrong.text
    assert SESSION_COOKIE not in wrong.cookies
    ok = await login(c, next_="//evil.example/")  # an open redirect is refused
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=" in cookie
    assert "Secure" not in cookie  # plain http here; https requests get Secure
    page = await c.get("/")
    assert page.status_code == 200
    token = csrf_of(page.text)
    assert len(token) >= 40
    assert (await c.get("/api/status")).status_code == 200  # the cookie suffices
    session = (await c.get("/api/session")).json()
    assert session["csrf"] == token and session["who"] == "dashboard:192.0.2.7"
    # CSRF: a state-changing request with the cookie needs the header
    assert (await c.post("/logout")).status_code == 403
    assert (await c.post("/logout", headers={"X-CSRF-Token": "x" + token})).status_code == 403
    cross = {"X-CSRF-Token": token, "Origin": "http://evil.example"}
    assert (await c.post("/logout", headers=cross)).status_code == 403
    bye = await c.post("/logout", headers={"X-CSRF-Token": token})
    assert bye.status_code == 200 and bye.json()["logged_out"] is True
    assert (await c.get("/api/status")).status_code == 401  # the session is gone
    # bearer requests are exempt from CSRF (no ambient credential)
    assert (await c.post("/logout", headers=bearer)).status_code == 200
    agent.store.flush()
    audit = [e["data"] for e in agent.store.events("audit")]
    results = [(a["action"], a["result"], a["who"]) for a in reversed(audit)]
    assert results[:3] == [
        ("login", "failure", "dashboard:192.0.2.7"),
        ("login", "success", "dashboard:192.0.2.7"),
        ("logout", "success", "dashboard:192.0.2.7"),
    ]
    assert TOKEN not in str(audit) and "not-it" not in str(audit)


async def test_failed_logins_are_throttled_with_retry_after(
    token_agent: tuple[Agent, httpx.AsyncClient],
) -> None:
    _agent, c = token_agent
    codes = [(await login(c, f"guess-{i}")).status_code for i in range(5)]
    assert codes == [401, 401, 401, 401, 429]
    locked = await login(c)  # even the right token waits out the lock-out
    assert locked.status_code == 429 and 55 <= int(locked.headers["retry-after"]) <= 60
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert (await c.get("/api/status", headers=bearer)).status_code == 429


async def test_loopback_agent_allows_tools_but_guards_browsers(tmp_path: Path) -> None:
    agent = Agent(settings_for(tmp_path), collectors=[])
    agent.store.open()
    transport = httpx.ASGITransport(app=create_app(agent))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:9871") as c:
            assert (await c.get("/api/status")).status_code == 200
            assert (await c.post("/logout")).status_code == 200  # a local tool: no browser
            # a browser's POST needs the session's token, and same origin
            origin = {"Origin": "http://127.0.0.1:9871", "Sec-Fetch-Site": "same-origin"}
            assert (await c.post("/logout", headers=origin)).status_code == 403
            page = await c.get("/")
            assert page.status_code == 200 and SESSION_COOKIE in page.cookies
            token = csrf_of(page.text)
            headers = {**origin, "X-CSRF-Token": token}
            assert (await c.post("/logout", headers=headers)).status_code == 200
            page = await c.get("/")
            token = csrf_of(page.text)
            foreign = {"Origin": "http://evil.example", "X-CSRF-Token": token}
            assert (await c.post("/logout", headers=foreign)).status_code == 403
            cross_site = {"Sec-Fetch-Site": "cross-site", "X-CSRF-Token": token}
            assert (await c.post("/logout", headers=cross_site)).status_code == 403
        # DNS rebinding: a foreign name resolving to 127.0.0.1 is refused
        async with httpx.AsyncClient(transport=transport, base_url="http://evil.example") as c:
            refused = await c.get("/api/status")
            assert refused.status_code == 403 and "not allowed" in refused.text
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost:1") as c:
            assert (await c.get("/api/status")).status_code == 200
    finally:
        agent.store.close()


async def test_require_actor_enforces_csrf_and_names_the_actor(tmp_path: Path) -> None:
    agent = Agent(settings_for(tmp_path, host="0.0.0.0", token=TOKEN), collectors=[])
    agent.store.open()
    app: FastAPI = create_app(agent)

    @app.post("/api/test-action")
    async def act(actor: str = Depends(require_actor)) -> dict[str, str]:
        return {"actor": actor}

    transport = httpx.ASGITransport(app=app, client=("192.0.2.9", 1))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://a.example") as c:
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            got = await c.post("/api/test-action", headers=bearer)
            assert got.json() == {"actor": "token:192.0.2.9"}
            await c.post("/login", data={"token": TOKEN})
            token = (await c.get("/api/session")).json()["csrf"]
            assert (await c.post("/api/test-action")).status_code == 403
            got = await c.post("/api/test-action", headers={"X-CSRF-Token": token})
            assert got.json() == {"actor": "dashboard:192.0.2.9"}
    finally:
        agent.store.close()


async def test_websocket_handshakes_need_credentials_and_our_origin() -> None:
    auth = Auth(TOKEN)
    reached: list[str] = []

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        reached.append(str(scope["path"]))

    mw = AuthMiddleware(app, auth)  # type: ignore[arg-type]

    async def handshake(headers: dict[str, str]) -> list[dict[str, object]]:
        sent: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            return {"type": "websocket.connect"}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        scope = {"type": "websocket", "path": "/api/ws", "scheme": "ws", "query_string": b"",
                 "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
                 "client": ("192.0.2.1", 1), "server": ("a.example", 80)}  # fmt: skip
        await mw(scope, receive, send)  # type: ignore[arg-type]
        return sent

    host = {"Host": "a.example"}
    assert await handshake(host) == [{"type": "websocket.close", "code": 1008}]
    bearer = {**host, "Authorization": f"Bearer {TOKEN}"}
    assert await handshake(bearer) == [] and reached == ["/api/ws"]
    cookie, _ = auth.sessions.new("dashboard:192.0.2.1", auth.clock())
    browser = {**host, "Cookie": f"{SESSION_COOKIE}={cookie}", "Origin": "http://a.example"}
    assert await handshake(browser) == [] and len(reached) == 2
    foreign = {**browser, "Origin": "http://evil.example"}
    assert await handshake(foreign) == [{"type": "websocket.close", "code": 1008}]
    assert len(reached) == 2


async def test_session_cookie_is_secure_over_https(tmp_path: Path) -> None:
    agent = Agent(settings_for(tmp_path, host="0.0.0.0", token=TOKEN), collectors=[])
    agent.store.open()
    transport = httpx.ASGITransport(app=create_app(agent))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="https://a.example") as c:
            ok = await c.post(
                "/login", data={"token": TOKEN}, headers={"Origin": "https://a.example"}
            )
            assert ok.status_code == 303 and "Secure" in ok.headers["set-cookie"]
    finally:
        agent.store.close()
