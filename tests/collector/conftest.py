"""Real servers the collector tests share (one per test session)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.realservers import Postgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL 15 with pg_stat_statements, started as the postgres user."""
    pg = Postgres()
    try:
        pg.start()
        pg.psql("CREATE EXTENSION pg_stat_statements")
        yield pg
    finally:
        pg.cleanup()
