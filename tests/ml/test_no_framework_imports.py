"""ml/ must stay framework-free: no Django, no Tessera app, anywhere under ml/."""

from __future__ import annotations

import ast
from pathlib import Path

ML = Path(__file__).resolve().parents[2] / "ml"
FORBIDDEN = {
    "django",
    "rest_framework",
    "channels",
    "celery",
    "tessera",
    "consent",
    "annotate",
    "games",
    "accounts",
}


def imported_roots(source: str) -> set[str]:
    """Top-level package names imported by a module (absolute imports only)."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            roots.add(node.args[0].value.split(".")[0])
    return roots


def test_scanner_sees_every_import_form() -> None:
    source = (
        "import django\nimport annotate.models as m\nfrom games.engine import x\n"
        "from . import sibling\nimportlib.import_module('consent.services')\n"
    )
    assert imported_roots(source) == {"django", "annotate", "games", "consent"}


def test_ml_has_modules_to_scan() -> None:
    assert (ML / "dawid_skene.py").is_file()
    assert len(list(ML.rglob("*.py"))) >= 10


def test_no_module_under_ml_imports_a_framework_or_app() -> None:
    offenders = {
        str(path.relative_to(ML.parent)): sorted(
            imported_roots(path.read_text("utf-8")) & FORBIDDEN
        )
        for path in sorted(ML.rglob("*.py"))
    }
    assert {path: names for path, names in offenders.items() if names} == {}
