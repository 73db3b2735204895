"""ECS on Fargate adapter against its fake over real sockets, every request SigV4-signed
and checked: deploy → healthy, a failing deployment stopped by the circuit breaker (ECS
rolls back by itself), rollback to a named task definition revision, throttling answered
as HTTP 400 ThrottlingException, scale and tasks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from fastmango.deployer import flow
from fastmango.deployer.ecs import connect
from fastmango.deployer.errors import (
    DeployError,
    NoSuchRelease,
    PlatformAuthError,
    PlatformError,
    RolloutFailed,
)
from fastmango.deployer.http import RetryPolicy
from fastmango.deployer.platform import Release, Rollout, Target
from tests.fakes.ecs import FakeEcs

FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05, max_wait=2.0)
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:2.0"


def target(fake: FakeEcs, **kw: Any) -> Target:
    base: dict[str, Any] = {
        "token": f"{fake.key_id}:{fake.secret}",
        "api_url": fake.url,
        "regions": (fake.region,),
    }
    base.update(kw)
    return Target("ecs", f"{fake.cluster}/{fake.service_name}", **base)


@pytest.fixture
def fake() -> Iterator[FakeEcs]:
    with FakeEcs() as f:
        yield f


@pytest.fixture
async def platform(fake: FakeEcs) -> AsyncIterator[Any]:
    p = connect(target(fake), retry=FAST)
    try:
        yield p
    finally:
        await p.aclose()


async def follow(platform: Any, release: Release) -> tuple[Rollout, list[Rollout]]:
    seen: list[Rollout] = []
    done = await flow.follow(
        platform, release, deadline=20, poll=0.01, progress=lambda r, t: seen.append(r)
    )
    return done, seen


async def test_deploy_to_healthy_then_rollback_to_named_revision(
    fake: FakeEcs, platform: Any
) -> None:
    before = await platform.releases()
    assert [r.version for r in before] == ["v3", "v2", "v1"]
    assert before[0].state == "live" and before[1].state == "superseded"
    release = await platform.deploy(IMAGE)
    assert release.version == "v4" and release.id.endswith("task-definition/shop-web:4")
    done, seen = await follow(platform, release)
    assert done.state == "live" and done.ready == 2 == done.desired
    assert len(seen) >= 2 and seen[0].state == "in_progress"
    assert fake.serving_image() == IMAGE
    # the new revision kept everything but the image, and the breaker is on
    td = fake.taskdefs[-1]
    assert td["containerDefinitions"][1]["name"] == "fastmango-agent"
    assert td["executionRoleArn"].endswith("role/ecsTaskExecution")
    breaker = fake.svc["deploymentConfiguration"]["deploymentCircuitBreaker"]
    assert breaker == {"enable": True, "rollback": True}

    rels = await platform.releases()
    target_rel, _ = flow.pick_target(rels, version="v2")
    rb = await platform.rollback(target_rel)
    done, _ = await follow(platform, rb)
    assert done.state == "live" and fake.serving_image().endswith("shop:1.1")
    assert len(fake.taskdefs) == 4  # nothing registered, nothing rebuilt
    assert flow.current_release(await platform.releases()).version == "v2"  # type: ignore[union-attr]


async def test_circuit_breaker_fails_the_rollout_and_ecs_rolls_back(
    fake: FakeEcs, platform: Any
) -> None:
    fake.bad_images.add(IMAGE)
    release = await platform.deploy(IMAGE)
    with pytest.raises(RolloutFailed, match=r"circuit breaker.*3 tasks failed.*rolls back to v3"):
        await follow(platform, release)
    # ECS' own rollback brings v3 back
    rels = await platform.releases()
    assert rels[0].version == "v4" and rels[0].state == "failed"
    back = next(r for r in rels if r.version == "v3")
    done, _ = await follow(platform, back)
    assert done.state == "live" and fake.serving_image().endswith("shop:1.2")


async def test_throttling_is_http_400_and_retried(fake: FakeEcs, platform: Any) -> None:
    fake.throttle(2)  # 400 ThrottlingException, twice
    rels = await platform.releases()
    assert rels and platform.client.meter.statuses[400] == 2
    # also for UpdateService (not idempotent, but a throttled call was never done)
    fake.throttle(1, **{})
    release = await platform.deploy(IMAGE)
    assert (await follow(platform, release))[0].state == "live"
    assert platform.client.meter.retries == 3
    # a 400 that is no throttling is not retried, and says what AWS said
    fake.inject(400, {"__type": "InvalidParameterException", "message": "bad count"})
    with pytest.raises(PlatformError, match=r"400 .*InvalidParameterException: bad count"):
        await platform.scale(2)
    assert platform.client.meter.retries == 3


async def test_signature_is_checked(fake: FakeEcs) -> None:
    wrong = connect(target(fake, token=f"{fake.key_id}:not-the-secret"), retry=FAST)
    try:
        with pytest.raises(PlatformAuthError, match=r"403 .*InvalidSignatureException"):
            await wrong.status()
        assert "not-the-secret" not in repr(wrong) + repr(wrong.client.auth)
    finally:
        await wrong.aclose()
    stranger = connect(target(fake, token="AKIAUNKNOWN:secret"), retry=FAST)
    try:
        with pytest.raises(PlatformError, match="UnrecognizedClientException"):
            await stranger.status()
    finally:
        await stranger.aclose()
    seen = fake.seen[0]
    assert seen.headers["x-amz-target"].startswith("AmazonEC2ContainerServiceV20141113.")
    assert seen.headers["content-type"] == "application/x-amz-json-1.1"


async def test_scale_instances_and_status(fake: FakeEcs, platform: Any) -> None:
    await platform.scale(4)
    tasks = await platform.instances()
    assert len(tasks) == 4 and all(t.ready and t.version == "v3" for t in tasks)
    status = await platform.status()
    assert status.desired == 4 and status.ready == 4 and status.release.version == "v3"  # type: ignore[union-attr]
    listed = [
        json.loads(s.body) for s in fake.seen if s.headers["x-amz-target"].endswith(".ListTasks")
    ]
    assert listed[-1] == {"cluster": "prod", "serviceName": "shop"}


async def test_refusals(fake: FakeEcs, platform: Any) -> None:
    with pytest.raises(DeployError, match="Fargate has no GPUs"):
        connect(target(fake), gpu="t4")
    with pytest.raises(DeployError, match="one region"):
        connect(target(fake, regions=("us-east-1", "eu-west-1")))
    gone = Release(
        "arn:aws:ecs:us-east-1:123456789012:task-definition/shop-web:99",
        "v99",
        None,
        "superseded",
        0.0,
    )
    with pytest.raises(NoSuchRelease, match="cannot be used"):
        await platform.rollback(gone)
    missing = connect(
        target(fake).__class__("ecs", "prod/nope", token=target(fake).token, api_url=fake.url),
        retry=FAST,
    )
    try:
        with pytest.raises(PlatformError, match="no service 'nope' in cluster 'prod'"):
            await missing.releases()
    finally:
        await missing.aclose()
