"""Settings of deploys and of the environments the app runs in.

``[environments.production]`` names the platform, the app on it, its size and region(s);
``[deploy]`` holds what applies to every deploy (hooks, health gate, lock).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from fastmango.agent.settings_base import Model

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

    def is_production(self, name: str) -> bool:
        return self.production if self.production is not None else name.startswith("prod")


class DeploySettings(Model):
    """Settings that apply to every deploy."""
