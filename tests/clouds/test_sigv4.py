"""SigV4 against AWS's published test vectors (aws-sig-v4-test-suite, and the IAM
ListUsers example of the signing documentation)."""

from __future__ import annotations

import httpx
import pytest

from fastmango.deployer.errors import DeployError
from fastmango.deployer.sigv4 import (
    EMPTY_SHA256,
    AwsCredentials,
    SigV4Auth,
    sign,
    signing_key,
)

CREDS = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
DATE = "20150830T123600Z"
SUITE = {"host": "example.amazonaws.com", "x-amz-date": DATE}


@pytest.mark.parametrize(
    ("name", "method", "path", "query", "signature"),
    [
        (
            "get-vanilla",
            "GET",
            "/",
            "",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        (
            "get-vanilla-query-order-key-case",
            "GET",
            "/",
            "Param2=value2&Param1=value1",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        (
            "post-vanilla",
            "POST",
            "/",
            "",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
        (
            "get-utf8",
            "GET",
            "/\u1234",
            "",
            "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
        ),
    ],
)
def test_aws_test_suite(name: str, method: str, path: str, query: str, signature: str) -> None:
    auth = sign(method, path, query, SUITE, EMPTY_SHA256, CREDS, "us-east-1", "service", DATE)
    assert auth == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}"
    ), name


def test_derived_signing_keys() -> None:
    key = signing_key(CREDS.secret_access_key, "20150830", "us-east-1", "service")
    assert key.hex() == "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75"
    key = signing_key(CREDS.secret_access_key, "20150830", "us-east-1", "iam")
    assert key.hex() == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"


def test_iam_list_users_example() -> None:
    headers = {
        "host": "iam.amazonaws.com",
        "x-amz-date": DATE,
        "content-type": "application/x-www-form-urlencoded; charset=utf-8",
    }
    auth = sign(
        "GET",
        "/",
        "Action=ListUsers&Version=2010-05-08",
        headers,
        EMPTY_SHA256,
        CREDS,
        "us-east-1",
        "iam",
        DATE,
    )
    assert auth.endswith(
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    )


def test_httpx_auth_signs_what_it_sends() -> None:
    """The httpx Auth, with the clock fixed at the vector's time, gives the vector."""
    auth = SigV4Auth(CREDS, "us-east-1", "service", clock=lambda: 1440938160.0)
    request = httpx.Request("GET", "https://example.amazonaws.com/")
    flow = auth.sync_auth_flow(request)
    signed = next(flow)
    assert signed.headers["x-amz-date"] == DATE
    assert signed.headers["authorization"].endswith(
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )
    session = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnSECRET", "FQoGZXIvYXdzE-session")
    signed = next(
        SigV4Auth(session, "us-east-1", "ecs").sync_auth_flow(
            httpx.Request("POST", "https://ecs.us-east-1.amazonaws.com/", content=b"{}")
        )
    )
    assert signed.headers["x-amz-security-token"] == "FQoGZXIvYXdzE-session"
    assert "x-amz-security-token" in signed.headers["authorization"]
    shown = repr(session) + repr(SigV4Auth(session, "r", "s"))
    assert "wJalrXUtnSECRET" not in shown and "FQoGZXIvYXdzE" not in shown


def test_credentials_from_token_or_environment() -> None:
    assert AwsCredentials.from_token_or_env("AK:SK:TOK") == AwsCredentials("AK", "SK", "TOK")
    env = {"AWS_ACCESS_KEY_ID": "AK2", "AWS_SECRET_ACCESS_KEY": "SK2"}
    assert AwsCredentials.from_token_or_env(None, env) == AwsCredentials("AK2", "SK2")
    with pytest.raises(DeployError, match="ACCESS_KEY_ID:SECRET_ACCESS_KEY"):
        AwsCredentials.from_token_or_env("just-a-key")
    with pytest.raises(DeployError, match="no AWS credentials"):
        AwsCredentials.from_token_or_env(None, {})
