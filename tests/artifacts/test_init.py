"""`fastmango init NAME --deploy=PLATFORM` run as a user runs it (a real process), its
file read back by the real settings loader."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import get_args

import pytest

from fastmango.agent import config
from fastmango.agent.deploys.actions import target_of
from fastmango.agent.settings_deploy import Platform
from fastmango.commands.init import PLATFORMS

#: the app each environment gets on each platform, for NAME = shop
APPS = {
    "fly": ("shop-staging", "shop"),
    "railway": (
        "REPLACE_ME-railway-staging-service-id",
        "REPLACE_ME-railway-production-service-id",
    ),
    "render": ("srv-REPLACE_ME-shop-staging", "srv-REPLACE_ME-shop"),
    "kubernetes": ("shop", "shop"),
    "cloudrun": ("shop-staging", "shop"),
    "ecs": ("shop-staging/shop", "shop/shop"),
    "azure": ("shop-rg/shop-staging", "shop-rg/shop"),
}


def init(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMANGO_")}
    return subprocess.run(
        [sys.executable, "-m", "fastmango.cli", "init", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_choices_are_the_platforms() -> None:
    assert set(PLATFORMS) == set(get_args(Platform)) - {"none"}
    assert set(APPS) == set(PLATFORMS)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_init_writes_a_config_that_loads(tmp_path: Path, platform: str) -> None:
    done = init(tmp_path, "shop", "--deploy", platform)
    assert done.returncode == 0, done.stderr
    written = tmp_path / "shop" / "fastmango.toml"
    assert f"wrote {Path('shop') / 'fastmango.toml'}" in done.stdout
    assert "fastmango secrets set" in done.stdout
    assert f"fastmango deploy {platform} --env=staging" in done.stdout

    settings = config.load(cwd=tmp_path / "shop", environ={}).settings
    assert set(settings.environments) == {"staging", "production"}
    for env, app in zip(("staging", "production"), APPS[platform], strict=True):
        e = settings.environments[env]
        assert e.platform == platform
        assert e.app == app
        assert e.token is None
        target = target_of(settings, env)  # what a deploy hands the adapter
        assert target.app == app
    assert settings.environments["production"].is_production("production")
    assert not settings.environments["staging"].is_production("staging")

    text = written.read_text()
    assert "token =" not in text
    assert "FASTMANGO_ENVIRONMENTS__STAGING__TOKEN" in text
    assert "FASTMANGO_ENVIRONMENTS__PRODUCTION__TOKEN" in text
    assert "[scale" not in text
    production = settings.environments["production"]
    if platform == "railway":
        assert production.project and production.environment_id
    if platform in {"cloudrun", "azure"}:
        assert production.project
    if platform == "kubernetes":
        assert production.kubeconfig is not None and production.namespace == "shop"
        assert settings.environments["staging"].namespace == "shop-staging"
        assert production.regions == []
    if platform == "render":
        assert production.regions == []
    if platform in {"fly", "railway", "cloudrun", "ecs", "azure"}:
        assert len(production.regions) == 1


def test_regions(tmp_path: Path) -> None:
    done = init(tmp_path, "shop", "--deploy", "fly", "--regions", "nrt, sea")
    assert done.returncode == 0, done.stderr
    data = tomllib.loads((tmp_path / "shop" / "fastmango.toml").read_text())
    assert data["environments"]["production"]["regions"] == ["nrt", "sea"]
    settings = config.load(cwd=tmp_path / "shop", environ={}).settings
    assert settings.environments["staging"].regions == ["nrt", "sea"]


def test_one_region_platforms_refuse_several(tmp_path: Path) -> None:
    done = init(tmp_path, "shop", "--deploy", "ecs", "--regions", "us-east-1,eu-west-1")
    assert done.returncode == 1
    assert "one region" in done.stderr
    assert not (tmp_path / "shop" / "fastmango.toml").exists()


def test_refuses_an_existing_config_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    existing = tmp_path / "shop" / "fastmango.toml"
    existing.write_text("# mine\n")
    done = init(tmp_path, "shop", "--deploy", "fly")
    assert done.returncode == 1
    assert "exists" in done.stderr and "--force" in done.stderr
    assert existing.read_text() == "# mine\n"

    done = init(tmp_path, "shop", "--deploy", "render", "--force")
    assert done.returncode == 0, done.stderr
    settings = config.load(cwd=tmp_path / "shop", environ={}).settings
    assert settings.environments["production"].platform == "render"


def test_a_bad_platform_is_a_usage_error(tmp_path: Path) -> None:
    done = init(tmp_path, "shop", "--deploy", "heroku")
    assert done.returncode == 2
    assert "Invalid value for '--deploy'" in done.stderr
    assert "heroku" in done.stderr
    assert not (tmp_path / "shop").exists()
