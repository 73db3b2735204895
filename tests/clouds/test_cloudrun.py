"""Cloud Run Admin API v2 adapter against its fake over real sockets: deploy → healthy,
failed rollout, rollback to a named revision (a traffic shift), throttling, several
regions, GPU, etag conflicts and the metadata-server token."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from fastmango.deployer import flow
from fastmango.deployer.cloudrun import connect
from fastmango.deployer.errors import DeployError, PlatformAuthError, RolloutFailed
from fastmango.deployer.http import RetryPolicy
from fastmango.deployer.platform import Rollout, Target
from tests.fakes.cloudrun import FakeCloudRun

FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05, max_wait=2.0)
IMAGE = "us-docker.pkg.dev/acme/shop/web:2.0"


def target(fake: FakeCloudRun, **kw: Any) -> Target:
    base: dict[str, Any] = {
        "token": fake.token,
        "api_url": fake.url,
        "project": fake.project,
        "regions": tuple(fake.services),
    }
    base.update(kw)
    return Target("cloudrun", fake.service_id, **base)


@pytest.fixture
def fake() -> Iterator[FakeCloudRun]:
    with FakeCloudRun() as f:
        yield f


@pytest.fixture
async def platform(fake: FakeCloudRun) -> AsyncIterator[Any]:
    p = connect(target(fake), retry=FAST)
    try:
        yield p
    finally:
        await p.aclose()


async def follow(platform: Any, release: Any) -> tuple[Rollout, list[Rollout]]:
    seen: list[Rollout] = []
    done = await flow.follow(
        platform, release, deadline=20, poll=0.01, progress=lambda r, t: seen.append(r)
    )
    return done, seen


async def test_deploy_to_healthy_then_rollback_to_named_version(
    fake: FakeCloudRun, platform: Any
) -> None:
    before = await platform.releases()
    assert [r.version for r in before] == ["v3", "v2", "v1"]
    assert before[0].state == "live" and before[1].state == "superseded"
    release = await platform.deploy(IMAGE)
    assert release.version == "v4" and release.id.startswith("shop-00004-")
    done, seen = await follow(platform, release)
    assert done.state == "live" and done.release.image == IMAGE
    assert len(seen) >= 2 and seen[0].state == "in_progress"  # progressed over polls
    assert fake.image_serving() == IMAGE and fake.serving() == release.id
    # the whole Service went back with its etag, and no output-only field
    patch = json.loads(fake.calls("PATCH")[0].body)
    assert patch["etag"] and "trafficStatuses" not in patch and "uid" not in patch
    assert patch["template"]["revision"] == release.id
    assert fake.calls("GET", "/operations/")  # the long-running operation was polled

    # rollback to v1 by name: a traffic shift, no new revision
    target_rel, _ = flow.pick_target(await platform.releases(), version="v1")
    revisions = len(fake.revisions["us-central1"])
    rb = await platform.rollback(target_rel)
    done, _ = await follow(platform, rb)
    assert done.state == "live" and fake.image_serving() == "us-docker.pkg.dev/acme/shop/web:1.0"
    assert len(fake.revisions["us-central1"]) == revisions
    body = json.loads(fake.calls("PATCH")[-1].body)
    assert body["traffic"] == [
        {
            "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
            "revision": target_rel.id,
            "percent": 100,
        }
    ]
    rels = await platform.releases()
    assert flow.current_release(rels).version == "v1"  # type: ignore[union-attr]
    # a deploy after the rollback sends traffic to the new revision again
    again = await platform.deploy("us-docker.pkg.dev/acme/shop/web:2.1")
    assert (await follow(platform, again))[0].state == "live"
    assert fake.serving() == again.id and again.version == "v5"


async def test_failed_rollout_keeps_the_old_revision_serving(
    fake: FakeCloudRun, platform: Any
) -> None:
    fake.bad_images.add("us-docker.pkg.dev/acme/shop/web:broken")
    serving = fake.serving()
    release = await platform.deploy("us-docker.pkg.dev/acme/shop/web:broken")
    with pytest.raises(RolloutFailed, match="failed to start and listen on the port"):
        await follow(platform, release)
    assert fake.serving() == serving
    rels = await platform.releases()
    assert rels[0].id == release.id and rels[0].state == "failed"
    assert flow.current_release(rels).id == serving  # type: ignore[union-attr]


async def test_throttling_and_5xx_are_retried(fake: FakeCloudRun, platform: Any) -> None:
    fake.throttle(2)
    fake.inject(503, {"error": {"code": 503, "status": "UNAVAILABLE", "message": "try again"}})
    rels = await platform.releases()
    assert rels and platform.client.meter.statuses == {429: 2, 503: 1, 200: 2}
    # a PATCH is not idempotent for 5xx, but a 429 is retried for every method
    fake.throttle(1, method="PATCH")
    release = await platform.deploy(IMAGE)
    assert (await follow(platform, release))[0].state == "live"


async def test_errors_are_clear(fake: FakeCloudRun) -> None:
    bad = connect(target(fake, token="ya29.wrong"), retry=FAST)
    try:
        with pytest.raises(PlatformAuthError, match=r"401 .*UNAUTHENTICATED"):
            await bad.releases()
        assert "ya29.wrong" not in repr(bad) + repr(bad.client)
    finally:
        await bad.aclose()
    other = connect(target(fake, project="someone-else"), retry=FAST)
    try:
        with pytest.raises(PlatformAuthError, match="PERMISSION_DENIED"):
            await other.status()
    finally:
        await other.aclose()
    with pytest.raises(DeployError, match="needs project"):
        connect(Target("cloudrun", "shop", token="x"))


async def test_several_regions_deploy_and_roll_back_together() -> None:
    with FakeCloudRun(locations=("us-west1", "europe-west1")) as fake:
        p = connect(target(fake, regions=("us-west", "eu-west")), retry=FAST)
        try:
            release = await p.deploy(IMAGE)
            done, _ = await follow(p, release)
            assert done.state == "live" and done.desired == 2 and done.ready == 2
            assert fake.serving("us-west1") == fake.serving("europe-west1") == release.id
            old = next(r for r in await p.releases() if r.version == "v2")
            await follow(p, await p.rollback(old))
            assert fake.serving("us-west1") == fake.serving("europe-west1") == old.id
            regions = {i.region for i in await p.instances()}
            assert regions == {"us-west1", "europe-west1"}
        finally:
            await p.aclose()


async def test_scale_is_manual_instance_count(fake: FakeCloudRun, platform: Any) -> None:
    await platform.scale(4)
    running = await platform.instances()
    assert len(running) == 4 and all(i.ready for i in running)
    assert fake.services["us-central1"]["scaling"] == {
        "scalingMode": "MANUAL",
        "manualInstanceCount": 4,
    }
    status = await platform.status()
    assert status.desired == 4 and status.release is not None and status.release.version == "v3"


async def test_gpu_l4_and_refusals(fake: FakeCloudRun) -> None:
    p = connect(target(fake), retry=FAST, gpu="l4")
    try:
        await follow(p, await p.deploy(IMAGE))
        tpl = json.loads(fake.calls("PATCH")[-1].body)["template"]
        assert tpl["nodeSelector"] == {"accelerator": "nvidia-l4"}
        limits = tpl["containers"][0]["resources"]["limits"]
        assert limits == {"nvidia.com/gpu": "1", "cpu": "4", "memory": "16Gi"}
    finally:
        await p.aclose()
    with pytest.raises(DeployError, match="Cloud Run offers the NVIDIA L4"):
        connect(target(fake), gpu="a100")


async def test_stale_etag_is_a_conflict(fake: FakeCloudRun, platform: Any) -> None:
    fake.inject(
        409,
        {
            "error": {
                "code": 409,
                "status": "ABORTED",
                "message": "version was specified but current version is",
            }
        },
        method="PATCH",
    )
    with pytest.raises(DeployError, match=r"409.*ABORTED"):
        await platform.deploy(IMAGE)


async def test_token_from_the_metadata_server(fake: FakeCloudRun, monkeypatch: Any) -> None:
    monkeypatch.setenv("GCE_METADATA_HOST", fake.url.removeprefix("http://"))
    p = connect(target(fake, token=None), retry=FAST)
    try:
        assert len(await p.releases()) == 3
        assert fake.calls("GET", "/computeMetadata/")[0].headers["metadata-flavor"] == "Google"
    finally:
        await p.aclose()
