"""Whole flows through the real CLI (and a real agent for the health gate) against the
platform fakes: deploy → healthy; deploy → unhealthy → automatic rollback; rollback to a
named version; two deploys at once; a deploy killed midway; hooks and approvals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from fastmango.agent.deploys.lock import all_locks
from fastmango.agent.store import Store
from tests.deployer.conftest import (
    events,
    run_cli,
    start_cli,
    wait_for,
    write_app,
    write_samples,
)
from tests.fakes.kubernetes import FakeKubernetes
from tests.fakes.render import FakeRender


def test_deploy_healthy_then_releases(tmp_path: Path, render: FakeRender) -> None:
    envs = {"production": render}
    app = write_app(tmp_path / "app", envs)
    done = run_cli(
        app, envs, "deploy", "render", "--env=production", "--image=registry.example.com/shop:2.0"
    )
    assert done.returncode == 0, done.stderr
    assert "deploy production: v3 → v4 (registry.example.com/shop:2.0) ok" in done.stdout
    assert "update_in_progress" in done.stderr and "2/2 ready" in done.stderr  # progress
    rel = events(app, "release")
    assert rel[-1] | {"duration_seconds": 0, "started": 0} == {
        "env": "production",
        "platform": "render",
        "version": "v4",
        "release_id": rel[-1]["release_id"],
        "image": "registry.example.com/shop:2.0",
        "state": "live",
        "who": rel[-1]["who"],
        "previous": "v3",
        "duration_seconds": 0,
        "action": "deploy",
        "previous_image": "registry.example.com/shop:1.2",
        "previous_id": rel[-1]["previous_id"],
        "started": 0,
    }
    assert rel[-1]["who"].startswith("cli:")
    assert events(app, "replicas")[-1] == {
        "env": "production",
        "platform": "render",
        "replicas": 2,
        "size": "",
        "source": "deploy",
    }
    audit = [a for a in events(app, "audit") if a["action"] == "deploy"]
    assert len(audit) == 1 and audit[0]["result"] == "ok"
    assert audit[0]["from"] == "v3" and audit[0]["to"] == "v4" and audit[0]["duration_seconds"] > 0
    out = run_cli(app, envs, "releases", "--limit=3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[1].split()[:2] == ["v4", "live"] and "cli:" in lines[1]
    assert "rnd_testtoken123" not in done.stdout + done.stderr + out.stdout
    assert not all_locks(app / ".fastmango" / "deploys.db")


def test_failed_deploy_is_reported_and_audited(tmp_path: Path, render: FakeRender) -> None:
    envs = {"production": render}
    app = write_app(tmp_path / "app", envs)
    render.bad_images.add("registry.example.com/shop:bad")
    done = run_cli(
        app, envs, "deploy", "render", "--env=production", "--image=registry.example.com/shop:bad"
    )
    assert done.returncode == 1
    assert "v4 failed: update_failed" in done.stderr
    assert events(app, "release")[-1]["state"] == "failed"
    assert [a["result"] for a in events(app, "audit") if a["action"] == "deploy"] == ["failed"]
    # a rollback now skips the failed release and goes to the one before the live one
    rb = run_cli(app, envs, "rollback", "--json")
    assert rb.returncode == 0, rb.stderr
    assert json.loads(rb.stdout)["extra"]["target"] == "v2"


def test_rollback_to_a_named_version_kubernetes(tmp_path: Path) -> None:
    with FakeKubernetes(history=3) as kube:
        envs = {"production": kube}
        app = write_app(tmp_path / "app", envs)
        missing = run_cli(app, envs, "rollback", "--version=v9")
        assert missing.returncode == 1 and "no release v9 (known: v3, v2, v1)" in missing.stderr
        done = run_cli(app, envs, "rollback", "--env=production", "--version=v1", "--json")
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert (out["from_version"], out["to_version"], out["result"]) == ("v3", "v4", "ok")
        assert out["image"] == "registry.example.com/shop:1.0"
        assert kube.dep["spec"]["template"]["spec"]["containers"][0]["image"] == out["image"]
        assert len(kube.replicasets) == 3  # the old ReplicaSet came back; nothing rebuilt
        audit = [a for a in events(app, "audit") if a["action"] == "rollback"]
        assert [a["result"] for a in audit] == ["error", "ok"]  # the refused one is audited too
        assert "no release v9" in audit[0]["reason"] and audit[0]["to"] is None
        assert (audit[1]["from"], audit[1]["to"]) == ("v3", "v4")


def test_two_deploys_at_once(tmp_path: Path) -> None:
    with FakeRender(step=0.6) as render:
        envs = {"production": render}
        app = write_app(tmp_path / "app", envs)
        first = start_cli(app, envs, "deploy", "render", "--env=production", "--image=img:a")
        try:
            wait_for(lambda: all_locks(app / ".fastmango" / "deploys.db"), 15, "the lock")
            second = run_cli(app, envs, "deploy", "render", "--env=production", "--image=img:b")
            assert second.returncode == 1
            assert "environment production is locked: deploy by cli:" in second.stderr
            assert "--lock-wait" in second.stderr
            third = start_cli(
                app, envs, "deploy", "render", "--env=production", "--image=img:c", "--lock-wait=30"
            )
            _, err1 = first.communicate(timeout=30)
            assert first.returncode == 0, err1
            _, err3 = third.communicate(timeout=30)
            assert third.returncode == 0, err3
        finally:
            for p in (first,):
                if p.poll() is None:
                    p.kill()
                    p.communicate()
    images = [d["image"]["ref"] for d in reversed(render.deploys[:2])]
    assert images == ["img:a", "img:c"]  # one after the other, b never started


def test_killed_mid_deploy_lock_expires(tmp_path: Path) -> None:
    with FakeRender(step=5) as render:
        envs = {"production": render}
        app = write_app(tmp_path / "app", envs)  # lock_ttl = 3s
        victim = start_cli(app, envs, "deploy", "render", "--env=production", "--image=img:a")
        try:
            wait_for(lambda: render.calls("POST", "/deploys"), 15, "the deploy to start")
        finally:
            os.kill(victim.pid, signal.SIGKILL)
            victim.communicate()
        assert all_locks(app / ".fastmango" / "deploys.db")  # left behind
        render.step = 0
        blocked = run_cli(app, envs, "deploy", "render", "--env=production", "--image=img:b")
        assert blocked.returncode == 1 and "locked" in blocked.stderr
        time.sleep(3.2)  # nobody renews it
        done = run_cli(app, envs, "deploy", "render", "--env=production", "--image=img:b")
        assert done.returncode == 0, done.stderr
        assert render.live()["image"]["ref"] == "img:b"  # type: ignore[index]


def test_unhealthy_deploy_is_rolled_back_by_the_agent(
    tmp_path: Path, render: FakeRender, start_agent: Any
) -> None:
    envs = {"production": render}
    gate = '[deploy.gate]\nduration = "30s"\ninterval = "0.5s"\nbaseline = "60s"\nthreshold = 2\n'
    app = write_app(tmp_path / "app", envs, gate, token_in_file=True)
    now = time.time()
    write_samples(app, [(now - 40 + i, 0.002, 0.120) for i in range(40)])  # v3: healthy
    agent = start_agent("--interval", "1", app_dir=app)
    done = run_cli(app, envs, "deploy", "render", "--env=production", "--image=img:leaky")
    assert done.returncode == 0, done.stderr
    t0 = time.time()
    write_samples(app, [(t0 + i * 0.25, 0.25, 0.450) for i in range(-2, 24)])  # v4 errs
    gate_events = wait_for(
        lambda: [g for g in events(app, "gate") if g["verdict"] != "running"],
        20,
        "the health gate's verdict",
    )
    verdict = gate_events[-1]
    assert verdict["verdict"] == "rolled_back", (verdict, agent.output()[-3000:])
    assert verdict["version"] == "v4" and verdict["rollback_release"] == "v5"
    assert any("error ratio 25.00%" in r for r in verdict["reasons"])
    assert any("p95 latency 450 ms" in r for r in verdict["reasons"])
    assert render.live()["image"]["ref"] == "registry.example.com/shop:1.2"  # type: ignore[index]
    assert render.deploys[0]["trigger"] == "rollback"
    states = [(r["version"], r["state"]) for r in events(app, "release")]
    assert states[-3:] == [("v4", "live"), ("v4", "rolled_back"), ("v5", "live")]
    audit = [a for a in events(app, "audit") if a["action"] == "rollback"]
    assert audit[-1]["who"] == "agent:health-gate" and audit[-1]["result"] == "ok"
    assert "health gate: error ratio" in audit[-1]["reason"]
    api = json.loads(run_cli(app, envs, "releases", "--json").stdout)
    assert api[0]["version"] == "v5" and api[1]["recorded"] == "rolled_back"


def test_approval_and_hooks(tmp_path: Path, render: FakeRender) -> None:
    envs = {"production": render}
    hooks = (
        'test_command = "echo tests-ran > tests.out && exit 3"\n'
        'migrate_command = "echo migrated > migrate.out"\n'
        'migrate_dry_run_command = "echo would-run 0042_add_orders"\n'
    )
    app = write_app(tmp_path / "app", envs, hooks)
    refused = run_cli(
        app, envs, "deploy", "render", "--env=production", "--image=i:1", "--approval-required"
    )
    assert refused.returncode == 1 and "no terminal to ask on, so pass --yes" in refused.stderr
    failing = run_cli(
        app,
        envs,
        "deploy",
        "render",
        "--env=production",
        "--image=i:1",
        "--approval-required",
        "--yes",
        "--wait-for-tests",
    )
    assert failing.returncode == 1 and "the tests failed (exit 3" in failing.stderr
    assert "nothing deployed" in failing.stderr and (app / "tests.out").exists()
    assert not render.calls("POST")
    dry = run_cli(app, envs, "deploy", "render", "--env=production", "--image=i:1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would deploy i:1 to production (render) replacing v3" in dry.stdout
    assert "would-run 0042_add_orders" in dry.stdout and not render.calls("POST")
    mig = run_cli(app, envs, "migrate", "--env=production", "--dry-run")
    assert mig.returncode == 0 and "would-run 0042_add_orders" in mig.stdout
    ok = run_cli(
        app,
        envs,
        "deploy",
        "render",
        "--env=production",
        "--image=i:1",
        "--approval-required",
        "--yes",
    )
    assert ok.returncode == 0, ok.stderr
    assert (app / "migrate.out").read_text().strip() == "migrated"


async def test_apply_scale_for_the_scaler(tmp_path: Path, railway: Any) -> None:
    """The scaler's apply step: same lock as deploys, a replicas event and an audit record
    on success and on refusal."""
    from fastmango.agent.deploys import actions
    from fastmango.agent.deploys.lock import EnvLock
    from fastmango.agent.settings import Settings
    from fastmango.deployer.errors import LockBusy
    from tests.deployer.conftest import TOKENS

    settings = Settings.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            "environments": {
                "production": {
                    "platform": "railway",
                    "app": railway.service,
                    "token": TOKENS["railway"],
                    "environment_id": railway.environment,
                    "api_url": railway.url + "/graphql/v2",
                    "regions": ["us-west2", "europe-west4"],
                    "size": "1vcpu-1gb",
                }
            },
        }
    )
    store = Store(settings.store_path)
    store.open()
    try:
        out = await actions.apply_scale(store, settings, "production", 5, "scaler", "cpu 82%")
        assert out.result == "ok" and out.message == "2 → 5 instances"
        assert railway.replicas == {"us-west2": 3, "europe-west4": 2}
        async with EnvLock(
            actions.lock_path(settings), "production", action="deploy", who="cli:alice"
        ).hold():
            with pytest.raises(LockBusy, match="deploy by cli:alice"):
                await actions.apply_scale(store, settings, "production", 1, "scaler", "idle")
        assert railway.replicas == {"us-west2": 3, "europe-west4": 2}  # untouched
        store.flush()
        reps = [e["data"] for e in store.events("replicas")]
        assert reps == [
            {
                "env": "production",
                "platform": "railway",
                "replicas": 5,
                "size": "1vcpu-1gb",
                "source": "scale",
            }
        ]
        audit = [e["data"] for e in store.events("audit")]
        assert [(a["who"], a["result"], a["reason"]) for a in reversed(audit)] == [
            ("scaler", "ok", "cpu 82%"),
            ("scaler", "error", "idle"),
        ]
    finally:
        store.close()


def test_backup_first_and_migrate_with_real_postgres(tmp_path: Path, render: FakeRender) -> None:
    from tests.realservers import Postgres

    pg = Postgres()
    try:
        pg.start()
        psql, pg_dump = pg.bindir / "psql", pg.bindir / "pg_dump"
        pg.psql("CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders VALUES (1), (2)")
        envs = {"production": render}
        hooks = (
            f'pg_dump = "{pg_dump}"\n'
            f'migrate_command = "{psql} -X -q -v ON_ERROR_STOP=1 \\"$DATABASE_URL\\" '
            f"-c 'ALTER TABLE orders ADD COLUMN total numeric'\"\n"
        )
        app = write_app(tmp_path / "app", envs, hooks)
        toml = (app / "fastmango.toml").read_text()
        (app / "fastmango.toml").write_text(f'database_url = "{pg.dsn}"\n' + toml)
        done = run_cli(
            app, envs, "deploy", "render", "--env=production", "--image=i:2", "--backup-first"
        )
        assert done.returncode == 0, done.stderr
        dumps = list((app / ".fastmango" / "backups").glob("production-*.dump"))
        assert len(dumps) == 1
        listing = subprocess.run(
            [str(pg.bindir / "pg_restore"), "--list", str(dumps[0])],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "TABLE public orders" in listing
        cols = pg.psql(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'orders' ORDER BY 1"
        )
        assert cols.split() == ["id", "total"]  # migrated after the backup
        assert pg.password not in done.stdout + done.stderr
    finally:
        pg.cleanup()


async def test_failed_and_timed_out_rollouts_are_recorded(tmp_path: Path, kube: Any) -> None:
    from fastmango.agent.deploys import actions
    from fastmango.agent.settings import Settings
    from fastmango.deployer.errors import RolloutFailed, RolloutTimeout

    (tmp_path / "kc").write_text(kube.kubeconfig())
    settings = Settings.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            "environments": {
                "production": {
                    "platform": "kubernetes",
                    "app": kube.dep_name,
                    "kubeconfig": str(tmp_path / "kc"),
                }
            },
            "deploy": {"poll_interval": 0.01, "deadline": 5},
        }
    )
    kube.bad_images.add("registry.example.com/shop:oom")
    with pytest.raises(RolloutFailed, match="v3 failed: exceeded its progress deadline"):
        await actions.deploy(settings, "production", "registry.example.com/shop:oom", who="ci")
    store = Store(settings.store_path)
    rel = [e["data"] for e in store.events("release")]
    assert (rel[0]["version"], rel[0]["state"]) == ("v3", "failed")
    # undone as kubectl rollout undo would: the previous template serves again
    image = kube.dep["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/shop:1.1"

    kube.step = 60  # a rollout that does not finish within the deadline
    settings = settings.model_copy(
        update={"deploy": settings.deploy.model_copy(update={"deadline": 0.5})}
    )
    with pytest.raises(RolloutTimeout, match=r"was not healthy within 0\.5s"):
        await actions.deploy(settings, "production", "registry.example.com/shop:slow", who="ci")
    audit = [e["data"] for e in store.events("audit")]
    assert [a["result"] for a in reversed(audit)] == ["failed", "failed"]
    assert "not healthy within" in audit[0]["reason"]
