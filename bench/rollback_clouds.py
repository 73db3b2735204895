"""``bench/rollback.py`` with rows for Cloud Run, ECS on Fargate and Azure Container
Instances, side by side with the other platforms in one run and one table.

Same method and columns as ``bench/rollback.py`` (its docstring): each run starts a
fresh fake set to the platform's ``TYPICAL`` latencies and times the real CLI,
``python -m fastmango.cli rollback --env=production --json``, from ``Popen`` to exit.
Before each timed rollback, fastmango deploys a new image (with the fake's rollout steps
at zero), so the rollback returns to the release that served before it:

* cloudrun: a traffic shift back to the previous revision (warm: nothing starts);
* ecs: UpdateService to the previous task definition revision (Fargate starts new tasks:
  the slow path the containers-roadmap issues complain about);
* azure: the kept spec of the previous release re-PUT (ACI re-creates the group).

    python bench/rollback_clouds.py [--runs 3] [--scale 1.0]
        [--platforms cloudrun,ecs,azure,render] [--json]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import rollback as base  # noqa: E402

from tests.fakes.azure import FakeAzure  # noqa: E402
from tests.fakes.cloudrun import FakeCloudRun  # noqa: E402
from tests.fakes.ecs import FakeEcs  # noqa: E402

CLOUDS: dict[str, Any] = {"cloudrun": FakeCloudRun, "ecs": FakeEcs, "azure": FakeAzure}
#: poll intervals suited to each API's limits (Cloud Run and ARM: 1 s; ECS: 2 s)
POLL = {"cloudrun": 1.0, "ecs": 2.0, "azure": 1.0}
_make_fake, _settings_for, _cli_env = base.make_fake, base.settings_for, base.cli_env


def make_fake(path: str, scale: float) -> Any:
    if path not in CLOUDS:
        return _make_fake(path, scale)
    typ = CLOUDS[path].TYPICAL
    return CLOUDS[path](latency=typ["latency"] * scale, step=typ["step"] * scale)


def cli_env(fake: Any) -> dict[str, str]:
    env = _cli_env(fake)
    if fake.name in CLOUDS:
        env["FASTMANGO_ENVIRONMENTS__PRODUCTION__TOKEN"] = fake.environment()[1]
    return env


def settings_for(fake: Any, app: Path) -> str:
    """The settings; for the clouds also the preparing deploy (rollout steps at zero), so
    the timed rollback returns to the release that served before it."""
    if fake.name not in CLOUDS:
        return str(_settings_for(fake, app))
    body, _ = fake.environment()
    text = f'[environments.production]\n{body}[deploy]\npoll_interval = "{POLL[fake.name]}s"\n'
    (app / "fastmango.toml").write_text(text)
    step, fake.step = fake.step, 0.0
    try:
        done = subprocess.run(
            [sys.executable, "-m", "fastmango.cli", "deploy", fake.name, "--env=production",
             "--image=registry.example.com/shop:bench-new", "--json"],
            cwd=app, env=cli_env(fake), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        fake.step = step
    if done.returncode != 0:
        raise RuntimeError(f"{fake.name}: the preparing deploy failed: {done.stderr}")
    return text


def main() -> None:
    base.PATHS.extend(p for p in CLOUDS if p not in base.PATHS)
    base.make_fake = make_fake
    base.settings_for = settings_for
    base.cli_env = cli_env
    base.main()


if __name__ == "__main__":
    main()
