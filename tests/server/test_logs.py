"""The server log file is capped: rotated by size as well as daily (issue 9 item 15)."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import pytest

from messenger_server import logs
from messenger_server.config import load_settings
from messenger_server.logs import LOG_BACKUPS, SizeAndDayRotatingHandler, log_file, setup_logging


def _root_handlers_restored() -> tuple[int, list[logging.Handler]]:
    root = logging.getLogger()
    return root.level, list(root.handlers)


def test_log_file_never_grows_past_its_cap(tmp_path: Path) -> None:
    """Item 15: a flood of log lines is cut into files of at most log_max_bytes, 14 kept."""
    settings = load_settings({"data_dir": str(tmp_path), "log_max_bytes": "4096"})
    level, before = _root_handlers_restored()
    setup_logging(settings, stderr=False)
    try:
        flood = logging.getLogger("messenger_server.flood")
        for i in range(5000):
            flood.warning("line %05d of a flood %s", i, "x" * 60)
    finally:
        root = logging.getLogger()
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)
    files = sorted(log_file(settings).parent.iterdir())
    assert len(files) == LOG_BACKUPS + 1  # server.log and server.log.1 .. .14
    assert all(f.stat().st_size <= 4096 for f in files)
    assert "line 04999" in log_file(settings).read_text()  # the newest line is kept


def test_log_file_is_also_rotated_when_the_day_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 15: a new day starts a new file even when the size cap is far away."""
    path = tmp_path / "server.log"
    handler = SizeAndDayRotatingHandler(path, max_bytes=1024 * 1024)
    handler.setFormatter(logging.Formatter(logs.LOG_FORMAT))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "first day", None, None)
    try:
        handler.emit(record)
        tomorrow = datetime.date.today() + datetime.timedelta(days=1)
        monkeypatch.setattr(SizeAndDayRotatingHandler, "_today", staticmethod(lambda: tomorrow))
        record.msg = "second day"
        handler.emit(record)
    finally:
        handler.close()
    assert "first day" in (tmp_path / "server.log.1").read_text()
    assert "second day" in path.read_text() and "first day" not in path.read_text()


def test_credentials_never_reach_the_log_file(tmp_path: Path) -> None:
    """Item 18 of issue 9: a bearer token, access_token and passwords in any log line
    (messages and tracebacks alike) are written as REDACTED."""
    settings = load_settings({"data_dir": str(tmp_path)})
    level, before = _root_handlers_restored()
    setup_logging(settings, stderr=False)
    secret = "s3cr3t-Tok.en_42"
    try:
        log = logging.getLogger("messenger_server.leaky")
        log.warning("header Authorization: Bearer %s seen", secret)
        log.warning("GET /api/v1/events?access_token=%s&x=1", secret)
        try:
            raise ValueError(f'body {{"login": "a", "password": "{secret}"}}')
        except ValueError:
            log.exception("failed with token=%s", secret)
    finally:
        root = logging.getLogger()
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)
    text = log_file(settings).read_text()
    assert secret not in text
    assert "Bearer REDACTED" in text and "access_token=REDACTED&x=1" in text
    assert '"password": "REDACTED"' in text and "token=REDACTED" in text
