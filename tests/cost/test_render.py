"""The billing table's bars and its empty case (pure rendering)."""

from __future__ import annotations

import pytest

from fastmango.commands.billing import BAR, bar, render_table


@pytest.mark.parametrize(
    ("mtd", "projected", "budget", "scale", "want"),
    [
        (25.0, 50.0, 100.0, 100.0, "█" * 8 + "░" * 8 + " " * 15 + "|"),
        (50.0, 100.0, 50.0, 100.0, "█" * 15 + "|" + "░" * 16),  # over budget: mark inside
        (None, None, 10.0, 20.0, " " * 15 + "|" + " " * 16),  # unknown: no bar, just budget
        (10.0, 10.0, None, 10.0, "█" * 32),
        (0.0, 0.0, None, 0.0, " " * 32),
    ],
)
def test_bar(
    mtd: float | None, projected: float | None, budget: float | None, scale: float, want: str
) -> None:
    got = bar(mtd, projected, budget, scale)
    assert len(got) == BAR
    assert got == want


def test_no_environments_says_how_to_add_one() -> None:
    doc = {"month": "2026-11", "generated_at": 1795000000.0, "month_end": 1795996800.0,
           "environments": []}  # fmt: skip
    assert "add [environments.<name>] to fastmango.toml" in render_table(doc)
