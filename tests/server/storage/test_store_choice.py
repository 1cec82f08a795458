"""Choosing the store: ``--store``, the PostgreSQL test fixture without a server, CI=true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from messenger_server.config import ConfigError, load_settings
from messenger_server.storage import SqliteStore, store_for
from messenger_server.storage.postgres import PostgresStore, redact_url
from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[3]


def test_default_store_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": str(tmp_path)}, {})
    assert settings.store == ""
    store = store_for(settings.store, settings.data_dir)
    assert isinstance(store, SqliteStore) and store.path == tmp_path / "messenger.db"


def test_a_postgresql_url_from_env_selects_postgresql() -> None:
    url = "postgresql://app:secret@db.example:5432/messenger"
    settings = load_settings({}, {"MESSENGER_STORE": url})
    assert isinstance(store_for(settings.store, settings.data_dir), PostgresStore)
    # never shown with its password
    assert settings.as_public_dict()["store"] == "postgresql://app:***@db.example:5432/messenger"
    assert redact_url(url) == "postgresql://app:***@db.example:5432/messenger"
    assert "secret" not in repr(store_for(settings.store, settings.data_dir))


@pytest.mark.parametrize("raw", ["mysql://x@y/z", "/var/lib/messenger.db", "postgresql:/x"])
def test_other_stores_are_refused_in_one_line(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"store": raw}, {})
    assert str(caught.value).startswith("store must be empty (SQLite in data_dir) or a postgresql")


def test_store_password_is_not_echoed_in_the_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"store": "mysql://app:secret@db/x"}, {})
    assert "secret" not in str(caught.value)


def _pytest_without_postgres(ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["MESSENGER_TEST_POSTGRES"] = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n0",
         "tests/server/storage/test_contract.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_without_postgresql_the_postgresql_tests_skip_with_one_line() -> None:
    run = _pytest_without_postgres(ci=False)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [line for line in run.stdout.splitlines() if "PostgreSQL tests skipped" in line]
    assert len(lines) == 1 and "no PostgreSQL at 127.0.0.1:" in lines[0], run.stdout
    # the SQLite halves of the two-store tests pass; nothing failed
    assert re.search(r"\n(\d+ passed, )?\d+ skipped in ", run.stdout), run.stdout


def test_with_ci_true_an_unreachable_postgresql_fails_the_run() -> None:
    run = _pytest_without_postgres(ci=True)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "CI=true and no PostgreSQL at 127.0.0.1:" in run.stdout
    assert re.search(r"\d+ (error|failed)", run.stdout), run.stdout
