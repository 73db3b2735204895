"""The one typed settings model of the agent and the CLI.

Everything a user can set lives here, with its default and a description; the sample
config (``fastmango config init``) and the settings reference are generated from it.
Loading (which files, environment, flags, provenance, error reporting) is in
:mod:`fastmango.agent.config`.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from fastmango.agent.settings_alerts import AlertsSettings
from fastmango.agent.settings_base import (
    _SIZE_UNITS,
    _UNITS,
    Duration,
    Model,
    Size,
    parse_duration,
    parse_size,
)
from fastmango.agent.settings_cost import CostSettings
from fastmango.agent.settings_deploy import DeploySettings, EnvironmentSettings
from fastmango.agent.settings_fleet import FleetSettings
from fastmango.agent.settings_logs import LogsSettings
from fastmango.agent.settings_scale import ScaleSettings

__all__ = ["_SIZE_UNITS", "_UNITS", "Duration", "Settings", "Size", "parse_duration", "parse_size"]

_Model = Model


class ServerSettings(_Model):
    host: str = Field(
        "127.0.0.1",
        description="Address the agent's HTTP side (/metrics, /healthz, API, dashboard) binds. "
        "Anything but loopback requires server.token.",
    )
    port: int = Field(9871, ge=1, le=65535, description="TCP port of the agent's HTTP side.")
    token: SecretStr | None = Field(
        None,
        description="Bearer token required on every request except /healthz when the agent "
        "binds a non-loopback address. Prefer FASTMANGO_SERVER__TOKEN over a file.",
    )
    public_metrics: bool = Field(
        False, description="Serve /metrics without the token (for scrapers that cannot send one)."
    )
    max_body: Size = Field(
        1_048_576, ge=1024, description="Largest request body the API accepts (413 beyond)."
    )
    rate_limit: float = Field(
        50.0,
        ge=0,
        description="API requests per second per client address (429 beyond); 0 = no limit. "
        "Scrapes of /metrics are not counted.",
    )
    rate_burst: int = Field(200, ge=1, description="Requests a client may send at once.")

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    @model_validator(mode="after")
    def _token_off_loopback(self) -> ServerSettings:
        if not self.is_loopback and self.token is None:
            raise ValueError(
                f"binding {self.host} (not loopback) requires server.token "
                "(set FASTMANGO_SERVER__TOKEN)"
            )
        return self


class CollectorSettings(_Model):
    enabled: bool = Field(True, description="Run this collector.")
    interval: Duration | None = Field(
        None, ge=1, description="Seconds between collections; empty = collectors.interval."
    )


class PostgresCollectorSettings(CollectorSettings):
    """The app's PostgreSQL (``database_url``) and any further servers."""

    extra_urls: list[SecretStr] = Field(
        default_factory=list, description="Further PostgreSQL DSNs to watch besides database_url."
    )
    statement_timeout: Duration = Field(
        2.0, gt=0, description="Statement timeout of each monitoring query."
    )
    top_queries: int = Field(
        10, ge=0, le=100, description="Top queries (pg_stat_statements) exposed on /metrics."
    )


class AppCollectorSettings(CollectorSettings):
    """Scrapes the app's own Prometheus endpoint(s) and derives req/s, latency, errors."""

    metrics_urls: list[str] = Field(
        default_factory=list,
        description="The app's metrics endpoints, e.g. http://127.0.0.1:8000/metrics.",
    )
    preset: Literal["fastmango", "instrumentator", "starlette_exporter"] = Field(
        "fastmango",
        description="Metric names the app exposes: fastmango (FastmangoMiddleware, OTel names), "
        "instrumentator (prometheus-fastapi-instrumentator) or starlette_exporter.",
    )
    duration_metric: str | None = Field(
        None, description="Override: request duration histogram (base name), with the route."
    )
    whole_duration_metric: str | None = Field(
        None, description="Override: histogram for whole-app quantiles (default duration_metric)."
    )
    requests_metric: str | None = Field(
        None, description="Override: request counter (with _total); empty = duration's _count."
    )
    active_metric: str | None = Field(None, description="Override: in-flight requests gauge.")
    route_label: str | None = Field(None, description="Override: label holding the route.")
    status_label: str | None = Field(None, description="Override: label holding the status.")
    scrape_timeout: Duration = Field(2.0, gt=0, description="Timeout of each scrape of a URL.")
    top_routes: int = Field(
        20, ge=1, le=200, description="Routes given their own series; the rest are route=other."
    )


