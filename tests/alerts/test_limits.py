"""Property tests: whatever the alert text, labels and count, no message breaks a
provider's limit (checked by the same rules the fake servers enforce)."""

from __future__ import annotations

import json
from email import message_from_bytes, policy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastmango.agent.alerts.notify import MARKER, clip
from fastmango.agent.alerts.notify import discord as D
from fastmango.agent.alerts.notify import email as M
from fastmango.agent.alerts.notify import slack as S
from fastmango.agent.alerts.routing import Alert, Notification, fingerprint
from tests.fakes.discord import problems
from tests.fakes.slack import _blocks_problem

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=2500)
label = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=300)
values = st.floats(allow_nan=True, allow_infinity=True) | st.none()


@st.composite
def alerts(draw: st.DrawFn) -> Alert:
    labels = {
        "alertname": draw(st.text(min_size=1, max_size=400)),
        "severity": draw(st.sampled_from(["info", "warning", "critical"])),
    }
    labels.update(draw(st.dictionaries(label, text, max_size=30)))
    status = draw(st.sampled_from(["firing", "resolved"]))
    return Alert(
        fingerprint(labels),
        draw(st.text(max_size=300)),
        labels,
        status,
        draw(values),
        draw(values),
        draw(text),
        draw(text),
        draw(st.floats(0, 4e9)),
        draw(st.floats(0, 4e9)) if status == "resolved" else None,
        ("slack",),
        draw(st.text(max_size=2000)),
    )


notes = st.builds(
    lambda al, g: Notification("slack:g", "slack", g, tuple(al), {}),
    st.lists(alerts(), min_size=1, max_size=25),
    st.dictionaries(label, text, max_size=5),
)
FAST = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FAST
@given(notes, text)
def test_slack_message_within_limits(note: Notification, link: str) -> None:
    msg = S.message(note, "http://x/" + link[:100])
    assert _blocks_problem(msg["blocks"]) is None
    assert len(msg["text"]) <= 40000
    assert len(json.dumps(msg["blocks"], ensure_ascii=False)) <= 13200


@FAST
@given(notes, text)
def test_discord_message_within_limits(note: Notification, name: str) -> None:
    body = D.message(note, "https://dash.example/#/alerts", username=name or "x")
    assert problems(body) == {}
    assert len(body["username"]) <= 80


@FAST
@given(notes)
def test_email_headers_and_parts(note: Notification) -> None:
    msg = M.message(note, "https://dash.example/", "a@example.com", ["b@example.com"])
    raw = msg.as_bytes()
    assert all(len(line) <= 998 for line in raw.split(b"\n") if line)
    parsed = message_from_bytes(raw, policy=policy.default)
    assert len(str(parsed["Subject"])) <= M.SUBJECT
    assert parsed.get_body(("plain",)) is not None and parsed.get_body(("html",)) is not None


@given(st.text(max_size=500), st.integers(0, 600))
def test_clip(s: str, limit: int) -> None:
    out = clip(s, limit)
    assert len(out) <= limit
    if len(s) <= limit:
        assert out == s
    elif limit > len(MARKER):
        assert out.endswith(MARKER) and s.startswith(out[: -len(MARKER)])
