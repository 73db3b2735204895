"""Checks on an agent's /metrics text shared by the catalogue tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from fastmango.agent import catalogue


def assert_in_catalogue(text: str) -> set[str]:
    """Every exposed sample is in the catalogue with its type and exact labels; returns
    the names seen."""
    index = catalogue.index()
    seen = set()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            spec = index.get(s.name)
            assert spec is not None, f"{s.name} is exposed but not in the catalogue"
            assert fam.type == spec.kind, s.name
            assert set(s.labels) == set(spec.labels), s.name
            seen.add(s.name)
    return seen
