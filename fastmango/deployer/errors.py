"""Errors of the deployer: what a platform answered, without secrets.

::

    FastmangoError
    └── DeployError              a deploy, rollback or scale could not be done
        ├── PlatformError        the platform refused or failed (status, its message)
        │   ├── PlatformAuthError    401/403: the token is wrong or lacks a scope
        │   ├── PlatformNotFound     404: no such app, service, deployment, release
        │   └── PlatformConflict     409: a lease is held, a resource changed meanwhile
        ├── RolloutFailed        the platform says the new release failed
        ├── RolloutTimeout       not healthy before the deadline
        ├── LockBusy             another deploy, rollback or scale holds the environment
        └── NoSuchRelease        the rollback target does not exist
"""

from __future__ import annotations

from fastmango.errors import FastmangoError
from fastmango.redact import redact_secrets


class DeployError(FastmangoError):
    """A deploy, rollback or scale could not be done."""

    def __init__(self, message: str) -> None:
        super().__init__(redact_secrets(message))


class PlatformError(DeployError):
    """The platform answered with an error (or not at all)."""

    def __init__(
        self,
        platform: str,
        message: str,
        status: int | None = None,
        request: str = "",
        request_id: str | None = None,
    ) -> None:
        self.platform = platform
        self.status = status
        self.request = redact_secrets(request)
        self.request_id = request_id
        where = f" ({self.request})" if request else ""
        code = f" {status}" if status is not None else ""
        rid = f" [request id {request_id}]" if request_id else ""
        super().__init__(f"{platform}{code}{where}: {message}{rid}")


class PlatformAuthError(PlatformError):
    pass


class PlatformNotFound(PlatformError):
    pass


class PlatformConflict(PlatformError):
    pass


class RolloutFailed(DeployError):
    rollout: object = None  # the last look at the rollout (a platform.Rollout)


class RolloutTimeout(DeployError):
    rollout: object = None


class LockBusy(DeployError):
    pass


class NoSuchRelease(DeployError):
    pass


def for_status(status: int) -> type[PlatformError]:
    if status in (401, 403):
        return PlatformAuthError
    if status == 404:
        return PlatformNotFound
    if status == 409:
        return PlatformConflict
    return PlatformError
