"""Settings of the alerts section (`[alerts]` in fastmango.toml, `FASTMANGO_ALERTS__*`).

Rules are ``[[alerts.rules]]`` tables; a rule named like a built-in one tunes it (only the
keys it sets change) or turns it off (``enabled = false``). Channels are ``[alerts.slack]``,
``[alerts.discord]`` and ``[alerts.email]``; each is on when its address is set.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from fastmango.agent.settings_base import Duration, Model

Severity = Literal["info", "warning", "critical"]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CHANNELS = ("slack", "discord", "email")


class RuleSettings(Model):
    """One alert rule (``[[alerts.rules]]``)."""

    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)

    name: str = Field(description="Rule name (the alertname); a built-in's name tunes it.")
    expr: str | None = Field(
        None,
        description="Condition over the latest series, a PromQL subset ending in a "
        "comparison: http_error_ratio > 0.05; a / b > 0.9; sum by (l) (x) > 1.",
    )
    for_: Duration | None = Field(
        None, alias="for", ge=0, description="How long the condition must hold before firing."
    )
    keep_firing_for: Duration | None = Field(
        None, ge=0, description="Keep firing this long after the condition stops (anti-flap)."
    )
    clear: float | None = Field(
        None,
        description="Separate clear threshold (hysteresis): a firing alert resolves only "
        "once the value crosses this level, e.g. fire over 0.05, clear under 0.02.",
    )
    severity: Severity | None = Field(None, description="info, warning or critical.")
    alertname: str | None = Field(
        None,
        description="Alert name if not the rule's name (a critical and a warning "
        "rule sharing one name: the critical mutes the warning).",
    )
    labels: dict[str, str] | None = Field(None, description="Extra labels of its alerts.")
    summary: str | None = Field(
        None, description="One line; {{ $value }}, {{ $threshold }}, {{ $labels.x }}."
    )
    description: str | None = Field(None, description="Longer text, same placeholders.")
    channels: list[Literal["slack", "discord", "email"]] | None = Field(
        None, description="Channels it notifies; empty = every configured channel."
    )
    no_data: Literal["show", "alert"] | None = Field(
        None,
        description="With no series at all: show = the rule shows a no-data state; "
        "alert = also fire a NoData alert after `for`.",
    )
    enabled: bool = Field(True, description="false turns the rule (or a built-in) off.")

    @field_validator("name", "alertname")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not _NAME.match(v):
            raise ValueError("letters, digits and _ only, not starting with a digit")
        return v

    @field_validator("expr")
    @classmethod
    def _expr(cls, v: str | None) -> str | None:
        if v is not None:
            from fastmango.agent.alerts.expr import condition, parse

            condition(parse(v))
        return v


class InhibitSettings(Model):
    """An alert matching ``source_severity`` mutes those of ``target_severity`` that share
    the ``equal`` labels (empty: every label but severity)."""

    source_severity: Severity = Field("critical", description="Severity that mutes.")
    target_severity: Severity = Field("warning", description="Severity muted.")
    equal: list[str] | None = Field(
        None, description="Labels that must be equal; empty = all but severity."
    )


class SlackSettings(Model):
    webhook_url: SecretStr | None = Field(
        None, description="Incoming webhook URL (cannot edit messages on resolve)."
    )
    token: SecretStr | None = Field(
        None, description="Bot token (xoxb-…): chat.postMessage, and chat.update on resolve."
    )
    channel: str | None = Field(None, description="Channel id or #name for the bot token.")
    api_url: str = Field("https://slack.com/api/", description="Slack Web API base URL.")
    timeout: Duration = Field(10.0, gt=0, description="Timeout of each request.")

    @model_validator(mode="after")
    def _channel(self) -> SlackSettings:
        if self.token is not None and not self.channel:
            raise ValueError("a bot token needs alerts.slack.channel")
        return self

    @property
    def configured(self) -> bool:
        return self.webhook_url is not None or self.token is not None


class DiscordSettings(Model):
    webhook_url: SecretStr | None = Field(
        None, description="https://discord.com/api/webhooks/<id>/<token>"
    )
    username: str = Field("fastmango", description="Name the messages are posted under.")
    timeout: Duration = Field(10.0, gt=0, description="Timeout of each request.")

    @property
    def configured(self) -> bool:
        return self.webhook_url is not None


class EmailSettings(Model):
    host: str | None = Field(None, description="SMTP server (smarthost).")
    port: int = Field(587, ge=1, le=65535, description="SMTP port; 465 = implicit TLS.")
    starttls: bool = Field(True, description="Upgrade with STARTTLS (ports other than 465).")
    require_tls: bool = Field(True, description="Refuse to send (and to authenticate) without TLS.")
    username: str | None = Field(None, description="SMTP user.")
    password: SecretStr | None = Field(None, description="SMTP password.")
    sender: str = Field("fastmango@localhost", description="From address.")
    to: list[str] = Field(default_factory=list, description="Recipients.")
    ca_file: Path | None = Field(
        None, description="CA bundle that verifies the server's certificate (default: system)."
    )
    timeout: Duration = Field(10.0, gt=0, description="Timeout of the SMTP session.")

    @property
    def configured(self) -> bool:
        return self.host is not None and bool(self.to)


class AlertsSettings(Model):
    """The alerts section."""

    enabled: bool = Field(True, description="Evaluate rules and send notifications.")
    evaluation_interval: Duration = Field(
        10.0, gt=0, description="Seconds between rule evaluations."
    )
    builtin_rules: bool = Field(True, description="Load the built-in rules.")
    rules: list[RuleSettings] = Field(
        default_factory=list, description="Rules ([[alerts.rules]]); see the module docs."
    )
    group_by: list[str] = Field(
        default_factory=lambda: ["alertname"], description="Labels alerts are grouped by."
    )
    group_wait: Duration = Field(
        30.0, ge=0, description="Wait before a new group's first notification."
    )
    group_interval: Duration = Field(
        300.0, gt=0, description="Wait before notifying a group's changes."
    )
    repeat_interval: Duration = Field(
        14400.0, gt=0, description="Re-send a still-firing group this often."
    )
    send_resolved: bool = Field(True, description="Notify when alerts resolve.")
    inhibit: list[InhibitSettings] | None = Field(
        None,
        description="Inhibition rules ([[alerts.inhibit]]); empty = one rule: critical "
        "mutes warning with the same labels. [] turns inhibition off.",
    )
    dashboard_url: str | None = Field(
        None, description="Link in messages; empty = the agent's URL + /#alerts."
    )
    retries: int = Field(3, ge=0, le=10, description="Retries of a failed delivery.")
    slack: SlackSettings = Field(default_factory=SlackSettings, description="Slack.")
    discord: DiscordSettings = Field(default_factory=DiscordSettings, description="Discord.")
    email: EmailSettings = Field(default_factory=EmailSettings, description="Email (SMTP).")

    @model_validator(mode="after")
    def _rules(self) -> AlertsSettings:
        from fastmango.agent.alerts.rules import BUILTIN

        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.name in seen:
                raise ValueError(f"rules[{i}]: a second rule named {rule.name}")
            seen.add(rule.name)
            if rule.expr is None and rule.name not in BUILTIN and rule.enabled:
                raise ValueError(
                    f"rules[{i}] ({rule.name}): expr is required for a rule that is not built-in"
                )
        return self

    def inhibit_rules(self) -> list[InhibitSettings]:
        return [InhibitSettings()] if self.inhibit is None else self.inhibit

    def channels(self) -> list[str]:
        """The configured channels."""
        return [c for c in CHANNELS if getattr(self, c).configured]
