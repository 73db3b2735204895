"""Settings of deploys and of the environments the app runs in.

``[environments.production]`` names the platform, the app on it, its size and region(s);
``[deploy]`` holds what applies to every deploy (hooks, health gate, lock).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from fastmango.agent.settings_base import Duration, Model

Platform = Literal["fly", "railway", "render", "kubernetes", "cloudrun", "ecs", "azure", "none"]


class EnvironmentSettings(Model):
    """One environment of the app (``[environments.<name>]``)."""

    platform: Platform = Field(
        "none", description="Where it runs; none = not managed by fastmango."
    )
    app: str = Field("", description="The app / service / deployment name on the platform.")
    token: SecretStr | None = Field(
        None,
        description="API token of the platform; prefer FASTMANGO_ENVIRONMENTS__<NAME>__TOKEN.",
    )
    api_url: str | None = Field(
        None, description="Override of the platform's API base URL (proxies, tests)."
    )
    regions: list[str] = Field(default_factory=list, description="Regions it runs in.")
    size: str = Field("", description="Instance size / type on the platform (for cost).")
    production: bool | None = Field(
        None, description="Treat as production (default: the name starts with prod)."
    )
    project: str = Field("", description="Railway: the project id.")
    environment_id: str = Field("", description="Railway: the environment id.")
    namespace: str = Field(
        "", description="Kubernetes: the namespace (default: the kubeconfig context's)."
    )
    kubeconfig: Path | None = Field(
        None,
        description="Kubernetes: kubeconfig file; empty = the pod's service account (in-cluster).",
    )
    context: str = Field("", description="Kubernetes: kubeconfig context (default: current).")
    container: str = Field(
        "", description="Kubernetes: the container whose image is deployed (default: first)."
    )
    database_url: SecretStr | None = Field(
        None,
        description="This environment's PostgreSQL DSN for migrations and --backup-first "
        "(default: database_url).",
    )

    def is_production(self, name: str) -> bool:
        return self.production if self.production is not None else name.startswith("prod")


class HealthGateSettings(Model):
    """Analysis after a rollout (Flagger-style): the new release against the previous one."""

    enabled: bool = Field(True, description="Watch each new release and roll back on regression.")
    duration: Duration = Field(
        300.0, ge=1, description="How long after a rollout the new release is watched."
    )
    interval: Duration = Field(30.0, ge=0.1, description="Seconds between two checks.")
    baseline: Duration = Field(
        600.0, ge=1, description="Window before the deploy the previous release is judged on."
    )
    threshold: int = Field(
        2, ge=1, description="Failed checks (in a row) that trigger the rollback."
    )
    max_error_ratio: float = Field(
        0.05,
        ge=0,
        le=1,
        description="The error ratio (5xx ÷ all) regresses when above this and above the "
        "previous release's by more than max_error_ratio_increase.",
    )
    max_error_ratio_increase: float = Field(
        0.01, ge=0, le=1, description="See max_error_ratio (absolute difference)."
    )
    max_p95_ratio: float = Field(
        1.5,
        ge=1,
        description="p95 latency regresses when above this multiple of the previous "
        "release's and higher by more than min_p95_increase.",
    )
    min_p95_increase: Duration = Field(0.05, ge=0, description="See max_p95_ratio (seconds).")
    min_samples: int = Field(
        2, ge=1, description="Samples a window needs, else the check is inconclusive."
    )
    environments: list[str] = Field(
        default_factory=list,
        description="Environments this agent's metrics stand for (empty = every environment "
        "deployed from here).",
    )


class DeploySettings(Model):
    """Settings that apply to every deploy."""

    deadline: Duration = Field(
        600.0, ge=1, description="How long a deploy or rollback may take to become healthy."
    )
    poll_interval: Duration = Field(
        1.0, gt=0, description="Seconds between two looks at a rollout (Fly waits on its side)."
    )
    lock_ttl: Duration = Field(
        60.0, ge=1, description="A lock not renewed for this long is stale (its holder died)."
    )
    lock_wait: Duration = Field(
        0.0, ge=0, description="How long a second deploy waits for the lock before failing."
    )
    test_command: str = Field(
        "", description="Shell command --wait-for-tests runs first (e.g. pytest -q)."
    )
    migrate_command: str = Field(
        "",
        description="Shell command that migrates the database (e.g. alembic upgrade head); "
        "it gets DATABASE_URL.",
    )
    migrate_dry_run_command: str = Field(
        "",
        description="Shell command that shows the migrations without running them "
        "(e.g. alembic upgrade head --sql).",
    )
    pg_dump: str = Field("pg_dump", description="pg_dump binary for --backup-first.")
    backup_dir: Path | None = Field(
        None, description="Where --backup-first writes dumps; empty = <state_dir>/backups."
    )
    approval_required: list[str] = Field(
        default_factory=list,
        description="Environments whose deploys always need an approval (--yes or a prompt).",
    )
    gate: HealthGateSettings = Field(
        default_factory=HealthGateSettings, description="Health gate after each rollout."
    )
