"""One seeded state store per test session (seeding a week of minutes takes seconds);
each test works on its own copy."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from .seed import seed


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("cost-seed") / "state"
    seed(state, time.time())
    return state


@pytest.fixture
def seeded_state(seeded_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the seeded ``.fastmango`` folder."""
    dest = tmp_path / "app" / ".fastmango"
    shutil.copytree(seeded_template, dest)
    return dest
