"""The channels against local servers that answer as Slack, Discord and an SMTP server
do, through the real client code (slack-sdk, httpx, smtplib)."""

from __future__ import annotations

import time

from fastmango.agent.alerts.notify.discord import DiscordNotifier
from fastmango.agent.alerts.notify.email import EmailNotifier
from fastmango.agent.alerts.notify.slack import SlackNotifier
from tests.alerts.conftest import SMTP_PASSWORD, SMTP_USER, Mailbox, make_alert, note
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import TOKEN, FakeSlack

LINK = "http://127.0.0.1:9871/#/alerts"


def bot(slack: FakeSlack, token: str = TOKEN, retries: int = 2) -> SlackNotifier:
    return SlackNotifier(
        token=token, channel="#alerts", api_url=slack.api_url, timeout=5, retries=retries
    )


async def test_slack_bot_posts_then_updates_the_same_message(slack: FakeSlack) -> None:
    n = bot(slack)
    first = await n.send(note(make_alert()), LINK)
    assert first.ok, first.error
    assert first.ref["slack_channel"] == "C0ALERTS"
    ts = first.ref["slack_ts"]
    msg = slack.messages[ts]
    header = msg.blocks[0]["text"]["text"]
    assert header.startswith("🔴 [FIRING:1] HighErrorRatio")
    fields = " ".join(
        f["text"] for b in msg.blocks if b["type"] == "section" for f in b.get("fields", [])
    )
    assert "*Severity:*\ncritical" in fields and "0.12 / 0.05" in fields and "<!date^" in fields
    assert any(b["type"] == "actions" and b["elements"][0]["url"] == LINK for b in msg.blocks)
    assert msg.text.startswith("🔴 [FIRING:1]")  # the notification fallback
    done = await n.send(note(make_alert(status="resolved"), ref=first.ref), LINK)
    assert done.ok and done.ref["slack_ts"] == ts
    assert len(slack.calls("chat.postMessage")) == 1 and len(slack.calls("chat.update")) == 1
    assert slack.messages[ts].blocks[0]["text"]["text"].startswith("✅ [RESOLVED] HighErrorRatio")
    auth = slack.calls("chat.update")[0].headers["Authorization"]
    assert auth == f"Bearer {TOKEN}"


async def test_slack_repeat_updates_and_replies_in_the_thread(slack: FakeSlack) -> None:
    from dataclasses import replace

    n = bot(slack)
    first = await n.send(note(make_alert()), LINK)
    again = await n.send(replace(note(make_alert(), ref=first.ref), repeat=True), LINK)
    assert again.ok and again.ref == first.ref
    msg = slack.messages[first.ref["slack_ts"]]
    assert len(msg.updates) == 1 and msg.replies[0]["text"].startswith("Still firing: ")
    assert len(slack.messages) == 1  # the reply is in the thread, not a new message


