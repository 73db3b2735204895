"""The front end ships inside the package, works offline and stays small."""

from __future__ import annotations

import hashlib
import re
import tomllib

from fastmango.dashboard.routes import STATIC, page_scripts, render_shell

from .conftest import ROOT

JS_BUDGET = 100_000  # bytes, uncompressed: own JS plus the vendored uPlot
#: sha256 of the files in `npm pack uplot@1.6.32` (package/dist/…, package/LICENSE)
UPLOT = {
    "uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
    "uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
    "uPlot.LICENSE": "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd",
}


def script_files() -> list[tuple[str, int]]:
    out = []
    for url in page_scripts():
        path = STATIC / url.split("?")[0].removeprefix("/static/")
        out.append((path.name, path.stat().st_size))
    return out


def test_page_js_fits_the_budget() -> None:
    files = script_files()
    assert [name for name, _ in files][:2] == ["uPlot.iife.min.js", "app.js"]
    total = sum(size for _, size in files)
    assert total <= JS_BUDGET, f"page JS is {total:,} bytes: {files}"


def test_uplot_is_vendored_with_its_licence() -> None:
    js = (STATIC / "vendor" / "uPlot.iife.min.js").read_text()
    assert js.startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    licence = (STATIC / "vendor" / "uPlot.LICENSE").read_text()
    assert "The MIT License" in licence and "Leon Sorokin" in licence
    assert (STATIC / "vendor" / "uPlot.min.css").read_text().startswith(".uplot")
    for name, digest in UPLOT.items():  # as published, unedited
        assert hashlib.sha256((STATIC / "vendor" / name).read_bytes()).hexdigest() == digest


def test_nothing_is_fetched_from_the_network() -> None:
    for path in STATIC.rglob("*"):
        if path.suffix in {".html", ".js", ".css"} and "vendor" not in path.parts:
            text = path.read_text()
            assert not re.search(r"https?://", text.replace("http://www.w3.org", "")), path
    shell = render_shell()
    assert not re.search(r'(src|href)="(https?:)?//', shell)


def test_package_data_ships_every_static_file() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["fastmango"]
    package = ROOT / "fastmango"
    shipped = {p for pattern in patterns for p in package.glob(pattern)}
    missing = [p for p in STATIC.rglob("*") if p.is_file() and p not in shipped]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"


def test_shell_loads_every_page_file_and_has_a_csrf_slot() -> None:
    shell = render_shell()
    for page in (STATIC / "pages").glob("*.js"):
        assert f'src="/static/pages/{page.name}?v=' in shell
    assert '<meta name="csrf-token" content="{{csrf}}">' in shell
    assert "{{scripts}}" not in shell and "{{style}}" not in shell
