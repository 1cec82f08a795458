"""The import contracts of pyproject.toml hold, and a broken one fails the check.

The contracts themselves (which package may import what) are in ``[tool.importlinter]``;
``lint-imports`` checks them here and in ``.ci/run``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import messenger_client

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def _lint(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> tuple[int, str]:
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def test_every_contract_is_kept() -> None:
    code, output = _lint(str(ROOT / "pyproject.toml"))
    assert code == 0, output
    assert f"Contracts: {len(_contracts())} kept, 0 broken." in output


def test_every_non_ui_client_module_is_under_the_toolkit_contract() -> None:
    """A new client module cannot escape the 'no textual, no rich' rule by being unlisted."""
    package = Path(messenger_client.__file__).parent
    modules = {
        f"messenger_client.{p.stem}" for p in package.glob("*.py") if not p.stem.startswith("__")
    }
    # cli picks the UI to run; tui is the UI.
    expected = modules - {"messenger_client.cli"}
    listed = set(_contracts()["client-no-ui-toolkit"]["source_modules"])
    assert expected - listed == set()


def test_a_protocol_module_doing_io_breaks_its_contract(tmp_path: Path) -> None:
    """The check really fails: a protocol that imports asyncio and the server is refused."""
    for name in ("messenger_server", "messenger_client"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / "messenger_protocol").mkdir()
    (tmp_path / "messenger_protocol" / "__init__.py").write_text(
        "import asyncio\n\nfrom messenger_server import x\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    code, output = _lint(
        "--contract", "protocol-pure", str(ROOT / "pyproject.toml"), cwd=tmp_path, env=env
    )
    assert code == 1, output
    assert "messenger_protocol is not allowed to import asyncio" in output
    assert "messenger_protocol is not allowed to import messenger_server" in output


TUI = Path(messenger_client.__file__).parent / "tui"
APP_MAX_LINES = 300
"""The TUI's app is a composition root (issue 12): it builds its parts and routes to them."""


def test_every_tui_module_is_kept_off_the_app_module() -> None:
    """A new module of the TUI (a part of the app, a widget, a screen) cannot escape the
    'never the app module' rule by being unlisted: only the app itself is left out."""
    listed = set(_contracts()["tui-widgets-no-app"]["source_modules"])
    modules = {
        "messenger_client.tui." + ".".join(p.relative_to(TUI).with_suffix("").parts)
        for p in TUI.rglob("*.py")
        if p.stem != "__init__"
    }
    uncovered = {
        m for m in modules - {"messenger_client.tui.app"} if not any(
            m == s or m.startswith(s + ".") for s in listed
        )
    }  # fmt: skip
    assert uncovered == set()


def test_the_tui_app_stays_a_composition_root() -> None:
    """tui/app.py builds the app's parts and routes its messages to them, in at most
    300 lines; what it does lives in those parts."""
    lines = len((TUI / "app.py").read_text().splitlines())
    assert lines <= APP_MAX_LINES, f"tui/app.py has {lines} lines (at most {APP_MAX_LINES})"
