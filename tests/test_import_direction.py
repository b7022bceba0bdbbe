"""One entry point: app/cli.py calls into the app; nothing in the app imports the CLI back
(app/poller once did, through `python -m app.poller`)."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_nothing_imports_the_cli() -> None:
    offenders = {
        str(path.relative_to(APP.parent))
        for path in APP.rglob("*.py")
        if path.name != "cli.py" and "app.cli" in imported_modules(path)
    }
    assert offenders == set()


def test_the_cli_reaches_the_poller() -> None:
    assert "app.poller.process" in imported_modules(APP / "cli.py")
    assert not (APP / "poller" / "__main__.py").exists()
