"""Loading the settings: sources, provenance and error reports.

Sources, lowest first:

1. ``[tool.fastmango]`` in the app's ``pyproject.toml``;
2. ``fastmango.toml`` beside it, or the file given with ``--config``;
3. ``FASTMANGO_*`` environment variables, nested with ``__``
   (``FASTMANGO_SERVER__PORT=9000``);
4. command-line flags.

Every value remembers where it came from (``fastmango config show``). Every problem is
reported at once, naming the source and the key, what was expected and what was given;
an unknown key gets a "did you mean".
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo

from fastmango.agent.settings import _SIZE_UNITS, _UNITS, Settings, parse_duration, parse_size
from fastmango.errors import ConfigError, ConfigProblem

ENV_PREFIX = "FASTMANGO_"
#: FASTMANGO_* variables that are not settings: the secrets' master key is read by
#: fastmango.agent.secrets only, so it never enters the settings (or `config show`)
NOT_SETTINGS = frozenset({"FASTMANGO_MASTER_KEY"})
DEFAULT = "default"
ENVIRONMENT = "environment"


@dataclass
class Loaded:
    """The validated settings and, per dotted key, the source of its value."""

    settings: Settings
    sources: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def source_of(self, key: str) -> str:
        while key:
            if key in self.sources:
                return self.sources[key]
            key = key.rpartition(".")[0]
        return DEFAULT


def load(
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Loaded:
    """Read every source, validate, and return the settings with their provenance.

    Raises :class:`ConfigError` listing every problem found.
    """
    import os

    cwd = cwd or Path.cwd()
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems: list[ConfigProblem] = []
    files: list[Path] = []

    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file():
        data = _read_toml(pyproject, problems)
        section = data.get("tool", {}).get("fastmango") if data else None
        if isinstance(section, dict):
            _merge(merged, sources, section, f"{pyproject} [tool.fastmango]")
            files.append(pyproject)

    if config_file is not None:
        path = config_file if config_file.is_absolute() else cwd / config_file
        if not path.is_file():
            problems.append(ConfigProblem(str(path), "--config", "the config file does not exist"))
        else:
            _merge(merged, sources, _read_toml(path, problems), str(path))
            files.append(path)
    elif (cwd / "fastmango.toml").is_file():
        path = cwd / "fastmango.toml"
        _merge(merged, sources, _read_toml(path, problems), str(path))
        files.append(path)

    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in NOT_SETTINGS:
            key = name[len(ENV_PREFIX) :].lower().replace("__", ".")
            _merge(merged, sources, _nest(key, _env_value(environ[name])), f"env {name}")

    for key, value in (flags or {}).items():
        if value is not None:
            _merge(
                merged, sources, _nest(key, value), f"--{key.rpartition('.')[2]}".replace("_", "-")
            )

    settings: Settings | None = None
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        problems.extend(_problems(exc, merged, sources))
    if problems or settings is None:
        raise ConfigError(problems)
    settings = _relative_to(settings, cwd)
    return Loaded(settings, sources, files)


def _relative_to(settings: Settings, cwd: Path) -> Settings:
    """Paths in the settings are relative to the app's folder, not the process's."""
    state_dir = settings.state_dir if settings.state_dir.is_absolute() else cwd / settings.state_dir
    store = settings.store
    if store.path is not None and not store.path.is_absolute():
        store = store.model_copy(update={"path": cwd / store.path})
    return settings.model_copy(update={"state_dir": state_dir, "store": store})


def _read_toml(path: Path, problems: list[ConfigProblem]) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        problems.append(ConfigProblem(str(path), "(file)", f"not valid TOML: {exc}"))
    except OSError as exc:
        problems.append(ConfigProblem(str(path), "(file)", f"cannot be read: {exc.strerror}"))
    return {}


def _env_value(raw: str) -> Any:
    """JSON lists and objects are decoded; every other value stays a string for pydantic."""
    text = raw.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            return raw
    return raw


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node = out
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def _merge(
    into: dict[str, Any], sources: dict[str, str], new: Mapping[str, Any], source: str,
    prefix: str = "",
) -> None:  # fmt: skip
    for key, value in new.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], sources, value, source, dotted + ".")
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value
            for k in [k for k in sources if k.startswith(dotted + ".")]:
                del sources[k]
            if isinstance(value, Mapping):
                _mark(sources, value, source, dotted + ".")
            else:
                sources[dotted] = source


def _mark(sources: dict[str, str], value: Mapping[str, Any], source: str, prefix: str) -> None:
    for key, sub in value.items():
        if isinstance(sub, Mapping):
            _mark(sources, sub, source, f"{prefix}{key}.")
        else:
            sources[f"{prefix}{key}"] = source


def _problems(
    exc: ValidationError, merged: Mapping[str, Any], sources: dict[str, str]
) -> list[ConfigProblem]:
    out = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc) or "(top level)"
        source = _source_for(key, sources)
        given = _given(merged, loc)
        if err["type"] == "extra_forbidden":
            known = _known_keys(loc[:-1])
            hint = difflib.get_close_matches(loc[-1], known, n=1)
            msg = "unknown key" + (
                f"; did you mean {'.'.join([*loc[:-1], hint[0]])!r}?" if hint else ""
            )
            out.append(ConfigProblem(source, key, msg))
        else:
            message = err["msg"].removeprefix("Value error, ")
            out.append(ConfigProblem(source, key, message, given))
    return out


def _source_for(key: str, sources: dict[str, str]) -> str:
    probe = key
    while probe:
        if probe in sources:
            return sources[probe]
        probe = probe.rpartition(".")[0]
    # a model-level check (e.g. server.token required): name whoever set the section
    under = sorted({s for k, s in sources.items() if k.startswith(key + ".")})
    return ", ".join(under) if under else DEFAULT


def _given(merged: Mapping[str, Any], loc: list[str]) -> str | None:
    node: Any = merged
    for part in loc:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    if isinstance(node, Mapping):
        return None
    return repr(node)


def _known_keys(loc: list[str]) -> list[str]:
    model: type[BaseModel] = Settings
    for part in loc:
        fld = model.model_fields.get(part)
        ann = fld.annotation if fld else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def flatten(settings: BaseModel, prefix: str = "") -> dict[str, Any]:
    """Dotted key → value for every leaf; secrets stay :class:`SecretStr` (masked)."""
    out: dict[str, Any] = {}
    for name, fld in type(settings).model_fields.items():
        value = getattr(settings, name)
        if isinstance(value, BaseModel):
            out.update(flatten(value, f"{prefix}{name}."))
        elif isinstance(value, dict) and all(isinstance(v, BaseModel) for v in value.values()):
            for key, sub in value.items():  # [environments.<name>] tables
                out.update(flatten(sub, f"{prefix}{name}.{key}."))
        else:
            out[f"{prefix}{name}"] = _human(fld, value)
    return out


def _human(fld: FieldInfo, value: Any) -> Any:
    """Durations and sizes as a person writes them (``35d``, ``200MB``)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return value
    funcs = {getattr(m, "func", None) for m in fld.metadata}
    if parse_duration in funcs:
        for unit in ("w", "d", "h", "m", "s"):
            n = value / _UNITS[unit]
            if n >= 1 and n == int(n):
                return f"{int(n)}{unit}"
        return f"{value}s"
    if parse_size in funcs:
        for unit in ("GB", "MB", "kB"):
            n = value / _SIZE_UNITS[unit.lower()]
            if n >= 1 and n == int(n):
                return f"{int(n)}{unit}"
    return value


