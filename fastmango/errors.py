"""The one exception tree of fastmango.

Every error fastmango raises on purpose derives from :class:`FastmangoError`, so a caller
can catch the whole family and let programming errors (``TypeError``…) through.

::

    FastmangoError
    ├── ConfigError          settings that do not validate; carries every problem found
    ├── CollectorError       a collector could not read its source (contained by the agent)
    │   └── CollectorTimeout a collection ran past its timeout
    ├── StoreError           the state store could not be opened or written
    └── AgentNotRunning      a CLI command needed a running agent and found none

Messages never contain secrets: code that builds a message from a DSN, a token or a
header value passes it through :func:`fastmango.redact.redact_secrets` first.
"""

from __future__ import annotations

from dataclasses import dataclass


class FastmangoError(Exception):
    """Base of every error fastmango raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in the settings: where it is, what was expected, what was given."""

    source: str  # a file path, "environment", "command line" or "default"
    key: str  # dotted key, e.g. "server.port"
    message: str  # what was expected
    given: str | None = None  # the offending value, as the user wrote it

    def __str__(self) -> str:
        given = f" (given: {self.given})" if self.given is not None else ""
        return f"{self.source}: {self.key}: {self.message}{given}"


class ConfigError(FastmangoError):
    """The settings do not validate. ``problems`` lists every one of them."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"invalid configuration ({len(problems)} {noun}):\n{lines}")


class CollectorError(FastmangoError):
    """A collector could not read its source."""


class CollectorTimeout(CollectorError):
    """A collection ran past its timeout."""


class StoreError(FastmangoError):
    """The state store could not be opened or written."""


class AgentNotRunning(FastmangoError):
    """A command needed a running agent and found none at the configured address."""

    @staticmethod
    def hint(base: str, exc: BaseException) -> str:
        return (
            f"no agent answers at {base} ({type(exc).__name__}); start one with "
            "`fastmango agent` in the app's folder, or pass --url"
        )
