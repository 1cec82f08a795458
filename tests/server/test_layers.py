"""Storage owns every query: no SQL and no database driver above ``storage/``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import messenger_server

PACKAGE = Path(messenger_server.__file__).parent
ABOVE_STORAGE = sorted(
    [*PACKAGE.glob("services/*.py"), PACKAGE / "app.py", PACKAGE / "admin_cli.py"]
)
DRIVERS = {"sqlite3", "psycopg", "psycopg_pool", "asyncpg"}
SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE"
    r"|PRAGMA\s|BEGIN\b|COMMIT\b)",
    re.DOTALL,
)


def offences(source: str) -> list[str]:
    """Driver imports, SQL strings and connection grabs in one module's source."""
    found: list[str] = []
    tree = ast.parse(source)
    # the literal parts of an f-string are looked at together, as the f-string
    parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if id(node) in parts:
            continue
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in DRIVERS]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            if node.module.split(".")[0] in DRIVERS:
                found.append(f"from {node.module} import")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if SQL.search(node.value):
                found.append(f"SQL {node.value[:40]!r}")
        elif isinstance(node, ast.JoinedStr):
            text = "".join(
                str(v.value) if isinstance(v, ast.Constant) else "{}" for v in node.values
            )
            if SQL.search(text):
                found.append(f"SQL {text[:40]!r}")
        elif isinstance(node, ast.Attribute) and node.attr in {"conn", "execute", "executemany"}:
            found.append(f".{node.attr}")
    return found


@pytest.mark.parametrize("path", ABOVE_STORAGE, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_sql_above_storage(path: Path) -> None:
    assert offences(path.read_text(encoding="utf-8")) == []


def test_the_check_finds_what_it_looks_for() -> None:
    source = (
        "import sqlite3\n"
        "from psycopg import sql\n"
        "q = 'SELECT id FROM users WHERE login = ?'\n"
        "r = f'DELETE FROM events WHERE seq IN ({marks})'\n"
        "s = f'SELECT {columns} FROM chats'\n"
        "tx.conn.execute('x')\n"
    )
    assert offences(source) == [
        "import sqlite3",
        "from psycopg import",
        "SQL 'SELECT id FROM users WHERE login = ?'",
        "SQL 'DELETE FROM events WHERE seq IN ({})'",
        "SQL 'SELECT {} FROM chats'",
        ".execute",
        ".conn",
    ]
    assert offences("message = 'select a chat from the list'\nok = 'begin typing'\n") == []


def test_every_service_module_is_checked() -> None:
    names = {p.name for p in ABOVE_STORAGE}
    assert {"moderation.py", "retention.py", "scheduler.py", "admin.py", "app.py"} <= names
    assert "admin_cli.py" in names
