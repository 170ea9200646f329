"""The tests' own layout: shared code comes from tests.support, never from a test module or a conftest."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.data import DATA_DIR, TESTS_DIR


def imported_test_modules(path: Path) -> list[str]:
    """Every module of the `tests` package that `path` imports (relative imports as written, e.g. `.harness`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            found.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return [name for name in found if name.startswith((".", "tests.")) or name == "tests"]


def is_support(module: str) -> bool:
    return module == "tests.support" or module.startswith("tests.support.")


def test_shared_code_is_imported_from_tests_support_only() -> None:
    sources = [p for p in TESTS_DIR.rglob("*.py") if DATA_DIR not in p.parents]
    wrong = {
        str(path.relative_to(TESTS_DIR)): bad
        for path in sources
        if (bad := [m for m in imported_test_modules(path) if not is_support(m)])
    }
    assert wrong == {}, "import shared helpers from tests.support.* (move them there), not from tests or conftests"
