"""What the generators need to know about the app, read from its own project folder.

:func:`detect` looks at ``pyproject.toml`` (``[project]`` name, dependencies and
``requires-python``) or ``requirements.txt``, finds the ASGI entry point (a module-level
``app = FastAPI(…)``, ``Starlette(…)``, ``Litestar(…)``, ``Quart(…)`` or Django's
``get_asgi_application()``) and a health route, and returns an :class:`AppSpec`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from fastmango.errors import FastmangoError

DepsKind = Literal["pyproject", "requirements", "none"]

#: Python minor versions with an official ``python:<v>-slim`` image we would pick
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
DEFAULT_PYTHON = "3.12"
AGENT_PORT = 9871
SKIP_DIRS = frozenset(
    {
        ".git",
        ".venv",
        "venv",
        "env",
        ".tox",
        ".nox",
        "node_modules",
        "__pycache__",
        "tests",
        "test",
        "build",
        "dist",
        "site-packages",
        ".mypy_cache",
        ".ruff_cache",
        "migrations",
    }
)
_APP = re.compile(
    r"^(?P<var>[A-Za-z_]\w*)\s*(?::[^=\n]+)?=\s*(?:[\w.]+\.)?"
    r"(?P<kind>FastAPI|Starlette|Litestar|Quart|Sanic|get_asgi_application)\(",
    re.MULTILINE,
)
_HEALTH = re.compile(r"""["'](/(?:healthz|health|livez|readyz|_health|ping))["']""")
_NAME = re.compile(r"[^a-z0-9-]+")


class ProjectError(FastmangoError):
    """The app's project cannot be read or has no entry point."""


@dataclass(frozen=True)
class AppSpec:
    """The app as the generators see it."""

    name: str  # DNS-1123 label: lower-case letters, digits and dashes
    entry: str  # module:attribute of the ASGI app
    python: str = DEFAULT_PYTHON  # "3.12"
    deps: DepsKind = "none"
    port: int = 8000
    agent_port: int = AGENT_PORT
    health_path: str | None = None  # an HTTP path of the app; None = TCP check
    src_dir: str = ""  # "src" for a src layout: added to PYTHONPATH
    fastmango_version: str = "0.1.0"
    source: Path | None = None  # the project folder it was read from

    @property
    def module(self) -> str:
        return self.entry.split(":", 1)[0]

    def with_(self, **changes: object) -> AppSpec:
        return replace(self, **changes)  # type: ignore[arg-type]


def dns_name(text: str) -> str:
    """``My_App`` → ``my-app`` (a DNS-1123 label, at most 63 characters)."""
    name = _NAME.sub("-", text.lower()).strip("-")[:63].strip("-")
    return name or "app"


def python_from(requires: str | None, pinned: str | None) -> str:
    """The Python minor version for the image: ``.python-version``, else the lowest
    ``requires-python`` bound we know an image for, else :data:`DEFAULT_PYTHON`."""
    if pinned:
        m = re.match(r"\s*(3\.\d+)", pinned)
        if m:
            return m.group(1)
    if requires:
        m = re.search(r">=?\s*(3\.\d+)", requires)
        if m:
            lowest = m.group(1)
            newer = [v for v in PYTHONS if tuple(map(int, v.split("."))) >= _v(lowest)]
            # the newest image that satisfies the bound and any upper bound
            upper = re.search(r"<\s*(3\.\d+)", requires)
            if upper:
                newer = [v for v in newer if _v(v) < _v(upper.group(1))]
            if newer:
                return DEFAULT_PYTHON if DEFAULT_PYTHON in newer else newer[-1]
            return lowest
    return DEFAULT_PYTHON


def _v(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def _module_of(path: Path, root: Path) -> tuple[str, str]:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    src = ""
    if parts and parts[0] == "src" and len(parts) > 1:
        src, parts = "src", parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts), src


def find_entry(root: Path) -> tuple[str, str, str | None]:
    """``(module:attr, src_dir, health path)`` of the ASGI app under ``root``."""
    found: list[tuple[tuple[int, int, str], str, str, str | None]] = []
    preferred = {"main": 0, "app": 1, "asgi": 2, "server": 3, "api": 4}
    for path in sorted(_python_files(root, depth=4)):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        m = _APP.search(text)
        if not m:
            continue
        module, src = _module_of(path, root)
        if not module:
            continue
        route = _HEALTH.search(text)
        depth = len(path.relative_to(root).parts)
        rank = (preferred.get(path.stem, 9), depth, str(path))
        found.append((rank, f"{module}:{m.group('var')}", src, route.group(1) if route else None))
    if not found:
        raise ProjectError(
            f"no ASGI app found under {root} (looked for `app = FastAPI(…)`, Starlette, "
            "Litestar, Quart, Sanic or get_asgi_application()); pass --app module:attribute"
        )
    found.sort(key=lambda f: f[0])
    _, entry, src, health = found[0]
    return entry, src, health


def _python_files(root: Path, depth: int) -> list[Path]:
    out: list[Path] = []
    stack = [(root, 0)]
    while stack:
        folder, d = stack.pop()
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir():
                if d + 1 < depth and entry.name not in SKIP_DIRS and not entry.name.startswith("."):
                    stack.append((entry, d + 1))
            elif entry.suffix == ".py":
                out.append(entry)
    return out


def detect(root: Path, *, entry: str | None = None, port: int | None = None) -> AppSpec:
    """Read the project at ``root`` into an :class:`AppSpec`.

    ``entry`` (``module:attr``) and ``port`` override what is found.
    """
    root = root.resolve()
    if not root.is_dir():
        raise ProjectError(f"{root} is not a folder")
    from importlib.metadata import PackageNotFoundError, version

    try:
        fm_version = version("fastmango")
    except PackageNotFoundError:  # pragma: no cover - running from a checkout
        fm_version = "0.1.0"
    name = root.name
    requires: str | None = None
    deps: DepsKind = "none"
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ProjectError(f"{pyproject}: not valid TOML: {exc}") from None
        project = data.get("project")
        if isinstance(project, dict):
            name = str(project.get("name") or name)
            requires = project.get("requires-python")
            deps = "pyproject"
    if deps == "none" and (root / "requirements.txt").is_file():
        deps = "requirements"
    if deps == "none" and pyproject.is_file():
        deps = "pyproject"  # a [tool.poetry]/other backend: installed with the source
    pinned_file = root / ".python-version"
    pinned = pinned_file.read_text().strip() if pinned_file.is_file() else None
    health: str | None
    if entry:
        if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*(?:\(\))?", entry):
            raise ProjectError(f"--app {entry!r}: expected module:attribute, e.g. main:app")
        src = "src" if (root / "src" / (entry.split(":")[0].split(".")[0])).exists() else ""
        health = None
    else:
        entry, src, health = find_entry(root)
    return AppSpec(
        name=dns_name(name),
        entry=entry,
        python=python_from(requires, pinned),
        deps=deps,
        port=port or 8000,
        health_path=health,
        src_dir=src,
        fastmango_version=fm_version,
        source=root,
    )
