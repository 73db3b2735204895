"""The one small interface every platform adapter implements, and its value types.

An adapter builds requests and parses answers; one shared ``httpx.AsyncClient`` sends
them with timeouts and retries. The scaler applies decisions and the cost part reads
sizes through this same interface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


class Secrets(Protocol):
    """Optional: an adapter that can hand the vault's values to the platform. The deploy
    calls it before the new release is created, so the release runs with them. Values
    never go into a return value, an error, a repr or a log line."""

    async def set_secrets(self, values: Mapping[str, str]) -> None: ...


RolloutState = Literal["in_progress", "live", "failed"]


@dataclass(frozen=True)
class Rollout:
    """One look at a rollout in progress: where it stands and what to show."""

    release: Release
    state: RolloutState
    ready: int = 0
    desired: int = 0
    message: str = ""


@dataclass(frozen=True)
class Target:
    """Where an environment runs, as the adapters need it (built from the settings)."""

    platform: str
    app: str  # Fly app, Railway service id, Render service id, Kubernetes Deployment name
    token: str | None = field(default=None, repr=False)
    api_url: str | None = None
    regions: tuple[str, ...] = ()
    size: str = ""
    project: str = ""  # Railway project id
    environment_id: str = ""  # Railway environment id
    namespace: str = ""  # Kubernetes namespace (default: the kubeconfig's, or "default")
    kubeconfig: str = ""  # Kubernetes: a kubeconfig file; empty = in-cluster service account
    context: str = ""  # Kubernetes: a kubeconfig context; empty = current-context
    container: str = ""  # Kubernetes: the container whose image is deployed (default: first)


class Rollouts(Protocol):
    """What the deploy flow needs beyond :class:`Platform`: one look at a rollout."""

    async def watch(self, release: Release, wait: float) -> Rollout:
        """Poll the rollout of ``release`` once (may block up to ``wait`` seconds on the
        platform's side) and, once it is done, finish it (stop or keep the old version
        warm)."""
        ...

    async def aclose(self) -> None: ...
