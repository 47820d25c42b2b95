"""Imports point one way (README, "Where things are"): the domain imports no other app, and no
two apps import each other. Tests and the URL configuration may import anything."""

import ast
from pathlib import Path

import pytest
from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)
PROJECT = {
    "attempts",
    "seam",
    "pages",
    "alerts",
    "insights",
    "metrics",
    "accounts",
    "dashboard",
    "fakeseam",
}
# What each app's own code may import of the project, besides itself.
MAY_IMPORT = {
    "attempts": {"dashboard"},
    "seam": {"attempts", "dashboard", "fakeseam"},
    "accounts": {"dashboard"},
    "pages": {"attempts", "seam", "accounts", "dashboard"},
    "alerts": {"attempts", "seam", "accounts", "dashboard"},
    "insights": {"attempts", "pages", "accounts", "dashboard"},
    "metrics": {"attempts", "seam", "alerts", "dashboard"},
    "dashboard": set(),
}


def imported_apps(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names & PROJECT


def own_code(app: str) -> list[Path]:
    return [
        path
        for path in sorted((BASE_DIR / app).rglob("*.py"))
        if "tests" not in path.relative_to(BASE_DIR).parts
        and path.relative_to(BASE_DIR) != Path("dashboard/urls.py")
    ]


@pytest.mark.parametrize("app", sorted(MAY_IMPORT))
def test_an_app_imports_only_what_it_builds_on(app):
    wrong = {
        str(path.relative_to(BASE_DIR)): sorted(imported_apps(path) - MAY_IMPORT[app] - {app})
        for path in own_code(app)
    }
    assert {path: apps for path, apps in wrong.items() if apps} == {}


def test_no_two_apps_build_on_each_other():
    for app, uses in MAY_IMPORT.items():
        for other in uses:
            assert app not in MAY_IMPORT.get(other, set()), f"{app} and {other} import each other"
