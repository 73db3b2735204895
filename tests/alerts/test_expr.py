"""The PromQL subset: parsing, errors that say where, evaluation with one-to-one
matching, and the condition split the state machine reads."""

from __future__ import annotations

import pytest

from fastmango.agent.alerts import expr as E

DATA = {
    "pg_stat_activity_count": [
        ({"server": "a", "state": "idle"}, 5),
        ({"server": "a", "state": "active"}, 3),
        ({"server": "b", "state": "idle"}, 1),
    ],
    "pg_settings_max_connections": [({"server": "a"}, 10), ({"server": "b"}, 100)],
    "container_memory_working_set_bytes": [({}, 900.0)],
    "fastmango_container_memory_limit_bytes": [({}, 1000.0)],
    "node_filesystem_avail_bytes": [
        ({"mountpoint": "/", "fstype": "ext4", "device": "sda1"}, 5),
        ({"mountpoint": "/run", "fstype": "tmpfs", "device": "tmpfs"}, 1),
    ],
    "node_filesystem_size_bytes": [
        ({"mountpoint": "/", "fstype": "ext4", "device": "sda1"}, 100),
        ({"mountpoint": "/run", "fstype": "tmpfs", "device": "tmpfs"}, 100),
    ],
    "fastmango_cost_month_projected_dollars": [({"env": "prod"}, 120.0), ({"env": "dev"}, 5.0)],
    "fastmango_cost_budget_dollars": [({"env": "prod"}, 100.0), ({"env": "dev"}, 50.0)],
    "log_lines_per_minute": [({"level": "error"}, 12.0), ({"level": "info"}, 900.0)],
}


def fetch(name: str) -> list[tuple[dict[str, str], float]]:
    return DATA.get(name, [])


def points(text: str) -> dict[tuple[tuple[str, str], ...], tuple[float, float]]:
    return {
        p.labels: (round(p.value, 9), p.threshold)
        for p in E.observe(E.condition(E.parse(text)), fetch)
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "sum by (server) (pg_stat_activity_count) / pg_settings_max_connections > 0.8",
            {(("server", "a"),): (0.8, 0.8), (("server", "b"),): (0.01, 0.8)},
        ),
        (
            "sum(pg_stat_activity_count) by (server) / on(server) "
            "pg_settings_max_connections > 0.8",
            {(("server", "a"),): (0.8, 0.8), (("server", "b"),): (0.01, 0.8)},
        ),
        (
            "container_memory_working_set_bytes / fastmango_container_memory_limit_bytes > 0.85",
            {(): (0.9, 0.85)},
        ),
        (
            'node_filesystem_avail_bytes{fstype!~"tmpfs|overlay"} / '
            "node_filesystem_size_bytes < 0.1",
            {(("device", "sda1"), ("fstype", "ext4"), ("mountpoint", "/")): (0.05, 0.1)},
        ),
        (
            "fastmango_cost_month_projected_dollars > fastmango_cost_budget_dollars",
            {(("env", "dev"),): (5.0, 50.0), (("env", "prod"),): (120.0, 100.0)},
        ),
        ('log_lines_per_minute{level="error"} > 10', {(("level", "error"),): (12.0, 10.0)}),
        ("max(pg_settings_max_connections) >= 50", {(): (100.0, 50.0)}),
        ("avg(pg_settings_max_connections) - 5 * 2 > 1", {(): (45.0, 1.0)}),
        (
            "count by (server) (pg_stat_activity_count) == 2",
            {(("server", "a"),): (2.0, 2.0), (("server", "b"),): (1.0, 2.0)},
        ),
        (
            "10 < log_lines_per_minute",
            {(("level", "error"),): (12.0, 10.0), (("level", "info"),): (900.0, 10.0)},
        ),
        ("missing_series > 1", {}),
    ],
)
def test_observe(text: str, expected: dict[object, tuple[float, float]]) -> None:
    assert points(text) == expected


def test_filtering_comparison_inside_an_expression() -> None:
    v = E.evaluate(E.parse("log_lines_per_minute > 100"), fetch)
    assert v == {(("level", "info"),): 900.0}


def test_condition_flips_a_number_on_the_left() -> None:
    c = E.condition(E.parse("10 < log_lines_per_minute"))
    assert c.op == ">" and isinstance(c.lhs, E.Selector)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty expression"),
        ("rate(x[5m]) > 1", "function rate() at 1 is not in the supported subset"),
        ("x >", "expected a number, series or aggregation at 4"),
        ("x{a=b} > 1", 'expected a "quoted" value for a at 5'),
        ("x > 1 > 2", "chained comparison at 7"),
        ("sum by (a (x)", "expected a label name at 11"),
        ('x{a=~"("} > 1', "bad regular expression for a"),
        ("x $ 1", "unexpected character '$' at 3"),
        ("(x > 1", "expected ')' at 7"),
    ],
)
def test_parse_errors_say_where(text: str, message: str) -> None:
    with pytest.raises(E.ExprError, match=None) as err:
        E.parse(text)
    assert message in str(err.value)


def test_a_rule_needs_a_comparison() -> None:
    with pytest.raises(E.ExprError, match="needs a comparison"):
        E.condition(E.parse("x / y"))


def test_many_to_one_is_refused() -> None:
    with pytest.raises(E.ExprError, match="many-to-one"):
        E.evaluate(
            E.parse("pg_stat_activity_count / on(server) pg_settings_max_connections"), fetch
        )


def test_round_trip_to_text() -> None:
    text = 'sum by (server) (a{x="1",y!~"b|c"}) / on(server) b > 0.5'
    node = E.parse(text)
    assert E.parse(str(node)) == node
    assert E.names(node) == {"a", "b"}


def test_division_by_zero_is_inf_or_nan_not_an_error() -> None:
    data = {"a": [({}, 1.0)], "b": [({}, 0.0)], "z": [({}, 0.0)]}
    assert E.evaluate(E.parse("a / b"), lambda n: data[n]) == {(): float("inf")}
    ps = E.observe(E.condition(E.parse("z / b > 1")), lambda n: data[n])
    assert len(ps) == 1 and ps[0].value != ps[0].value  # nan: never holds
    assert not E.holds(">", ps[0].value, 1)
