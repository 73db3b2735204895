"""Deploy, rollback and scale as whole actions: the environment's lock, the adapter, the
``release``/``replicas`` events and one audit record on every path.

Both the CLI (``fastmango deploy/rollback``) and the agent (the health gate, the
dashboard's rollback button, the scaler's apply step) call these, so the same lock (in
``<state_dir>/deploys.db``) keeps them from overlapping across processes.

``store`` is the agent's open :class:`~fastmango.agent.store.Store`, or None in a CLI
process: then a store on ``settings.store_path`` is opened just to write the records.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastmango.agent import audit
from fastmango.agent.deploys.lock import EnvLock
from fastmango.agent.settings import Settings
from fastmango.agent.store import Store
from fastmango.deployer import flow
from fastmango.deployer.errors import DeployError
from fastmango.deployer.platform import Release, Rollout, Target
from fastmango.deployer.platforms import connect
from fastmango.redact import redact_secrets

Progress = Callable[[Rollout, float], None]


@dataclass
class Outcome:
    """What an action did, for the caller to print and the benchmark to time."""

    action: str
    env: str
    platform: str
    result: str = "error"  # ok, failed (the platform said no), error (we could not ask)
    from_version: str | None = None
    to_version: str | None = None
    image: str | None = None
    release_id: str | None = None
    message: str = ""
    duration: float = 0.0
    platform_seconds: float = 0.0  # waiting on the platform: requests, backoff, polls
    requests: int = 0
    replicas: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def lock_path(settings: Settings) -> Path:
    return settings.state_dir / "deploys.db"


def target_of(settings: Settings, env: str) -> Target:
    """The adapter's view of environment ``env``; a clear error when it is not set up."""
    e = settings.environments.get(env)
    if e is None:
        known = ", ".join(sorted(settings.environments)) or "none"
        raise DeployError(
            f"no environment {env!r} in the settings ([environments.{env}]); known: {known}"
        )
    if e.platform == "none":
        raise DeployError(
            f"environments.{env}.platform is not set (fly, railway, render, kubernetes)"
        )
    if not e.app:
        raise DeployError(f"environments.{env}.app is not set (the app/service/deployment)")
    return Target(
        platform=e.platform,
        app=e.app,
        token=e.token.get_secret_value() if e.token is not None else None,
        api_url=e.api_url,
        regions=tuple(e.regions),
        size=e.size,
        project=e.project,
        environment_id=e.environment_id,
        namespace=e.namespace,
        kubeconfig=str(e.kubeconfig) if e.kubeconfig else "",
        context=e.context,
        container=e.container,
    )


@contextlib.contextmanager
def _writer(settings: Settings, store: Store | None) -> Iterator[Store]:
    if store is not None:
        yield store
        return
    own = Store(settings.store_path)
    own.open()
    try:
        yield own
    finally:
        own.flush()
        own.close()