async def test_slack_honours_retry_after(slack: FakeSlack) -> None:
    slack.next("ratelimit", retry_after=1)
    started = time.monotonic()
    r = await bot(slack).send(note(make_alert()), LINK)
    assert r.ok, r.error
    calls = slack.calls("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 0.95 and time.monotonic() - started >= 0.95


async def test_slack_retries_a_500_then_succeeds(slack: FakeSlack) -> None:
    slack.next("500")
    r = await bot(slack).send(note(make_alert()), LINK)
    assert r.ok and [c.status for c in slack.calls("chat.postMessage")] == [500, 200]


async def test_slack_invalid_auth_is_reported_not_raised(slack: FakeSlack) -> None:
    r = await bot(slack, token="xoxb-wrong").send(note(make_alert()), LINK)
    assert not r.ok and "invalid_auth" in r.error and "xoxb-wrong" not in r.error
    assert len(slack.calls("chat.postMessage")) == 1  # an auth error is not retried


async def test_slack_gives_up_after_its_retries(slack: FakeSlack) -> None:
    slack.next("500", times=5)
    r = await bot(slack, retries=1).send(note(make_alert()), LINK)
    assert not r.ok and "500" in r.error
    assert len(slack.calls("chat.postMessage")) == 2


async def test_slack_slow_answer_times_out(slack: FakeSlack) -> None:
    slack.next("slow", seconds=2.5, times=3)
    n = SlackNotifier(token=TOKEN, channel="#alerts", api_url=slack.api_url, timeout=1, retries=0)
    started = time.monotonic()
    r = await n.send(note(make_alert()), LINK)
    assert not r.ok and time.monotonic() - started < 2.4


async def test_slack_webhook(slack: FakeSlack) -> None:
    n = SlackNotifier(webhook_url=slack.webhook_url, retries=2)
    slack.next("ratelimit", retry_after=1)
    r = await n.send(note(make_alert()), LINK)
    assert r.ok, r.error
    assert len(slack.webhook_posts) == 1
    assert slack.webhook_posts[0]["blocks"][0]["type"] == "header"
    bad = SlackNotifier(webhook_url=slack.url + "/services/T/B/nope", retries=0)
    r = await bad.send(note(make_alert()), LINK)
    assert not r.ok and "404" in r.error and "no_service" in r.error


async def test_slack_huge_alert_stays_within_limits(slack: FakeSlack) -> None:
    huge = [
        make_alert(summary="x" * 50_000, description="y" * 50_000, route=f"/r{i}" * 300)
        for i in range(80)
    ]
    r = await bot(slack).send(note(*huge), LINK)
    assert r.ok, r.error
    msg = next(iter(slack.messages.values()))
    assert "…and" in msg.blocks[-3]["text"]["text"]  # the rest is summarized, not dropped silently
    assert any("[truncated]" in b.get("text", {}).get("text", "") for b in msg.blocks)


async def test_discord_embed_and_wait(discord: FakeDiscord) -> None:
    n = DiscordNotifier(discord.webhook_url, retries=2)
    try:
        r = await n.send(note(make_alert(route="/api/items"), channel="discord"), LINK)
        assert r.ok, r.error
        assert r.ref["discord_message_id"] == discord.messages[0]["id"]
        req = discord.requests[0]
        assert req.path.endswith("?wait=true")
        body = req.body
        assert body["content"] == "[FIRING:1] HighErrorRatio"
        embed = body["embeds"][0]
        assert embed["color"] == 0x992D22 and embed["url"] == LINK
        assert {"name": "route", "value": "/api/items", "inline": True} in embed["fields"]
        assert body["allowed_mentions"] == {"parse": []}
        first = r.ref
        r = await n.send(note(make_alert(status="resolved"), ref=first, channel="discord"), LINK)
        assert r.ok and len(discord.messages) == 1  # the resolve edits the same message
        assert discord.edits == [first["discord_message_id"]]
        assert discord.messages[0]["embeds"][0]["color"] == 0x2ECC71
        assert discord.messages[0]["content"] == "[RESOLVED] HighErrorRatio"
        gone = {"discord_message_id": "1"}  # deleted meanwhile: a new message instead
        r = await n.send(note(make_alert(status="resolved"), ref=gone, channel="discord"), LINK)
        assert r.ok and len(discord.messages) == 2
    finally:
        await n.close()


async def test_discord_429_retry_after_then_500_then_ok(discord: FakeDiscord) -> None:
    discord.next("ratelimit", retry_after=0.4)
    discord.next("500")
    n = DiscordNotifier(discord.webhook_url, retries=3)
    try:
        r = await n.send(note(make_alert(), channel="discord"), LINK)
        assert r.ok and r.attempts == 3
        times = [q.at for q in discord.requests]
        assert times[1] - times[0] >= 0.38  # retry_after from the body honoured
        assert [q.status for q in discord.requests] == [429, 500, 200]
    finally:
        await n.close()


async def test_discord_down_is_reported(discord: FakeDiscord) -> None:
    n = DiscordNotifier(discord.url + "/api/webhooks/1/wrong", retries=3)
    try:
        r = await n.send(note(make_alert(), channel="discord"), LINK)
        assert not r.ok and "404" in r.error and r.attempts == 1  # 4xx: no retry
    finally:
        await n.close()
    dead = DiscordNotifier("http://127.0.0.1:9/api/webhooks/1/x", retries=1, timeout=1)
    try:
        r = await dead.send(note(make_alert(), channel="discord"), LINK)
        assert not r.ok and "ConnectError" in r.error and r.attempts == 2
    finally:
        await dead.close()


async def test_discord_huge_alerts_fit(discord: FakeDiscord) -> None:
    huge = [make_alert(summary="z" * 9000, route="r" * 5000, name="A" * 400) for _ in range(30)]
    n = DiscordNotifier(discord.webhook_url, retries=0)
    try:
        r = await n.send(note(*huge, channel="discord"), LINK)
        assert r.ok, r.error
        assert "more alerts" in discord.messages[0]["content"]
    finally:
        await n.close()


def mailer(box: Mailbox, **kw: object) -> EmailNotifier:
    args: dict[str, object] = dict(
        host=box.host,
        port=box.port,
        username=SMTP_USER,
        password=SMTP_PASSWORD,
        sender="fastmango@example.com",
        to=["ops@example.com", "oncall@example.com"],
        timeout=5,
        retries=0,
        tls_context=box.client_context(),
    )
    args.update(kw)
    return EmailNotifier(**args)  # type: ignore[arg-type]


async def test_email_starttls_auth_parts_and_thread(smtp: Mailbox) -> None:
    n = mailer(smtp)
    first = await n.send(note(make_alert(description="<b>not html</b>"), channel="email"), LINK)
    assert first.ok, first.error
    resolved = await n.send(
        note(make_alert(status="resolved"), ref=first.ref, channel="email"), LINK
    )
    assert resolved.ok, resolved.error
    assert smtp.logins == [SMTP_USER, SMTP_USER] and smtp.tls_sessions == 2
    m1, m2 = smtp.received
    assert m1["Subject"] == "[FIRING:1] HighErrorRatio"
    assert m2["Subject"] == "[RESOLVED] HighErrorRatio"
    assert first.ref["email_thread"] == m1["Message-ID"]
    assert m2["In-Reply-To"] == m1["Message-ID"] and m2["References"] == m1["Message-ID"]
    assert m1["Message-ID"] != m2["Message-ID"]
    assert smtp.envelopes[0].rcpt_tos == ["ops@example.com", "oncall@example.com"]
    plain = m1.get_body(("plain",)).get_content()
    html = m1.get_body(("html",)).get_content()
    assert "value / threshold: 0.12 / 0.05" in plain and LINK in plain
    assert "&lt;b&gt;not html&lt;/b&gt;" in html and "<b>not html</b>" not in html
    assert m1.get_content_type() == "multipart/alternative"


async def test_email_wrong_password_is_a_clear_failure(smtp: Mailbox) -> None:
    r = await mailer(smtp, password="nope", retries=2).send(
        note(make_alert(), channel="email"), LINK
    )
    assert not r.ok and r.error.startswith("SMTP 535") and r.attempts == 1
    assert "nope" not in r.error and not smtp.received


async def test_email_refuses_without_tls_when_required(smtp: Mailbox) -> None:
    r = await mailer(smtp, starttls=False).send(note(make_alert(), channel="email"), LINK)
    assert not r.ok and "require_tls" in r.error and not smtp.logins


async def test_email_server_down(smtp: Mailbox) -> None:
    from tests.conftest import free_port

    r = await mailer(smtp, port=free_port(), retries=1).send(
        note(make_alert(), channel="email"), LINK
    )
    assert not r.ok and "ConnectionRefused" in r.error and r.attempts == 2
