"""``fastmango logs``: search, follow and export the logs the running agent indexed."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

_COLOURS = {
    "trace": "bright_black",
    "debug": "bright_black",
    "info": "green",
    "notice": "cyan",
    "warn": "yellow",
    "error": "red",
    "fatal": "magenta",
}


def _format(line: dict[str, Any], colour: bool) -> str:
    import time

    ts = line.get("ts") or 0.0
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f"{ts % 1:.3f}"[1:] + "Z"
    level = (line.get("level") or "-").upper()
    lv = f"{level:<6}"
    if colour and line.get("level") in _COLOURS:
        lv = click.style(lv, fg=_COLOURS[line["level"]], bold=line["level"] in ("error", "fatal"))
    src = line.get("source") or ""
    if line.get("instance"):  # a fleet search: which agent's app wrote it
        src = f"{line['instance']}/{src}"
    if colour:
        src = click.style(src, dim=True)
    return f"{stamp} {lv} {src} {line.get('text', '')}"


def _emit(line: dict[str, Any], as_json: bool, colour: bool) -> None:
    import json

    if as_json:
        click.echo(json.dumps(line, ensure_ascii=False))
    else:
        click.echo(_format(line, colour))


@click.group("logs", invoke_without_command=True)
@click.option("--tail", "-f", "follow", is_flag=True, help="Follow new lines as they are indexed.")
@click.option(
    "--search",
    "-s",
    "query",
    default=None,
    metavar="QUERY",
    help='Query: words, "phrases", prefix*, AND/OR/NOT, level:error, status>=500, '
    "/regex/ (see README).",
)
@click.option("--since", help="Start: 15m, 2h, 7d ago, Unix seconds or ISO 8601.")
@click.option("--until", help="End: 15m ago, Unix seconds or ISO 8601.")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(1, 10_000),
    default=100,
    show_default=True,
    help="Lines to show (newest ones, printed oldest first).",
)
@click.option("--count", is_flag=True, help="Also print how many lines match in all.")
@click.option("--export", "export", is_flag=True, help="Write every match (oldest first).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="Export format.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Export to this file (default: stdout).",
)
@click.option("--json", "as_json", is_flag=True, help="Print lines as JSON objects.")
@click.option("--fleet", "fleet", is_flag=True,
              help="Search every live agent of the fleet, merged by time.")  # fmt: skip
@click.option("--url", help="Agent URL (default: from the settings).")
@click.pass_context
def logs(
    ctx: click.Context,
    follow: bool,
    query: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    count: bool,
    export: bool,
    fmt: str,
    output: Path | None,
    as_json: bool,
    fleet: bool,
    url: str | None,
) -> None:
    """Search, follow (--tail) or export (--export) the logs the agent indexed.

    \b
    fastmango logs --search 'level:error' --since 1h
    fastmango logs --tail --search 'status>=500'
    fastmango logs --export --format csv -o errors.csv --search 'level>=warn'
    fastmango logs purge --match 'user@example.com' --reason 'erasure request #42'
    """
    from fastmango.commands.common import load

    if ctx.invoked_subcommand is not None:  # fastmango logs purge …
        ctx.obj["logs_url"] = url
        return
    if follow and export:
        raise click.UsageError("--tail and --export go one at a time: follow, or write out")
    if (fleet or count) and (follow or export):
        raise click.UsageError("--fleet and --count are for a search, not --tail or --export")
    if follow and (since or until):
        raise click.UsageError("--tail follows from now: --since/--until go with a search")
    if (fmt != "jsonl" or output is not None) and not export:
        raise click.UsageError("--format and -o/--output go with --export")
    colour = sys.stdout.isatty() and not as_json
    if export:
        _export(ctx, url, load, query or "", since, until, fmt, output)
        return
    if follow:
        _follow(ctx, url, load, query or "", as_json, colour)
        return
    from fastmango.agent.client import agent_request

    params: dict[str, Any] = {"q": query or "", "limit": limit, "count": count, "fleet": fleet}
    if since:
        params["since"] = since
    if until:
        params["until"] = until
    doc = agent_request(ctx, "GET", "/api/logs/search", url, load, params=params, timeout=60)
    for line in reversed(doc["lines"]):
        _emit(line, as_json, colour)
    if doc.get("partial"):
        click.echo(
            "fastmango: the search stopped early (logs.query_timeout) before looking at "
            "every line; more may match: narrow it with --since/--until or a word",
            err=True,
        )
    if count:
        exact = "" if doc.get("exact", True) else " (at least; the scan stopped early)"
        n = doc["count"]
        click.echo(f"{n} matching line{'' if n == 1 else 's'}{exact}", err=True)


def _stream(
    ctx: click.Context,
    url: str | None,
    load: Any,
    path: str,
    params: dict[str, Any],
    timeout: float | None,
    extra_headers: dict[str, str] | None = None,
    *,
    retry: bool = False,
) -> Any:
    """(client, streaming response) of a GET to the agent; exits 1 saying why when no
    agent answers (None instead when ``retry``: the caller waits for it) or it refuses."""
    import httpx

    from fastmango.agent.client import agent_address
    from fastmango.errors import AgentNotRunning

    base, headers = agent_address(ctx, url, load)
    client = httpx.Client(timeout=httpx.Timeout(10.0, read=timeout))
    try:
        resp = client.send(
            client.build_request(
                "GET", base + path, params=params, headers=headers | (extra_headers or {})
            ),
            stream=True,
        )
    except httpx.TransportError as exc:
        client.close()
        if retry:
            return None
        click.echo(f"fastmango: {AgentNotRunning.hint(base, exc)}", err=True)
        raise SystemExit(1) from None
    if retry and (resp.status_code == 404 or resp.status_code >= 500):
        resp.close()  # an agent still starting (its logs not open yet): not back yet
        client.close()
        return None
    if resp.status_code >= 400:
        resp.read()
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        if isinstance(detail, dict):
            detail = detail.get("message", detail)
        resp.close()
        client.close()
        click.echo(f"fastmango: {path} answered {resp.status_code}: {detail}", err=True)
        raise SystemExit(1)
    return client, resp


def _export(
    ctx: click.Context,
    url: str | None,
    load: Any,
    query: str,
    since: str | None,
    until: str | None,
    fmt: str,
    output: Path | None,
) -> None:
    params: dict[str, Any] = {"q": query, "format": fmt}
    if since:
        params["since"] = since
    if until:
        params["until"] = until
    from fastmango.commands.common import fail

    client, resp = _stream(ctx, url, load, "/api/logs/export", params, None)
    try:  # (opened once the agent answers: no empty file when none runs)
        out = output.open("wb") if output else sys.stdout.buffer
    except OSError as exc:
        resp.close()
        client.close()
        fail(f"cannot write {output}: {exc.strerror or exc}")
    written = 0
    try:
        for chunk in resp.iter_bytes():
            out.write(chunk)
            written += len(chunk)
            if output is not None and sys.stderr.isatty():
                click.echo(f"\r{written / 1e6:.1f} MB", err=True, nl=False)
    except BrokenPipeError:  # `| head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    finally:
        resp.close()
        client.close()
        if output is not None:
            out.close()
    if output is not None:
        click.echo(f"\rwrote {written} bytes to {output}", err=True)


def _follow(
    ctx: click.Context, url: str | None, load: Any, query: str, as_json: bool, colour: bool
) -> None:
    """Follow the agent's live tail; when the agent goes away (a restart, a deploy) wait
    for it and resume after the last line shown (``Last-Event-ID``): nothing repeated,
    nothing missed up to the agent's replay limit. Ctrl-C stops."""
    import json
    import time

    import httpx

    params = {"q": query, "backlog": 10}
    last: str | None = None  # the id of the last line shown
    away = False  # the agent went away: wait for it, resume after ``last``
    delay = 0.5
    try:
        while True:
            headers = {"Last-Event-ID": last} if last is not None else {}
            got = _stream(ctx, url, load, "/api/logs/tail", params, None, headers, retry=away)
            if got is None:  # not back yet
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            client, resp = got
            if away:
                click.echo("fastmango: reconnected", err=True)
            delay = 0.5
            event = ""
            try:
                for raw in resp.iter_lines():
                    if raw.startswith("event:"):
                        event = raw[6:].strip()
                    elif raw.startswith("id:"):
                        last = raw[3:].strip()
                    elif raw.startswith("data:") and event == "line":
                        _emit(json.loads(raw[5:]), as_json, colour)
                        sys.stdout.flush()
                    elif raw.startswith("data:") and event == "dropped":
                        d = json.loads(raw[5:])
                        why = d.get("why", "the terminal fell behind")
                        click.echo(f"fastmango: {d['dropped']} lines skipped ({why})", err=True)
            except httpx.TransportError:
                pass
            finally:
                resp.close()
                client.close()
            away = True
            click.echo("fastmango: the agent went away; waiting for it to come back", err=True)
    except KeyboardInterrupt:
        pass


