"""A fork server for the tests' ``messenger-server`` processes (one per pytest worker).

A server process spent most of its start importing Python modules (~0.5 s of CPU each, and
a suite starts hundreds). This program imports the server's modules once, then forks a
child per server: the child is an ordinary process of its own (its own pid, sockets, data
dir, log file and environment) that runs ``messenger_server.cli.main`` with the arguments
the test gave, exactly as ``python -m messenger_server`` does. Nothing runs in the launcher
before a fork but imports: no event loop, no thread, no connection.

Requests come as JSON lines on stdin, answers go as JSON lines on stdout:
``{"spawn": [argv...], "env": {...}, "cwd": "...", "log": "..."}`` -> ``{"pid": N}``;
``{"poll": N}`` -> ``{"code": int | null}`` (the exit code, negative for a signal, as
``subprocess.Popen.returncode``). When stdin ends (the worker is gone) the launcher kills
the servers it started and exits.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback

# what a server start imports, so a child has it already (the PostgreSQL store, the buses
# and the first upload's type sniffing included); none of them starts a thread
import puremagic  # noqa: F401
import uvloop  # noqa: F401

import messenger_server.app
import messenger_server.bus.nats_bus
import messenger_server.bus.pg_bus
import messenger_server.bus.redis_bus
import messenger_server.logs
import messenger_server.main
import messenger_server.storage.postgres  # noqa: F401
from messenger_server.cli import main


def _child(argv: list[str], env: dict[str, str], cwd: str, log: str) -> None:
    """In the forked child: become the server process, never return."""
    code = 1
    try:
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = ["messenger-server", *argv]
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _serve() -> None:
    codes: dict[int, int] = {}
    living: set[int] = set()
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # a stray print of this program must not corrupt the answers
    for line in sys.stdin:
        request = json.loads(line)
        if "spawn" in request:
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                answers.close()
                _child(request["spawn"], request["env"], request["cwd"], request["log"])
            living.add(pid)
            codes.pop(pid, None)  # the pid of a server that ended earlier, used again
            answers.write(json.dumps({"pid": pid}) + "\n")
        else:
            pid = request["poll"]
            if pid in living:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    living.discard(pid)
                    codes[pid] = os.waitstatus_to_exitcode(status)
            answers.write(json.dumps({"code": codes.get(pid)}) + "\n")
    for pid in living:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass


if __name__ == "__main__":
    _serve()
