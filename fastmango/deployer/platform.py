"""The one small interface every platform adapter implements, and its value types.

An adapter builds requests and parses answers; one shared ``httpx.AsyncClient`` sends
them with timeouts and retries. The scaler applies decisions and the cost part reads
sizes through this same interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

ReleaseState = Literal["pending", "in_progress", "live", "failed", "superseded", "rolled_back"]


@dataclass(frozen=True)
class Release:
    """One deployed version of the app on a platform."""

    id: str  # the platform's own id (machine image ref, deployment id, revision…)
    version: str  # what a person calls it: v12
    image: str | None
    state: ReleaseState
    created_at: float  # Unix seconds
    message: str = ""


@dataclass(frozen=True)
class Instance:
    """One running (or starting, or stopped) instance of the app."""

    id: str
    state: str  # the platform's word: started, stopped, Running, Pending…
    ready: bool
    region: str | None = None
    size: str | None = None
    version: str | None = None
    started_at: float | None = None


@dataclass(frozen=True)
class Status:
    """Where the app stands now: its live release and its instances."""

    release: Release | None
    desired: int
    ready: int
    instances: tuple[Instance, ...] = field(default_factory=tuple)
    message: str = ""


class Platform(Protocol):
    """deploy → release; status; releases; rollback(to); scale(n); instances."""

    name: str

    async def deploy(self, image: str, *, regions: Sequence[str] = ()) -> Release: ...

    async def status(self) -> Status: ...

    async def releases(self, limit: int = 20) -> list[Release]: ...

    async def rollback(self, to: Release) -> Release: ...

    async def scale(self, replicas: int) -> None: ...

    async def instances(self) -> list[Instance]: ...
