"""Azure Container Instances adapter against its ARM fake over real sockets: deploy →
healthy, a failed rollout (ACI replaced the container in place) rolled back by
re-submitting the kept spec, rollback to a named version, throttling, scale limits."""

from __future__ import annotations

import json
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from fastmango.deployer import flow
from fastmango.deployer.azure import connect
from fastmango.deployer.errors import DeployError, PlatformAuthError, PlatformError, RolloutFailed
from fastmango.deployer.http import RetryPolicy
from fastmango.deployer.platform import Release, Rollout, Target
from tests.fakes.azure import FakeAzure

FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05, max_wait=2.0)
IMAGE = "shopacr.azurecr.io/shop:2.0"


def target(fake: FakeAzure, **kw: Any) -> Target:
    base: dict[str, Any] = {
        "token": fake.token,
        "api_url": fake.url,
        "project": fake.subscription,
        "regions": ("eu-west",),
    }
    base.update(kw)
    return Target("azure", f"{fake.resource_group}/{fake.group_name}", **base)


@pytest.fixture
def fake() -> Iterator[FakeAzure]:
    with FakeAzure() as f:
        yield f


@pytest.fixture
async def platform(fake: FakeAzure, tmp_path: Path) -> AsyncIterator[Any]:
    p = connect(target(fake), retry=FAST, state_dir=tmp_path)
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


async def test_deploy_then_rollback_by_resubmitting_the_kept_spec(
    fake: FakeAzure, platform: Any, tmp_path: Path
) -> None:
    before = await platform.releases()
    assert [(r.version, r.state, r.image) for r in before] == [
        ("v1", "live", "shopacr.azurecr.io/shop:1.2")
    ]
    release = await platform.deploy(IMAGE)
    done, seen = await follow(platform, release)
    assert done.state == "live" and fake.image() == IMAGE
    assert len(seen) >= 2 and seen[0].state == "in_progress"
    put = fake.puts[-1]
    assert put["location"] == "westeurope" and "instanceView" not in json.dumps(put)
    # the secure variable goes back by name only (ARM never returned its value)
    assert {"name": "DB_PASSWORD"} in put["properties"]["containers"][0]["properties"][
        "environmentVariables"
    ]
    rels = await platform.releases()
    assert [(r.version, r.state) for r in rels] == [("v2", "live"), ("v1", "superseded")]

    target_rel, _ = flow.pick_target(rels, version="v1")
    done, _ = await follow(platform, await platform.rollback(target_rel))
    assert done.state == "live" and fake.image() == "shopacr.azurecr.io/shop:1.2"
    # the re-submitted spec is the one kept before v2: same image, same sidecar
    last, first = fake.puts[-1]["properties"], fake.puts[0]["properties"]
    assert last["containers"][0]["properties"]["image"] == "shopacr.azurecr.io/shop:1.2"
    assert last["containers"][1] == first["containers"][1]
    check_history_file(tmp_path, fake.token)


def check_history_file(folder: Path, token: str) -> None:
    history = next(folder.glob("azure-*.json"))
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    assert token not in history.read_text()


async def test_failed_rollout_then_the_kept_spec_restores_the_app(
    fake: FakeAzure, platform: Any
) -> None:
    fake.bad_images.add("shopacr.azurecr.io/shop:broken")
    release = await platform.deploy("shopacr.azurecr.io/shop:broken")
    with pytest.raises(RolloutFailed, match="InaccessibleImage"):
        await follow(platform, release)
    assert (await platform.instances())[0].ready is False  # ACI replaced it in place
    rels = await platform.releases()
    assert rels[0].state == "failed"
    good, _ = flow.pick_target(rels)
    assert good.version == "v1"
    done, _ = await follow(platform, await platform.rollback(good))
    assert done.state == "live" and (await platform.instances())[0].ready


async def test_throttling_and_errors(fake: FakeAzure, platform: Any, tmp_path: Path) -> None:
    fake.throttle(1, retry_after=0, method="PUT")
    release = await platform.deploy(IMAGE)
    assert platform.client.meter.statuses[429] == 1
    assert (await follow(platform, release))[0].state == "live"
    bad = connect(target(fake, token="expired"), retry=FAST, state_dir=tmp_path / "x")
    try:
        with pytest.raises(PlatformAuthError, match=r"401 .*AuthenticationFailed"):
            await bad.releases()
    finally:
        await bad.aclose()
    with pytest.raises(DeployError, match="resourceGroup/containerGroup"):
        connect(target(fake).__class__("azure", "shop", token="t", project="s"))
    with pytest.raises(DeployError, match="Container Apps"):
        connect(target(fake), gpu="a100")


async def test_cannot_move_regions_or_scale_out(fake: FakeAzure, platform: Any) -> None:
    with pytest.raises(PlatformError, match="cannot move it to eastus"):
        await platform.deploy(IMAGE, regions=["us-east"])
    with pytest.raises(PlatformError, match="one instance; cannot run 3"):
        await platform.scale(3)
    await platform.scale(0)
    assert (await platform.instances())[0].state == "Stopped"
    await platform.scale(1)
    inst = await platform.instances()
    assert inst[0].ready and inst[0].version == "v1"