def show(loaded: Loaded) -> str:
    """The effective settings, one ``key = value  # source`` line each."""
    rows = []
    for key, value in flatten(loaded.settings).items():
        if isinstance(value, SecretStr):
            shown = "'**********'"
        else:
            shown = "(unset)" if value is None else _toml_value(value)
        rows.append((key, shown, loaded.source_of(key)))
    width = max(len(k) + len(v) for k, v, _ in rows) + 3
    return "\n".join(f"{f'{k} = {v}':<{width}} # {s}" for k, v, s in rows)


def _toml_value(value: Any) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table
        if not value:
            return "{}"
        bare = re.compile(r"^[A-Za-z0-9_-]+$")
        items = (f"{k if bare.match(str(k)) else json.dumps(str(k))} = {_toml_value(v)}"
                 for k, v in value.items())  # fmt: skip
        return "{ " + ", ".join(items) + " }"
    return json.dumps(str(value))


def sample_toml() -> str:
    """A commented ``fastmango.toml`` generated from the settings model."""
    lines = [
        "# fastmango.toml: settings of the fastmango agent and CLI.",
        "# Generated by `fastmango config init` from the settings model; every key is",
        "# optional and shows its default. Environment variables override this file",
        "# (FASTMANGO_SERVER__PORT=9000), and command-line flags override both.",
        "",
    ]
    _sample_section(Settings, [], lines)
    return "\n".join(lines).rstrip() + "\n"


def _sample_section(model: type[BaseModel], path: list[str], lines: list[str]) -> None:
    nested = []
    tables: list[tuple[str, type[BaseModel], str | None]] = []
    defaults = model()
    for name, fld in model.model_fields.items():
        ann = fld.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            nested.append((name, ann, fld.description))
            continue
        item = _model_values(ann)
        if item is not None:  # dict[str, Model]: show one commented example table
            tables.append((name, item, fld.description))
            continue
        if fld.description:
            lines.extend(f"# {chunk}" for chunk in _wrap(fld.description))
        value = _human(fld, getattr(defaults, name))
        prefix = "# " if value is None or isinstance(value, SecretStr) else ""
        lines.append(f"{prefix}{name} = {_toml_value(value)}")
        lines.append("")
    for name, sub, description in nested:
        lines.append(f"[{'.'.join([*path, name])}]")
        if description:
            lines.extend(f"# {chunk}" for chunk in _wrap(description))
        lines.append("")
        _sample_section(sub, [*path, name], lines)
    for name, sub, description in tables:
        example: list[str] = []
        _sample_section(sub, [*path, name, "production"], example)
        lines.append(f"# [{'.'.join([*path, name])}.production]")
        if description:
            lines.extend(f"# {chunk}" for chunk in _wrap(description))
        lines.extend(line if line.startswith("#") or not line else f"# {line}"
                     for line in example)  # fmt: skip
        lines.append("")


def _model_values(ann: Any) -> type[BaseModel] | None:
    """The model of a ``dict[str, Model]`` annotation, else None."""
    import typing

    if typing.get_origin(ann) is dict:
        _key, value = typing.get_args(ann)
        if isinstance(value, type) and issubclass(value, BaseModel):
            return value
    return None


def _wrap(text: str) -> list[str]:
    import textwrap

    return textwrap.wrap(text, 86)