def vault_values(settings: Settings, env: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The secrets ``env`` gets from ``<state_dir>/secrets.json`` (none without a vault) and
    their names and fingerprints (as ``fastmango secrets list`` shows them, never values)
    for the audit record. A vault without its master key is a :class:`DeployError` before
    anything changes."""
    path = settings.state_dir / "secrets.json"
    if not path.exists():
        return {}, []
    import json
    import os

    from fastmango.agent.secrets import ALL, SecretsError, Vault, master_key_text

    try:
        scopes = json.loads(path.read_text()).get("secrets") or {}
    except (OSError, ValueError, AttributeError):
        scopes = {ALL: True}  # let the vault itself say what is wrong with the file
    if not scopes.get(env) and not scopes.get(ALL):
        return {}, []  # nothing for this environment: no key needed
    try:
        vault = Vault(path, master_key_text(os.environ, path))
        values = vault.resolved(env)
    except SecretsError as exc:
        raise DeployError(f"cannot push the secrets of {env!r} from {path}: {exc}") from None
    prints = [{"name": k, "fingerprint": vault.fingerprint(v)} for k, v in sorted(values.items())]
    return values, prints


async def push_secrets(platform: Any, values: dict[str, str]) -> None:
    """Hand ``values`` to the adapter's ``set_secrets`` (a clear error if it has none)."""
    setter = getattr(platform, "set_secrets", None)
    if setter is None:
        raise DeployError(f"the {platform.name} adapter cannot push secrets")
    await setter(values)


def _bad_releases(store: Store | None, settings: Settings, env: str) -> tuple[set[str], set[str]]:
    """Images and release ids this environment found bad (failed, rolled back)."""
    reader = store or Store(settings.store_path)
    if store is None and not settings.store_path.exists():
        return set(), set()
    images, ids = set(), set()
    for ev in reader.events("release", limit=500):
        d = ev["data"]
        if d.get("env") == env and d.get("state") in ("failed", "rolled_back"):
            if d.get("image"):
                images.add(d["image"])
            if d.get("release_id"):
                ids.add(d["release_id"])
    return images, ids


def _record(
    settings: Settings,
    store: Store | None,
    out: Outcome,
    who: str,
    reason: str,
    release_events: list[dict[str, Any]],
) -> None:
    with _writer(settings, store) as st:
        for ev in release_events:
            st.append_event("release", ev)
        if out.replicas is not None and out.result == "ok":
            size = settings.environments[out.env].size if out.env in settings.environments else ""
            st.append_event(
                "replicas",
                {
                    "env": out.env,
                    "platform": out.platform,
                    "replicas": out.replicas,
                    "size": size,
                    "source": out.action,
                },
            )
        audit.record(
            st,
            who=who,
            action=out.action,
            target=out.env,
            result=out.result,
            reason=reason or out.message,
            platform=out.platform,
            **{"from": out.from_version, "to": out.to_version},
            image=out.image,
            duration_seconds=round(out.duration, 3),
            message=redact_secrets(out.message),
            **({"secrets": out.extra["secrets"]} if "secrets" in out.extra else {}),
        )


def _release_event(out: Outcome, who: str, state: str, **more: Any) -> dict[str, Any]:
    return {
        "env": out.env,
        "platform": out.platform,
        "version": out.to_version,
        "release_id": out.release_id,
        "image": out.image,
        "state": state,
        "who": who,
        "previous": out.from_version,
        "duration_seconds": round(out.duration, 3),
        "action": out.action,
        **more,
    }


@contextlib.asynccontextmanager
async def _action(
    settings: Settings,
    store: Store | None,
    out: Outcome,
    who: str,
    reason: str,
    events: list[dict[str, Any]],
    client_options: dict[str, Any] | None,
    started: Callable[[], bool],
) -> AsyncIterator[Any]:
    """The frame of every action (DESIGN 9): the environment's lock, one adapter, and on
    every path — success, refusal, exception — the outcome's times and one audit record
    with the events. ``started()``: whether the platform took the action, so an error
    after it reads ``failed`` (the platform said no) rather than ``error``."""
    t0 = time.monotonic()
    platform: Any = None
    try:
        async with EnvLock(
            lock_path(settings),
            out.env,
            action=out.action,
            who=who,
            ttl=settings.deploy.lock_ttl,
            wait=settings.deploy.lock_wait,
        ).hold():
            platform = connect(target_of(settings, out.env), **(client_options or {}))
            yield platform
    except DeployError as exc:
        if out.result != "failed":
            out.result, out.message = ("failed" if started() else "error"), str(exc)
        raise
    except Exception as exc:
        out.result, out.message = "error", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        out.duration = time.monotonic() - t0
        if platform is not None:
            out.platform_seconds = platform.client.meter.waited
            out.requests = platform.client.meter.requests
            await platform.aclose()
        _record(settings, store, out, who, reason, events)


async def _follow(
    settings: Settings,
    platform: Any,
    release: Release,
    out: Outcome,
    who: str,
    events: list[dict[str, Any]],
    progress: Progress | None,
    t0: float,
    **more: Any,
) -> Rollout:
    """Wait for ``release`` to roll out (or the deadline); a failed rollout is recorded in
    ``out`` and as a ``failed`` release event before the error goes on."""
    out.to_version, out.release_id = release.version, release.id
    try:
        return await flow.follow(
            platform,
            release,
            deadline=settings.deploy.deadline,
            poll=settings.deploy.poll_interval,
            progress=progress,
        )
    except DeployError as exc:
        out.result, out.message = "failed", str(exc)
        out.duration = time.monotonic() - t0
        last = getattr(exc, "rollout", None)
        if isinstance(last, Rollout):
            out.to_version, out.release_id = last.release.version, last.release.id
        events.append(_release_event(out, who, "failed", **more))
        raise


async def deploy(
    settings: Settings,
    env: str,
    image: str,
    *,
    who: str,
    regions: tuple[str, ...] = (),
    store: Store | None = None,
    progress: Progress | None = None,
    reason: str = "",
    client_options: dict[str, Any] | None = None,
) -> Outcome:
    """Deploy ``image`` to ``env`` and wait until it is healthy or the deadline passes."""
    t0 = time.monotonic()
    target = target_of(settings, env)
    out = Outcome("deploy", env, target.platform, image=image or None)
    events: list[dict[str, Any]] = []
    async with _action(settings, store, out, who, reason, events, client_options,
                       lambda: out.release_id is not None) as platform:  # fmt: skip
        secrets, prints = vault_values(settings, env)  # no key: stops before any change
        releases = await platform.releases(limit=10)
        current = flow.current_release(releases)
        out.from_version = current.version if current else None
        previous_image = current.image if current else None
        if secrets:
            await push_secrets(platform, secrets)
            out.extra["secrets"] = prints
        release = await platform.deploy(image, regions=regions or target.regions)
        done = await _follow(settings, platform, release, out, who, events, progress, t0)
        out.to_version, out.release_id = done.release.version, done.release.id
        out.image = done.release.image or image
        out.replicas = done.desired or None
        out.result, out.message = "ok", done.message
        out.duration = time.monotonic() - t0
        events.append(
            _release_event(
                out,
                who,
                "live",
                previous_image=previous_image,
                previous_id=current.id if current else None,
                started=time.time() - out.duration,
            )
        )
    return out


async def rollback(
    settings: Settings,
    env: str,
    *,
    who: str,
    version: str | None = None,
    reason: str = "",
    store: Store | None = None,
    progress: Progress | None = None,
    bad_release: dict[str, Any] | None = None,
    client_options: dict[str, Any] | None = None,
) -> Outcome:
    """Roll ``env`` back to ``version`` or to the previous healthy release; never rebuilds.
    ``bad_release`` (the health gate's) is marked ``rolled_back`` in the history."""
    t0 = time.monotonic()
    target = target_of(settings, env)
    out = Outcome("rollback", env, target.platform)
    events: list[dict[str, Any]] = []
    async with _action(settings, store, out, who, reason, events, client_options,
                       lambda: out.release_id is not None) as platform:  # fmt: skip
        releases = await platform.releases(limit=50)
        bad_images, bad_ids = _bad_releases(store, settings, env)
        if bad_release is not None:
            bad_images.add(bad_release.get("image") or "")
            bad_ids.add(bad_release.get("release_id") or "")
        to, current = flow.pick_target(
            releases, version=version, bad_images=bad_images, bad_ids=bad_ids
        )
        out.from_version = current.version if current else None
        out.image = to.image
        out.extra["target"] = to.version
        if current is not None and bad_release is None and version is None:
            bad_release = {
                "version": current.version,
                "release_id": current.id,
                "image": current.image,
            }
        release = await platform.rollback(to)
        done = await _follow(settings, platform, release, out, who, events, progress, t0,
                             rollback_to=to.version)  # fmt: skip
        out.to_version, out.release_id = done.release.version, done.release.id
        out.replicas = done.desired or None
        out.result = "ok"
        out.message = f"rolled back to {to.version} ({to.image}): {done.message}"
        out.duration = time.monotonic() - t0
        if bad_release is not None:
            events.append(
                {
                    "env": env,
                    "platform": target.platform,
                    "version": bad_release.get("version"),
                    "release_id": bad_release.get("release_id"),
                    "image": bad_release.get("image"),
                    "state": "rolled_back",
                    "who": who,
                    "previous": None,
                    "duration_seconds": None,
                    "action": "rollback",
                    "reason": reason,
                }
            )
        events.append(_release_event(out, who, "live", rollback_to=to.version, reason=reason))
    return out


async def apply_scale(
    store_or_state_dir: Store | Path | None,
    settings: Settings,
    env: str,
    replicas: int,
    who: str,
    reason: str = "",
    client_options: dict[str, Any] | None = None,
) -> Outcome:
    """The scaler's apply step (and ``fastmango scale``): set ``env``'s instance count
    under the environment's lock, then write the ``replicas`` event and the audit record.

    ``store_or_state_dir``: the agent's open store, or a state folder (CLI), or None for
    ``settings.state_dir``. Raises :class:`~fastmango.deployer.errors.DeployError`
    (``LockBusy`` while a deploy runs) after recording the failure.
    """
    store = store_or_state_dir if isinstance(store_or_state_dir, Store) else None
    if isinstance(store_or_state_dir, Path):
        settings = settings.model_copy(update={"state_dir": store_or_state_dir})
    target = target_of(settings, env)
    out = Outcome("scale", env, target.platform, to_version=str(replicas))
    async with _action(settings, store, out, who, reason, [], client_options,
                       lambda: out.from_version is not None) as platform:  # fmt: skip
        try:
            before = len([i for i in await platform.instances() if "standby" not in i.state])
            out.from_version = str(before)
        except DeployError:
            pass
        await platform.scale(replicas)
        out.result, out.replicas = "ok", replicas
        out.message = f"{out.from_version or '?'} → {replicas} instances"
    return out


def history(
    settings: Settings, env: str | None = None, store: Store | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The ``release`` events (newest first), of one environment or all."""
    if store is None:
        if not settings.store_path.exists():
            return []
        store = Store(settings.store_path)
    rows = []
    for ev in store.events("release", limit=2000):
        if env is None or ev["data"].get("env") == env:
            rows.append({"ts": ev["ts"], **ev["data"]})
            if len(rows) >= limit:
                break
    return rows
