"""Who may use the agent's HTTP side, and how state-changing requests are protected.

One ASGI middleware (:class:`AuthMiddleware`) decides every request, so no route can
forget it:

* ``/healthz``, ``/static/…`` (the dashboard's public assets), ``/login``, and
  ``/metrics`` with ``server.public_metrics`` are open.
* With ``server.token`` set, a request needs ``Authorization: Bearer <token>`` (API
  clients, Prometheus) or a valid session cookie (the browser, after ``/login``). A GET
  of a dashboard page without either is sent to ``/login``; anything else answers 401.
  Tokens are compared in constant time (:func:`hmac.compare_digest`).
* Without a token the agent binds loopback only (settings validation) and allows every
  request, but only for a loopback ``Host`` header, so a DNS-rebinding page cannot reach
  it through a name of its own.
* Every state-changing request (POST, PUT, PATCH, DELETE) that a browser makes is
  refused when it comes from another site (``Origin``, ``Sec-Fetch-Site``) and must
  carry its session's CSRF token in ``X-CSRF-Token``. Bearer-token requests are exempt:
  a token is no ambient credential a foreign page could make the browser send. Without
  a token, a request with no cookie and no browser headers is a local tool (the CLI).

Sessions live in memory with an expiry (a restart logs everyone out); the cookie holds a
random id (HttpOnly, SameSite=Strict, Secure over https). Failed logins and wrong bearer
tokens are throttled per client address: after 5 in a minute the address is locked out
for a minute, doubling on each further lock-out up to 15 minutes (429, Retry-After).
Logins and logouts are audited (``who = "dashboard:<client address>"``).

State-changing endpoints take ``actor: Annotated[str, Depends(require_actor)]``: it
re-checks the CSRF rule and returns who is acting, for the audit record.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from fastmango.agent import audit
from fastmango.agent.store import Store

log = logging.getLogger("fastmango.auth")

SESSION_COOKIE = "fastmango_session"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
#: security headers of every HTML page the agent serves
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make browsers send Origin: null
    "Cache-Control": "no-store",
}


# -- sessions ------------------------------------------------------------------------
@dataclass
class Session:
    who: str
    csrf: str
    expires: float
    created: float = field(default=0.0)


class Sessions:
    """Browser sessions in memory, keyed by a hash of the cookie's random id."""

    def __init__(self, ttl: float = 12 * 3600, limit: int = 1000) -> None:
        self.ttl = ttl
        self.limit = limit
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    @staticmethod
    def _key(cookie: str) -> str:
        return hashlib.sha256(cookie.encode()).hexdigest()

    def new(self, who: str, now: float) -> tuple[str, Session]:
        """A new session; returns the cookie value (shown to nobody else) and the session."""
        self._expire(now)
        while len(self._by_id) >= self.limit:  # the oldest session goes first
            self._by_id.popitem(last=False)
        cookie = secrets.token_urlsafe(32)
        session = Session(who, secrets.token_urlsafe(32), now + self.ttl, now)
        self._by_id[self._key(cookie)] = session
        return cookie, session

    def get(self, cookie: str | None, now: float) -> Session | None:
        if not cookie or len(cookie) > 100:
            return None
        session = self._by_id.get(self._key(cookie))
        if session is None or session.expires <= now:
            return None
        return session

    def drop(self, cookie: str | None) -> None:
        if cookie:
            self._by_id.pop(self._key(cookie), None)

    def __len__(self) -> int:
        return len(self._by_id)

    def _expire(self, now: float) -> None:
        for key in [k for k, s in self._by_id.items() if s.expires <= now]:
            del self._by_id[key]


