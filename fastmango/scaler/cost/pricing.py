"""The price catalogue: list prices per platform and size, with user overrides.

Prices ship as data (``prices.json`` beside this module), one entry per key:

* ``<platform>/size/<name>``: an instance type or preset, priced ``per`` month (prorated
  over the calendar month, as Render does), ``30d`` (Fly's "per 30 days") or ``hour``,
  with its ``vcpu`` and ``memory_gb``;
* ``<platform>/vcpu_<unit>`` and ``<platform>/gb_<unit>`` or ``gib_<unit>`` (unit
  ``second``, ``minute`` or ``hour``): per-resource rates (Railway, Fargate, Cloud Run, ACI);
* ``<platform>/egress_gb``, ``<platform>/request``, ``<platform>/gpu/<name>`` (per GPU-hour),
  ``<platform>/free/<quantity>`` (a monthly free allowance).

Every entry carries its ``source`` and the date it was read (``as_of``); entries older
than ``stale_after`` are flagged. An override from config replaces the value (source
``config``); a key the catalogue lacks is added. A price that is missing is ``None``
and the reason says which key would supply it: never zero.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from importlib import resources
from typing import Any

STALE_DAYS = 180.0
_KEY = re.compile(r"^[a-z0-9_-]+/(?:(?:size|gpu|free)/[a-z0-9._-]+|[a-z_]+)$")
_RATE_UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0}
_SIZE = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*v?cpus?\s*[-_:/, x]?\s*(\d+(?:\.\d+)?)\s*(mb|mib|gb|gib)\s*$",
    re.IGNORECASE,
)
_FLY = re.compile(r"^(shared-cpu|performance)-(\d+)x(?:[-:](\d+(?:\.\d+)?)(mb|gb))?$")


class PriceError(ValueError):
    """An override that cannot be used; the message names the key."""


@dataclass(frozen=True)
class Entry:
    key: str
    value: float
    source: str
    as_of: str | None = None
    per: str | None = None  # sizes: month | 30d | hour
    vcpu: float | None = None
    memory_gb: float | None = None
    note: str = ""
    unverified: bool = False
    deprecated_after: str | None = None
    overridden: bool = False

    def age_days(self, now: float) -> float | None:
        if not self.as_of:
            return None
        read = datetime.combine(date.fromisoformat(self.as_of), datetime.min.time(), UTC)
        return (now - read.timestamp()) / 86400

    def stale(self, now: float, after_days: float = STALE_DAYS) -> bool:
        age = self.age_days(now)
        return age is not None and age > after_days

    def deprecated(self, now: float) -> bool:
        if not self.deprecated_after:
            return False
        cut = datetime.combine(date.fromisoformat(self.deprecated_after), datetime.min.time(), UTC)
        return now >= cut.timestamp()

    def as_dict(self, now: float, after_days: float = STALE_DAYS) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key, "value": self.value, "source": self.source, "as_of": self.as_of,
            "age_days": None if self.age_days(now) is None else round(self.age_days(now) or 0, 1),
            "stale": self.stale(now, after_days), "overridden": self.overridden,
            "unverified": self.unverified, "note": self.note,
        }  # fmt: skip
        if self.per:
            out.update(per=self.per, vcpu=self.vcpu, memory_gb=self.memory_gb)
        if self.deprecated_after:
            out["deprecated_after"] = self.deprecated_after
            out["deprecated"] = self.deprecated(now)
        return out


@dataclass(frozen=True)
class Size:
    """An instance shape: vCPUs and memory (GB as the platform names it)."""

    vcpu: float
    memory_gb: float


@dataclass(frozen=True)
class Rate:
    """What one instance of a size costs: ``per_second`` dollars, or ``per_month`` of
    the calendar month (prorated per second over that month's length). ``entries`` are the
    catalogue keys the figure rests on; ``unknown`` says why it is missing."""

    per_second: float | None = None
    per_month: float | None = None
    entries: tuple[str, ...] = ()
    unknown: str | None = None

    @property
    def known(self) -> bool:
        return self.unknown is None

    def dollars(self, instance_seconds: float, month_seconds: float) -> float | None:
        if self.unknown is not None:
            return None
        if self.per_month is not None:
            return instance_seconds * self.per_month / month_seconds
        return instance_seconds * (self.per_second or 0.0)

    def monthly(self, month_seconds: float = 730 * 3600.0) -> float | None:
        """One instance running a whole month."""
        return self.dollars(month_seconds, month_seconds)


def parse_size(text: str) -> Size | None:
    """``1cpu-2gb``, ``0.25vcpu-512mb``, ``2cpu-4gib``, Fly's ``shared-cpu-1x-1gb``."""
    m = _SIZE.match(text)
    if m:
        mem = float(m.group(2))
        if m.group(3).lower() in ("mb", "mib"):
            mem /= 1024
        return Size(float(m.group(1)), mem)
    f = _FLY.match(text.lower())
    if f:
        cpus = float(f.group(2))
        if f.group(3):
            mem = float(f.group(3)) / (1024 if f.group(4) == "mb" else 1)
        else:
            mem = 0.25 * cpus if f.group(1) == "shared-cpu" else 2.0 * cpus
        return Size(cpus, mem)
    return None


def size_name(size: Size, memory_unit: str = "gb") -> str:
    def num(v: float) -> str:
        return f"{v:g}"

    return f"{num(size.vcpu)}cpu-{num(size.memory_gb)}{memory_unit}"


@dataclass
class Catalogue:
    """Entries by key, with overrides applied. ``platforms`` carries each platform's
    description and its candidate sizes for right-sizing."""

    entries: dict[str, Entry]
    platforms: dict[str, dict[str, Any]] = field(default_factory=dict)
    stale_days: float = STALE_DAYS

    @classmethod
    def load(
        cls, overrides: Mapping[str, float] | None = None, stale_days: float = STALE_DAYS
    ) -> Catalogue:
        raw = json.loads(resources.files(__package__).joinpath("prices.json").read_text())
        return cls.from_data(raw, overrides, stale_days)

    @classmethod
    def from_data(
        cls,
        raw: Mapping[str, Any],
        overrides: Mapping[str, float] | None = None,
        stale_days: float = STALE_DAYS,
    ) -> Catalogue:
        entries: dict[str, Entry] = {}
        for e in raw["entries"]:
            entries[e["key"]] = Entry(
                key=e["key"], value=float(e["value"]), source=e["source"], as_of=e.get("as_of"),
                per=e.get("per"), vcpu=e.get("vcpu"), memory_gb=e.get("memory_gb"),
                note=e.get("note", ""), unverified=bool(e.get("unverified", False)),
                deprecated_after=e.get("deprecated_after"),
            )  # fmt: skip
        cat = cls(entries, dict(raw.get("platforms", {})), stale_days)
        for key, value in (overrides or {}).items():
            cat.override(key, value)
        return cat

    def override(self, key: str, value: float) -> None:
        check_override(key, value)
        old = self.entries.get(key)
        if old is not None:
            self.entries[key] = replace(old, value=float(value), source="config", as_of=None,
                                        overridden=True, unverified=False)  # fmt: skip
            return
        per = vcpu = mem = None
        if "/size/" in key:
            per = "month"
            shape = parse_size(key.rsplit("/", 1)[1])
            if shape is not None:
                vcpu, mem = shape.vcpu, shape.memory_gb
        self.entries[key] = Entry(key, float(value), "config", None, per, vcpu, mem,
                                  overridden=True)  # fmt: skip

    def get(self, key: str) -> Entry | None:
        return self.entries.get(key)

    # -- compute ---------------------------------------------------------------------
    def size_of(self, platform: str, size: str) -> Size | None:
        e = self.entries.get(f"{platform}/size/{size}")
        if e is not None and e.vcpu is not None and e.memory_gb is not None:
            return Size(e.vcpu, e.memory_gb)
        return parse_size(size)

    def rate(self, platform: str, size: str, billing: str = "instance") -> Rate:
        """What one instance of ``size`` on ``platform`` costs."""
        if not size:
            return Rate(unknown=f"no size set for {platform} (environments.<env>.size)")
        e = self.entries.get(f"{platform}/size/{size}")
        if e is not None:
            if e.per == "month":
                return Rate(per_month=e.value, entries=(e.key,))
            if e.per == "30d":
                return Rate(per_second=e.value / (30 * 86400), entries=(e.key,))
            return Rate(per_second=e.value / 3600, entries=(e.key,))
        shape = parse_size(size)
        if shape is None:
            return Rate(unknown=f"no price for size {size!r} on {platform} "
                                f"(set cost.prices.\"{platform}/size/{size}\")")  # fmt: skip
        prefix = "instance_" if platform == "cloudrun" and billing == "instance" else ""
        cpu = self._per_second(platform, prefix + "vcpu")
        mem = self._per_second(platform, prefix + "gb") or self._per_second(
            platform, prefix + "gib"
        )
        if cpu is None or mem is None:
            missing, key = ("vCPU", "vcpu") if cpu is None else ("memory", "gb")
            return Rate(
                unknown=f"no {missing} price on {platform} "
                f'(set cost.prices."{platform}/{prefix}{key}_hour")'
            )
        return Rate(per_second=shape.vcpu * cpu[0] + shape.memory_gb * mem[0],
                    entries=(cpu[1], mem[1]))  # fmt: skip

    def _per_second(self, platform: str, resource: str) -> tuple[float, str] | None:
        for unit, seconds in _RATE_UNITS.items():
            e = self.entries.get(f"{platform}/{resource}_{unit}")
            if e is not None:
                return e.value / seconds, e.key
        return None

    def candidates(self, platform: str) -> list[tuple[str, Size]]:
        """Sizes to right-size into: the platform's presets, else its listed shapes."""
        out = [
            (k.split("/size/", 1)[1], Size(e.vcpu, e.memory_gb))
            for k, e in self.entries.items()
            if k.startswith(platform + "/size/") and e.vcpu is not None and e.memory_gb is not None
        ]
        for name in self.platforms.get(platform, {}).get("candidates", []):
            shape = parse_size(name)
            if shape is not None:
                out.append((name, shape))
        return out

    def unit(self, key: str) -> tuple[float | None, str | None]:
        """(value, key) of a plain entry, or (None, None)."""
        e = self.entries.get(key)
        return (e.value, key) if e is not None else (None, None)

    def gpu_key(self, platform: str, gpu: str) -> str:
        return gpu if "/" in gpu else f"{platform}/gpu/{gpu}"

    # -- output ----------------------------------------------------------------------
    def stale_entries(self, now: float, keys: set[str] | None = None) -> list[dict[str, Any]]:
        return [e.as_dict(now, self.stale_days) for k, e in sorted(self.entries.items())
                if (keys is None or k in keys) and e.stale(now, self.stale_days)]  # fmt: skip

    def as_list(self, now: float) -> list[dict[str, Any]]:
        return [e.as_dict(now, self.stale_days) for _, e in sorted(self.entries.items())]


def check_override(key: str, value: Any) -> None:
    """Raise :class:`PriceError` naming the key when an override is unusable."""
    if not _KEY.match(key):
        raise PriceError(
            f"{key!r} is not a price key such as fly/size/shared-cpu-1x-256mb, "
            "railway/vcpu_minute, ecs/gb_hour, cloudrun/request or fly/gpu/a10"
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PriceError(f"{key}: the price must be a number of dollars")
    if not math.isfinite(value) or value < 0:
        raise PriceError(f"{key}: the price must be 0 or more")
    tail = key.split("/", 1)[1]
    if "/" not in tail and not (tail in ("egress_gb", "request") or _rate_unit(tail)):
        raise PriceError(f"{key}: unknown price kind {tail!r} (vcpu_hour, gb_hour, gib_second, "
                         "vcpu_minute, egress_gb, request, size/<name>, gpu/<name>)")  # fmt: skip


def _rate_unit(tail: str) -> bool:
    m = re.match(r"^(?:instance_)?(vcpu|gb|gib)_(second|minute|hour)$", tail)
    return m is not None
