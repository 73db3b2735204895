"""Each adapter against its platform's fake over real sockets: deploy, rollouts that
progress over polls, failed rollouts, releases, rollback, scale, instances, and each
platform's own error shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fastmango.deployer import flow
from fastmango.deployer.errors import (
    NoSuchRelease,
    PlatformAuthError,
    PlatformConflict,
    PlatformNotFound,
    RolloutFailed,
)
from fastmango.deployer.http import RetryPolicy
from fastmango.deployer.platform import Rollout, Target
from fastmango.deployer.platforms import connect
from tests.deployer.conftest import TOKENS
from tests.fakes.fly import FakeFly
from tests.fakes.kubernetes import FakeKubernetes
from tests.fakes.railway import FakeRailway
from tests.fakes.render import FakeRender

FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05, max_wait=2.0)
FAKES = {"fly": FakeFly, "railway": FakeRailway, "render": FakeRender, "kubernetes": FakeKubernetes}


def target_for(fake: Any, tmp: Path, **kw: Any) -> Target:
    if fake.name == "fly":
        return Target("fly", fake.app_name, token=TOKENS["fly"], api_url=fake.url, **kw)
    if fake.name == "railway":
        return Target(
            "railway",
            fake.service,
            token=TOKENS["railway"],
            api_url=fake.url + "/graphql/v2",
            environment_id=fake.environment,
            **kw,
        )
    if fake.name == "render":
        return Target(
            "render", fake.service, token=TOKENS["render"], api_url=fake.url + "/v1", **kw
        )
    kc = tmp / "kubeconfig"
    kc.write_text(fake.kubeconfig())
    return Target("kubernetes", fake.dep_name, kubeconfig=str(kc), **kw)


@pytest.fixture(params=list(FAKES))
async def pair(request: Any, tmp_path: Path) -> AsyncIterator[tuple[Any, Any]]:
    fake = FAKES[request.param]()
    fake.start()
    platform = connect(target_for(fake, tmp_path), retry=FAST)
    try:
        yield fake, platform
    finally:
        await platform.aclose()
        fake.stop()


async def follow(platform: Any, release: Any) -> tuple[Rollout, list[Rollout]]:
    seen: list[Rollout] = []
    done = await flow.follow(
        platform, release, deadline=20, poll=0.01, progress=lambda r, t: seen.append(r)
    )
    return done, seen


async def test_deploy_rollback_scale(pair: tuple[Any, Any]) -> None:
    fake, platform = pair
    before = await platform.releases(limit=10)
    current = flow.current_release(before)
    assert current is not None and current.state == "live" and current.image
    image = "registry.example.com/shop:2.0"
    release = await platform.deploy(image)
    done, seen = await follow(platform, release)
    assert done.state == "live" and done.release.image == image
    if fake.name != "fly":  # Fly waits on its side (/wait) instead of polling
        assert len(seen) >= 3 and seen[0].state == "in_progress"  # progressed over polls
    after = await platform.releases(limit=10)
    assert after[0].image == image and after[0].state == "live"
    assert after[0].version != current.version

    # rollback to the release that served before: no rebuild, its image comes back
    target, now = flow.pick_target(after)
    assert target.image == current.image and now is not None and now.image == image
    rb = await platform.rollback(target)
    done, _ = await follow(platform, rb)
    assert done.state == "live" and done.release.image == current.image
    assert flow.current_release(await platform.releases(limit=10)).image == current.image  # type: ignore[union-attr]

    await platform.scale(4)
    running = [i for i in await platform.instances() if "standby" not in i.state]
    assert len(running) == 4


async def test_failed_rollout(pair: tuple[Any, Any]) -> None:
    fake, platform = pair
    fake.bad_images.add("registry.example.com/shop:broken")
    release = await platform.deploy("registry.example.com/shop:broken")
    with pytest.raises(RolloutFailed) as info:
        await follow(platform, release)
    assert "failed" in str(info.value)
    # the old version still serves
    live = flow.current_release(await platform.releases(limit=10))
    assert live is not None and live.image != "registry.example.com/shop:broken"


async def test_throttled_and_5xx_answers_are_retried(pair: tuple[Any, Any]) -> None:
    fake, platform = pair
    fake.throttle(1, retry_after=1)
    fake.inject(503, {"error": "upstream unavailable"}, times=1)
    rels = await platform.releases(limit=5)  # GraphQL queries (POST) are marked safe
    assert rels and platform.client.meter.statuses.get(429) == 1
    assert platform.client.meter.statuses.get(503) == 1
    assert platform.client.meter.retries == 2


async def test_render_cursor_pagination(tmp_path: Path) -> None:
    with FakeRender(history=230) as fake:
        platform = connect(target_for(fake, tmp_path), retry=FAST)
        try:
            rels = await platform.releases(limit=300)
        finally:
            await platform.aclose()
    assert len(rels) == 230 and rels[0].version == "v230" and rels[-1].version == "v1"
    cursors = [s.query for s in fake.calls("GET", "/deploys") if "cursor=" in s.query]
    assert len(cursors) == 2  # three pages of at most 100
    assert all("limit=100" in s.query for s in fake.calls("GET", "/deploys"))


async def test_render_errors(tmp_path: Path) -> None:
    with FakeRender() as fake:
        t = target_for(fake, tmp_path)
        bad = connect(Target("render", "srv-nope", token=t.token, api_url=t.api_url), retry=FAST)
        wrong = connect(Target("render", t.app, token="rnd_wrong", api_url=t.api_url), retry=FAST)
        try:
            with pytest.raises(PlatformNotFound, match="service not found"):
                await bad.releases()
            with pytest.raises(PlatformAuthError) as info:
                await wrong.releases()
            assert "rnd_wrong" not in str(info.value)
        finally:
            await bad.aclose()
            await wrong.aclose()


async def test_railway_graphql_errors_inside_200(tmp_path: Path) -> None:
    with FakeRailway() as fake:
        t = target_for(fake, tmp_path)
        wrong = connect(
            Target(
                "railway",
                t.app,
                token="project:nope",
                api_url=t.api_url,
                environment_id=t.environment_id,
            ),
            retry=FAST,
        )
        good = connect(t, retry=FAST)
        try:
            with pytest.raises(PlatformAuthError, match="Not Authorized"):
                await wrong.releases()
            assert fake.seen[-1].headers.get("project-access-token") == "nope"
            with pytest.raises(PlatformNotFound, match="Deployment not found"):
                await good.rollback(
                    (await good.releases())[0].__class__(
                        "no-such-id", "v0", None, "superseded", 0.0
                    )
                )
        finally:
            await wrong.aclose()
            await good.aclose()


async def test_fly_lease_held_then_freed_and_held_too_long(
    tmp_path: Path, monkeypatch: Any
) -> None:
    import fastmango.deployer.fly as fly_mod

    monkeypatch.setattr(fly_mod, "LEASE_WAIT", 1.5)
    with FakeFly() as fake:
        platform = connect(target_for(fake, tmp_path), retry=FAST)
        try:
            release = await platform.deploy("registry.fly.io/shop:new")
            await follow(platform, release)  # old machines now stopped standby
            standby = [m for m in fake.machines.values() if m["state"] == "stopped"]
            fake.hold_lease(standby[0]["id"], 0.6)  # another flyctl, briefly
            rels = await platform.releases()
            rb = await platform.rollback(rels[1])
            done, _ = await follow(platform, rb)
            assert done.state == "live"
            conflicts = [s for s in fake.calls("POST", "/lease")]
            assert len(conflicts) > len(fake.machines) - 1  # some lease attempts were 409s
            assert platform.client.meter.statuses.get(409, 0) >= 1
            # a lease held for longer than we wait: a clear conflict error
            active = fake.active()[0]["id"]
            fake.hold_lease(active, 60)
            with pytest.raises(PlatformConflict, match="leased by someone else"):
                rb = await platform.rollback((await platform.releases())[1])
                await follow(platform, rb)  # stopping the held machine is refused
        finally:
            await platform.aclose()


async def test_fly_rollback_starts_the_warm_standby(tmp_path: Path) -> None:
    with FakeFly() as fake:
        platform = connect(target_for(fake, tmp_path), retry=FAST)
        try:
            old_ids = {m["id"] for m in fake.active()}
            release = await platform.deploy("registry.fly.io/shop:new", regions=["nrt", "ams"])
            await follow(platform, release)
            assert {m["region"] for m in fake.active()} == {"nrt", "ams"}
            assert all(
                fake.machines[i]["state"] == "stopped" and fake.machines[i]["cordoned"]
                for i in old_ids
            )  # stopped, not destroyed: kept warm
            rb = await platform.rollback((await platform.releases())[1])
            await follow(platform, rb)
            assert {m["id"] for m in fake.active()} == old_ids  # the same machines came back
            updates = [s for s in fake.calls("POST") if s.path.rsplit("/", 1)[-1] in old_ids]
            assert not updates  # started as they were: no update, no image pull
            creates = [s for s in fake.calls("POST") if s.path.endswith("/machines")]
            assert len(creates) == 2  # only the deploy created machines
        finally:
            await platform.aclose()


async def test_kubernetes_undo_like_kubectl(tmp_path: Path) -> None:
    import json

    with FakeKubernetes(history=3) as fake:
        platform = connect(target_for(fake, tmp_path), retry=FAST)
        try:
            rels = await platform.releases()
            assert [r.version for r in rels] == ["v3", "v2", "v1"]
            rb = await platform.rollback(rels[2])  # --to-revision=1
            done, _ = await follow(platform, rb)
            assert done.release.version == "v4" and done.release.image == rels[2].image
            patch = [
                s
                for s in fake.calls("PATCH")
                if s.headers["content-type"].startswith("application/json-patch+json")
            ][-1]
            ops = json.loads(patch.body)
            assert [o["path"] for o in ops] == ["/spec/template", "/metadata/annotations"]
            assert "pod-template-hash" not in ops[0]["value"]["metadata"]["labels"]
            # the old ReplicaSet was reused (its revision moved on), not a new one made
            assert len(fake.replicasets) == 3
            assert [r.version for r in await platform.releases()] == ["v4", "v3", "v2"]
            with pytest.raises(NoSuchRelease):
                flow.pick_target(await platform.releases(), version="v1")
            # Status objects become clear errors
            other = connect(
                Target("kubernetes", "nope", kubeconfig=str(tmp_path / "kubeconfig")), retry=FAST
            )
            try:
                with pytest.raises(PlatformNotFound, match=r'deployments.apps "nope" not found'):
                    await other.releases()
            finally:
                await other.aclose()
        finally:
            await platform.aclose()


async def test_kubernetes_in_cluster_service_account_token_is_reread(
    tmp_path: Path, monkeypatch: Any
) -> None:
    import fastmango.deployer.kubernetes as k8s

    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text("projected-token-1\n")
    (sa / "namespace").write_text("shop-prod\n")
    monkeypatch.setattr(k8s, "SA_DIR", sa)
    with FakeKubernetes(namespace="shop-prod", token="projected-token-1") as fake:
        platform = connect(Target("kubernetes", fake.dep_name, api_url=fake.url), retry=FAST)
        try:
            assert platform.namespace == "shop-prod"
            assert (await platform.releases())[0].version == "v2"
            # the kubelet rotates the projected token: the next request carries the new one
            fake.token = "projected-token-2"
            (sa / "token").write_text("projected-token-2\n")
            await platform.scale(2)
            assert fake.seen[-1].headers["authorization"] == "Bearer projected-token-2"
            assert "projected-token" not in repr(platform) + repr(platform.client)
        finally:
            await platform.aclose()
