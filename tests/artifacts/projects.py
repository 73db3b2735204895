"""Sample app projects the generators read (written into a test's tmp_path)."""

from __future__ import annotations

from pathlib import Path

FASTAPI_MAIN = """\
from fastapi import FastAPI

app = FastAPI()


@app.get("/healthz")
def healthz() -> dict[str, bool]:
    return {"ok": True}
"""


def pyproject_src(root: Path) -> Path:
    """A src-layout project with [project] dependencies and a /healthz route."""
    (root / "src" / "shop").mkdir(parents=True)
    (root / "src" / "shop" / "__init__.py").write_text("")
    (root / "src" / "shop" / "main.py").write_text(FASTAPI_MAIN)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "Shop_App"\nversion = "1.0"\nrequires-python = ">=3.11,<3.14"\n'
        'dependencies = ["fastapi>=0.110", "uvicorn>=0.30"]\n'
    )
    return root


def requirements_flat(root: Path) -> Path:
    """A requirements.txt project with a Starlette app in app.py and no health route."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "requirements.txt").write_text("starlette==0.41.0\nuvicorn==0.32.0\n")
    (root / "app.py").write_text(
        "from starlette.applications import Starlette\n\napplication = Starlette()\n"
    )
    (root / ".python-version").write_text("3.11.9\n")
    return root


def django(root: Path) -> Path:
    """A Django project: asgi.py with get_asgi_application(), no dependency file."""
    (root / "mysite").mkdir(parents=True)
    (root / "mysite" / "__init__.py").write_text("")
    (root / "mysite" / "asgi.py").write_text(
        "import os\nfrom django.core.asgi import get_asgi_application\n\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n"
        "application = get_asgi_application()\n"
    )
    return root
