"""The query modules stay portable SQL (PostgreSQL runs the same strings; see storage/sql.py).

A text scan of every module under ``storage/`` but the DDL: a scalar ``max(a, b)`` in Python
code there would be flagged too (write it another way; storage is for queries).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import messenger_server.storage

STORAGE = Path(messenger_server.storage.__file__).parent

FORBIDDEN = {
    r"\bINSERT\s+OR\s+(IGNORE|REPLACE)\b": "INSERT ... ON CONFLICT DO NOTHING / DO UPDATE",
    r"\.lastrowid\b": "RETURNING id",
    r"\bCOLLATE\s+NOCASE\b": "lower(col) = lower(?)",
    r"\bIntegrityError\b": "ON CONFLICT DO NOTHING RETURNING id (None when taken)",
    r"\b(GLOB|strftime|julianday|group_concat|iif)\s*\(": "a portable function or a dialect hook",
    r"\browid\b": "the primary key",
    r"\b(max|min)\(\s*[\w.]+\s*,": "CASE WHEN (scalar max/min of two values differ)",
}
"""SQLite-only spellings and what to write instead (tasks' common SQL rules)."""

SQLITE_ONLY = {"sqlite.py": [r"sqlite_sequence", r"PRAGMA"]}
"""Where SQLite-only text is the point: the SQLite store itself and its dialect hook."""

DIALECT_HOOKS = {"search.py": [r"\browid\b"]}
"""Spellings a module may use in a dialect hook it overrides for PostgreSQL (the FTS5
index is joined by its rowid; ``PgSearchQueries`` matches the ``tsv`` column instead)."""


def _sql_modules() -> list[Path]:
    return sorted(p for p in STORAGE.glob("*.py") if p.name not in ("migrations.py",))


@pytest.mark.parametrize("module", _sql_modules(), ids=lambda p: p.name)
def test_queries_use_only_portable_sql(module: Path) -> None:
    text = module.read_text()
    found = [
        f"{module.name}:{text[: m.start()].count(chr(10)) + 1}: {m.group(0)!r} -> {instead}"
        for pattern, instead in FORBIDDEN.items()
        if pattern not in DIALECT_HOOKS.get(module.name, [])
        for m in re.finditer(pattern, text, re.IGNORECASE)
    ]
    assert not found, "\n".join(found)


def test_sqlite_only_text_stays_in_the_sqlite_store() -> None:
    for module in _sql_modules():
        allowed = SQLITE_ONLY.get(module.name, [])
        for word in ("sqlite_sequence", "PRAGMA"):
            if word not in allowed:
                assert word not in module.read_text(), f"{module.name} uses {word}"