COMMANDS: list[click.Command] = [logs]


@logs.command("purge")
@click.option("--match", "needle", required=True, metavar="TEXT",
              help="Erase every indexed line containing this text (any case).")  # fmt: skip
@click.option("--reason", default="", help="Why (kept in the audit log).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--url", help="Agent URL (default: from the settings).")
@click.pass_context
def purge(ctx: click.Context, needle: str, reason: str, yes: bool, url: str | None) -> None:
    """Erase a person's lines from the log index (GDPR) and say how many.

    The running agent blanks every stored line that contains TEXT and removes its words
    from the full-text index (old bytes overwritten). The audit log records who, when,
    why and how many lines, but only a fingerprint of TEXT, never TEXT itself.
    """
    from fastmango.agent.client import agent_request
    from fastmango.commands.common import fail, load

    if len(needle) < 3:
        fail("--match needs at least 3 characters (a shorter text would erase too much)")
    if not yes:
        if not sys.stdin.isatty():
            fail("purge erases lines for good: pass --yes to confirm without a terminal")
        click.confirm(f"Erase every indexed log line containing {needle!r}?", abort=True)
    url = url or ctx.obj.get("logs_url")
    done = agent_request(ctx, "POST", "/api/logs/purge", url, load,
                         json={"match": needle, "reason": reason}, timeout=600)  # fmt: skip
    click.echo(f"erased {done['erased']} line(s) of {done['scanned']} indexed "
               f"(audit: match sha256 {done['match_sha256']})")  # fmt: skip