# -- throttling ----------------------------------------------------------------------
class Throttle:
    """Failed attempts per client address: ``limit`` in ``window`` seconds lock it out for
    ``base`` seconds, doubling with each further lock-out up to ``cap``."""

    def __init__(
        self, limit: int = 5, window: float = 60.0, base: float = 60.0, cap: float = 900.0
    ) -> None:
        self.limit, self.window, self.base, self.cap = limit, window, base, cap
        self._fails: dict[str, list[float]] = {}
        self._locked: dict[str, tuple[float, int]] = {}  # address → (until, lock-outs)

    def retry_after(self, address: str, now: float) -> float:
        """Seconds ``address`` must wait; 0 when it may try."""
        until, _strikes = self._locked.get(address, (0.0, 0))
        return float(max(0.0, until - now))

    def failure(self, address: str, now: float) -> float:
        """Count a failure; return the lock-out it caused (0 when none)."""
        if len(self._fails) > 10_000:  # bound memory under a spray of addresses
            self._fails.clear()
        recent = [t for t in self._fails.get(address, []) if now - t < self.window]
        recent.append(now)
        if len(recent) < self.limit:
            self._fails[address] = recent
            return 0.0
        self._fails.pop(address, None)
        _until, strikes = self._locked.get(address, (0.0, 0))
        delay = min(self.cap, self.base * 2.0**strikes)
        self._locked[address] = (now + delay, strikes + 1)
        return delay

    def success(self, address: str) -> None:
        self._fails.pop(address, None)
        self._locked.pop(address, None)


# -- the decision --------------------------------------------------------------------
@dataclass(frozen=True)
class Identity:
    """Who makes a request: ``via`` token (bearer), session (cookie) or local (no token
    configured); ``session`` is the cookie's session, if one came."""

    who: str
    via: Literal["token", "session", "local"]
    session: Session | None = None
    cookie: str | None = None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if host_header.count(":") == 1 else host_header


