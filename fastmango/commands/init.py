"""``fastmango init NAME --deploy=PLATFORM``: a new app's folder with a ``fastmango.toml``
whose ``[environments.staging]`` and ``[environments.production]`` are set up for the
platform (the fields :func:`fastmango.agent.deploys.actions.target_of` hands the
platform's adapter), each value commented with where it comes from. Tokens never go in
the file: they go in ``FASTMANGO_ENVIRONMENTS__<ENV>__TOKEN``."""

from __future__ import annotations

from pathlib import Path

import click

from fastmango.commands.common import fail

#: ``fastmango.agent.settings_deploy.Platform`` minus "none" (kept here so that
#: ``fastmango --help`` imports no pydantic; a test keeps the two equal)
PLATFORMS = ("fly", "railway", "render", "kubernetes", "cloudrun", "ecs", "azure")
ENVIRONMENTS = ("staging", "production")
#: the region written when --regions is not given (None: the platform takes none)
DEFAULT_REGIONS: dict[str, str | None] = {
    "fly": "iad",
    "railway": "us-west2",
    "render": None,
    "kubernetes": None,
    "cloudrun": "us-central1",
    "ecs": "us-east-1",
    "azure": "eastus",
}
#: platforms whose service lives in exactly one region
ONE_REGION = frozenset({"ecs", "azure"})
TOKENS = {
    "fly": "a Fly deploy token: fly tokens create deploy -a <app>",
    "railway": 'a Railway account/team token, or a project token written "project:<token>"',
    "render": "a Render API key (Account settings > API keys)",
    "kubernetes": "not needed: the kubeconfig (or the pod's service account) has the credentials",
    "cloudrun": "an OAuth access token (gcloud auth print-access-token); not needed on "
    "GCE/Cloud Run, where the metadata server gives one",
    "ecs": "ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN] (or AWS_ACCESS_KEY_ID …)",
    "azure": "an Entra ID token for https://management.azure.com/ (az account get-access-token)",
}


def _s(value: str) -> str:
    """A TOML basic string."""
    import json

    return json.dumps(value)


def _environment(platform: str, name: str, env: str, regions: list[str]) -> list[str]:
    """The lines of ``[environments.<env>]`` for ``platform``."""
    suffix = "" if env == "production" else f"-{env}"
    lines = [f"[environments.{env}]", f"platform = {_s(platform)}"]
    if platform == "fly":
        lines += [
            "# the Fly app (fly apps create <name>); Fly app names are global",
            f"app = {_s(name + suffix)}",
        ]
    elif platform == "railway":
        lines += [
            "# ids from the Railway dashboard (Settings of the project / environment /",
            "# service) or `railway status --json`",
            'project = "REPLACE_ME-railway-project-id"',
            f'environment_id = "REPLACE_ME-railway-{env}-environment-id"',
            f"app = {_s(f'REPLACE_ME-railway-{env}-service-id')}  # the service id",
        ]
    elif platform == "render":
        lines += [
            "# the service id (srv-…) in the service's URL on dashboard.render.com",
            f"app = {_s(f'srv-REPLACE_ME-{name}{suffix}')}",
        ]
    elif platform == "kubernetes":
        lines += [
            "# the Deployment's name",
            f"app = {_s(name)}",
            f"namespace = {_s(name + suffix)}",
            "# kubeconfig file (and context); leave them out to use the pod's service account",
            'kubeconfig = "~/.kube/config"',
            f'# context = "{env}"',
        ]
    elif platform == "cloudrun":
        lines += [
            "# the Cloud Run service id and the GCP project id (gcloud config get project)",
            f"app = {_s(name + suffix)}",
            'project = "REPLACE_ME-gcp-project-id"',
        ]
    elif platform == "ecs":
        lines += [
            "# cluster/service of the Fargate service (or just the service in the default cluster)",
            f"app = {_s(f'{name}{suffix}/{name}')}",
        ]
    elif platform == "azure":
        lines += [
            "# resourceGroup/containerGroup of the Azure Container Instances group, and the",
            "# subscription id (az account show --query id)",
            f"app = {_s(f'{name}-rg/{name}{suffix}')}",
            'project = "REPLACE_ME-azure-subscription-id"',
        ]
    if regions:
        what = "its one region" if platform in ONE_REGION else "the regions it runs in"
        lines += [f"# {what}", "regions = [" + ", ".join(_s(r) for r in regions) + "]"]
    lines += [
        f"# token: {TOKENS[platform]};",
        f"# set FASTMANGO_ENVIRONMENTS__{env.upper()}__TOKEN, never write it here",
    ]
    return lines


def render_config(platform: str, name: str, regions: list[str]) -> str:
    """The text of the new app's ``fastmango.toml``."""
    lines = [
        f"# fastmango settings of {name}, deployed to {platform} (fastmango init).",
        "# Values marked REPLACE_ME come from the platform; every key: fastmango config show",
        "",
        "[deploy]",
        "# deploys to these environments ask first (or --yes)",
        'approval_required = ["production"]',
        '# test_command = "pytest -q"              # run by deploy --wait-for-tests',
        '# migrate_command = "alembic upgrade head"',
    ]
    for env in ENVIRONMENTS:
        lines += ["", *_environment(platform, name, env, regions)]
    return "\n".join(lines) + "\n"


@click.command()
@click.argument("name")
@click.option(
    "--deploy",
    "platform",
    required=True,
    type=click.Choice(PLATFORMS),
    help="The platform the app is deployed to.",
)
@click.option("--regions", default="", help="Comma-separated regions (default: the platform's).")
@click.option("--force", is_flag=True, help="Overwrite an existing NAME/fastmango.toml.")
def init(name: str, platform: str, regions: str, force: bool) -> None:
    """Create folder NAME with a fastmango.toml for deploying to PLATFORM."""
    folder = Path(name)
    app = folder.resolve().name
    if not app:
        fail(f"{name!r} is not a folder name")
    chosen = [r.strip() for r in regions.split(",") if r.strip()]
    if not chosen:
        default = DEFAULT_REGIONS[platform]
        chosen = [default] if default else []
    elif DEFAULT_REGIONS[platform] is None:
        fail(f"{platform} takes no regions (the service's region is set on the platform)")
    if platform in ONE_REGION and len(chosen) > 1:
        fail(f"{platform} runs a service in one region; got {', '.join(chosen)}")
    target = folder / "fastmango.toml"
    if target.exists() and not force:
        fail(f"{target} exists; use --force to overwrite it")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target.write_text(render_config(platform, app, chosen), encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {target}: {exc}")
    click.echo(f"wrote {target} ({platform}: environments staging and production)")
    click.echo("next steps:")
    click.echo(f"  cd {folder}")
    click.echo("  edit fastmango.toml: replace the REPLACE_ME values, check app and regions")
    if platform != "kubernetes":
        click.echo("  export FASTMANGO_ENVIRONMENTS__STAGING__TOKEN=…  (and …__PRODUCTION__TOKEN)")
    click.echo("  fastmango secrets set SECRET_NAME --env staging   (the app's own secrets)")
    click.echo(f"  fastmango deploy {platform} --env=staging")


COMMANDS: list[click.Command] = [init]
