"""AWS Signature Version 4 for httpx, verified against AWS's published test vectors.

::

    creds = AwsCredentials.from_token_or_env(target.token)
    client = make_client("ecs", url, auth=SigV4Auth(creds, "us-east-1", "ecs"))

Signs ``host``, ``x-amz-date``, ``x-amz-security-token`` (temporary credentials) and
every ``x-amz-*``/``content-type`` header the request carries, with the SHA-256 of the
body. The secret key never appears in a repr, a log line or an error.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote

import httpx

from fastmango.deployer.errors import DeployError

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class AwsCredentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_token_or_env(
        cls, token: str | None, env: Mapping[str, str] | None = None
    ) -> AwsCredentials:
        """``ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]`` from the environment's
        token, else the standard ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
        ``AWS_SESSION_TOKEN`` variables."""
        if token:
            parts = token.split(":", 2)
            if len(parts) < 2 or not parts[0] or not parts[1]:
                raise DeployError(
                    "the AWS token must be ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]"
                )
            return cls(parts[0], parts[1], parts[2] if len(parts) > 2 else None)
        env = os.environ if env is None else env
        key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        if not key or not secret:
            raise DeployError(
                "no AWS credentials: set the environment's token "
                "(ACCESS_KEY_ID:SECRET_ACCESS_KEY) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        return cls(key, secret, env.get("AWS_SESSION_TOKEN") or None)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def canonical_uri(path: str) -> str:
    """Each path segment URI-encoded once (RFC 3986 unreserved characters kept)."""
    return quote(unquote(path or "/"), safe="/-_.~") or "/"


def canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    enc = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in enc)


def canonical_request(
    method: str, path: str, query: str, headers: Mapping[str, str], payload_hash: str
) -> tuple[str, str]:
    """(canonical request, signed headers) for lower-case ``headers``."""
    names = sorted(headers)
    canon_headers = "".join(f"{n}:{' '.join(headers[n].strip().split())}\n" for n in names)
    signed = ";".join(names)
    text = "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            canon_headers,
            signed,
            payload_hash,
        ]
    )
    return text, signed


def sign(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    payload_hash: str,
    creds: AwsCredentials,
    region: str,
    service: str,
    amz_date: str,
) -> str:
    """The ``Authorization`` header value for a request (headers lower-cased, including
    ``host`` and ``x-amz-date``)."""
    creq, signed = canonical_request(method, path, query, headers, payload_hash)
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    key = signing_key(creds.secret_access_key, date, region, service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"{ALGORITHM} Credential={creds.access_key_id}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )


def amz_date(t: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


class SigV4Auth(httpx.Auth):
    """Signs each request as it is sent (the body is read to hash it)."""

    requires_request_body = True

    def __init__(
        self,
        creds: AwsCredentials,
        region: str,
        service: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.creds = creds
        self.region = region
        self.service = service
        self.clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["x-amz-date"] = amz_date(self.clock())
        if self.creds.session_token:
            request.headers["x-amz-security-token"] = self.creds.session_token
        host = request.url.netloc.decode()
        headers = {"host": host}
        for name, value in request.headers.items():
            n = name.lower()
            if n.startswith("x-amz-") or n == "content-type":
                headers[n] = value
        payload = hashlib.sha256(request.content).hexdigest()
        request.headers["Authorization"] = sign(
            request.method,
            request.url.raw_path.decode().split("?", 1)[0],
            request.url.query.decode(),
            headers,
            payload,
            self.creds,
            self.region,
            self.service,
            headers["x-amz-date"],
        )
        yield request

    def __repr__(self) -> str:
        return f"SigV4Auth(key={self.creds.access_key_id!r}, region={self.region!r}, secret=****)"
