"""Reading the app's project: dependency kind, entry point, Python, health route."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from fastmango.deployer.artifacts.project import ProjectError, detect, dns_name, python_from
from fastmango.deployer.artifacts.yamltext import dump
from fastmango.deployer.errors import DeployError
from fastmango.deployer.placement import gpu_offer, region_names
from tests.artifacts import projects


def test_pyproject_src_layout(tmp_path: Path) -> None:
    spec = detect(projects.pyproject_src(tmp_path / "p"))
    assert (spec.name, spec.entry, spec.deps, spec.src_dir) == (
        "shop-app",
        "shop.main:app",
        "pyproject",
        "src",
    )
    assert spec.python == "3.12" and spec.health_path == "/healthz" and spec.port == 8000


def test_requirements_flat(tmp_path: Path) -> None:
    spec = detect(projects.requirements_flat(tmp_path / "flat"), port=9000)
    assert (spec.entry, spec.deps, spec.python, spec.port) == (
        "app:application",
        "requirements",
        "3.11",
        9000,
    )
    assert spec.health_path is None and spec.src_dir == ""


def test_django(tmp_path: Path) -> None:
    spec = detect(projects.django(tmp_path / "site"))
    assert (spec.entry, spec.deps) == ("mysite.asgi:application", "none")


def test_no_entry_point_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "lib.py").write_text("x = 1\n")
    with pytest.raises(ProjectError, match=r"no ASGI app found.*--app module:attribute"):
        detect(tmp_path)


def test_app_override_and_bad_override(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    assert detect(tmp_path, entry="svc.web:create_app()").entry == "svc.web:create_app()"
    with pytest.raises(ProjectError, match="expected module:attribute"):
        detect(tmp_path, entry="main.py")


def test_broken_pyproject_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project\n")
    with pytest.raises(ProjectError, match=r"pyproject.toml: not valid TOML"):
        detect(tmp_path)


@pytest.mark.parametrize(
    ("requires", "pinned", "want"),
    [
        (None, None, "3.12"),
        (">=3.11", None, "3.12"),
        (">=3.13", None, "3.13"),
        (">=3.10,<3.12", None, "3.11"),
        (">=3.11", "3.11.4", "3.11"),
        (">=3.15", None, "3.15"),
    ],
)
def test_python_version(requires: str | None, pinned: str | None, want: str) -> None:
    assert python_from(requires, pinned) == want


@pytest.mark.parametrize(
    ("text", "want"), [("Shop_App", "shop-app"), ("--x--", "x"), ("", "app"), ("a" * 80, "a" * 63)]
)
def test_dns_name(text: str, want: str) -> None:
    assert dns_name(text) == want


@pytest.mark.parametrize(
    "value",
    [{"A\u2028": None}, {"k\u2029": 1}, "x\n\u2028y", "a\u2029b", "x\n\x85y"],
)
def test_yaml_line_separators_read_back(value: object) -> None:
    """U+2028/U+2029 and NEL are line breaks to a YAML 1.1 reader: escaped, never raw."""
    doc = {"k": value}
    text = dump(doc)
    assert yaml.safe_load(text) == doc
    assert YAML(typ="safe", pure=True).load(text) == doc


@settings(max_examples=150, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda kids: (
            st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3)
        ),
        max_leaves=8,
    )
)
def test_yaml_text_reads_back_the_same_in_yaml_1_1_and_1_2(value: object) -> None:
    doc = {"k": value}
    text = dump(doc)
    assert yaml.safe_load(text) == doc
    assert YAML(typ="safe", pure=True).load(text) == doc


@pytest.mark.parametrize(
    ("platform", "gpu", "kind"),
    [
        ("kubernetes", "t4", "Tesla-T4"),
        ("kubernetes", "a100", "NVIDIA-A100-SXM4-40GB"),
        ("cloudrun", "l4", "nvidia-l4"),
        ("fly", "a10", "a10"),
        ("fly", "a100", "a100-pcie-40gb"),
    ],
)
def test_gpu_offers(platform: str, gpu: str, kind: str) -> None:
    offer = gpu_offer(platform, gpu)
    assert offer is not None and offer.kind == kind


@pytest.mark.parametrize(
    ("platform", "gpu", "why"),
    [
        ("cloudrun", "t4", "L4"),
        ("ecs", "a100", "Fargate has no GPUs"),
        ("azure", "t4", "Container Apps"),
        ("render", "l4", "no GPU"),
        ("railway", "a10", "no GPU"),
        ("fly", "t4", "a10"),
        ("kubernetes", "h100", "expected one of"),
    ],
)
def test_gpu_refusals_say_what_is_offered(platform: str, gpu: str, why: str) -> None:
    with pytest.raises(DeployError, match=why):
        gpu_offer(platform, gpu)
    assert gpu_offer(platform, None) is None


def test_regions() -> None:
    assert region_names("cloudrun", ["us-west", "eu-west", "ap-southeast"]) == (
        "us-west1",
        "europe-west1",
        "asia-southeast1",
    )
    assert region_names("ecs", ["us-west"]) == ("us-west-2",)
    assert region_names("ecs", ["eu-central-1", "eu-central"]) == ("eu-central-1",)
    assert region_names("fly", ["us-west", "nrt"]) == ("sjc", "nrt")
    with pytest.raises(DeployError, match=r"one region.*make an environment per region"):
        region_names("azure", ["us-west", "eu-west"])
    with pytest.raises(DeployError, match="no render equivalent"):
        region_names("render", ["ap-northeast"])
