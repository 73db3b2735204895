"""The front end ships inside the package, works offline and stays small."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib

from fastmango.dashboard.routes import STATIC, page_manifest, page_scripts, render_shell

from .conftest import ROOT

JS_BUDGET = 100_000  # bytes a page loads, uncompressed: uPlot, app.js and the page's own file
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


def test_each_page_js_fits_the_budget() -> None:
    files = script_files()
    assert [name for name, _ in files] == ["uPlot.iife.min.js", "app.js"]
    shell = sum(size for _, size in files)
    pages = list((STATIC / "pages").glob("*.js"))
    assert len(pages) >= 8
    for page in pages:  # a page loads the shell's scripts and its own file, no other page's
        total = shell + page.stat().st_size
        assert total <= JS_BUDGET, f"the {page.stem} page loads {total:,} bytes of JS"


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


def test_shell_lists_every_page_in_its_manifest_and_has_a_csrf_slot() -> None:
    shell = render_shell()
    listed = shell.split('<script id="fm-pages" type="application/json">')[1].split("</script>")[0]
    manifest = json.loads(listed)
    assert manifest == page_manifest()
    assert {e["src"].split("?")[0] for e in manifest} == {
        f"/static/pages/{page.name}" for page in (STATIC / "pages").glob("*.js")
    }
    assert manifest[0]["id"] == "overview"  # the landing page comes first
    assert all(e["title"] and e["icon"].startswith("<svg") for e in manifest)
    assert 'src="/static/pages/' not in shell  # page code is loaded on first visit
    assert '<meta name="csrf-token" content="{{csrf}}">' in shell
    assert "{{scripts}}" not in shell and "{{style}}" not in shell
