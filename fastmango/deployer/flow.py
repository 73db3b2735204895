"""The platform-independent steps of a deploy or rollback: follow a rollout to a verdict
with a deadline, and pick what to roll back to. No store, no settings: the agent's
``deploys.actions`` wires these to the lock, the audit log and the events."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from fastmango.deployer.errors import NoSuchRelease, RolloutFailed, RolloutTimeout
from fastmango.deployer.platform import Release, Rollout

Progress = Callable[[Rollout, float], None]


async def follow(
    platform: Any,
    release: Release,
    *,
    deadline: float,
    poll: float,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Rollout:
    """Watch ``release`` until it is live (returned), failed (:class:`RolloutFailed`) or
    ``deadline`` seconds passed (:class:`RolloutTimeout`). ``progress(rollout, elapsed)``
    is called after every look."""
    t0 = clock()
    last: Rollout | None = None
    while True:
        left = deadline - (clock() - t0)
        if left <= 0:
            where = f" ({last.message}; {last.ready}/{last.desired} ready)" if last else ""
            err: RolloutTimeout | RolloutFailed = RolloutTimeout(
                f"{(last.release if last else release).version} was not healthy within "
                f"{deadline:g}s{where}"
            )
            err.rollout = last
            raise err
        last = await platform.watch(release, min(left, 30.0))
        if progress is not None:
            progress(last, clock() - t0)
        if last.state == "live":
            return last
        if last.state == "failed":
            err = RolloutFailed(f"{last.release.version} failed: {last.message}")
            err.rollout = last
            raise err
        await platform.client.pause(min(poll, max(0.0, deadline - (clock() - t0))))


def current_release(releases: Sequence[Release]) -> Release | None:
    """The release serving now: the newest live one, else the newest."""
    return next((r for r in releases if r.state == "live"), releases[0] if releases else None)


def pick_target(
    releases: Sequence[Release],
    *,
    version: str | None = None,
    bad_images: Collection[str] = (),
    bad_ids: Collection[str] = (),
) -> tuple[Release, Release | None]:
    """(target, current) of a rollback. With ``version``, that release (it must exist and
    be a different one); else the newest earlier release that once served (superseded),
    runs another image than now, and was never found bad (its image or id)."""
    current = current_release(releases)
    if version is not None:
        wanted = version if version.startswith("v") or not version.isdigit() else f"v{version}"
        match = next((r for r in releases if wanted in (r.version, r.id)), None)
        if match is None:
            known = ", ".join(r.version for r in releases[:10]) or "none"
            raise NoSuchRelease(f"no release {wanted} (known: {known})")
        if current is not None and match.id == current.id and match.version == current.version:
            raise NoSuchRelease(f"{wanted} is the release serving now; nothing to roll back")
        if match.state == "failed":
            raise NoSuchRelease(f"{wanted} never served ({match.state}); pick a healthy release")
        return match, current
    older = releases[releases.index(current) + 1 :] if current in releases else list(releases)
    for r in older:
        if r.state != "superseded":
            continue
        if current is not None and r.image and r.image == current.image:
            continue
        if r.image in bad_images or r.id in bad_ids:
            continue
        return r, current
    raise NoSuchRelease(
        "no earlier healthy release to roll back to"
        + (f" (serving {current.version})" if current else "")
    )
