"""How long ``fastmango rollback`` takes, end to end, on each platform — and how much of
it is fastmango's own time rather than waiting on the platform.

Each platform's fake (``tests/fakes/``) runs with that platform's typical latencies (its
``TYPICAL``, documented in the fake): per-request API latency and the time its rollout
steps take. Each run starts a fresh fake and app folder, then times the real CLI,
``python -m fastmango.cli rollback --env production --json``, as a child process from
``Popen`` to exit (interpreter start, imports, settings, the lock, the platform calls,
the wait for health, the release/audit records). The CLI reports the seconds it spent
waiting on the platform (inside requests, retry backoff and poll pauses, from the
shared client's meter); the rest is fastmango's own overhead.

Paths: fly-standby (the previous machines kept stopped by the last deploy are started:
the warm path), fly-in-place (no standby: every machine is updated to the old image),
railway (``deploymentRollback``), render (``POST /rollback``), kubernetes (undo to the
previous ReplicaSet, 3 replicas).

Goals: < 30 s on every platform; own overhead < 1 s.

    python bench/rollback.py [--runs 3] [--scale 1.0] [--platforms fly-standby,…] [--json]

``--scale`` multiplies every latency and step (0.05 gives a smoke run of seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _util import emit, median, progress, table  # noqa: E402

from tests.fakes.fly import FakeFly  # noqa: E402
from tests.fakes.kubernetes import FakeKubernetes  # noqa: E402
from tests.fakes.railway import FakeRailway  # noqa: E402
from tests.fakes.render import FakeRender  # noqa: E402

PATHS = ["fly-standby", "fly-in-place", "railway", "render", "kubernetes"]
GOAL_WALL = 30.0
GOAL_OVERHEAD = 1.0
TOKENS = {"fly": "fo1_benchtoken", "railway": "rw-bench-token", "render": "rnd_benchtoken"}


def make_fake(path: str, scale: float) -> Any:
    cls = {
        "fly": FakeFly,
        "railway": FakeRailway,
        "render": FakeRender,
        "kubernetes": FakeKubernetes,
    }[path.split("-")[0]]
    typ = cls.TYPICAL
    kw: dict[str, Any] = {"latency": typ["latency"] * scale, "step": typ["step"] * scale}
    if cls is FakeFly:
        kw["boot"] = typ["boot"] * scale
    if path.split("-")[0] in TOKENS:
        kw["token"] = TOKENS[path.split("-")[0]]
    return cls(**kw)


def settings_for(fake: Any, app: Path) -> str:
    lines = ["[environments.production]", f'platform = "{fake.name}"']
    if fake.name == "fly":
        lines += [f'app = "{fake.app_name}"', f'api_url = "{fake.url}"']
    elif fake.name == "railway":
        lines += [
            f'app = "{fake.service}"',
            f'environment_id = "{fake.environment}"',
            f'api_url = "{fake.url}/graphql/v2"',
        ]
    elif fake.name == "render":
        lines += [f'app = "{fake.service}"', f'api_url = "{fake.url}/v1"']
    else:
        (app / "kubeconfig").write_text(fake.kubeconfig())
        lines += [f'app = "{fake.dep_name}"', f'kubeconfig = "{app / "kubeconfig"}"']
    # the CLI's defaults, but for a poll interval suited to each platform's API limits
    poll = {"fly": 1.0, "railway": 1.0, "render": 1.0, "kubernetes": 0.5}[fake.name]
    return "\n".join(lines) + f'\n[deploy]\npoll_interval = "{poll}s"\n'


def cli_env(fake: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMANGO_")}
    if fake.name in TOKENS:
        env["FASTMANGO_ENVIRONMENTS__PRODUCTION__TOKEN"] = TOKENS[fake.name]
    return env


def prepare_fly_standby(fake: FakeFly, app: Path) -> None:
    """A deploy by fastmango first (fast boots), so the previous machines wait stopped."""
    boot = fake.boot
    fake.boot = 0.0
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "fastmango.cli",
                "deploy",
                "fly",
                "--env=production",
                "--image=registry.fly.io/shop:deployment-new",
                "--json",
            ],
            cwd=app,
            env=cli_env(fake),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the preparing deploy failed: {done.stderr}")
    finally:
        fake.boot = boot


def one_run(path: str, scale: float) -> dict[str, Any]:
    fake = make_fake(path, scale)
    fake.start()
    try:
        with tempfile.TemporaryDirectory(prefix="fm-bench-rollback-") as tmp:
            app = Path(tmp)
            (app / "fastmango.toml").write_text(settings_for(fake, app))
            if path == "fly-standby":
                prepare_fly_standby(fake, app)
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "fastmango.cli", "rollback", "--env=production", "--json"],
                cwd=app,
                env=cli_env(fake),
                capture_output=True,
                text=True,
                timeout=300,
            )
            wall = time.perf_counter() - t0
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
            if done.returncode != 0:
                raise RuntimeError(f"{path}: rollback failed: {done.stderr.strip()}")
            out = json.loads(done.stdout)
    finally:
        fake.stop()
    return {
        "wall": wall,
        "platform": out["platform_seconds"],
        "inside": out["duration"],
        "overhead": wall - out["platform_seconds"],
        "requests": out["requests"],
        "cpu": cpu,
        "from": out["from_version"],
        "to": out["to_version"],
    }


def interpreter_start() -> float:
    """The floor any Python CLI pays: ``python -c pass`` (median of 5)."""
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - t0)
    return median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply latencies and steps")
    ap.add_argument("--platforms", default=",".join(PATHS))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    paths = [p for p in args.platforms.split(",") if p]
    unknown = set(paths) - set(PATHS)
    if unknown:
        ap.error(f"unknown platform path(s): {', '.join(sorted(unknown))} (known: {PATHS})")
    floor = interpreter_start()
    results: dict[str, Any] = {}
    for path in paths:
        runs = []
        for i in range(args.runs):
            progress(f"{path}: run {i + 1}/{args.runs}")
            runs.append(one_run(path, args.scale))
        results[path] = {
            "wall_seconds": median([r["wall"] for r in runs]),
            "platform_seconds": median([r["platform"] for r in runs]),
            "overhead_seconds": median([r["overhead"] for r in runs]),
            "overhead_share": median([r["overhead"] / r["wall"] for r in runs]),
            "in_process_overhead_seconds": median([r["inside"] - r["platform"] for r in runs]),
            "requests": median([r["requests"] for r in runs]),
            "cli_cpu_seconds": median([r["cpu"] for r in runs]),
            "runs": runs,
            "typical": {k: v * args.scale for k, v in make_fake(path, 1).TYPICAL.items()},
        }
        r = results[path]
        r["meets_goals"] = r["wall_seconds"] < GOAL_WALL and r["overhead_seconds"] < GOAL_OVERHEAD
    rows = []
    for path, r in results.items():
        rows.append(
            [
                path,
                r["wall_seconds"],
                r["platform_seconds"],
                r["overhead_seconds"],
                f"{100 * r['overhead_share']:.1f} %",
                r["in_process_overhead_seconds"],
                r["cli_cpu_seconds"],
                int(r["requests"]),
                "yes" if r["wall_seconds"] < GOAL_WALL else "NO",
                "yes" if r["overhead_seconds"] < GOAL_OVERHEAD else "NO",
            ]
        )
    text = table(
        [
            "platform",
            "wall s",
            "platform s",
            "own s",
            "own share",
            "own in-proc s",
            "CLI CPU s",
            "requests",
            "< 30 s",
            "own < 1 s",
        ],
        rows,
    )
    text += (
        f"\n\nmedians of {args.runs} run(s) each, latencies × {args.scale:g}; "
        f"own = wall − time waiting on the platform; it includes starting Python "
        f"({floor:.3f} s for `python -c pass` here) and importing fastmango; own in-proc = "
        f"the same inside the process (lock, records, parsing, TLS context); CLI CPU = the "
        f"rollback process's user+system CPU seconds (less sensitive to a busy machine than "
        f"wall time). Load average at the end: {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs."
    )
    emit(
        {
            "scale": args.scale,
            "runs": args.runs,
            "load_average": os.getloadavg()[0],
            "cpus": os.cpu_count(),
            "python_start_seconds": floor,
            "goals": {"wall_seconds": GOAL_WALL, "overhead_seconds": GOAL_OVERHEAD},
            "platforms": results,
        },
        text,
        args.json,
    )


if __name__ == "__main__":
    main()