class CollectorsSettings(_Model):
    interval: Duration = Field(10.0, ge=1, description="Default seconds between collections.")
    timeout: Duration = Field(
        5.0, gt=0, description="A collection running longer is counted as failed."
    )
    host: CollectorSettings = Field(
        default_factory=CollectorSettings,
        description="Host metrics (psutil), node_exporter names.",
    )
    container: CollectorSettings = Field(
        default_factory=CollectorSettings,
        description="The agent's own cgroup (v1 or v2), cAdvisor names.",
    )
    postgres: PostgresCollectorSettings = Field(
        default_factory=PostgresCollectorSettings,
        description="PostgreSQL (asyncpg), postgres_exporter names; runs when database_url is set.",
    )
    gpu: CollectorSettings = Field(
        default_factory=CollectorSettings,
        description="NVIDIA GPUs (NVML), dcgm-exporter names; quiet where there is no GPU.",
    )
    app: AppCollectorSettings = Field(
        default_factory=AppCollectorSettings,
        description="The app's request, latency, error and AI-inference metrics.",
    )

    def interval_of(self, name: str) -> float:
        own: CollectorSettings | None = getattr(self, name, None)
        return own.interval if own is not None and own.interval else self.interval


class StoreSettings(_Model):
    path: Path | None = Field(
        None, description="SQLite file of the state store; empty = <state_dir>/state.db."
    )
    max_size: Size = Field(
        200 * 10**6, ge=10**6, description="Size the store is pruned under (oldest data first)."
    )
    raw_retention: Duration = Field(
        7200.0, ge=3600, description="How long samples are kept at full resolution."
    )
    rollup_retention: Duration = Field(
        35 * 86400.0, ge=86400, description="How long 1-minute roll-ups are kept."
    )
    prune_interval: Duration = Field(
        60.0, ge=1, description="Seconds between roll-up and pruning passes."
    )


class Settings(_Model):
    """All settings of fastmango; see ``fastmango config init`` for a commented sample."""

    state_dir: Path = Field(
        Path(".fastmango"), description="Folder for the agent's state (relative to the app)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Agent log level."
    )
    shutdown_timeout: Duration = Field(
        5.0, gt=0, description="Seconds a graceful stop may take before it is forced."
    )
    database_url: SecretStr | None = Field(
        None,
        description="The app's PostgreSQL DSN (FASTMANGO_DATABASE_URL): watched by the postgres "
        "collector, and the fleet's coordination point.",
    )
    server: ServerSettings = Field(default_factory=ServerSettings, description="HTTP side.")
    collectors: CollectorsSettings = Field(
        default_factory=CollectorsSettings, description="Collection schedule."
    )
    store: StoreSettings = Field(default_factory=StoreSettings, description="State store.")
    logs: LogsSettings = Field(
        default_factory=LogsSettings, description="The app's logs: tailing, redaction, index."
    )
    alerts: AlertsSettings = Field(
        default_factory=AlertsSettings, description="Alert rules, routing and channels."
    )
    scale: ScaleSettings = Field(default_factory=ScaleSettings, description="Scaling policies.")
    deploy: DeploySettings = Field(default_factory=DeploySettings, description="Deploys.")
    cost: CostSettings = Field(default_factory=CostSettings, description="Cost estimates.")
    fleet: FleetSettings = Field(
        default_factory=FleetSettings, description="Fleet of sidecars sharing the app's PostgreSQL."
    )
    environments: dict[str, EnvironmentSettings] = Field(
        default_factory=dict,
        description="Where the app runs: one table per environment (staging, production…) "
        "naming its platform, app and size.",
    )

    @property
    def store_path(self) -> Path:
        return self.store.path or self.state_dir / "state.db"
