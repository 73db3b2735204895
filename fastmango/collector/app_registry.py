"""The app side's metric state of one process, and its text exposition.

What a worker process keeps (:class:`Metrics`) is plain dicts of lists of numbers, so
the request path only indexes and adds: no locks, no objects per series, no
prometheus_client. Histograms hold one slot per bucket (not cumulative) plus the sum;
the count is the sum of the slots, so a histogram read while a request is being
recorded is still consistent. :func:`render` writes the text exposition of a
:class:`Metrics` (one worker's, or the merged totals of every worker: see
:mod:`fastmango.collector.app_workers`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastmango.series import Kind, MetricSpec

#: OTel's advised HTTP buckets, with 0.15, 0.2 and 0.3 added around a 200 ms SLO
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.75, 1.0,
                    2.5, 5.0, 10.0)  # fmt: skip
SIZE_BUCKETS = (100.0, 1e3, 1e4, 1e5, 1e6, 1e7)
#: OTel GenAI's advised buckets for gen_ai.client.operation.duration
AI_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                       40.96, 81.92)  # fmt: skip
#: OTel GenAI's advised buckets for gen_ai.server.time_to_first_token
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0)  # fmt: skip

# one HTTP record: [duration slots…, duration sum, request-size slots…, sum, response…, sum]
DUR_SUM = len(DURATION_BUCKETS) + 1
REQ_OFF = DUR_SUM + 1
REQ_SUM = REQ_OFF + len(SIZE_BUCKETS) + 1
RESP_OFF = REQ_SUM + 1
RESP_SUM = RESP_OFF + len(SIZE_BUCKETS) + 1
HTTP_RECORD = RESP_SUM + 1
AI_SUM = len(AI_DURATION_BUCKETS) + 1
TTFT_SUM = len(TTFT_BUCKETS) + 1
#: files written with other buckets are not merged (an upgrade changed them)
LAYOUT = f"1:{DURATION_BUCKETS}:{SIZE_BUCKETS}:{AI_DURATION_BUCKETS}:{TTFT_BUCKETS}"

#: the http_route of a request no route matched (Prometheus: an empty label is no label,
#: as OTel omits http.route when there is no route)
UNMATCHED = ""
#: series a worker keeps per family before new label sets fold into OTHER
MAX_SERIES = 2000
MAX_MODELS = 100
OTHER = "other"

_HTTP = ("http_request_method", "http_route", "http_response_status_code")
_MODEL = ("gen_ai_request_model",)


def _spec(name: str, kind: Kind, help: str, labels: tuple[str, ...], unit: str = "") -> MetricSpec:
    return MetricSpec(name, kind, help, labels, unit, source="opentelemetry")


#: the families FastmangoMiddleware's metrics endpoint serves (the app's, not the agent's)
SPECS: list[MetricSpec] = [
    _spec("http_server_request_duration_seconds", "histogram",
          "Duration of HTTP server requests (OTel http.server.request.duration).", _HTTP,
          "seconds"),
    _spec("http_server_active_requests", "gauge",
          "HTTP server requests in flight, over live workers (OTel http.server.active_requests).",
          ("http_request_method",)),
    _spec("http_server_request_body_size_bytes", "histogram",
          "Size of HTTP request bodies received (OTel http.server.request.body.size).", _HTTP,
          "bytes"),
    _spec("http_server_response_body_size_bytes", "histogram",
          "Size of HTTP response bodies sent (OTel http.server.response.body.size).", _HTTP,
          "bytes"),
    _spec("gen_ai_client_operation_duration_seconds", "histogram",
          "Duration of AI inference calls, failed ones included "
          "(OTel gen_ai.client.operation.duration).", _MODEL, "seconds"),
    _spec("gen_ai_server_time_to_first_token_seconds", "histogram",
          "Time to the first token of streamed inference calls "
          "(OTel gen_ai.server.time_to_first_token).", _MODEL, "seconds"),
    _spec("gen_ai_client_token_usage_total", "counter",
          "Tokens used by inference calls, by type input or output "
          "(OTel gen_ai.client.token.usage).",
          ("gen_ai_request_model", "gen_ai_token_type")),
    _spec("gen_ai_client_operation_errors_total", "counter",
          "Inference calls that raised, by exception class (OTel error.type).",
          ("gen_ai_request_model", "error_type")),
    MetricSpec("fastmango_app_workers", "gauge",
               "Live worker processes whose metrics this exposition merges.", (),
               source="fastmango"),
]  # fmt: skip
_HELP = {s.name: s.help for s in SPECS}

HttpKey = tuple[str, str, int]


class Metrics:
    """Totals of one worker, of the archive, or of the whole app (then ``workers`` is set)."""

    __slots__ = ("active", "ai_duration", "ai_errors", "ai_tokens", "ai_ttft", "http", "models",
                 "workers")  # fmt: skip

    def __init__(self) -> None:
        self.http: dict[HttpKey, list[float]] = {}
        self.active: dict[str, int] = {}
        self.ai_duration: dict[str, list[float]] = {}
        self.ai_ttft: dict[str, list[float]] = {}
        self.ai_tokens: dict[tuple[str, str], float] = {}  # (model, input|output)
        self.ai_errors: dict[tuple[str, str], float] = {}  # (model, exception class)
        self.models: set[str] = set()  # model labels in use, at most MAX_MODELS
        self.workers = 0

    # -- recording (the request path) -----------------------------------------------
    def new_http_record(self, key: HttpKey) -> list[float]:
        """The record of ``key``, created; past MAX_SERIES the route folds into OTHER."""
        if len(self.http) >= MAX_SERIES:
            key = (key[0], OTHER, key[2])
            rec = self.http.get(key)
            if rec is not None:
                return rec
        rec = self.http[key] = [0.0] * HTTP_RECORD
        return rec

    def model(self, model: str) -> str:
        """``model``, or OTHER once MAX_MODELS models are known (bounded labels)."""
        if model in self.models:
            return model
        if len(self.models) < MAX_MODELS:
            self.models.add(model)
            return model
        return OTHER

    # -- JSON form (worker files) -----------------------------------------------------
    def dump(self) -> dict[str, Any]:
        # list(...) copies each dict in one C call: safe while the loop thread records
        return {
            "http": [[m, r, s, list(v)] for (m, r, s), v in list(self.http.items())],
            "active": dict(self.active),
            "ai_duration": {k: list(v) for k, v in list(self.ai_duration.items())},
            "ai_ttft": {k: list(v) for k, v in list(self.ai_ttft.items())},
            "ai_tokens": [[m, t, v] for (m, t), v in list(self.ai_tokens.items())],
            "ai_errors": [[m, e, v] for (m, e), v in list(self.ai_errors.items())],
        }

    def add(self, data: Mapping[str, Any], active: bool = True) -> None:
        """Add a dumped worker (or archive) into these totals."""
        for m, r, s, values in data.get("http", ()):
            _add_list(self.http, (str(m), str(r), int(s)), values, HTTP_RECORD)
        if active:
            for m, n in data.get("active", {}).items():
                self.active[m] = self.active.get(m, 0) + int(n)
        for model, values in data.get("ai_duration", {}).items():
            _add_list(self.ai_duration, str(model), values, AI_SUM + 1)
        for model, values in data.get("ai_ttft", {}).items():
            _add_list(self.ai_ttft, str(model), values, TTFT_SUM + 1)
        for m, t, v in data.get("ai_tokens", ()):
            self.ai_tokens[m, t] = self.ai_tokens.get((m, t), 0.0) + float(v)
        for m, e, v in data.get("ai_errors", ()):
            self.ai_errors[m, e] = self.ai_errors.get((m, e), 0.0) + float(v)


def _add_list(into: dict[Any, list[float]], key: Any, values: list[float], size: int) -> None:
    if len(values) != size:
        raise ValueError(f"record of {len(values)} values, expected {size}")
    have = into.get(key)
    if have is None:
        into[key] = [float(v) for v in values]
    else:
        for i, v in enumerate(values):
            have[i] += v


# -- text exposition ---------------------------------------------------------------
def _esc(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _num(v: float) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def _le(bound: float) -> str:
    return repr(float(bound))


def _histogram(
    out: list[str],
    name: str,
    bounds: tuple[float, ...],
    series: Iterable[tuple[str, list[float], int]],
) -> None:
    """``series``: (rendered labels without braces, record, offset of the slots)."""
    out.append(f"# HELP {name} {_HELP[name]}")
    out.append(f"# TYPE {name} histogram")
    n = len(bounds)
    for labels, rec, off in series:
        sep = "," if labels else ""
        cum = 0.0
        for i, bound in enumerate(bounds):
            cum += rec[off + i]
            out.append(f'{name}_bucket{{{labels}{sep}le="{_le(bound)}"}} {_num(cum)}')
        cum += rec[off + n]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {_num(cum)}')
        brace = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{brace} {_num(rec[off + n + 1])}")
        out.append(f"{name}_count{brace} {_num(cum)}")


def _simple(out: list[str], name: str, kind: str, series: Iterable[tuple[str, float]]) -> None:
    # the text format names a counter's family with its _total, as prometheus_client does
    out.append(f"# HELP {name} {_HELP[name]}")
    out.append(f"# TYPE {name} {kind}")
    for labels, value in series:
        brace = f"{{{labels}}}" if labels else ""
        out.append(f"{name}{brace} {_num(value)}")


def render(m: Metrics) -> str:
    """The text exposition (format 0.0.4) of ``m``."""
    out: list[str] = []
    http = [
        (
            f'http_request_method="{_esc(meth)}",http_route="{_esc(route)}",'
            f'http_response_status_code="{status}"',
            rec,
        )
        for (meth, route, status), rec in sorted(m.http.items())
    ]
    _histogram(out, "http_server_request_duration_seconds", DURATION_BUCKETS,
               ((lab, rec, 0) for lab, rec in http))  # fmt: skip
    _simple(out, "http_server_active_requests", "gauge",
            ((f'http_request_method="{_esc(k)}"', v)
             for k, v in sorted(m.active.items())))  # fmt: skip
    _histogram(out, "http_server_request_body_size_bytes", SIZE_BUCKETS,
               ((lab, rec, REQ_OFF) for lab, rec in http))  # fmt: skip
    _histogram(out, "http_server_response_body_size_bytes", SIZE_BUCKETS,
               ((lab, rec, RESP_OFF) for lab, rec in http))  # fmt: skip
    _histogram(out, "gen_ai_client_operation_duration_seconds", AI_DURATION_BUCKETS,
               ((f'gen_ai_request_model="{_esc(k)}"', v, 0)
                for k, v in sorted(m.ai_duration.items())))  # fmt: skip
    _histogram(out, "gen_ai_server_time_to_first_token_seconds", TTFT_BUCKETS,
               ((f'gen_ai_request_model="{_esc(k)}"', v, 0)
                for k, v in sorted(m.ai_ttft.items())))  # fmt: skip
    _simple(out, "gen_ai_client_token_usage_total", "counter",
            ((f'gen_ai_request_model="{_esc(k)}",gen_ai_token_type="{_esc(t)}"', v)
             for (k, t), v in sorted(m.ai_tokens.items())))  # fmt: skip
    _simple(out, "gen_ai_client_operation_errors_total", "counter",
            ((f'gen_ai_request_model="{_esc(k)}",error_type="{_esc(e)}"', v)
             for (k, e), v in sorted(m.ai_errors.items())))  # fmt: skip
    _simple(out, "fastmango_app_workers", "gauge", [("", m.workers)])
    out.append("")
    return "\n".join(out)