class Auth:
    """The policy: open paths, token, sessions, throttle, CSRF. Kept on ``app.state.auth``."""

    def __init__(
        self,
        token: str | None,
        store: Store | None = None,
        *,
        public_metrics: bool = False,
        bind_host: str = "127.0.0.1",
        clock: Callable[[], float] = time.time,
        sessions: Sessions | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self.token = token.encode() if token else None
        self.store = store
        self.clock = clock
        self.sessions = sessions or Sessions()
        self.throttle = throttle or Throttle()
        self.open_paths = {"/healthz", "/login"} | ({"/metrics"} if public_metrics else set())
        self.open_prefixes = ("/static/",)
        self.local_hosts = LOOPBACK_NAMES | {bind_host.strip("[]")}

    # -- helpers -----------------------------------------------------------------
    def token_matches(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token)

    def audit(self, who: str, action: str, result: str, **details: Any) -> None:
        if self.store is not None:
            audit.record(self.store, who=who, action=action, target="dashboard",
                         result=result, **details)  # fmt: skip

    def is_open(self, path: str) -> bool:
        return path in self.open_paths or path.startswith(self.open_prefixes)

    def new_session(self, request: Request) -> tuple[str, Session]:
        return self.sessions.new(f"dashboard:{_client(request.scope)}", self.clock())

    def set_cookie(self, response: Response, request: Request, cookie: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=int(self.sessions.ttl),
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    # -- the checks ----------------------------------------------------------------
    def identify(self, request: HTTPConnection) -> Identity | Response | None:
        """The caller's identity, a refusal, or None when it has no credentials."""
        now = self.clock()
        address = _client(request.scope)
        given = request.headers.get("authorization")
        if given is not None and self.token is not None:
            wait = self.throttle.retry_after(address, now)
            if wait:
                return _too_many(wait)
            scheme, _, credential = given.partition(" ")
            if scheme.lower() == "bearer" and self.token_matches(credential):
                return Identity(f"token:{address}", "token")
            self.throttle.failure(address, now)
            return _unauthorized("the bearer token is wrong")
        cookie = request.cookies.get(SESSION_COOKIE)
        session = self.sessions.get(cookie, now)
        if session is not None:
            return Identity(session.who, "session", session, cookie)
        if self.token is None:
            return Identity(f"local:{address}", "local")
        return None

    @staticmethod
    def cross_site(request: HTTPConnection) -> str | None:
        """Why a state-changing request is foreign (another origin or site), or None."""
        origin = request.headers.get("origin")
        site = request.headers.get("sec-fetch-site")
        scheme = {"ws": "http", "wss": "https"}.get(request.url.scheme, request.url.scheme)
        own = f"{scheme}://{request.headers.get('host', '')}"
        if origin is not None and origin != own:
            return "cross-origin request refused"
        if site is not None and site not in ("same-origin", "none"):
            return "cross-site request refused"
        return None

    def check_state_change(self, request: HTTPConnection, ident: Identity) -> str | None:
        """Why a state-changing request must be refused, or None when it may pass."""
        if ident.via == "token":
            return None
        foreign = self.cross_site(request)
        if foreign:
            return foreign
        if ident.session is None:
            browser = "origin" in request.headers or "sec-fetch-site" in request.headers
            if not browser:  # a local tool (the CLI) while no token is set
                return None
            return "a session and its CSRF token are required; reload the page"
        given = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(given.encode(), ident.session.csrf.encode()):
            return "missing or wrong X-CSRF-Token"
        return None

    def decide(self, request: HTTPConnection) -> Identity | Response:
        """The caller's identity, or the response that refuses the request. A WebSocket
        handshake needs credentials like any request and must come from our own origin
        (browsers cannot add the CSRF header to it)."""
        path = request.url.path
        method = request.scope.get("method", "WEBSOCKET")
        if self.token is None:
            host = _host_name(request.headers.get("host", ""))
            if host not in self.local_hosts:
                return JSONResponse(
                    {"detail": f"host {host!r} not allowed: without server.token the agent "
                               "answers loopback names only"},
                    status_code=403,
                )  # fmt: skip
        if self.is_open(path):
            foreign = self.cross_site(request) if method in UNSAFE_METHODS else None
            if foreign:  # the login form posts from our own pages only
                return JSONResponse({"detail": foreign}, status_code=403)
            return Identity(f"anonymous:{_client(request.scope)}", "local")
        found = self.identify(request)
        if isinstance(found, Response):
            return found
        if found is None:
            if method in ("GET", "HEAD") and not path.startswith("/api/") and path != "/metrics":
                target = path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
            return _unauthorized("a valid bearer token or session is required")
        if method == "WEBSOCKET":
            foreign = self.cross_site(request)
            if foreign:
                return JSONResponse({"detail": foreign}, status_code=403)
        elif method in UNSAFE_METHODS:
            reason = self.check_state_change(request, found)
            if reason:
                return JSONResponse({"detail": reason}, status_code=403)
        return found


def _unauthorized(detail: str) -> Response:
    return JSONResponse({"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def _too_many(wait: float) -> Response:
    return JSONResponse(
        {"detail": "too many failed attempts from this address; try again later"},
        status_code=429,
        headers={"Retry-After": str(int(wait + 0.999))},
    )


class AuthMiddleware:
    """Pure ASGI, so streamed responses (SSE) pass through untouched."""

    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        http = scope["type"] == "http"
        decision = self.auth.decide(Request(scope) if http else HTTPConnection(scope))
        if isinstance(decision, Response):
            if http:
                await decision(scope, receive, send)
            else:  # closing before accepting: the server answers the handshake with 403
                await send({"type": "websocket.close", "code": 1008})
            return
        scope.setdefault("state", {})["identity"] = decision
        await self.app(scope, receive, send)


def identity_of(request: Request) -> Identity:
    ident = getattr(request.state, "identity", None)
    if not isinstance(ident, Identity):  # the middleware always sets it
        raise HTTPException(401, "not authenticated")
    return ident


def require_actor(request: Request) -> str:
    """Dependency of state-changing endpoints: enforce the CSRF rule, return who acts."""
    ident = identity_of(request)
    auth: Auth = request.app.state.auth
    if ident.who.startswith("anonymous:"):
        raise HTTPException(401, "not authenticated")
    reason = auth.check_state_change(request, ident)
    if reason:
        raise HTTPException(403, reason)
    return ident.who


# -- the login page ------------------------------------------------------------------
LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · fastmango</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/style.css">
</head><body class="login">
<form class="login-card" method="post" action="/login">
  <h1><span class="logo" aria-hidden="true"></span>fastmango</h1>
  <p class="muted">This agent is reachable from the network; sign in with its token
  (<code>server.token</code>, e.g. <code>FASTMANGO_SERVER__TOKEN</code>).</p>
  {message}
  <label for="token">Token</label>
  <input id="token" name="token" type="password" autocomplete="current-password"
         required autofocus maxlength="512">
  <input type="hidden" name="next" value="{next}">
  <button type="submit">Sign in</button>
</form></body></html>
"""


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/"


async def _form(request: Request, limit: int = 8192) -> dict[str, str]:
    """An urlencoded form (the login page's), without python-multipart; 413 past limit."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, "form too large")
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    except ValueError:
        raise HTTPException(400, "too many form fields") from None
    return {k: v[0] for k, v in fields.items()}


def login_page(next_: str, message: str = "", status: int = 200, **headers: str) -> HTMLResponse:
    note = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    body = LOGIN_PAGE.format(message=note, next=html.escape(_safe_next(next_)))
    return HTMLResponse(body, status_code=status, headers={**PAGE_HEADERS, **headers})


def install(
    app: FastAPI,
    token: str | None,
    store: Store | None,
    *,
    public_metrics: bool = False,
    bind_host: str = "127.0.0.1",
    clock: Callable[[], float] = time.time,
) -> Auth:
    """Add the middleware and the ``/login``, ``/logout`` and ``/api/session`` routes."""
    auth = Auth(token, store, public_metrics=public_metrics, bind_host=bind_host, clock=clock)
    app.state.auth = auth
    app.add_middleware(AuthMiddleware, auth=auth)

    @app.get("/login", include_in_schema=False)
    async def login_form(request: Request, next: str = "/") -> Response:
        if auth.token is None:
            return RedirectResponse(_safe_next(next), status_code=303)
        return login_page(next)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await _form(request)
        token, next = form.get("token", ""), form.get("next", "/")
        if auth.token is None:
            return RedirectResponse(_safe_next(next), status_code=303)
        address = _client(request.scope)
        who = f"dashboard:{address}"
        now = auth.clock()
        wait = auth.throttle.retry_after(address, now)
        if wait:
            return login_page(next, f"Too many failed attempts; try again in {wait:.0f} s.",
                              429, **{"Retry-After": str(int(wait + 0.999))})  # fmt: skip
        if not auth.token_matches(token):
            locked = auth.throttle.failure(address, now)
            auth.audit(who, "login", "failure", reason="wrong token")
            if locked:
                log.warning("%s: %s failed logins, locked out for %.0f s", address,
                            auth.throttle.limit, locked)  # fmt: skip
                return login_page(next, f"Too many failed attempts; try again in {locked:.0f} s.",
                                  429, **{"Retry-After": str(int(locked))})  # fmt: skip
            return login_page(next, "That token is not right.", 401)
        auth.throttle.success(address)
        old = request.cookies.get(SESSION_COOKIE)
        auth.sessions.drop(old)  # a fresh id at each login (no session fixation)
        cookie, _session = auth.sessions.new(who, now)
        auth.audit(who, "login", "success")
        response = RedirectResponse(_safe_next(next), status_code=303)
        auth.set_cookie(response, request, cookie)
        return response

    @app.post("/logout", summary="End the browser session (needs X-CSRF-Token)")
    async def logout(request: Request) -> Response:
        ident = identity_of(request)
        who = require_actor(request)
        auth.sessions.drop(ident.cookie)
        auth.audit(who, "logout", "success")
        response = JSONResponse({"logged_out": True, "login": auth.token is not None})
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @app.get("/api/session", summary="Who is signed in, and the CSRF token of the session")
    async def session(request: Request) -> Response:
        ident = identity_of(request)
        session, cookie = browser_session(request)
        out: dict[str, Any] = {"who": ident.who, "via": ident.via,
                               "login_required": auth.token is not None}  # fmt: skip
        if session is not None:
            out.update(csrf=session.csrf, expires=session.expires)
        response = JSONResponse(out, headers={"Cache-Control": "no-store"})
        if cookie is not None:
            auth.set_cookie(response, request, cookie)
        return response

    return auth


def browser_session(request: Request) -> tuple[Session | None, str | None]:
    """The page's session, making one for a browser when no token is set; returns it and
    a new cookie to set (None when the request already had one)."""
    auth: Auth = request.app.state.auth
    ident = identity_of(request)
    if ident.session is not None:
        return ident.session, None
    if ident.via == "local":
        cookie, session = auth.new_session(request)
        return session, cookie
    return None, None
