"""The vault's secrets pushed to each platform on deploy, before the new release: the
values arrive at the platform fake in the platform's own shape, and never appear in the
CLI's output, the audit trail, the ``release`` events or the logs (names and
fingerprints only). No vault: nothing pushed; a vault without its key: a clear error
before anything changes; Cloud Run and ECS refuse, naming their own secret stores."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fastmango.agent.deploys import actions
from fastmango.agent.secrets import Vault, new_key
from fastmango.agent.settings import Settings
from fastmango.agent.store import Store
from fastmango.deployer.errors import DeployError
from fastmango.deployer.http import RetryPolicy
from fastmango.deployer.platform import Target
from tests.deployer.conftest import cli_env, events, write_app
from tests.fakes.azure import FakeAzure
from tests.fakes.cloudrun import FakeCloudRun
from tests.fakes.ecs import FakeEcs
from tests.fakes.fly import FakeFly
from tests.fakes.kubernetes import FakeKubernetes
from tests.fakes.railway import FakeRailway
from tests.fakes.render import FakeRender

KEY = new_key()
DB = "pg-s3cr3t-value-0d1e"
STRIPE = "sk_live_51HxAbCdEf0123456789"
SHARED = "shared-every-env-7f3a"
IMAGE = "registry.example.com/shop:2.0"
FAST = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.05, max_wait=2.0)


def seal(state: Path, key: str = KEY) -> Vault:
    vault = Vault(state / "secrets.json", key)
    vault.set("production", "DATABASE_PASSWORD", DB, "test", 1.0)
    vault.set("production", "STRIPE_KEY", STRIPE, "test", 1.0)
    vault.set("*", "SHARED_TOKEN", SHARED, "test", 1.0)
    vault.set("staging", "DATABASE_PASSWORD", "staging-only-value", "test", 1.0)
    return vault


def settings_for(state: Path, env: dict[str, Any]) -> Settings:
    return Settings.model_validate(
        {
            "state_dir": str(state),
            "environments": {"production": env},
            "deploy": {"poll_interval": 0.01, "deadline": 10},
        }
    )


def assert_no_values(*texts: str) -> None:
    for text in texts:
        for value in (DB, STRIPE, SHARED):
            assert value not in text


def records(settings: Settings) -> str:
    store = Store(settings.store_path)
    return json.dumps([e["data"] for e in store.events(limit=1000)])


def kept_files(folder: Path) -> str:
    return "".join(f.read_text() for f in folder.glob("azure-*.json"))


WANT = {"DATABASE_PASSWORD": DB, "STRIPE_KEY": STRIPE, "SHARED_TOKEN": SHARED}


@pytest.fixture
def master_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("FASTMANGO_MASTER_KEY", KEY)
    yield KEY


def test_cli_deploy_pushes_render_env_vars_before_the_deploy(tmp_path: Path) -> None:
    with FakeRender() as render:
        envs = {"production": render}
        app = write_app(tmp_path / "app", envs)
        env = {**cli_env(envs), "FASTMANGO_MASTER_KEY": KEY}

        def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "fastmango.cli", *args],
                cwd=app,
                env=env,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=60,
            )

        for name, value, scope in (
            ("DATABASE_PASSWORD", DB, "production"),
            ("STRIPE_KEY", STRIPE, "production"),
            ("SHARED_TOKEN", SHARED, "*"),
        ):
            done = cli("secrets", "set", name, f"--env={scope}", "--from-stdin", stdin=value)
            assert done.returncode == 0, done.stderr
        done = cli("deploy", "render", "--env=production", f"--image={IMAGE}", "--json")
        assert done.returncode == 0, done.stderr
        assert render.env_vars == WANT
        # each variable by its own PUT, all before the deploy was created
        puts = [i for i, s in enumerate(render.seen) if s.method == "PUT"]
        create = next(
            i for i, s in enumerate(render.seen) if s.method == "POST" and "/deploys" in s.path
        )
        assert len(puts) == 3 and max(puts) < create
        assert all(render.seen[i].path.split("/")[-1] in WANT for i in puts)
        assert_no_values(done.stdout, done.stderr)
        out = json.loads(done.stdout)
        assert [s["name"] for s in out["extra"]["secrets"]] == sorted(WANT)
        audit = [a for a in events(app, "audit") if a["action"] == "deploy"][-1]
        listed = cli("secrets", "list", "--env=production", "--json")
        assert listed.returncode == 0, listed.stderr
        prints = {(r["name"], r["fingerprint"]) for r in json.loads(listed.stdout)}
        assert {(s["name"], s["fingerprint"]) for s in audit["secrets"]} <= prints
        assert set(audit["secrets"][0]) == {"name", "fingerprint"}
        everything = json.dumps(events(app, "audit") + events(app, "release"))
        assert_no_values(everything)
        logs = "".join(p.read_text(errors="replace") for p in app.rglob("*.log"))
        assert_no_values(logs)
        again = cli("deploy", "render", "--env=production", "--image=registry.example.com/shop:3.0")
        assert again.returncode == 0, again.stderr
        assert "secrets pushed to render: DATABASE_PASSWORD (" in again.stdout
        assert_no_values(again.stdout, again.stderr)


async def test_railway_variable_collection_upsert(
    tmp_path: Path, master_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seal(tmp_path / "state")
    with FakeRailway() as fake:
        settings = settings_for(
            tmp_path / "state",
            {
                "platform": "railway",
                "app": fake.service,
                "environment_id": fake.environment,
                "project": fake.project,
                "api_url": f"{fake.url}/graphql/v2",
                "token": fake.token,
            },
        )
        out = await actions.deploy(settings, "production", IMAGE, who="ci")
        assert out.result == "ok"
        assert fake.variables == WANT
        ops = [json.loads(s.body).get("operationName") for s in fake.seen if s.body]
        assert ops.index("variableCollectionUpsert") < ops.index("serviceInstanceDeployV2")
        upsert = next(
            json.loads(s.body)
            for s in fake.seen
            if s.body and b"variableCollectionUpsert" in s.body
        )
        assert upsert["variables"]["input"]["skipDeploys"] is True
        assert_no_values(records(settings), caplog.text, repr(out))


async def test_kubernetes_secret_and_env_from(tmp_path: Path, master_key: str) -> None:
    seal(tmp_path / "state")
    with FakeKubernetes() as kube:
        (tmp_path / "kc").write_text(kube.kubeconfig())
        settings = settings_for(
            tmp_path / "state",
            {"platform": "kubernetes", "app": kube.dep_name, "kubeconfig": str(tmp_path / "kc")},
        )
        out = await actions.deploy(settings, "production", IMAGE, who="ci")
        assert out.result == "ok"
        name = f"{kube.dep_name}-fastmango"
        secret = kube.secrets[(kube.namespace, name)]
        assert secret["type"] == "Opaque"
        assert secret["data"]["STRIPE_KEY"] == base64.b64encode(STRIPE.encode()).decode()
        assert kube.secret_values(name) == WANT
        assert [s.method for s in kube.calls(contains="/secrets")] == ["PUT", "POST"]  # created
        template = kube.dep["spec"]["template"]
        assert template["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": name}}]
        first = template["metadata"]["annotations"]["fastmango.dev/secrets-version"]

        # a second deploy replaces the Secret (PUT) and keeps one envFrom entry
        Vault(tmp_path / "state" / "secrets.json", KEY).set(
            "production", "STRIPE_KEY", "sk_live_rotated", "t", 2.0
        )
        await actions.deploy(settings, "production", "registry.example.com/shop:3.0", who="ci")
        assert kube.secret_values(name)["STRIPE_KEY"] == "sk_live_rotated"
        assert [s.method for s in kube.calls(contains="/secrets")][-1] == "PUT"
        template = kube.dep["spec"]["template"]
        assert template["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": name}}]
        assert template["metadata"]["annotations"]["fastmango.dev/secrets-version"] != first
        assert_no_values(records(settings))


async def test_fly_new_machines_get_config_env(tmp_path: Path, master_key: str) -> None:
    seal(tmp_path / "state")
    with FakeFly() as fly:
        settings = settings_for(
            tmp_path / "state",
            {"platform": "fly", "app": fly.app_name, "api_url": fly.url, "token": fly.token},
        )
        before = set(fly.machines)
        out = await actions.deploy(settings, "production", IMAGE, who="ci")
        assert out.result == "ok"
        new = [m for mid, m in fly.machines.items() if mid not in before]
        assert new and all(m["config"]["image"] == IMAGE for m in new)
        for m in new:
            assert {k: m["config"]["env"][k] for k in WANT} == WANT
        assert_no_values(records(settings))


async def test_azure_secure_values_never_kept(tmp_path: Path) -> None:
    from fastmango.deployer import azure

    with FakeAzure() as fake:
        target = Target(
            "azure",
            f"{fake.resource_group}/{fake.group_name}",
            token=fake.token,
            api_url=fake.url,
            project=fake.subscription,
            regions=("eu-west",),
        )
        p = azure.connect(target, retry=FAST, state_dir=tmp_path)
        try:
            await p.set_secrets({"DB_PASSWORD": DB, "STRIPE_KEY": STRIPE})
            await p.deploy(IMAGE)
        finally:
            await p.aclose()
        env = fake.puts[-1]["properties"]["containers"][0]["properties"]["environmentVariables"]
        secure = {e["name"]: e.get("secureValue") for e in env if "secureValue" in e}
        assert secure == {"DB_PASSWORD": DB, "STRIPE_KEY": STRIPE}
        assert not any("value" in e for e in env if e["name"] in secure)
        kept = kept_files(tmp_path)
        assert "STRIPE_KEY" in kept
        assert_no_values(kept, repr(p))


@pytest.mark.parametrize("platform", ["cloudrun", "ecs"])
async def test_cloudrun_and_ecs_refuse_plain_env(tmp_path: Path, platform: str) -> None:
    from tests.clouds import test_cloudrun, test_ecs

    fake_cls, module = {
        "cloudrun": (FakeCloudRun, test_cloudrun),
        "ecs": (FakeEcs, test_ecs),
    }[platform]
    with fake_cls() as fake:
        from fastmango.deployer.platforms import connect

        p = connect(module.target(fake), retry=FAST)
        try:
            with pytest.raises(DeployError) as err:
                await p.set_secrets({"DB_PASSWORD": DB})
        finally:
            await p.aclose()
        store = "Secret Manager" if platform == "cloudrun" else "Secrets Manager or SSM"
        assert store in str(err.value)
        assert_no_values(str(err.value))
        assert not [s for s in fake.seen if s.method not in ("GET",)]


async def test_no_vault_pushes_nothing_and_no_key_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FASTMANGO_MASTER_KEY", raising=False)
    with FakeRender() as render:
        settings = settings_for(
            tmp_path / "state",
            {
                "platform": "render",
                "app": render.service,
                "api_url": f"{render.url}/v1",
                "token": render.token,
            },
        )
        await actions.deploy(settings, "production", IMAGE, who="ci")  # no vault at all
        assert render.env_vars == {} and not render.calls("PUT")

        # a vault with values for staging only: production needs no key
        Vault(tmp_path / "state" / "secrets.json", KEY).set("staging", "X", "y", "t", 1.0)
        await actions.deploy(settings, "production", IMAGE, who="ci")
        assert not render.calls("PUT")

        seal(tmp_path / "state")  # values for production, but this process has no key
        before = len(render.seen)
        with pytest.raises(DeployError, match="no master key: set FASTMANGO_MASTER_KEY"):
            await actions.deploy(settings, "production", IMAGE, who="ci")
        assert len(render.seen) == before  # nothing was asked, nothing changed
        audit = [e["data"] for e in Store(settings.store_path).events("audit")]
        assert audit[0]["result"] == "error" and "no master key" in audit[0]["reason"]

        monkeypatch.setenv("FASTMANGO_MASTER_KEY", new_key())  # the wrong key
        with pytest.raises(DeployError, match="does not open"):
            await actions.deploy(settings, "production", IMAGE, who="ci")
        assert len(render.seen) == before
